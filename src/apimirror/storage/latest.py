"""`latest_observations`: a copy of each location's latest observation, read by `_id`.

FerretDB 1.x on SQLite pushes only `_id` equality down to SQLite, and even that is a table scan
inside SQLite (cheap per row, but it grows with the collection). A "latest observation of a
location" query (`location_id` filter, `observed_at` sort) decodes the whole `observations`
collection in FerretDB. So `/current` reads one small document here: `{_id: location_id}`.

Shape: `{_id: location_id, latest: {observed_at, observation_id, fetched_at, updated_at,
source, values, units}}`. The key order inside `latest` matters: writers update it with
`$max`, which compares embedded documents field by field in order (MongoDB and FerretDB
alike). So the copy only moves to a later `observed_at` (ties: a larger id), and for the same
observation to a later `fetched_at` (a re-fetch) or `updated_at` (an edit), with an
`_id`-only filter, whatever order writers' updates arrive in. Moving it back (the latest was
deleted or moved earlier) is a conditional write on the id it held. A missing copy (data written
before this collection existed) is rebuilt from the slow query on first read.

Atomicity: on MongoDB `$max` is atomic per document, so truly parallel writers cannot move it
back. FerretDB 1.x on SQLite applies an update as a separate read and write, so two parallel
updates of one document can lose one (see `_ATTEMPTS`); the read-back narrows that, and worker
refreshes of a source are already serialised by its Redis refresh lock.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import structlog
from bson import ObjectId
from pymongo import DESCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError
from pymongo.synchronous.database import Database

log = structlog.get_logger(__name__)

Doc = dict[str, Any]

COLLECTION = "latest_observations"
# Writes are re-sent until a read-back shows the copy at or past the candidate. On MongoDB the
# first write is enough ($max is atomic; a lost insert race, E11000, needs one more). On
# FerretDB 1.x (SQLite) an update reads and writes the document in separate steps, so a
# concurrent update can overwrite it (FerretDB/FerretDB#3040; measured on v1.24.2: 8 threads
# x 50 `$inc` on one document ended at 51, not 400). The read-back closes most of that window.
_ATTEMPTS = 5
_ORDER = ("observed_at", "observation_id", "fetched_at", "updated_at")


def _millis(value: Any) -> Any:
    # BSON keeps milliseconds: compare candidates at the precision they are stored with.
    if not isinstance(value, datetime):
        return value
    utc = value.astimezone(UTC)
    return utc.replace(microsecond=utc.microsecond // 1000 * 1000)


def snapshot(doc: Doc) -> Doc:
    """Return the `latest` sub-document for an observation document, in comparison order."""
    latest = {"observed_at": doc["observed_at"], "observation_id": doc["_id"]}
    latest |= {"fetched_at": doc["fetched_at"], "updated_at": doc.get("updated_at")}
    latest |= {"source": doc["source"], "values": doc["values"], "units": doc.get("units", {})}
    return {key: _millis(value) for key, value in latest.items()}


def _behind(stored: Doc | None, latest: Doc) -> bool:
    held = (stored or {}).get("latest") or {}
    if any(held.get(key) is None for key in _ORDER):
        return True
    return tuple(held[k] for k in _ORDER) < tuple(latest[k] for k in _ORDER)


def advance_many_sync(*, db: Database[Doc], docs: Mapping[ObjectId, Doc]) -> None:
    """Move each location's copy forward to the given observation document (`_id` keyed).

    Sent as one raw `update` command rather than `bulk_write`: FerretDB 1.x answers a batch
    with a write error without `nModified`, which pymongo's bulk API cannot parse, and it stops
    at the first error even when unordered. Re-sending is idempotent.
    """
    pending = {location_id: snapshot(doc) for location_id, doc in docs.items()}
    for _ in range(_ATTEMPTS):
        if not pending:
            return
        updates = [
            {"q": {"_id": loc}, "u": {"$max": {"latest": latest}}, "upsert": True}
            for loc, latest in pending.items()
        ]
        reply = db.command("update", COLLECTION, updates=updates, ordered=False)
        errors = [e for e in reply.get("writeErrors") or [] if e.get("code") != 11000]
        if errors:
            log.warning("latest_copy_write_failed", error=str(errors[0].get("errmsg")))
            return
        stored = {doc["_id"]: doc for doc in db[COLLECTION].find({"_id": {"$in": list(pending)}})}
        pending = {loc: new for loc, new in pending.items() if _behind(stored.get(loc), new)}
    # A copy left behind is corrected by the next refresh or write of that location.
    log.warning("latest_copy_write_gave_up", locations=len(pending))


async def advance(*, db: AsyncDatabase[Doc], location_id: ObjectId, doc: Doc) -> None:
    """Move one location's copy forward to this observation document (no-op when older)."""
    latest = snapshot(doc)
    collection = db[COLLECTION]
    for _ in range(_ATTEMPTS):
        try:
            await collection.update_one(
                {"_id": location_id}, {"$max": {"latest": latest}}, upsert=True
            )
        except DuplicateKeyError:
            continue
        if not _behind(await collection.find_one({"_id": location_id}), latest):
            return
    log.warning("latest_copy_write_gave_up", locations=1)


async def _query_latest(db: AsyncDatabase[Doc], location_id: ObjectId) -> Doc | None:
    # The slow path: on FerretDB-SQLite this decodes every observation. Only on repair.
    docs = (
        await db.observations.find({"location_id": location_id})
        .sort("observed_at", DESCENDING)
        .limit(1)
        .to_list()
    )
    return docs[0] if docs else None


async def recompute(
    *, db: AsyncDatabase[Doc], location_id: ObjectId, stale_id: ObjectId | None
) -> Doc | None:
    """Set the copy from a query and return that latest observation (None: there is none).

    `stale_id` is the observation the copy is known to hold wrongly (None: no copy). The
    rewrite is conditional on it, so a writer that moved the copy meanwhile wins.
    """
    latest = await _query_latest(db, location_id)
    if stale_id is None:
        if latest is not None:
            await advance(db=db, location_id=location_id, doc=latest)
        return latest
    held = {"_id": location_id, "latest.observation_id": stale_id}
    if latest is None:
        await db[COLLECTION].delete_one(held)
    else:
        await db[COLLECTION].update_one(held, {"$set": {"latest": snapshot(latest)}})
    log.info("latest_copy_repaired", location_id=str(location_id), found=latest is not None)
    return latest


async def read_latest(*, db: AsyncDatabase[Doc], location_id: ObjectId) -> Doc | None:
    """Return a location's latest observation document from its copy, or None.

    One `_id` read when the copy exists; otherwise the query, and the copy stored.
    """
    stored = await db[COLLECTION].find_one({"_id": location_id})
    held: Doc = dict((stored or {}).get("latest") or {})
    if not isinstance(held.get("observation_id"), ObjectId):
        return await recompute(db=db, location_id=location_id, stale_id=None)
    return {"_id": held.pop("observation_id"), "location_id": location_id, **held}


async def observation_changed(
    *, db: AsyncDatabase[Doc], location_id: ObjectId, doc: Doc, moved: bool
) -> None:
    """Keep the copy right after an observation was edited (`moved`: its `observed_at` too)."""
    if moved and await _holds(db, location_id, doc["_id"]):
        # It may no longer be the latest: ask the observations.
        await recompute(db=db, location_id=location_id, stale_id=doc["_id"])
    else:
        # The copy moves only if this is (now) the latest, or the latest itself was edited.
        await advance(db=db, location_id=location_id, doc=doc)


async def observation_deleted(
    *, db: AsyncDatabase[Doc], location_id: ObjectId, observation_id: ObjectId
) -> None:
    """Keep the copy right after an observation was deleted (only the latest matters)."""
    if await _holds(db, location_id, observation_id):
        await recompute(db=db, location_id=location_id, stale_id=observation_id)


async def forget(*, db: AsyncDatabase[Doc], location_id: ObjectId) -> None:
    """Drop a deleted location's copy."""
    await db[COLLECTION].delete_one({"_id": location_id})


def forget_older_than_sync(*, db: Database[Doc], cutoff: datetime) -> int:
    """Drop copies of observations that retention deleted (observed before `cutoff`)."""
    return db[COLLECTION].delete_many({"latest.observed_at": {"$lt": cutoff}}).deleted_count


async def _holds(db: AsyncDatabase[Doc], location_id: ObjectId, observation_id: ObjectId) -> bool:
    stored = await db[COLLECTION].find_one({"_id": location_id})
    held = (stored or {}).get("latest") or {}
    return bool(held.get("observation_id") == observation_id)
