"""Session fixtures that connect to the real services; every test gets its own db and prefix."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from pymongo import MongoClient
from pymongo.errors import PyMongoError

from apimirror.config import Settings, get_settings

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MONGODB_URL = "mongodb://127.0.0.1:27017/"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="session")
def mongodb_url() -> str:
    """The MongoDB-compatible server every integration test talks to."""
    url = os.environ.get("MONGODB_URL", DEFAULT_MONGODB_URL)
    client: MongoClient[dict[str, object]] = MongoClient(url, serverSelectionTimeoutMS=3000)
    try:
        client.admin.command("ping")
    except PyMongoError as exc:  # pragma: no cover - only when the harness was not started
        pytest.fail(
            f"no MongoDB-compatible server at {url}: run `scripts/services.sh start` ({exc})"
        )
    finally:
        client.close()
    return url


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The Redis server every integration test talks to."""
    url = os.environ.get("REDIS_URL", DEFAULT_REDIS_URL)
    try:
        redis.Redis.from_url(url, socket_timeout=3).ping()
    except redis.RedisError as exc:  # pragma: no cover - only when the harness was not started
        pytest.fail(f"no Redis at {url}: run `scripts/services.sh start` ({exc})")
    return url


@pytest.fixture
def db_name() -> str:
    """A database name no other test uses."""
    return f"test_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def redis_prefix() -> str:
    """A Redis key prefix no other test uses."""
    return f"test:{uuid.uuid4().hex[:12]}"


@pytest.fixture
def mongo_client(mongodb_url: str) -> Iterator[MongoClient[dict[str, object]]]:
    """A blocking client on the real server, tz-aware like the product's."""
    client: MongoClient[dict[str, object]] = MongoClient(
        mongodb_url, tz_aware=True, serverSelectionTimeoutMS=3000
    )
    yield client
    client.close()


@pytest.fixture
def redis_client(redis_url: str, redis_prefix: str) -> Iterator[redis.Redis]:
    """A Redis client; keys under this test's prefix are deleted afterwards."""
    client = redis.Redis.from_url(redis_url)
    yield client
    keys = list(client.scan_iter(f"{redis_prefix}*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def env(
    monkeypatch: pytest.MonkeyPatch,
    mongodb_url: str,
    redis_url: str,
    db_name: str,
    redis_prefix: str,
) -> dict[str, str]:
    """Environment for this test's processes and settings: real services, isolated names."""
    values = {
        "APIMIRROR_ENV": "test",
        "MONGODB_URL": mongodb_url,
        "MONGODB_DB": db_name,
        "REDIS_URL": redis_url,
        "APIMIRROR_REDIS_PREFIX": redis_prefix,
        "APIMIRROR_API_TOKENS": "test-token",
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    return values


@pytest.fixture
def settings(
    env: dict[str, str], mongo_client: MongoClient[dict[str, object]]
) -> Iterator[Settings]:
    """Settings for this test; its database is dropped afterwards."""
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()
    mongo_client.drop_database(env["MONGODB_DB"])


@pytest.fixture
def private_ferretdb() -> Iterator[object]:
    """A FerretDB server of this test's own, which it may stop and restart."""
    from tests.support.procs import PrivateFerretDB, ferretdb_binary

    binary = ferretdb_binary()
    if binary is None:
        pytest.skip("no FerretDB binary (MONGODB_URL points elsewhere and none was built)")
    server = PrivateFerretDB(binary=binary)
    server.start()
    yield server
    server.destroy()
