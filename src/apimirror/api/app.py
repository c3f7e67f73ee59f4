"""The FastAPI application factory (`uvicorn --factory apimirror.api.app:create_app`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from fastapi import APIRouter, Depends, FastAPI
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError
from redis import Redis as SyncRedis
from redis.asyncio import Redis

from apimirror import __version__
from apimirror.api.limits import (
    BodyLimitMiddleware,
    HeadMiddleware,
    reject_unknown_query,
    require_json_body,
)
from apimirror.api.openapi import install_openapi
from apimirror.api.routes import health, locations, observations, sources
from apimirror.config import Settings, get_settings
from apimirror.errors import install_error_handlers
from apimirror.storage.client import async_db, make_async_client
from apimirror.storage.indexes import ensure_indexes

log = structlog.get_logger(__name__)

API_PREFIX = "/api/v1"
_INDEX_RETRY_S = 5.0


async def _ensure_indexes_until_done(db: AsyncDatabase[dict[str, Any]]) -> None:
    """Keep trying to create indexes while MongoDB is unreachable; the API serves meanwhile."""
    while True:
        try:
            await ensure_indexes(db)
        except PyMongoError as exc:
            log.warning("indexes_not_ensured", error=type(exc).__name__)
            await asyncio.sleep(_INDEX_RETRY_S)
        else:
            return


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    # Clients are created here, inside the serving process, never at import time.
    client = make_async_client(settings)
    app.state.db = async_db(client, settings)
    app.state.redis = Redis.from_url(
        settings.redis_url.get_secret_value(), socket_connect_timeout=1, socket_timeout=1
    )
    app.state.sync_redis = SyncRedis.from_url(
        settings.redis_url.get_secret_value(), socket_connect_timeout=1, socket_timeout=1
    )
    indexer = asyncio.create_task(_ensure_indexes_until_done(app.state.db))
    # Wait for the first attempt so unique keys hold from the first request when MongoDB is up.
    await asyncio.wait({indexer}, timeout=settings.mongodb_server_selection_timeout_ms / 1000 + 1)
    try:
        yield
    finally:
        indexer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await indexer
        await app.state.redis.aclose()
        app.state.sync_redis.close()
        if getattr(app.state, "celery", None) is not None:
            app.state.celery.close()  # the broker connections opened by POST .../refresh
        await client.close()


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the API with its routes, error handlers, limits and observability middleware."""
    settings = settings or get_settings()
    app = FastAPI(
        title="apimirror",
        version=__version__,
        description="A rate-limit-safe, monitored mirror of an external HTTP API.",
        lifespan=_lifespan,
        openapi_url="/openapi.json",
        redoc_url=None,
    )
    app.state.settings = settings
    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    # Inside the observability middleware, so HEAD is still counted and logged as HEAD.
    app.add_middleware(HeadMiddleware)
    app.include_router(health.router)
    guards = [Depends(reject_unknown_query), Depends(require_json_body)]
    v1 = APIRouter(prefix=API_PREFIX, dependencies=guards)
    for module in (locations, observations, sources):
        v1.include_router(module.router)
    app.include_router(v1)
    install_openapi(app, settings)

    from apimirror.observability.http import install

    install(app)
    return app
