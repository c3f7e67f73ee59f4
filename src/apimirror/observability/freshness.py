"""Freshness gauges from stored data: last refresh success/error and the stalest data's age.

`apimirror_refresh_last_success_timestamp_seconds` is restored from `source_status`, so a
restarted process never exports 0 (which would read as "stale since 1970") and exports nothing
until a success is known. `apimirror_data_age_seconds` costs one indexed lookup per active
location and is computed by the beat sampler every few seconds, never per scrape.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import structlog
from pymongo.synchronous.database import Database

from apimirror.config import Settings, get_settings
from apimirror.observability.metrics import (
    CONFIG_REFRESH_INTERVAL,
    CONFIG_STALE_AFTER,
    DATA_AGE,
    REFRESH_LAST_ERROR,
    REFRESH_LAST_SUCCESS,
)

log = structlog.get_logger(__name__)
Doc = dict[str, Any]


def export_config(settings: Settings | None = None) -> None:
    """Export the thresholds the alert rules compare against."""
    settings = settings or get_settings()
    CONFIG_STALE_AFTER.set(settings.stale_after_seconds)
    CONFIG_REFRESH_INTERVAL.set(settings.refresh_interval_s)


def _epoch(value: object) -> float | None:
    if not isinstance(value, datetime):
        return None
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    seconds = aware.timestamp()
    return seconds if seconds > 0 else None


def restore_last_success(*, db: Database[Doc]) -> dict[str, float]:
    """Set the last-success (and last-error) gauges from `source_status`; return the successes."""
    restored: dict[str, float] = {}
    for doc in db.source_status.find({}, {"last_success_at": 1, "last_error_at": 1}):
        source = str(doc["_id"])
        success = _epoch(doc.get("last_success_at"))
        if success is not None:
            REFRESH_LAST_SUCCESS.labels(source).set(success)
            restored[source] = success
        error = _epoch(doc.get("last_error_at"))
        if error is not None:
            REFRESH_LAST_ERROR.labels(source).set(error)
    return restored


def update_data_age(*, db: Database[Doc], source: str, now: datetime | None = None) -> float | None:
    """Set `apimirror_data_age_seconds{source}` from stored data; return it (None if unknown)."""
    from apimirror.storage.ingest import stalest_age

    age = stalest_age(db=db, source=source, now=now)
    if age is not None:
        DATA_AGE.labels(source).set(age)
    return age


def source_names(settings: Settings) -> list[str]:
    """Return the configured source names (`APIMIRROR_SOURCE` may list several)."""
    return [name.strip() for name in settings.source.split(",") if name.strip()]


def sample(*, db: Database[Doc], settings: Settings) -> None:
    """Refresh every freshness gauge once (called periodically by the beat sampler)."""
    export_config(settings)
    restore_last_success(db=db)
    for source in source_names(settings):
        update_data_age(db=db, source=source)
