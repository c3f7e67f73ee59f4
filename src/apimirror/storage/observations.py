"""Observation repository: keyword-only async functions returning models or None."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure

from apimirror.errors import ConflictError, InvalidInputError
from apimirror.models import (
    ObservationCreate,
    ObservationPublic,
    ObservationUpdate,
    Page,
    doc_to_public,
)
from apimirror.storage import latest as pointers
from apimirror.storage.paging import (
    is_duplicate_key,
    keyset_page,
    parse_object_id,
    set_fields,
)

Doc = dict[str, Any]

_DUPLICATE = "an observation for this location_id and observed_at already exists"


def _public(doc: Doc) -> ObservationPublic:
    return ObservationPublic.model_validate(doc_to_public(doc))


async def create_observation(
    *, db: AsyncDatabase[Doc], data: ObservationCreate
) -> ObservationPublic:
    """Insert a manual observation; raise ConflictError when its natural key is taken."""
    location_oid = ObjectId(data.location_id)
    if await db.locations.find_one({"_id": location_oid}, projection={"_id": 1}) is None:
        raise InvalidInputError("location_id: no location has this id")
    now = datetime.now(UTC)
    doc: Doc = {
        **data.model_dump(),
        "location_id": location_oid,
        "fetched_at": now,
        "updated_at": now,
    }
    try:
        result = await db.observations.insert_one(doc)
    except OperationFailure as exc:
        if is_duplicate_key(exc):
            raise ConflictError(_DUPLICATE) from None
        raise
    doc["_id"] = result.inserted_id
    await pointers.advance(db=db, location_id=location_oid, doc=doc)
    return _public(doc)


async def get_observation(
    *, db: AsyncDatabase[Doc], observation_id: str
) -> ObservationPublic | None:
    """Return one observation, or None when the id is unknown or malformed."""
    oid = parse_object_id(observation_id)
    if oid is None:
        return None
    doc = await db.observations.find_one({"_id": oid})
    return None if doc is None else _public(doc)


async def list_observations(
    *,
    db: AsyncDatabase[Doc],
    limit: int,
    after: str | None,
    location_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Page[ObservationPublic]:
    """Return one page of observations in id order, filtered by location and time.

    `since` is inclusive and `until` exclusive, both on `observed_at`.
    """
    query: Doc = {}
    if location_id is not None:
        oid = parse_object_id(location_id)
        if oid is None:
            raise InvalidInputError("location_id: not a 24-hex id")
        query["location_id"] = oid
    window: Doc = {}
    if since is not None:
        window["$gte"] = since
    if until is not None:
        window["$lt"] = until
    if window:
        query["observed_at"] = window
    return await keyset_page(
        db.observations, query=query, limit=limit, after=after, to_model=_public
    )


async def latest_observation(
    *, db: AsyncDatabase[Doc], location_id: str
) -> ObservationPublic | None:
    """Return a location's most recent observation by `observed_at`, or None.

    Read from the location's `latest_observations` copy (one `_id` lookup).
    """
    oid = parse_object_id(location_id)
    if oid is None:
        return None
    doc = await pointers.read_latest(db=db, location_id=oid)
    return None if doc is None else _public(doc)


async def update_observation(
    *, db: AsyncDatabase[Doc], observation_id: str, data: ObservationUpdate
) -> ObservationPublic | None:
    """Apply the fields set in `data`; None when the observation does not exist."""
    oid = parse_object_id(observation_id)
    if oid is None:
        return None
    changes = data.model_dump(exclude_unset=True, exclude_none=True)
    doc = await set_fields(db.observations, oid=oid, changes=changes, conflict=_DUPLICATE)
    if doc is None:
        return None
    moved = "observed_at" in changes
    await pointers.observation_changed(db=db, location_id=doc["location_id"], doc=doc, moved=moved)
    return _public(doc)


async def delete_observation(*, db: AsyncDatabase[Doc], observation_id: str) -> bool:
    """Delete one observation; return whether it existed."""
    oid = parse_object_id(observation_id)
    if oid is None:
        return False
    doc = await db.observations.find_one_and_delete({"_id": oid})
    if doc is None:
        return False
    await pointers.observation_deleted(db=db, location_id=doc["location_id"], observation_id=oid)
    return True
