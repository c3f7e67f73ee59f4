"""`/healthz` (the process is alive) and `/readyz` (its dependencies answer)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pymongo.errors import PyMongoError
from redis.exceptions import RedisError

from apimirror.api.deps import DbDep, RedisDep, SettingsDep
from apimirror.api.openapi import problems
from apimirror.errors import problem_response
from apimirror.models import Health

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Say the process is alive")
async def healthz() -> Health:
    """Answer at once without touching any dependency."""
    return Health(status="ok")


async def _probe(check: Awaitable[Any], seconds: float) -> str:
    try:
        await asyncio.wait_for(check, timeout=seconds)
    except (PyMongoError, RedisError, OSError, TimeoutError):
        return "unavailable"
    return "ok"


@router.get(
    "/readyz",
    summary="Say whether MongoDB and Redis are reachable",
    response_model=Health,
    responses=problems(503),
)
async def readyz(db: DbDep, redis: RedisDep, settings: SettingsDep) -> JSONResponse | Health:
    """Ping MongoDB and Redis together; 503 names whichever did not answer."""
    timeout = settings.mongodb_server_selection_timeout_ms / 1000 + 0.5
    mongo, cache = await asyncio.gather(
        _probe(db.command("ping"), timeout), _probe(redis.ping(), timeout)
    )
    checks = {"mongodb": mongo, "redis": cache}
    failed = [name for name, state in checks.items() if state != "ok"]
    if failed:
        detail = " and ".join(failed) + (" is" if len(failed) == 1 else " are") + " unavailable"
        return problem_response(503, detail, slug="not-ready", extra={"checks": checks})
    return Health(status="ready", checks=checks)
