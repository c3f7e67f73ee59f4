"""Freshness gauges restored from MongoDB: never 0, absent until known, cheap data age."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import REGISTRY
from pymongo import MongoClient

from apimirror.config import Settings
from apimirror.observability import freshness

pytestmark = pytest.mark.integration


def _gauge(name: str, source: str) -> float | None:
    return REGISTRY.get_sample_value(name, {"source": source})


def test_last_success_is_restored_from_source_status(
    settings: Settings, mongo_client: MongoClient[dict[str, object]]
) -> None:
    """A stored last success becomes the gauge's value at start-up, not 0 and not 'now'."""
    source = f"src-{uuid.uuid4().hex[:8]}"
    at = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    db = mongo_client[settings.mongodb_db]
    db.source_status.insert_one({"_id": source, "last_success_at": at, "last_error_at": None})
    restored = freshness.restore_last_success(db=db)
    assert restored[source] == at.timestamp()
    assert _gauge("apimirror_refresh_last_success_timestamp_seconds", source) == at.timestamp()


def test_a_source_that_never_succeeded_exports_no_last_success(
    settings: Settings, mongo_client: MongoClient[dict[str, object]]
) -> None:
    """Without a stored success the gauge stays absent instead of reading 0 (1970)."""
    source = f"src-{uuid.uuid4().hex[:8]}"
    db = mongo_client[settings.mongodb_db]
    error_at = datetime.now(UTC)
    db.source_status.insert_one({"_id": source, "last_error_at": error_at, "last_error": "boom"})
    freshness.restore_last_success(db=db)
    assert _gauge("apimirror_refresh_last_success_timestamp_seconds", source) is None
    last_error = _gauge("apimirror_refresh_last_error_timestamp_seconds", source)
    assert last_error == pytest.approx(error_at.timestamp(), abs=0.01)


def test_data_age_is_the_stalest_active_locations_latest_fetch(
    settings: Settings, mongo_client: MongoClient[dict[str, object]]
) -> None:
    """The data age gauge follows the oldest latest-fetch over active locations only."""
    source = f"src-{uuid.uuid4().hex[:8]}"
    db = mongo_client[settings.mongodb_db]
    now = datetime.now(UTC).replace(microsecond=0)
    fresh, stale, inactive = (
        db.locations.insert_one(
            {"name": n, "latitude": i, "longitude": i, "active": n != "off", "created_at": now}
        ).inserted_id
        for i, n in enumerate(("fresh", "stale", "off"))
    )
    for location, age in ((fresh, 60), (stale, 600), (stale, 900), (inactive, 9999)):
        at = now - timedelta(seconds=age)
        db.observations.insert_one(
            {"location_id": location, "source": source, "observed_at": at, "fetched_at": at}
        )
    age = freshness.update_data_age(db=db, source=source, now=now)
    assert age == 600
    assert _gauge("apimirror_data_age_seconds", source) == 600
