"""`/api/v1/sources`: refresh status and rate-limit budget per upstream source."""

from __future__ import annotations

import asyncio
from datetime import datetime

import structlog
from fastapi import APIRouter, Depends, Request, status
from redis import Redis as SyncRedis
from redis.exceptions import RedisError
from starlette.concurrency import run_in_threadpool

from apimirror import ratelimit
from apimirror.api.deps import (
    DbDep,
    SettingsDep,
    SyncRedisDep,
    require_reader,
    require_writer,
)
from apimirror.api.openapi import READ, WRITE, problems
from apimirror.config import Settings
from apimirror.errors import DependencyUnavailableError, NotFoundError
from apimirror.models import BudgetWindow, SourceStatusPublic, TaskQueued
from apimirror.storage.sources import list_source_status

log = structlog.get_logger(__name__)

router = APIRouter(prefix="/sources", tags=["sources"])
REFRESH_TASK = "apimirror.refresh_source"
_SEND_TIMEOUT_S = 5.0


def configured_sources(settings: Settings) -> list[str]:
    """Return the names of the sources this deployment mirrors."""
    return [name.strip() for name in settings.source.split(",") if name.strip()]


def _budget(
    redis: SyncRedis, settings: Settings, source: str
) -> tuple[list[BudgetWindow], datetime | None]:
    """Return the budget per window and the end of any 429 block, read from Redis."""
    try:
        budget = ratelimit.Budget(redis, settings, source)
        windows = [
            BudgetWindow(
                window=w.window, limit=w.limit, used=w.used, remaining=w.left, resets_at=w.reset_at
            )
            for w in budget.usage()
        ]
        return windows, budget.blocked_until()
    except RedisError as exc:
        # The status from MongoDB is still worth serving; show the configured limits only.
        log.warning("budget_unreadable", source=source, error=type(exc).__name__)
        limits = [
            BudgetWindow(window=window, limit=limit, used=None, remaining=None, resets_at=None)
            for window, limit in settings.limits().items()
        ]
        return limits, None


@router.get(
    "",
    summary="List sources with refresh status and budget",
    dependencies=[Depends(require_reader)],
    responses=READ,
)
async def list_sources(
    db: DbDep, redis: SyncRedisDep, settings: SettingsDep
) -> list[SourceStatusPublic]:
    """Return last success, last error, budget per window and next run for every source."""
    stored = await list_source_status(db=db)
    names = list(dict.fromkeys([*configured_sources(settings), *sorted(stored)]))
    out = []
    for name in names:
        doc = stored.get(name, {})
        windows, blocked_until = await run_in_threadpool(_budget, redis, settings, name)
        out.append(
            SourceStatusPublic(
                name=name,
                last_success_at=doc.get("last_success_at"),
                last_error_at=doc.get("last_error_at"),
                last_error=doc.get("last_error"),
                next_run_at=doc.get("next_run_at"),
                budget=windows,
                blocked_until=blocked_until,
            )
        )
    return out


def _send_refresh(request: Request, name: str) -> str:
    from kombu.exceptions import OperationalError

    from apimirror.tasks.celery_app import make_celery

    state = request.app.state
    if getattr(state, "celery", None) is None:
        # Built from this app's settings (broker URL, queue), once, on first use.
        state.celery = make_celery(state.settings)
    try:
        result = state.celery.send_task(REFRESH_TASK, args=[name], retry=False)
    except OperationalError as exc:
        raise ConnectionError(str(exc)) from exc
    return str(result.id)


@router.post(
    "/{name}/refresh",
    summary="Queue a refresh of one source now",
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[Depends(require_writer)],
    responses={**WRITE, **problems(404)},
)
async def refresh_source(request: Request, name: str, settings: SettingsDep) -> TaskQueued:
    """Queue a refresh task; it spends from the same budget as scheduled ones."""
    if name not in configured_sources(settings):
        raise NotFoundError(f"no source is named {name!r}")
    try:
        task_id = await asyncio.wait_for(
            run_in_threadpool(_send_refresh, request, name), _SEND_TIMEOUT_S
        )
    except (OSError, TimeoutError) as exc:
        log.warning("refresh_not_queued", source=name, error=type(exc).__name__)
        raise DependencyUnavailableError("the task broker (redis)") from None
    log.info("refresh_queued", source=name, task_id=task_id)
    return TaskQueued(task_id=task_id, source=name)
