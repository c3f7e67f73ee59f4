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
from pymongo import DESCENDING
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
MAX_LOCATIONS = 10_000


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


def stalest_fetch(*, db: Database[Doc], source: str) -> datetime | None:
    """Return the oldest "latest fetch" over active locations, or None when nothing is stored."""
    oldest: datetime | None = None
    active = db.locations.find({"active": True}, {"_id": 1}).limit(MAX_LOCATIONS)
    for location in active:
        latest = db.observations.find_one(
            {"location_id": location["_id"], "source": source},
            {"fetched_at": 1},
            sort=[("observed_at", DESCENDING)],
        )
        fetched = latest.get("fetched_at") if latest else None
        if isinstance(fetched, datetime) and (oldest is None or fetched < oldest):
            oldest = fetched
    return oldest


def update_data_age(*, db: Database[Doc], source: str, now: datetime | None = None) -> float | None:
    """Set `apimirror_data_age_seconds{source}` from stored data; return it (None if unknown)."""
    oldest = stalest_fetch(db=db, source=source)
    if oldest is None:
        return None
    now = now or datetime.now(UTC)
    if oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=UTC)
    age = max((now - oldest).total_seconds(), 0.0)
    DATA_AGE.labels(source).set(age)
    return age


def sample(*, db: Database[Doc], settings: Settings) -> None:
    """Refresh every freshness gauge once (called periodically by the beat sampler)."""
    export_config(settings)
    restore_last_success(db=db)
    update_data_age(db=db, source=settings.source)
