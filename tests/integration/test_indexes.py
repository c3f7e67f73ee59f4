"""Index creation is idempotent on every supported server, FerretDB included."""

from __future__ import annotations

import asyncio

import pytest
from pymongo import AsyncMongoClient, MongoClient

from apimirror.storage.indexes import INDEXES, ensure_indexes, ensure_indexes_sync

pytestmark = pytest.mark.integration


def test_ensuring_indexes_twice_succeeds(
    mongo_client: MongoClient[dict[str, object]], db_name: str
) -> None:
    """A second start-up against an existing database finds its indexes and changes nothing.

    FerretDB 1.24.2 panics when `createIndexes` repeats an existing multi-key index, which the
    API used to report as "database unavailable" every few seconds.
    """
    db = mongo_client[db_name]
    ensure_indexes_sync(db)
    ensure_indexes_sync(db)
    for collection, models in INDEXES.items():
        names = set(db[collection].index_information())
        assert {m.document["name"] for m in models} <= names
    mongo_client.drop_database(db_name)


def test_async_ensure_after_sync_ensure_succeeds(mongodb_url: str, db_name: str) -> None:
    """The API's async start-up succeeds after a worker already created the indexes."""
    sync: MongoClient[dict[str, object]] = MongoClient(mongodb_url, tz_aware=True)
    ensure_indexes_sync(sync[db_name])

    async def run() -> None:
        client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(mongodb_url, tz_aware=True)
        try:
            await ensure_indexes(client[db_name])
        finally:
            await client.close()

    asyncio.run(run())
    sync.drop_database(db_name)
    sync.close()
