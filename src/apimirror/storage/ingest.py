"""Blocking data access for workers and beat: tracked locations, bulk upserts, source status."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo import DESCENDING, UpdateOne
from pymongo.synchronous.database import Database

from apimirror.sources.base import ParsedObservation, TrackedLocation
from apimirror.storage.latest import COLLECTION as LATEST_COLLECTION
from apimirror.storage.latest import advance_many_sync, forget_older_than_sync

Doc = dict[str, Any]
Key = tuple[ObjectId, datetime]


@dataclass(frozen=True)
class UpsertCounts:
    """How a bulk upsert went, observation by observation."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0


def _millis(value: datetime) -> datetime:
    # BSON keeps milliseconds; compare and store at that precision so keys match on re-read.
    utc = value.astimezone(UTC)
    return utc.replace(microsecond=utc.microsecond // 1000 * 1000)


def list_active_locations(
    *, db: Database[Doc], ids: Sequence[ObjectId] | None = None
) -> list[TrackedLocation]:
    """Return the active locations (optionally only those in `ids`), oldest first."""
    query: Doc = {"active": True}
    if ids is not None:
        query["_id"] = {"$in": list(ids)}
    cursor = db.locations.find(query, projection={"latitude": 1, "longitude": 1}).sort("_id", 1)
    return [TrackedLocation(doc["_id"], doc["latitude"], doc["longitude"]) for doc in cursor]


def _existing(db: Database[Doc], keys: list[Key]) -> dict[Key, Doc]:
    query = {
        "location_id": {"$in": list({k[0] for k in keys})},
        "observed_at": {"$in": list({k[1] for k in keys})},
    }
    found: dict[Key, Doc] = {}
    projection = {"location_id": 1, "observed_at": 1, "values": 1, "units": 1, "updated_at": 1}
    for doc in db.observations.find(query, projection=projection):
        found[(doc["location_id"], _millis(doc["observed_at"]))] = doc
    return found


@dataclass
class _Plan:
    """The writes one batch needs, and each key's resulting document (`_id` once known)."""

    ops: list[UpdateOne] = field(default_factory=list)
    op_keys: list[Key] = field(default_factory=list)
    unchanged: list[ObjectId] = field(default_factory=list)
    docs: dict[Key, Doc] = field(default_factory=dict)


def _plan(
    latest: dict[Key, ParsedObservation], existing: dict[Key, Doc], source: str, at: datetime
) -> _Plan:
    plan = _Plan()
    for key, obs in latest.items():
        old = existing.get(key)
        if old is None:
            # $setOnInsert: a concurrent insert of the same key becomes a no-op, not a duplicate.
            key_filter = {"location_id": key[0], "observed_at": key[1]}
            doc = {**key_filter, "source": source, "values": obs.values, "units": obs.units}
            doc |= {"fetched_at": at, "updated_at": at}
            plan.ops.append(UpdateOne(key_filter, {"$setOnInsert": doc}, upsert=True))
            plan.op_keys.append(key)
            plan.docs[key] = dict(doc)
        elif old.get("values") == obs.values and old.get("units") == obs.units:
            plan.unchanged.append(old["_id"])
            plan.docs[key] = {"source": source} | old | {"fetched_at": at}
        else:
            change = {"values": obs.values, "units": obs.units, "source": source}
            change |= {"fetched_at": at, "updated_at": at}
            plan.ops.append(UpdateOne({"_id": old["_id"]}, {"$set": change}))
            plan.op_keys.append(key)
            plan.docs[key] = old | change
    return plan


def _newest_per_location(docs: dict[Key, Doc]) -> dict[ObjectId, Doc]:
    # A key whose insert a concurrent writer won has no `_id` here: that writer keeps the copy.
    newest: dict[ObjectId, Doc] = {}
    for (location_id, observed_at), doc in docs.items():
        if "_id" in doc and (
            location_id not in newest or observed_at > newest[location_id]["observed_at"]
        ):
            newest[location_id] = doc | {"observed_at": observed_at}
    return newest


def bulk_upsert_observations(
    *,
    db: Database[Doc],
    source: str,
    observations: Sequence[ParsedObservation],
    fetched_at: datetime,
) -> UpsertCounts:
    """Upsert by (location_id, observed_at); unchanged documents keep their `updated_at`.

    Then move each location's `latest_observations` copy forward (see storage/latest.py).
    """
    if not observations:
        return UpsertCounts()
    fetched_at = _millis(fetched_at)
    latest: dict[Key, ParsedObservation] = {
        (o.location_id, _millis(o.observed_at)): o for o in observations
    }
    plan = _plan(latest, _existing(db, list(latest)), source, fetched_at)
    inserted = updated = 0
    if plan.ops:
        result = db.observations.bulk_write(plan.ops, ordered=False)
        inserted = result.upserted_count
        updated = result.modified_count
        for index, oid in (result.upserted_ids or {}).items():
            plan.docs[plan.op_keys[index]]["_id"] = oid
    if plan.unchanged:
        # We saw the same data again: that is a fetch (freshness), not an update.
        db.observations.update_many(
            {"_id": {"$in": plan.unchanged}}, {"$set": {"fetched_at": fetched_at}}
        )
    advance_many_sync(db=db, docs=_newest_per_location(plan.docs))
    return UpsertCounts(
        inserted=inserted, updated=updated, unchanged=len(latest) - inserted - updated
    )


def record_success(
    *, db: Database[Doc], source: str, at: datetime, next_run_at: datetime | None = None
) -> None:
    """Store a successful refresh of `source`."""
    fields: Doc = {"last_success_at": _millis(at)}
    if next_run_at is not None:
        fields["next_run_at"] = _millis(next_run_at)
    db.source_status.update_one({"_id": source}, {"$set": fields}, upsert=True)


def record_error(
    *,
    db: Database[Doc],
    source: str,
    at: datetime,
    error: str,
    next_run_at: datetime | None = None,
) -> None:
    """Store a failed (or partly failed) refresh of `source` with a short error text."""
    fields: Doc = {"last_error_at": _millis(at), "last_error": error[:500]}
    if next_run_at is not None:
        fields["next_run_at"] = _millis(next_run_at)
    db.source_status.update_one({"_id": source}, {"$set": fields}, upsert=True)


def latest_success(*, db: Database[Doc], source: str) -> datetime | None:
    """Return when `source` last refreshed successfully, if it ever did."""
    doc = db.source_status.find_one({"_id": source}, projection={"last_success_at": 1})
    value = doc.get("last_success_at") if doc else None
    return value if isinstance(value, datetime) else None


def stalest_age(*, db: Database[Doc], source: str, now: datetime | None = None) -> float | None:
    """Return the age in seconds of the stalest active location's latest observation.

    A location with no observation yet counts from its creation. None when nothing is tracked.
    Served by the `latest_observations` copies in one read; only a location whose copy is
    missing or holds another source's observation falls back to a query of `observations`.
    """
    now = now or datetime.now(UTC)
    locations = list(db.locations.find({"active": True}, projection={"created_at": 1}))
    copies = {
        doc["_id"]: doc.get("latest") or {}
        for doc in db[LATEST_COLLECTION].find(
            {}, projection={"latest.source": 1, "latest.fetched_at": 1}
        )
    }
    oldest: datetime | None = None
    for location in locations:
        held = copies.get(location["_id"], {})
        if held.get("source") == source:
            seen = held.get("fetched_at")
        else:
            seen = _latest_fetch(db, location, source)
        if isinstance(seen, datetime) and (oldest is None or seen < oldest):
            oldest = seen
    return None if oldest is None else max((now - oldest).total_seconds(), 0.0)


def _latest_fetch(db: Database[Doc], location: Doc, source: str) -> Any:
    # The slow path: this source's latest observation of the location, else its creation.
    latest = db.observations.find_one(
        {"location_id": location["_id"], "source": source},
        projection={"fetched_at": 1},
        sort=[("observed_at", DESCENDING)],
    )
    return latest.get("fetched_at") if latest else location.get("created_at")


def delete_older_than(*, db: Database[Doc], days: int, now: datetime | None = None) -> int:
    """Delete observations observed more than `days` ago; return how many went."""
    cutoff = (now or datetime.now(UTC)) - timedelta(days=days)
    deleted = db.observations.delete_many({"observed_at": {"$lt": cutoff}}).deleted_count
    forget_older_than_sync(db=db, cutoff=cutoff)
    return deleted
