"""Send one upstream request and read the answer: body, failed batch, 429 wait or no answer."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import httpx
import structlog

from apimirror.config import Settings
from apimirror.observability.metrics import (
    UPSTREAM_COST,
    UPSTREAM_DURATION,
    UPSTREAM_REQUESTS,
    UPSTREAM_THROTTLED,
)
from apimirror.ratelimit import Budget, throttle_wait
from apimirror.sources.base import Source, UpstreamRequest

log = structlog.get_logger(__name__)


class UpstreamUnreachableError(RuntimeError):
    """The upstream did not answer (timeout or connection error)."""

    def __init__(self, message: str, *, sent: bool = True) -> None:
        """Carry whether the request may have reached the upstream (False: surely not)."""
        super().__init__(message)
        self.sent = sent


# Failures before a byte of the request left: no connection (refused, DNS, TLS) or no pool slot.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


class Throttled(Exception):
    """The upstream (429) or our budget said to wait."""

    def __init__(self, wait_s: float, reason: str) -> None:
        """Carry the wait in seconds and why (`budget` or `429`)."""
        super().__init__(f"{reason}: wait {wait_s:.1f}s")
        self.wait_s = wait_s
        self.reason = reason


def http_timeout(settings: Settings) -> httpx.Timeout:
    """Return httpx connect/read timeouts from the settings."""
    read = settings.upstream_read_timeout_s
    return httpx.Timeout(
        connect=settings.upstream_connect_timeout_s, read=read, write=read, pool=read
    )


def fetch(http: httpx.Client, source: Source, request: UpstreamRequest, *, attempt: int = 0) -> Any:
    """Send one request; return the decoded body, or an error text for a failed batch.

    `attempt` is the task's retry count: an unnamed 429 backs off longer on each retry.
    """
    started = time.perf_counter()
    params = dict(request.params)
    try:
        if request.method == "POST":
            response = http.post(request.url, data=params)
        else:
            response = http.get(request.url, params=params)
    except httpx.TimeoutException as exc:
        UPSTREAM_REQUESTS.labels(source.name, "timeout").inc()
        sent = not isinstance(exc, _NOT_SENT)
        raise UpstreamUnreachableError(f"timeout: {exc!r}", sent=sent) from exc
    except httpx.TransportError as exc:
        UPSTREAM_REQUESTS.labels(source.name, "error").inc()
        sent = not isinstance(exc, _NOT_SENT)
        raise UpstreamUnreachableError(f"transport: {exc!r}", sent=sent) from exc
    finally:
        UPSTREAM_DURATION.labels(source.name).observe(time.perf_counter() - started)
    UPSTREAM_REQUESTS.labels(source.name, str(response.status_code)).inc()
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code == 429:
        window = source.throttle_reason(body)
        UPSTREAM_THROTTLED.labels(source.name, "429").inc()
        wait = throttle_wait(
            retry_after=response.headers.get("retry-after"), window=window, attempt=attempt
        )
        log.warning("upstream_throttled", source=source.name, window=window, wait_s=wait)
        raise Throttled(wait, "429")
    if response.status_code != 200:
        return f"HTTP {response.status_code}: {response.text[:200]}"
    if body is None:
        return "HTTP 200 with a body that is not JSON"
    return body


def spend_and_fetch(
    http: httpx.Client, budget: Budget, source: Source, request: UpstreamRequest, *, attempt: int
) -> Any:
    """Spend the request's cost from the shared budget, then `fetch` it.

    A refused spend raises Throttled("budget") and sends nothing. A request that surely never
    reached the upstream (no connection) gives its cost back: the upstream counted nothing,
    and during an outage phantom spends would otherwise use up the day's budget.
    """
    spent_at = datetime.now(UTC)
    decision = budget.try_spend(request.cost, now=spent_at)
    if not decision.allowed:
        raise Throttled(decision.wait_s, "budget")
    try:
        body = fetch(http, source, request, attempt=attempt)
    except UpstreamUnreachableError as exc:
        if exc.sent:
            UPSTREAM_COST.labels(source.name).inc(request.cost)
        else:
            budget.refund(request.cost, spent_at=spent_at)
        raise
    except Throttled:
        UPSTREAM_COST.labels(source.name).inc(request.cost)
        raise
    UPSTREAM_COST.labels(source.name).inc(request.cost)
    return body
