"""MongoDB client lifecycle: one client per process, created after fork, never at import."""

from __future__ import annotations

import os
from typing import Any

from pymongo import AsyncMongoClient, MongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.synchronous.database import Database

from apimirror.config import Settings
from apimirror.observability.mongo import CommandTimer

Doc = dict[str, Any]


def _client_kwargs(settings: Settings) -> dict[str, Any]:
    timeout = settings.mongodb_server_selection_timeout_ms
    return {
        "tz_aware": True,
        "serverSelectionTimeoutMS": timeout,
        "connectTimeoutMS": timeout,
        "socketTimeoutMS": max(timeout * 5, 10_000),
        "event_listeners": [CommandTimer()],
        "appname": f"apimirror-{settings.service}",
    }


def make_async_client(settings: Settings) -> AsyncMongoClient[Doc]:
    """Create the API's async client (call inside the running event loop's process)."""
    return AsyncMongoClient(settings.mongodb_url.get_secret_value(), **_client_kwargs(settings))


def make_sync_client(settings: Settings) -> MongoClient[Doc]:
    """Create a blocking client for workers, beat and scripts."""
    return MongoClient(settings.mongodb_url.get_secret_value(), **_client_kwargs(settings))


_sync: tuple[int, MongoClient[Doc]] | None = None


def get_sync_db(settings: Settings) -> Database[Doc]:
    """Return this process's database handle, creating the client on first use after fork."""
    global _sync
    pid = os.getpid()
    if _sync is None or _sync[0] != pid:
        # A client inherited across fork is unusable; pymongo warns about it. Never reuse one.
        _sync = (pid, make_sync_client(settings))
    return _sync[1][settings.mongodb_db]


def close_sync_client() -> None:
    """Close this process's blocking client, if it has one."""
    global _sync
    if _sync is not None and _sync[0] == os.getpid():
        _sync[1].close()
    _sync = None


def async_db(client: AsyncMongoClient[Doc], settings: Settings) -> AsyncDatabase[Doc]:
    """Return the configured database on an async client."""
    return client[settings.mongodb_db]
