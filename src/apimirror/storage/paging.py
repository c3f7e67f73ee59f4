"""Helpers shared by the repositories: id parsing, duplicate keys, updates, keyset pagination."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from bson import ObjectId
from bson.errors import InvalidId
from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError, OperationFailure

from apimirror.errors import ConflictError
from apimirror.models import Page

Doc = dict[str, Any]
T = TypeVar("T")


def is_duplicate_key(exc: OperationFailure) -> bool:
    """Say whether a write failed on a unique index.

    MongoDB raises DuplicateKeyError (E11000). FerretDB 1.x does so for inserts, but reports an
    update that breaks a unique index as a generic error naming SQLite's UNIQUE constraint.
    """
    return isinstance(exc, DuplicateKeyError) or "UNIQUE constraint failed" in str(exc)


def parse_object_id(value: str) -> ObjectId | None:
    """Return the ObjectId spelled by a 24-hex string, or None when it is malformed."""
    if len(value) != 24:
        return None
    try:
        return ObjectId(value)
    except (InvalidId, TypeError):
        return None


async def set_fields(
    collection: AsyncCollection[Doc], *, oid: ObjectId, changes: Doc, conflict: str
) -> Doc | None:
    """Set `changes` and `updated_at` on one document; return it as updated, None if missing.

    Raises ConflictError with `conflict` when the change breaks a unique index.
    """
    try:
        return await collection.find_one_and_update(
            {"_id": oid},
            {"$set": {**changes, "updated_at": datetime.now(UTC)}},
            return_document=ReturnDocument.AFTER,
        )
    except OperationFailure as exc:
        if is_duplicate_key(exc):
            raise ConflictError(conflict) from None
        raise


async def keyset_page(
    collection: AsyncCollection[Doc],
    *,
    query: Doc,
    limit: int,
    after: str | None,
    to_model: Callable[[Doc], T],
) -> Page[T]:
    """Return up to `limit` documents with `_id` greater than the cursor, in `_id` order.

    One extra document is read to know whether another page exists, so the last page's
    `next` is null rather than pointing at an empty page.
    """
    if after is not None:
        after_id = parse_object_id(after)
        if after_id is None:
            raise ValueError("cursor is malformed")
        query = {**query, "_id": {"$gt": after_id}}
    docs = await collection.find(query).sort("_id", ASCENDING).limit(limit + 1).to_list()
    more = len(docs) > limit
    docs = docs[:limit]
    next_cursor = str(docs[-1]["_id"]) if more and docs else None
    return Page[T](items=[to_model(d) for d in docs], next=next_cursor)
