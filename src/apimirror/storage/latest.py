"""`latest_observations`: one pointer per location to its latest observation, read by `_id`.

FerretDB 1.x on SQLite pushes only `_id` equality down to SQLite. A "latest observation of a
location" query (`location_id` filter, `observed_at` sort) decodes the whole `observations`
collection, so `/current` reads `{_id: location_id}` here and then the observation by `_id`.

Document shape: `{_id: location_id, latest: {observed_at: datetime, observation_id: ObjectId}}`.
The key order inside `latest` matters: writers advance it with `$max`, which compares embedded
documents field by field in order (MongoDB and FerretDB alike). So a pointer only moves to a
later `observed_at` (equal times break on the id), with an `_id`-only filter, whatever order
writers' updates arrive in. Moving it back (the latest observation was deleted or moved
earlier) is a conditional write on the id it pointed at. The read path repairs a missing or
dangling pointer from the slow query, so data written before pointers existed still works.

Atomicity: on MongoDB `$max` is atomic per document, so truly parallel writers cannot move a
pointer back. FerretDB 1.x on SQLite applies any update as a separate read and write, so two
parallel updates of one pointer can lose one (see `_ATTEMPTS`); the read-back narrows that, and
worker refreshes of a source are already serialised by its Redis refresh lock.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
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
# Writes are re-sent until a read-back shows the pointer at or past the candidate. On MongoDB
# the first write is enough ($max is atomic; a lost insert race, E11000, needs one more). On
# FerretDB 1.x (SQLite) an update reads and writes the document in separate steps, so a
# concurrent update can overwrite it (FerretDB/FerretDB#3040; measured on v1.24.2: 8 threads
# x 50 `$inc` on one document ended at 51, not 400). The read-back closes most of that window.
_ATTEMPTS = 5

Candidate = tuple[datetime, ObjectId]


def pointer_update(*, observation_id: ObjectId, observed_at: datetime) -> Doc:
    """Return the update that moves a pointer forward to this observation, never back."""
    return {"$max": {"latest": {"observed_at": observed_at, "observation_id": observation_id}}}


def _behind(pointer: Doc | None, candidate: Candidate) -> bool:
    held = (pointer or {}).get("latest") or {}
    at, oid = held.get("observed_at"), held.get("observation_id")
    if not isinstance(at, datetime) or not isinstance(oid, ObjectId):
        return True
    return (at, oid) < candidate


def advance_many_sync(*, db: Database[Doc], candidates: Mapping[ObjectId, Candidate]) -> None:
    """Move each location's pointer forward to its candidate `(observed_at, observation_id)`.

    Sent as one raw `update` command rather than `bulk_write`: FerretDB 1.x answers a batch
    with a write error without `nModified`, which pymongo's bulk API cannot parse, and it stops
    at the first error even when unordered. Re-sending is idempotent.
    """
    pending = dict(candidates)
    for _ in range(_ATTEMPTS):
        if not pending:
            return
        updates = [
            {"q": {"_id": loc}, "u": pointer_update(observation_id=oid, observed_at=at)}
            | {"upsert": True}
            for loc, (at, oid) in pending.items()
        ]
        reply = db.command("update", COLLECTION, updates=updates, ordered=False)
        errors = [e for e in reply.get("writeErrors") or [] if e.get("code") != 11000]
        if errors:
            log.warning("latest_pointer_write_failed", error=str(errors[0].get("errmsg")))
            return
        stored = {doc["_id"]: doc for doc in db[COLLECTION].find({"_id": {"$in": list(pending)}})}
        pending = {loc: c for loc, c in pending.items() if _behind(stored.get(loc), c)}
    # The read path repairs a pointer that is missing, so this is rarely visible.
    log.warning("latest_pointer_write_gave_up", locations=len(pending))


async def advance(
    *,
    db: AsyncDatabase[Doc],
    location_id: ObjectId,
    observation_id: ObjectId,
    observed_at: datetime,
) -> None:
    """Move one location's pointer forward to this observation (no-op when it is older)."""
    update = pointer_update(observation_id=observation_id, observed_at=observed_at)
    collection = db[COLLECTION]
    for _ in range(_ATTEMPTS):
        try:
            await collection.update_one({"_id": location_id}, update, upsert=True)
        except DuplicateKeyError:
            continue
        stored = await collection.find_one({"_id": location_id})
        if not _behind(stored, (observed_at, observation_id)):
            return
    log.warning("latest_pointer_write_gave_up", locations=1)


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
    """Set the pointer from a query and return that latest observation (None: there is none).

    `stale_id` is the observation the pointer is known to hold wrongly (None: no pointer). The
    rewrite is conditional on it, so a writer that moved the pointer meanwhile wins.
    """
    latest = await _query_latest(db, location_id)
    collection = db[COLLECTION]
    if stale_id is None:
        if latest is not None:
            await advance(
                db=db,
                location_id=location_id,
                observation_id=latest["_id"],
                observed_at=latest["observed_at"],
            )
        return latest
    held = {"_id": location_id, "latest.observation_id": stale_id}
    if latest is None:
        await collection.delete_one(held)
    else:
        target = pointer_update(observation_id=latest["_id"], observed_at=latest["observed_at"])
        await collection.update_one(held, {"$set": target["$max"]})
    log.info("latest_pointer_repaired", location_id=str(location_id), found=latest is not None)
    return latest


async def read_latest(*, db: AsyncDatabase[Doc], location_id: ObjectId) -> Doc | None:
    """Return a location's latest observation document through its pointer, or None.

    Two `_id` reads when the pointer is sound; otherwise the query, and the pointer repaired.
    """
    pointer = await db[COLLECTION].find_one({"_id": location_id})
    held = (pointer or {}).get("latest") or {}
    observation_id = held.get("observation_id")
    if not isinstance(observation_id, ObjectId):
        return await recompute(db=db, location_id=location_id, stale_id=None)
    doc = await db.observations.find_one({"_id": observation_id})
    if (
        doc is not None
        and doc.get("location_id") == location_id
        and doc.get("observed_at") == held.get("observed_at")
    ):
        return doc
    return await recompute(db=db, location_id=location_id, stale_id=observation_id)


async def observation_moved(
    *,
    db: AsyncDatabase[Doc],
    location_id: ObjectId,
    observation_id: ObjectId,
    observed_at: datetime,
) -> None:
    """Keep the pointer right after an observation's `observed_at` changed."""
    if await _points_at(db, location_id, observation_id):
        await recompute(db=db, location_id=location_id, stale_id=observation_id)
    else:
        await advance(
            db=db, location_id=location_id, observation_id=observation_id, observed_at=observed_at
        )


async def observation_deleted(
    *, db: AsyncDatabase[Doc], location_id: ObjectId, observation_id: ObjectId
) -> None:
    """Keep the pointer right after an observation was deleted (only the latest matters)."""
    if await _points_at(db, location_id, observation_id):
        await recompute(db=db, location_id=location_id, stale_id=observation_id)


async def forget(*, db: AsyncDatabase[Doc], location_id: ObjectId) -> None:
    """Drop a deleted location's pointer."""
    await db[COLLECTION].delete_one({"_id": location_id})


async def _points_at(
    db: AsyncDatabase[Doc], location_id: ObjectId, observation_id: ObjectId
) -> bool:
    pointer = await db[COLLECTION].find_one({"_id": location_id})
    held = (pointer or {}).get("latest") or {}
    return bool(held.get("observation_id") == observation_id)
