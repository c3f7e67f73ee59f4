"""Worker-side storage: bulk upserts by natural key, source status and freshness queries."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from bson import ObjectId
from pymongo import MongoClient, monitoring
from pymongo.errors import BulkWriteError
from pymongo.synchronous.database import Database

from apimirror.config import Settings
from apimirror.sources.base import ParsedObservation
from apimirror.storage.client import close_sync_client, get_sync_db
from apimirror.storage.indexes import ensure_indexes_sync
from apimirror.storage.ingest import (
    bulk_upsert_observations,
    delete_older_than,
    latest_success,
    list_active_locations,
    record_error,
    record_success,
    stalest_age,
)

pytestmark = pytest.mark.integration

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def db(settings: Settings) -> Iterator[Database[dict[str, Any]]]:
    """The test's database with the product's indexes."""
    database = get_sync_db(settings)
    ensure_indexes_sync(database)
    yield database
    close_sync_client()


def _location(db: Database[dict[str, Any]], lat: float, *, active: bool = True) -> ObjectId:
    now = datetime.now(UTC)
    doc = {"name": f"loc {lat}", "latitude": lat, "longitude": 1.0, "tags": [], "active": active}
    return db.locations.insert_one(doc | {"created_at": now, "updated_at": now}).inserted_id


def _obs(location_id: ObjectId, at: datetime, temp: float) -> ParsedObservation:
    return ParsedObservation(location_id, at, {"temperature_2m": temp}, {"temperature_2m": "°C"})


def test_active_locations_only(db: Database[dict[str, Any]]) -> None:
    """Only active locations are listed for refresh, optionally narrowed to given ids."""
    a = _location(db, 1.0)
    _location(db, 2.0, active=False)
    c = _location(db, 3.0)
    assert [loc.id for loc in list_active_locations(db=db)] == [a, c]
    assert [loc.id for loc in list_active_locations(db=db, ids=[c])] == [c]


def test_upsert_reports_inserted_updated_unchanged(db: Database[dict[str, Any]]) -> None:
    """New keys insert, changed values update, identical values count as unchanged."""
    loc = _location(db, 1.0)
    first = bulk_upsert_observations(
        db=db,
        source="openmeteo",
        observations=[_obs(loc, T0, 1.0), _obs(loc, T0 + timedelta(minutes=15), 2.0)],
        fetched_at=T0,
    )
    assert (first.inserted, first.updated, first.unchanged) == (2, 0, 0)
    second = bulk_upsert_observations(
        db=db,
        source="openmeteo",
        observations=[_obs(loc, T0, 1.0), _obs(loc, T0 + timedelta(minutes=15), 2.5)],
        fetched_at=T0 + timedelta(minutes=1),
    )
    assert (second.inserted, second.updated, second.unchanged) == (0, 1, 1)
    assert db.observations.count_documents({}) == 2


def test_unchanged_payload_keeps_updated_at(db: Database[dict[str, Any]]) -> None:
    """Writing the same payload twice leaves updated_at where it was and moves fetched_at."""
    loc = _location(db, 1.0)
    bulk_upsert_observations(
        db=db, source="openmeteo", observations=[_obs(loc, T0, 1.0)], fetched_at=T0
    )
    later = T0 + timedelta(minutes=5)
    again = bulk_upsert_observations(
        db=db, source="openmeteo", observations=[_obs(loc, T0, 1.0)], fetched_at=later
    )
    assert again.unchanged == 1
    doc = db.observations.find_one({"location_id": loc})
    assert doc is not None
    assert doc["updated_at"] == T0
    assert doc["fetched_at"] == later
    assert doc["observed_at"] == T0
    assert doc["source"] == "openmeteo"
    assert doc["values"] == {"temperature_2m": 1.0}
    assert doc["units"] == {"temperature_2m": "°C"}


def test_natural_key_is_unique(db: Database[dict[str, Any]]) -> None:
    """The unique index refuses a second document with the same (location_id, observed_at)."""
    loc = _location(db, 1.0)
    bulk_upsert_observations(
        db=db, source="openmeteo", observations=[_obs(loc, T0, 1.0)], fetched_at=T0
    )
    doc = {"location_id": loc, "observed_at": T0, "values": {}, "units": {}}
    with pytest.raises(BulkWriteError):
        db.observations.insert_many([doc])


def test_source_status_success_and_error(db: Database[dict[str, Any]]) -> None:
    """Successes and errors are stored per source and the last success can be read back."""
    assert latest_success(db=db, source="openmeteo") is None
    record_success(db=db, source="openmeteo", at=T0, next_run_at=T0 + timedelta(minutes=15))
    record_error(db=db, source="openmeteo", at=T0 + timedelta(minutes=1), error="boom")
    assert latest_success(db=db, source="openmeteo") == T0
    doc = db.source_status.find_one({"_id": "openmeteo"})
    assert doc is not None
    assert doc["last_error"] == "boom"
    assert doc["next_run_at"] == T0 + timedelta(minutes=15)


def test_stalest_age_uses_the_oldest_latest_fetch(db: Database[dict[str, Any]]) -> None:
    """Data age is the age of the stalest active location's latest observation."""
    assert stalest_age(db=db, source="openmeteo") is None
    a, b = _location(db, 1.0), _location(db, 2.0)
    bulk_upsert_observations(
        db=db, source="openmeteo", observations=[_obs(a, T0, 1.0)], fetched_at=T0
    )
    bulk_upsert_observations(
        db=db,
        source="openmeteo",
        observations=[_obs(b, T0, 1.0)],
        fetched_at=T0 + timedelta(minutes=10),
    )
    assert stalest_age(db=db, source="openmeteo", now=T0 + timedelta(minutes=20)) == 1200.0


class _Commands(monitoring.CommandListener):
    """Records the collection each command names."""

    def __init__(self) -> None:
        self.targets: list[str] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.targets.append(str(event.command.get(event.command_name)))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def test_stalest_age_reads_the_latest_copies_not_observations(
    db: Database[dict[str, Any]], mongodb_url: str
) -> None:
    """Data age is served by the latest_observations copies, with no per-location observations scan."""
    a, b = _location(db, 1.0), _location(db, 2.0)
    bulk_upsert_observations(
        db=db, source="openmeteo", observations=[_obs(a, T0, 1.0), _obs(b, T0, 1.0)], fetched_at=T0
    )
    listener = _Commands()
    client: MongoClient[dict[str, Any]] = MongoClient(
        mongodb_url, tz_aware=True, event_listeners=[listener]
    )
    try:
        age = stalest_age(db=client[db.name], source="openmeteo", now=T0 + timedelta(minutes=5))
    finally:
        client.close()
    assert age == 300.0
    assert "observations" not in listener.targets


def test_stalest_age_is_per_source(db: Database[dict[str, Any]]) -> None:
    """A newer observation of another source does not make this source's data look fresh."""
    a, b = _location(db, 1.0), _location(db, 2.0)
    bulk_upsert_observations(
        db=db, source="openmeteo", observations=[_obs(a, T0, 1.0), _obs(b, T0, 1.0)], fetched_at=T0
    )
    later = T0 + timedelta(minutes=15)
    bulk_upsert_observations(
        db=db, source="manual", observations=[_obs(a, later, 2.0)], fetched_at=later
    )
    bulk_upsert_observations(
        db=db, source="openmeteo", observations=[_obs(b, T0, 1.0)], fetched_at=later
    )
    now = T0 + timedelta(minutes=20)
    assert stalest_age(db=db, source="openmeteo", now=now) == 1200.0
    assert stalest_age(db=db, source="manual", now=now) is not None


def test_stalest_age_counts_a_location_without_data_from_its_creation(
    db: Database[dict[str, Any]],
) -> None:
    """An active location never fetched counts from its creation; inactive ones are ignored."""
    a = _location(db, 1.0)
    old = _location(db, 2.0, active=False)
    bulk_upsert_observations(
        db=db, source="openmeteo", observations=[_obs(old, T0, 1.0)], fetched_at=T0
    )
    created = db.locations.find_one({"_id": a})
    assert created is not None
    now = created["created_at"] + timedelta(seconds=30)
    assert stalest_age(db=db, source="openmeteo", now=now) == pytest.approx(30.0, abs=0.01)


def test_retention_deletes_only_old_observations(db: Database[dict[str, Any]]) -> None:
    """Retention removes observations older than the cut-off and keeps newer ones."""
    loc = _location(db, 1.0)
    old = _obs(loc, T0 - timedelta(days=40), 1.0)
    new = _obs(loc, T0 - timedelta(days=1), 1.0)
    bulk_upsert_observations(db=db, source="openmeteo", observations=[old, new], fetched_at=T0)
    assert delete_older_than(db=db, days=30, now=T0) == 1
    assert db.observations.count_documents({}) == 1
