"""Settings for every process, read from the environment (prefix-free names) or Docker secrets."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DEV_TOKEN = "dev-token-change-me"  # noqa: S105 - refused outside development


class Settings(BaseSettings):
    """All of apimirror's configuration; one instance per process via `get_settings()`."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)

    environment: Literal["development", "test", "production"] = Field(
        "development", validation_alias="APIMIRROR_ENV"
    )
    service: Literal["api", "worker", "beat", "upstream-sim", "cli"] = Field(
        "cli", validation_alias="APIMIRROR_SERVICE"
    )
    log_level: str = Field("INFO", validation_alias="APIMIRROR_LOG_LEVEL")

    # Storage
    mongodb_url: SecretStr = Field(
        SecretStr("mongodb://127.0.0.1:27017/"), validation_alias="MONGODB_URL"
    )
    mongodb_db: str = Field("apimirror", validation_alias="MONGODB_DB")
    mongodb_server_selection_timeout_ms: int = Field(
        2000, ge=100, validation_alias="MONGODB_SERVER_SELECTION_TIMEOUT_MS"
    )
    redis_url: SecretStr = Field(
        SecretStr("redis://127.0.0.1:6379/0"), validation_alias="REDIS_URL"
    )
    redis_prefix: str = Field("apimirror", validation_alias="APIMIRROR_REDIS_PREFIX")

    # API
    api_tokens: SecretStr = Field(
        SecretStr(DEFAULT_DEV_TOKEN), validation_alias="APIMIRROR_API_TOKENS"
    )
    require_auth_for_reads: bool = Field(False, validation_alias="APIMIRROR_REQUIRE_AUTH_FOR_READS")
    max_body_bytes: int = Field(1024 * 1024, validation_alias="APIMIRROR_MAX_BODY_BYTES")
    stale_after_seconds: int = Field(2700, ge=1, validation_alias="APIMIRROR_STALE_AFTER_SECONDS")
    # How far past "now" a written `observed_at` may be (clock skew), in seconds.
    max_future_skew_seconds: int = Field(
        3600, ge=0, validation_alias="APIMIRROR_MAX_FUTURE_SKEW_SECONDS"
    )

    # Upstream
    source: str = Field("openmeteo", validation_alias="APIMIRROR_SOURCE")
    upstream_base_url: str = Field(
        "https://api.open-meteo.com", validation_alias="APIMIRROR_UPSTREAM_BASE_URL"
    )
    upstream_connect_timeout_s: float = Field(
        5.0, validation_alias="APIMIRROR_UPSTREAM_CONNECT_TIMEOUT"
    )
    upstream_read_timeout_s: float = Field(20.0, validation_alias="APIMIRROR_UPSTREAM_READ_TIMEOUT")
    upstream_batch_size: int = Field(1000, ge=1, le=1000, validation_alias="APIMIRROR_BATCH_SIZE")
    current_variables: str = Field(
        "temperature_2m,relative_humidity_2m,apparent_temperature,weather_code,wind_speed_10m,wind_direction_10m",
        validation_alias="APIMIRROR_CURRENT_VARIABLES",
    )
    forecast_days: int = Field(1, ge=1, le=16, validation_alias="APIMIRROR_FORECAST_DAYS")

    # Rate-limit budget (weighted calls per window)
    limit_minute: int = Field(600, ge=0, validation_alias="APIMIRROR_LIMIT_MINUTE")
    limit_hour: int = Field(5000, ge=0, validation_alias="APIMIRROR_LIMIT_HOUR")
    limit_day: int = Field(10000, ge=0, validation_alias="APIMIRROR_LIMIT_DAY")
    limit_month: int = Field(300000, ge=0, validation_alias="APIMIRROR_LIMIT_MONTH")

    # Scheduling and task limits
    refresh_interval_s: float = Field(900.0, gt=0, validation_alias="APIMIRROR_REFRESH_INTERVAL")
    task_soft_time_limit_s: int = Field(60, ge=1, validation_alias="APIMIRROR_TASK_SOFT_LIMIT")
    task_hard_time_limit_s: int = Field(90, ge=2, validation_alias="APIMIRROR_TASK_HARD_LIMIT")
    retry_max_total_wait_s: int = Field(3 * 3600, ge=1, validation_alias="APIMIRROR_RETRY_MAX_WAIT")
    retry_max_countdown_s: int = Field(3600, ge=1, validation_alias="APIMIRROR_RETRY_MAX_COUNTDOWN")
    retry_jitter_s: float = Field(5.0, ge=0, validation_alias="APIMIRROR_RETRY_JITTER")
    refresh_lock_ttl_s: int = Field(120, ge=1, validation_alias="APIMIRROR_REFRESH_LOCK_TTL")
    retention_days: int = Field(30, ge=1, validation_alias="APIMIRROR_RETENTION_DAYS")

    # Metrics exporters for non-HTTP processes
    worker_metrics_port: int = Field(9101, validation_alias="APIMIRROR_WORKER_METRICS_PORT")
    beat_metrics_port: int = Field(9102, validation_alias="APIMIRROR_BEAT_METRICS_PORT")
    metrics_host: str = Field("127.0.0.1", validation_alias="APIMIRROR_METRICS_HOST")
    # Observability: multiprocess metrics root (a per-service subdirectory is used), sampling
    multiproc_root: str = Field("", validation_alias="APIMIRROR_MULTIPROC_ROOT")
    metrics_sample_interval_s: float = Field(
        15.0, gt=0, validation_alias="APIMIRROR_METRICS_SAMPLE_INTERVAL"
    )
    revision: str = Field("unknown", validation_alias="APIMIRROR_REVISION")

    @model_validator(mode="before")
    @classmethod
    def _read_secret_files(cls, data: object) -> object:
        """Let every `NAME_FILE` variable (a Docker secret path) stand in for `NAME`."""
        import os

        if not isinstance(data, dict):
            return data
        for name in ("MONGODB_URL", "REDIS_URL", "APIMIRROR_API_TOKENS"):
            path = os.environ.get(f"{name}_FILE")
            if path and name not in os.environ:
                data[name] = Path(path).read_text(encoding="utf-8").strip()
        return data

    @model_validator(mode="after")
    def _refuse_default_secrets(self) -> Settings:
        if self.environment == "production" and DEFAULT_DEV_TOKEN in self.tokens():
            raise ValueError(
                "APIMIRROR_API_TOKENS must be set to a real secret outside development"
            )
        if self.task_hard_time_limit_s <= self.task_soft_time_limit_s:
            raise ValueError("APIMIRROR_TASK_HARD_LIMIT must be greater than the soft limit")
        return self

    def tokens(self) -> list[str]:
        """Return the accepted bearer tokens (comma-separated in the setting)."""
        return [t.strip() for t in self.api_tokens.get_secret_value().split(",") if t.strip()]

    def variables(self) -> list[str]:
        """Return the upstream `current` variables to request."""
        return [v.strip() for v in self.current_variables.split(",") if v.strip()]

    def limits(self) -> dict[str, int]:
        """Return the rate-limit budget per window name."""
        return {
            "minute": self.limit_minute,
            "hour": self.limit_hour,
            "day": self.limit_day,
            "month": self.limit_month,
        }

    @property
    def visibility_timeout_s(self) -> int:
        """Return a Redis visibility timeout longer than any hard limit or retry countdown."""
        return (
            max(self.task_hard_time_limit_s, self.retry_max_countdown_s + int(self.retry_jitter_s))
            * 2
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process-wide settings, read once on first use."""
    return Settings()
