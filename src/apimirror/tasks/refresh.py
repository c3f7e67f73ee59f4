"""The refresh task: fetch every active location from a source, within budget, and upsert.

The task is idempotent (upserts by natural key) and never sleeps: a spent budget or a 429
becomes a Celery retry with a countdown plus positive jitter, so no worker slot is held while
waiting. Remaining locations travel with the retry, so finished batches are not fetched twice.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import redis
import structlog
from bson import ObjectId
from celery.exceptions import SoftTimeLimitExceeded

from apimirror.config import Settings, get_settings
from apimirror.observability.metrics import (
    RECORDS_UPSERTED,
    REFRESH_LAST_SUCCESS,
    UPSTREAM_THROTTLED,
)
from apimirror.ratelimit import Budget, jitter, usage
from apimirror.sources import get_source
from apimirror.sources.base import ParseResult, Source, UpstreamRequest
from apimirror.sources.http import (
    Throttled,
    UpstreamUnreachableError,
    http_timeout,
    spend_and_fetch,
)
from apimirror.storage.client import get_sync_db
from apimirror.storage.ingest import (
    bulk_upsert_observations,
    list_active_locations,
    record_error,
    record_success,
)
from apimirror.tasks import locks
from apimirror.tasks.celery_app import REFRESH_TASK, app

log = structlog.get_logger(__name__)

_redis: tuple[int, redis.Redis] | None = None
# Time between the hard limit and the end of the killed process (Celery's timer, a slow kill).
_LOCK_SLACK_S = 30


class RefreshFailedError(RuntimeError):
    """Every batch of a refresh failed, or retries stopped after the bounded wait."""


@dataclass
class RunStats:
    """What one run did, batch by batch."""

    ok: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


def redis_client(settings: Settings) -> redis.Redis:
    """Return this process's Redis client (created after fork)."""
    global _redis
    if _redis is None or _redis[0] != os.getpid():
        url = settings.redis_url.get_secret_value()
        _redis = (os.getpid(), redis.Redis.from_url(url, socket_timeout=5))
    return _redis[1]


def _max_cost(settings: Settings) -> float | None:
    limits = [limit for limit in settings.limits().values() if limit > 0]
    return float(min(limits)) if limits else None


@app.task(  # type: ignore[untyped-decorator]
    name=REFRESH_TASK,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=None,
    # An unreachable or failing upstream is an expected outcome: counted as a failure and logged
    # by us, not reported by Celery as an unexpected error with a traceback.
    throws=(RefreshFailedError,),
)
def refresh_source(
    self: Any,
    source_name: str,
    remaining: list[str] | None = None,
    waited: float = 0.0,
    attempt: int = 0,
    scheduled: bool = False,
) -> dict[str, Any]:
    """Refresh every active location of `source_name` (or only `remaining`, on a retry)."""
    settings = get_settings()
    source = get_source(source_name, settings)
    client = redis_client(settings)
    token = delivery_token(self.request.id, attempt)
    if scheduled and not _claim_schedule_slot(client, settings, source_name, token):
        log.info("refresh_skipped", source=source_name, reason="already_scheduled")
        return {"outcome": "skipped", "reason": "already_scheduled"}
    if attempt > 0:
        client.delete(_pending_key(settings, source_name))
    elif client.exists(_pending_key(settings, source_name)):
        # A deferred retry is already waiting for the budget; it will fetch these locations.
        log.info("refresh_skipped", source=source_name, reason="retry_pending")
        return {"outcome": "skipped", "reason": "retry_pending"}
    lock_key = f"{settings.redis_prefix}:lock:refresh:{source_name}"
    if not locks.claim(client, lock_key, token, ttl_s=lock_timeout(settings)):
        log.info("refresh_skipped", source=source_name, reason="locked")
        return {"outcome": "skipped", "reason": "locked"}
    try:
        return _run(self, settings, source, client, remaining, waited, attempt)
    finally:
        if not locks.release(client, lock_key, token):
            log.warning("refresh_lock_expired", source=source_name)


def delivery_token(task_id: str | None, attempt: int) -> str:
    """Return who holds the lock and slot: this message (a redelivery shares it), or a one-off.

    Retries reuse the task id, so the attempt tells a retry from its predecessor.
    """
    return f"{task_id or uuid.uuid4().hex}:{attempt}"


def lock_timeout(settings: Settings) -> float:
    """Return the refresh lock's expiry: the configured TTL, but never within the hard limit.

    A lock that expired while its run still went on would let a second run overlap it; the
    hard time limit is when Celery kills a run, so the lock lasts at least that (plus slack).
    """
    return float(max(settings.refresh_lock_ttl_s, settings.task_hard_time_limit_s + _LOCK_SLACK_S))


def _pending_key(settings: Settings, source: str) -> str:
    return f"{settings.redis_prefix}:refresh:{source}:retry_pending"


def _claim_schedule_slot(client: redis.Redis, settings: Settings, source: str, token: str) -> bool:
    # Two beats started by mistake each send one refresh per interval; only one may run.
    ttl_s = max(settings.refresh_interval_s / 2, 0.1)  # half an interval
    key = f"{settings.redis_prefix}:refresh:{source}:scheduled"
    return locks.claim(client, key, token, ttl_s=ttl_s)


def _run(
    task: Any,
    settings: Settings,
    source: Source,
    client: redis.Redis,
    remaining: list[str] | None,
    waited: float,
    attempt: int,
) -> dict[str, Any]:
    db = get_sync_db(settings)
    ids = [ObjectId(i) for i in remaining] if remaining is not None else None
    locations = list_active_locations(db=db, ids=ids)
    requests = source.build_requests(locations, max_cost=_max_cost(settings))
    budget = Budget(client, settings, source.name)
    stats = RunStats()
    log.info("refresh_started", source=source.name, locations=len(locations), batches=len(requests))
    try:
        with httpx.Client(timeout=http_timeout(settings)) as http:
            for index, request in enumerate(requests):
                try:
                    _batch(http, db, budget, source, request, stats, attempt)
                except Throttled as throttled:
                    _finish(db, settings, source.name, stats, partial=True)
                    pending = [str(loc.id) for r in requests[index:] for loc in r.locations]
                    error = _defer(task, settings, source.name, throttled, pending, waited, attempt)
                    if isinstance(error, RefreshFailedError):
                        record_error(
                            db=db, source=source.name, at=datetime.now(UTC), error=str(error)
                        )
                    raise error from None
    except (UpstreamUnreachableError, SoftTimeLimitExceeded) as exc:
        stats.failed += 1
        stats.errors.append(f"{type(exc).__name__}: {exc}")
        _finish(db, settings, source.name, stats, partial=False)
        raise
    finally:
        _update_budget_gauges(client, settings, source.name)
    return _finish(db, settings, source.name, stats, partial=False)


def _batch(
    http: httpx.Client,
    db: Any,
    budget: Budget,
    source: Source,
    request: UpstreamRequest,
    stats: RunStats,
    attempt: int,
) -> None:
    payload = spend_and_fetch(http, budget, source, request, attempt=attempt)
    if isinstance(payload, str):
        stats.failed += 1
        stats.errors.append(payload)
        log.warning("refresh_batch_failed", source=source.name, error=payload)
        return
    result: ParseResult = source.parse(request, payload)
    if result.errors:
        RECORDS_UPSERTED.labels(source.name, "invalid").inc(len(result.errors))
        log.warning(
            "refresh_items_invalid",
            source=source.name,
            count=len(result.errors),
            errors=result.errors[:5],
        )
    counts = bulk_upsert_observations(
        db=db, source=source.name, observations=result.observations, fetched_at=datetime.now(UTC)
    )
    for name in ("inserted", "updated", "unchanged"):
        RECORDS_UPSERTED.labels(source.name, name).inc(getattr(counts, name))
    stats.ok += 1


def _defer(
    task: Any,
    settings: Settings,
    source: str,
    throttled: Throttled,
    pending: list[str],
    waited: float,
    attempt: int,
) -> Exception:
    """Return the Celery Retry to raise, or a RefreshFailedError once the wait is too long."""
    if throttled.reason == "budget":
        UPSTREAM_THROTTLED.labels(source, "budget").inc()
    elif throttled.wait_s > 0:
        # Everyone holds off, not just this task: no upstream call until the wait has passed.
        until = datetime.now(UTC) + timedelta(seconds=throttled.wait_s)
        Budget(redis_client(settings), settings, source).block_until(until)
    countdown = min(throttled.wait_s, settings.retry_max_countdown_s) + jitter(
        settings.retry_jitter_s
    )
    countdown = max(countdown, 0.1)
    if waited + countdown > settings.retry_max_total_wait_s:
        log.error(
            "refresh_retries_exhausted",
            source=source,
            reason=throttled.reason,
            waited_s=round(waited, 1),
            next_wait_s=round(countdown, 1),
            max_total_wait_s=settings.retry_max_total_wait_s,
            pending=len(pending),
        )
        return RefreshFailedError(f"gave up after waiting {waited:.0f}s ({throttled.reason})")
    log.info(
        "refresh_deferred",
        source=source,
        reason=throttled.reason,
        countdown_s=round(countdown, 2),
        pending=len(pending),
        attempt=attempt + 1,
    )
    kwargs = {"remaining": pending, "waited": waited + countdown, "attempt": attempt + 1}
    marker_ttl = int(countdown) + settings.task_hard_time_limit_s
    redis_client(settings).set(_pending_key(settings, source), "1", ex=marker_ttl)
    # Beat's `expires` must not follow the retry, or a long wait would revoke it on arrival.
    retry: Exception = task.retry(countdown=countdown, kwargs=kwargs, expires=None, throw=False)
    return retry


def _finish(
    db: Any, settings: Settings, source: str, stats: RunStats, *, partial: bool
) -> dict[str, Any]:
    now = datetime.now(UTC)
    next_run = now + timedelta(seconds=settings.refresh_interval_s)
    if stats.failed:
        record_error(
            db=db, source=source, at=now, error="; ".join(stats.errors[:3]), next_run_at=next_run
        )
    if stats.ok or (not stats.failed and not partial):
        record_success(db=db, source=source, at=now, next_run_at=next_run)
        REFRESH_LAST_SUCCESS.labels(source).set(now.timestamp())
    if not partial:
        log.info(
            "refresh_finished", source=source, batches_ok=stats.ok, batches_failed=stats.failed
        )
        if stats.failed and not stats.ok:
            raise RefreshFailedError("; ".join(stats.errors[:3]))
    return {"outcome": "success", "batches_ok": stats.ok, "batches_failed": stats.failed}


def _update_budget_gauges(client: redis.Redis, settings: Settings, source: str) -> None:
    try:
        usage(client, settings, source)
    except redis.RedisError as exc:
        log.warning("budget_gauges_failed", source=source, error=str(exc))
