"""apimirror: a rate-limit-safe, monitored local mirror of an external HTTP API."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("apimirror")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0"
