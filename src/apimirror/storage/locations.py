"""Location repository: keyword-only async functions returning models or None."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure

from apimirror.errors import ConflictError
from apimirror.models import LocationCreate, LocationPublic, LocationUpdate, Page, doc_to_public
from apimirror.storage import latest as pointers
from apimirror.storage.paging import (
    is_duplicate_key,
    keyset_page,
    parse_object_id,
    set_fields,
)

Doc = dict[str, Any]

_DUPLICATE = "a location with these coordinates already exists"


def _public(doc: Doc) -> LocationPublic:
    return LocationPublic.model_validate(doc_to_public(doc))


async def create_location(*, db: AsyncDatabase[Doc], data: LocationCreate) -> LocationPublic:
    """Insert a location; raise ConflictError when its coordinates are taken."""
    now = datetime.now(UTC)
    doc: Doc = {**data.model_dump(), "created_at": now, "updated_at": now}
    try:
        result = await db.locations.insert_one(doc)
    except OperationFailure as exc:
        if is_duplicate_key(exc):
            raise ConflictError(_DUPLICATE) from None
        raise
    doc["_id"] = result.inserted_id
    return _public(doc)


async def get_location(*, db: AsyncDatabase[Doc], location_id: str) -> LocationPublic | None:
    """Return one location, or None when the id is unknown or malformed."""
    oid = parse_object_id(location_id)
    if oid is None:
        return None
    doc = await db.locations.find_one({"_id": oid})
    return None if doc is None else _public(doc)


async def list_locations(
    *, db: AsyncDatabase[Doc], limit: int, after: str | None
) -> Page[LocationPublic]:
    """Return one page of locations in id order."""
    return await keyset_page(db.locations, query={}, limit=limit, after=after, to_model=_public)


async def update_location(
    *, db: AsyncDatabase[Doc], location_id: str, data: LocationUpdate
) -> LocationPublic | None:
    """Apply the fields set in `data`; None when the location does not exist."""
    oid = parse_object_id(location_id)
    if oid is None:
        return None
    changes = data.model_dump(exclude_unset=True, exclude_none=True)
    doc = await set_fields(db.locations, oid=oid, changes=changes, conflict=_DUPLICATE)
    return None if doc is None else _public(doc)


async def delete_location(*, db: AsyncDatabase[Doc], location_id: str) -> bool:
    """Delete a location and then its observations; return whether the location existed.

    There are no transactions (FerretDB 1.x), so the location goes first: once it is gone no
    reader can reach its observations and workers stop refreshing it. An observation a worker
    upserts in between is an orphan that the retention task removes with age (and a pointer
    to it dangles until a read repairs it).
    """
    oid = parse_object_id(location_id)
    if oid is None:
        return False
    result = await db.locations.delete_one({"_id": oid})
    if result.deleted_count == 0:
        return False
    await db.observations.delete_many({"location_id": oid})
    await pointers.forget(db=db, location_id=oid)
    return True
