"""The indexes every collection needs, created idempotently at start-up and by `init-db`."""

from __future__ import annotations

from typing import Any

import structlog
from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError
from pymongo.synchronous.database import Database

from apimirror.config import get_settings
from apimirror.storage.client import get_sync_db

log = structlog.get_logger(__name__)

Doc = dict[str, Any]

INDEXES: dict[str, list[IndexModel]] = {
    "locations": [
        IndexModel(
            [("latitude", ASCENDING), ("longitude", ASCENDING)],
            unique=True,
            name="coordinates_unique",
        ),
    ],
    "observations": [
        # The natural key; its descending half also serves "latest observation" (/current).
        IndexModel(
            [("location_id", ASCENDING), ("observed_at", DESCENDING)],
            unique=True,
            name="natural_key_unique",
        ),
        IndexModel([("observed_at", ASCENDING)], name="observed_at"),
    ],
}


def _missing(models: list[IndexModel], existing: set[str]) -> list[IndexModel]:
    # Only create what is not there by name. Repeating createIndexes for an existing index is a
    # no-op on MongoDB, but FerretDB 1.24.2 panics on it and drops the connection.
    return [m for m in models if m.document["name"] not in existing]


async def ensure_indexes(db: AsyncDatabase[Doc]) -> None:
    """Create every index that is missing (existing ones are left as they are)."""
    for collection, models in INDEXES.items():
        existing = {ix["name"] async for ix in await db[collection].list_indexes()}
        missing = _missing(models, existing)
        if missing:
            await db[collection].create_indexes(missing)
    log.info("indexes_ensured", database=db.name)


def ensure_indexes_sync(db: Database[Doc]) -> None:
    """Create every missing index with a blocking client (workers, beat, `init-db`)."""
    for collection, models in INDEXES.items():
        missing = _missing(models, {ix["name"] for ix in db[collection].list_indexes()})
        if missing:
            db[collection].create_indexes(missing)


def init_db_sync() -> int:
    """Create the indexes with a blocking client; return a process exit code."""
    settings = get_settings()
    db = get_sync_db(settings)
    try:
        ensure_indexes_sync(db)
    except PyMongoError as exc:
        log.error("init_db_failed", error=str(exc))
        return 1
    log.info("indexes_ensured", database=db.name)
    return 0
