"""How one upstream answer is read: 429 waits, failed batches and unreachable upstreams."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from bson import ObjectId

from apimirror.config import Settings
from apimirror.sources.base import TrackedLocation, UpstreamRequest
from apimirror.sources.http import Throttled, UpstreamUnreachableError, fetch
from apimirror.sources.openmeteo import OpenMeteoSource
from apimirror.upstream_sim.payloads import load_sample


def _setup() -> tuple[OpenMeteoSource, UpstreamRequest]:
    source = OpenMeteoSource(Settings(APIMIRROR_UPSTREAM_BASE_URL="http://upstream.test"))
    [request] = source.build_requests([TrackedLocation(ObjectId(), 1.0, 2.0)])
    return source, request


def _fetch_with(handler: Callable[[httpx.Request], httpx.Response], *, attempt: int = 0) -> Any:
    source, request = _setup()
    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        return fetch(client, source, request, attempt=attempt)


def test_minutely_429_without_retry_after_waits_for_the_next_minute() -> None:
    """Open-Meteo's minutely 429 (no Retry-After) means waiting until the minute resets."""
    body = load_sample("error-429-minutely.json")
    with pytest.raises(Throttled) as caught:
        _fetch_with(lambda _: httpx.Response(429, json=body))
    now = datetime.now(UTC)
    assert caught.value.reason == "429"
    assert 0 < caught.value.wait_s <= 60 - now.second + 1


def test_daily_429_waits_until_utc_midnight() -> None:
    """The daily 429 body means waiting until the next UTC midnight."""
    body = load_sample("error-429-daily.json")
    with pytest.raises(Throttled) as caught:
        _fetch_with(lambda _: httpx.Response(429, json=body))
    now = datetime.now(UTC)
    until_midnight = 86400 - (now.hour * 3600 + now.minute * 60 + now.second)
    assert until_midnight - 2 <= caught.value.wait_s <= until_midnight + 1


def test_retry_after_header_wins_over_the_body() -> None:
    """A Retry-After header, when present, sets the wait."""
    body = load_sample("error-429-daily.json")
    with pytest.raises(Throttled) as caught:
        _fetch_with(lambda _: httpx.Response(429, json=body, headers={"Retry-After": "7"}))
    assert caught.value.wait_s == 7


def test_unnamed_429_backs_off() -> None:
    """A 429 naming no window (e.g. too many concurrent requests) backs off exponentially."""
    body = {"error": True, "reason": "Too many concurrent requests"}
    with pytest.raises(Throttled) as caught:
        _fetch_with(lambda _: httpx.Response(429, json=body))
    assert caught.value.wait_s > 0


def test_unnamed_429_backoff_grows_with_the_retry_attempt() -> None:
    """Repeated unnamed 429s back off longer on each retry instead of hammering every 5 s."""
    body = {"error": True, "reason": "Too many concurrent requests"}
    waits = []
    for attempt in (0, 3):
        with pytest.raises(Throttled) as caught:
            _fetch_with(lambda _: httpx.Response(429, json=body), attempt=attempt)
        waits.append(caught.value.wait_s)
    assert waits[1] == 8 * waits[0]


@pytest.mark.parametrize(
    ("response", "fragment"),
    [
        (httpx.Response(503, text="down"), "HTTP 503"),
        (httpx.Response(400, json=load_sample("error-400-latitude-out-of-range.json")), "HTTP 400"),
        (httpx.Response(200, text="<html>"), "not JSON"),
    ],
)
def test_failed_batches_become_error_texts(response: httpx.Response, fragment: str) -> None:
    """5xx, 400 and non-JSON answers fail only their batch, described by a short text."""
    result = _fetch_with(lambda _: response)
    assert isinstance(result, str)
    assert fragment in result


@pytest.mark.parametrize("error", [httpx.ReadTimeout("slow"), httpx.ConnectError("refused")])
def test_timeouts_and_connection_errors_mean_unreachable(error: Exception) -> None:
    """A timeout or refused connection stops the run as an unreachable upstream."""

    def handler(_: httpx.Request) -> httpx.Response:
        raise error

    with pytest.raises(UpstreamUnreachableError):
        _fetch_with(handler)


def test_success_returns_the_decoded_body() -> None:
    """A 200 answer returns the decoded JSON for parsing."""
    body = load_sample("current-lisbon-unixtime-daily.json")
    assert _fetch_with(lambda _: httpx.Response(200, json=body)) == body
