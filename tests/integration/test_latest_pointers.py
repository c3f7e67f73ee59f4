"""`latest_observations` copies on the real server: kept by every writer, read by `/current`."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from bson import ObjectId
from fastapi.testclient import TestClient
from pymongo.synchronous.database import Database
from tests.factories import AUTH, create_location, create_observation, rfc3339

from apimirror.config import Settings
from apimirror.sources.base import ParsedObservation
from apimirror.storage.client import close_sync_client, get_sync_db
from apimirror.storage.ingest import bulk_upsert_observations, delete_older_than
from apimirror.storage.latest import COLLECTION, advance_many_sync

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.api_fixtures"]

Doc = dict[str, Any]
T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def db(settings: Settings) -> Iterator[Database[Doc]]:
    """A blocking handle on the test's database, the one the in-process API uses."""
    yield get_sync_db(settings)
    close_sync_client()


def _current(api: TestClient, location_id: str) -> Doc:
    response = api.get(f"/api/v1/locations/{location_id}/current")
    assert response.status_code == 200, response.text
    body: Doc = response.json()
    return body


def _pointer(db: Database[Doc], location_id: str) -> Doc | None:
    doc = db[COLLECTION].find_one({"_id": ObjectId(location_id)})
    if doc is None:
        return None
    return {key: doc["latest"][key] for key in ("observed_at", "observation_id")}


def _ingest(db: Database[Doc], location_id: str, *hours: int) -> None:
    oid = ObjectId(location_id)
    batch = [ParsedObservation(oid, T0 + timedelta(hours=h), {"t": float(h)}, {}) for h in hours]
    bulk_upsert_observations(db=db, source="openmeteo", observations=batch, fetched_at=T0)


def _id_at(db: Database[Doc], location_id: str, hour: int) -> ObjectId:
    key = {"location_id": ObjectId(location_id), "observed_at": T0 + timedelta(hours=hour)}
    doc = db.observations.find_one(key, projection={"_id": 1})
    assert doc is not None
    return ObjectId(doc["_id"])


def test_ingest_moves_pointer_forward_never_back(api: TestClient, db: Database[Doc]) -> None:
    """A worker upsert moves the pointer to a newer observation and leaves it on an older one."""
    location = create_location(api)["id"]
    _ingest(db, location, 0, 2, 1)
    assert _pointer(db, location) == {"observed_at": T0 + timedelta(hours=2)} | {
        "observation_id": _id_at(db, location, 2)
    }
    _ingest(db, location, 5)
    assert _current(api, location)["observed_at"] == rfc3339(T0 + timedelta(hours=5))
    _ingest(db, location, 3)
    assert _current(api, location)["observed_at"] == rfc3339(T0 + timedelta(hours=5))
    assert _pointer(db, location) == {"observed_at": T0 + timedelta(hours=5)} | {
        "observation_id": _id_at(db, location, 5)
    }


def test_writers_in_any_arrival_order_leave_the_newest(db: Database[Doc]) -> None:
    """Whatever order racing writers' pointer updates arrive in, the newest observation wins.

    Every permutation of three writers (an older one, a newer one, and one at the same instant
    with a larger id) is replayed on a fresh pointer, so the first arrival also takes the
    upsert path. Truly parallel writes are atomic on MongoDB only; see storage/latest.py.
    """
    offers = [(T0, ObjectId()), (T0 + timedelta(hours=1), ObjectId())]
    offers.append((offers[1][0], ObjectId()))
    for order in itertools.permutations(offers):
        location = ObjectId()
        for at, oid in order:
            doc = {"_id": oid, "observed_at": at, "fetched_at": T0, "updated_at": T0}
            doc |= {"source": "openmeteo", "values": {"t": 1.0}, "units": {}}
            advance_many_sync(db=db, docs={location: doc})
        stored = db[COLLECTION].find_one({"_id": location})
        assert stored is not None
        assert stored["latest"]["observed_at"] == offers[2][0]
        assert stored["latest"]["observation_id"] == offers[2][1]


def test_manual_post_of_older_observation_keeps_current(api: TestClient, db: Database[Doc]) -> None:
    """A manual POST older than the latest leaves `/current`; a newer one becomes current."""
    location = create_location(api)["id"]
    newest = create_observation(api, location, observed_at=rfc3339(T0))
    create_observation(api, location, observed_at=rfc3339(T0 - timedelta(hours=3)))
    assert _current(api, location)["id"] == newest["id"]
    assert _pointer(db, location) == {"observed_at": T0, "observation_id": ObjectId(newest["id"])}
    newer = create_observation(api, location, observed_at=rfc3339(T0 + timedelta(hours=1)))
    assert _current(api, location)["id"] == newer["id"]


def test_delete_latest_falls_back_to_previous(api: TestClient, db: Database[Doc]) -> None:
    """Deleting the latest observation re-points the location at the one before it."""
    location = create_location(api)["id"]
    previous = create_observation(api, location, observed_at=rfc3339(T0))
    latest = create_observation(api, location, observed_at=rfc3339(T0 + timedelta(hours=1)))
    assert api.delete(f"/api/v1/observations/{latest['id']}", headers=AUTH).status_code == 204
    assert _pointer(db, location) == {"observed_at": T0, "observation_id": ObjectId(previous["id"])}
    assert _current(api, location)["id"] == previous["id"]
    assert api.delete(f"/api/v1/observations/{previous['id']}", headers=AUTH).status_code == 204
    assert _pointer(db, location) is None
    assert api.get(f"/api/v1/locations/{location}/current").status_code == 404


def test_patch_observed_at_moves_pointer(api: TestClient, db: Database[Doc]) -> None:
    """Moving an old observation past the latest makes it current; moving it back reverts that."""
    location = create_location(api)["id"]
    old = create_observation(api, location, observed_at=rfc3339(T0))
    latest = create_observation(api, location, observed_at=rfc3339(T0 + timedelta(hours=1)))
    later = {"observed_at": rfc3339(T0 + timedelta(hours=2))}
    assert api.patch(f"/api/v1/observations/{old['id']}", json=later, headers=AUTH).is_success
    assert _pointer(db, location) == {
        "observed_at": T0 + timedelta(hours=2),
        "observation_id": ObjectId(old["id"]),
    }
    earlier = {"observed_at": rfc3339(T0 - timedelta(hours=1))}
    assert api.patch(f"/api/v1/observations/{old['id']}", json=earlier, headers=AUTH).is_success
    assert _pointer(db, location) == {
        "observed_at": T0 + timedelta(hours=1),
        "observation_id": ObjectId(latest["id"]),
    }
    assert _current(api, location)["id"] == latest["id"]


def test_delete_location_removes_pointer(api: TestClient, db: Database[Doc]) -> None:
    """Deleting a location deletes its pointer along with its observations."""
    location = create_location(api)["id"]
    create_observation(api, location, observed_at=rfc3339(T0))
    assert _pointer(db, location) is not None
    assert api.delete(f"/api/v1/locations/{location}", headers=AUTH).status_code == 204
    assert _pointer(db, location) is None


def test_current_repairs_missing_pointer(api: TestClient, db: Database[Doc]) -> None:
    """Data written before pointers existed is served by `/current`, which then stores one."""
    location = create_location(api)["id"]
    rows = [
        {
            "location_id": ObjectId(location),
            "source": "openmeteo",
            "observed_at": T0 + timedelta(hours=h),
        }
        | {"fetched_at": T0, "updated_at": T0, "values": {"t": 1.0}, "units": {}}
        for h in (1, 4, 2)
    ]
    db.observations.insert_many(rows)
    assert _pointer(db, location) is None
    assert _current(api, location)["observed_at"] == rfc3339(T0 + timedelta(hours=4))
    assert _pointer(db, location) == {
        "observed_at": T0 + timedelta(hours=4),
        "observation_id": _id_at(db, location, 4),
    }


def test_refetch_and_edit_of_latest_reach_current(api: TestClient, db: Database[Doc]) -> None:
    """A re-fetch of the latest moves `/current`'s fetched_at; an edit of it changes its values."""
    location = create_location(api)["id"]
    _ingest(db, location, 1)
    later = T0 + timedelta(minutes=15)
    batch = [ParsedObservation(ObjectId(location), T0 + timedelta(hours=1), {"t": 1.0}, {})]
    bulk_upsert_observations(db=db, source="openmeteo", observations=batch, fetched_at=later)
    current = _current(api, location)
    assert current["fetched_at"] == rfc3339(later)
    assert current["freshness"]["fetched_at"] == rfc3339(later)
    edit = {"values": {"t": 9.5}}
    assert api.patch(f"/api/v1/observations/{current['id']}", json=edit, headers=AUTH).is_success
    assert _current(api, location)["values"] == {"t": 9.5}


def test_retention_drops_copies_of_deleted_observations(api: TestClient, db: Database[Doc]) -> None:
    """When retention deletes a location's last observations, `/current` answers 404 again."""
    location = create_location(api)["id"]
    _ingest(db, location, 1, 2)
    assert _current(api, location)["observed_at"] == rfc3339(T0 + timedelta(hours=2))
    delete_older_than(db=db, days=0, now=T0 + timedelta(days=1))
    assert _pointer(db, location) is None
    assert api.get(f"/api/v1/locations/{location}/current").status_code == 404
