"""The harness's real services work: persistence across a server restart, Redis round-trips."""

from __future__ import annotations

import pytest
import redis
from pymongo import MongoClient
from tests.support.procs import PrivateFerretDB

pytestmark = pytest.mark.integration


def test_document_survives_a_ferretdb_restart(private_ferretdb: PrivateFerretDB) -> None:
    """A document written through pymongo is still there after the server restarts."""
    client: MongoClient[dict[str, object]] = MongoClient(
        private_ferretdb.url, serverSelectionTimeoutMS=5000
    )
    client.harness.docs.insert_one({"_id": "persisted", "n": 42})
    client.close()

    private_ferretdb.stop()
    private_ferretdb.start()

    client = MongoClient(private_ferretdb.url, serverSelectionTimeoutMS=5000)
    assert client.harness.docs.find_one({"_id": "persisted"}) == {"_id": "persisted", "n": 42}
    client.close()


def test_redis_round_trips_a_key(redis_client: redis.Redis, redis_prefix: str) -> None:
    """A key set in the real Redis reads back with its value and expiry."""
    redis_client.set(f"{redis_prefix}:k", b"v", ex=60)
    assert redis_client.get(f"{redis_prefix}:k") == b"v"
    assert 0 < redis_client.ttl(f"{redis_prefix}:k") <= 60


def test_shared_server_is_reachable(
    mongo_client: MongoClient[dict[str, object]], db_name: str
) -> None:
    """The shared server from MONGODB_URL stores and finds documents in an isolated database."""
    mongo_client[db_name].c.insert_one({"x": 1})
    assert mongo_client[db_name].c.count_documents({}) == 1
    mongo_client.drop_database(db_name)
