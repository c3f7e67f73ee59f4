"""Logging and metrics shared by every process."""
