"""Ingestion end to end: real api, worker (concurrency 2), beat, simulator, FerretDB and Redis."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from apimirror.config import Settings
from apimirror.tasks.celery_app import QUEUE, REFRESH_TASK, make_celery
from tests.support.procs import apimirror, free_port, wait_for

pytestmark = pytest.mark.e2e

FAST = {"APIMIRROR_REFRESH_INTERVAL": "2", "APIMIRROR_RETRY_JITTER": "0.5"}
# A Redis database of these tests' own: other suites' stacks flush the shared e2e database
# when they start, which would wipe a 429 block or a pending retry in the middle of a test.
OWN_REDIS_DB = 15
COORDS = [(52.52, 13.41), (48.85, 2.35), (38.72, -9.13), (40.42, -3.70)]
Stack = Any


@pytest.fixture
def stack_factory(stack_factory: Any, redis_url: str) -> Callable[..., Any]:
    """The shared factory, with these tests' processes on their own Redis database."""
    base = redis_url.rsplit("/", 1)[0] if redis_url.count("/") >= 3 else redis_url.rstrip("/")

    def factory(*, env: dict[str, str] | None = None, **kwargs: Any) -> Any:
        return stack_factory(env={"REDIS_URL": f"{base}/{OWN_REDIS_DB}", **(env or {})}, **kwargs)

    return factory


def _create_locations(stack: Stack, count: int) -> list[str]:
    ids = []
    with stack.client() as client:
        for lat, lon in COORDS[:count]:
            body = {"name": f"place {lat}", "latitude": lat, "longitude": lon, "tags": ["e2e"]}
            response = client.post("/api/v1/locations", json=body, headers=stack.auth)
            assert response.status_code == 201, response.text
            ids.append(response.json()["id"])
    return ids


def _current(stack: Stack, location_id: str) -> dict[str, Any] | None:
    response = httpx.get(f"{stack.api_url}/api/v1/locations/{location_id}/current", timeout=5)
    return response.json() if response.status_code == 200 else None


def _sim(stack: Stack, path: str = "stats") -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"{stack.sim_url}/admin/{path}", timeout=5).json()
    return body


def _set_faults(stack: Stack, **faults: Any) -> None:
    response = httpx.post(f"{stack.sim_url}/admin/faults", json=faults, timeout=5)
    assert response.status_code == 200, response.text


def _worker_metric(stack: Stack, name: str, **labels: str) -> float:
    text = httpx.get(f"http://127.0.0.1:{stack.ports['worker-metrics']}/metrics", timeout=5).text
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def _calls(stack: Stack) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = _sim(stack)["calls"]
    return calls


def _wait(check: Callable[[], bool], timeout: float, what: str, stack: Stack) -> None:
    try:
        wait_for(check, timeout=timeout, what=what, interval=0.25)
    except AssertionError:
        raise AssertionError(f"{what}; worker log tail:\n{stack.logs('worker')[-3000:]}") from None


def test_created_locations_get_observations_within_one_interval(stack_factory: Any) -> None:
    """Locations created through the API show simulator observations through the API."""
    stack = stack_factory(env={**FAST, "APIMIRROR_REFRESH_INTERVAL": "3"})
    ids = _create_locations(stack, 3)
    _wait(
        lambda: all(_current(stack, i) for i in ids), 30, "observations for every location", stack
    )
    for location_id in ids:
        current = _current(stack, location_id)
        assert current is not None
        assert current["location_id"] == location_id
        assert current["source"] == "openmeteo"
        assert {"temperature_2m", "wind_speed_10m"} <= set(current["values"])
        assert current["units"]["temperature_2m"] == "°C"
        assert current["freshness"]["stale"] is False
    listed = httpx.get(
        f"{stack.api_url}/api/v1/observations", params={"location_id": ids[0]}, timeout=5
    ).json()
    assert len(listed["items"]) == 1
    sources = httpx.get(f"{stack.api_url}/api/v1/sources", timeout=5).json()
    [status] = [s for s in sources if s["name"] == "openmeteo"]
    assert status["last_success_at"] is not None
    assert any(w["used"] for w in status["budget"] if w["window"] == "minute")
    queued = httpx.post(
        f"{stack.api_url}/api/v1/sources/openmeteo/refresh", headers=stack.auth, timeout=10
    )
    assert queued.status_code == 202, queued.text
    task_id = queued.json()["task_id"]
    _wait(lambda: f"{task_id}] succeeded" in stack.logs("worker"), 30, "the manual refresh", stack)
    for target in ("worker", "beat"):
        assert _healthcheck(stack, target) == 0, f"{target} should report healthy"
    stack.stop("worker")
    assert _healthcheck(stack, "worker") == 1, "a stopped worker must not look healthy"


def _healthcheck(stack: Stack, target: str) -> int:
    argv = [sys.executable, "-m", "apimirror.cli", "healthcheck", target]
    env = {**os.environ, **stack.env}
    return subprocess.run(argv, env=env, capture_output=True, timeout=30, check=False).returncode


def _active_ids(inspector: Any) -> set[str]:
    active = inspector.active() or {}
    return {t["id"] for tasks in active.values() for t in tasks if t["name"] == REFRESH_TASK}


def _assert_waiting_without_a_slot(stack: Stack) -> None:
    env = stack.env
    settings = Settings(
        REDIS_URL=env["REDIS_URL"], APIMIRROR_REDIS_PREFIX=env["APIMIRROR_REDIS_PREFIX"]
    )
    celery = make_celery(settings)
    inspector = celery.control.inspect(timeout=2)
    scheduled = inspector.scheduled() or {}
    waiting = [
        t for tasks in scheduled.values() for t in tasks if t["request"]["name"] == REFRESH_TASK
    ]
    assert waiting, "the throttled refresh should wait as a scheduled (ETA) retry"
    samples = []
    for _ in range(3):
        samples.append(_active_ids(inspector))
        time.sleep(0.5)
    assert not set.intersection(*samples), "a refresh kept a worker slot while waiting"


def test_openmeteo_minutely_429_waits_for_the_next_minute(stack_factory: Any) -> None:
    """A 429 with the minutely body and no Retry-After stops calls until the next minute."""
    sim = {"APIMIRROR_SIM_RATE_LIMIT": "true", "APIMIRROR_SIM_LIMIT_MINUTE": "2"}
    stack = stack_factory(env={**FAST, **sim})
    [location_id] = _create_locations(stack, 1)

    def throttled() -> bool:
        return any(c["status"] == 429 for c in _calls(stack))

    _wait(throttled, 60, "a 429 from the simulator", stack)
    first_429 = next(c["t"] for c in _calls(stack) if c["status"] == 429)
    _assert_waiting_without_a_slot(stack)

    def succeeded_after() -> bool:
        return any(c["status"] == 200 and c["t"] > first_429 for c in _calls(stack))

    _wait(succeeded_after, 100, "a successful call after the minute reset", stack)
    calls = _calls(stack)
    for i, call in enumerate(calls):
        if call["status"] != 429:
            continue
        boundary = math.floor(call["t"] / 60) * 60 + 60
        later = [c["t"] for c in calls[i + 1 :]]
        assert all(t >= boundary for t in later[:1]), f"call before the minute reset: {call}"
    assert "retry-after" not in str(calls)
    assert _worker_metric(stack, "apimirror_upstream_throttled_total", reason="429") >= 1
    current = _current(stack, location_id)
    assert current is not None


def test_retry_after_header_is_honoured(stack_factory: Any) -> None:
    """A 429 with Retry-After: N brings no upstream call for N seconds, then success."""
    sim = {
        "APIMIRROR_SIM_RATE_LIMIT": "true",
        "APIMIRROR_SIM_RETRY_AFTER": "true",
        "APIMIRROR_SIM_LIMIT_MINUTE": "1",
        "APIMIRROR_SIM_WINDOW_MINUTE_S": "6",
    }
    stack = stack_factory(env={**FAST, **sim})
    _create_locations(stack, 1)

    def settled() -> bool:
        calls = _calls(stack)
        first = next((c["t"] for c in calls if c["status"] == 429), None)
        return first is not None and any(c["status"] == 200 and c["t"] > first for c in calls)

    _wait(settled, 60, "a 429 with Retry-After followed by a success", stack)
    calls = _calls(stack)
    for i, call in enumerate(calls):
        if call["status"] == 429:
            assert call["retry_after"] >= 1
            following = calls[i + 1 : i + 2]
            assert all(c["t"] >= call["t"] + call["retry_after"] for c in following), call
    assert _worker_metric(stack, "apimirror_task_runs_total", outcome="retry") >= 1


def test_outage_serves_stale_data_then_recovers_without_restart(stack_factory: Any) -> None:
    """During an outage old data is served with stale=true; after it, refreshes succeed again."""
    stack = stack_factory(env={**FAST, "APIMIRROR_STALE_AFTER_SECONDS": "4"})
    [location_id] = _create_locations(stack, 1)
    _wait(lambda: _current(stack, location_id) is not None, 30, "first observation", stack)
    before = _current(stack, location_id)
    assert before is not None
    _set_faults(stack, outage=True)

    def stale() -> bool:
        current = _current(stack, location_id)
        return current is not None and current["freshness"]["stale"] is True

    _wait(stale, 30, "stale=true during the outage", stack)
    during = _current(stack, location_id)
    assert during is not None
    assert during["values"] == before["values"]
    sources = httpx.get(f"{stack.api_url}/api/v1/sources", timeout=5).json()
    assert sources[0]["last_error"]
    _set_faults(stack, outage=False)
    recovered_at = time.time()

    def fresh() -> bool:
        current = _current(stack, location_id)
        return current is not None and current["freshness"]["stale"] is False

    _wait(fresh, 30, "fresh data after recovery", stack)
    assert any(c["status"] == 200 and c["t"] > recovered_at for c in _calls(stack))
    assert stack.procs["worker"].alive()
    assert _worker_metric(stack, "apimirror_task_runs_total", outcome="failure") >= 1
    # An outage is an expected failure: counted and logged by us, with no traceback or
    # error-level "raised unexpected" line from Celery.
    worker_log = stack.logs("worker")
    assert "Traceback" not in worker_log
    assert "raised unexpected" not in worker_log


def test_hanging_upstream_ends_tasks_within_soft_limit_and_queue_stays_bounded(
    stack_factory: Any,
) -> None:
    """With the upstream hanging, every task ends within its soft limit and the queue stays small."""
    env = {
        "APIMIRROR_REFRESH_INTERVAL": "1",
        "APIMIRROR_UPSTREAM_READ_TIMEOUT": "1",
        "APIMIRROR_TASK_SOFT_LIMIT": "4",
        "APIMIRROR_TASK_HARD_LIMIT": "6",
    }
    stack = stack_factory(env=env)
    [location_id] = _create_locations(stack, 1)
    _wait(lambda: _current(stack, location_id) is not None, 30, "first observation", stack)
    _set_faults(stack, hang=True)
    broker = redis.Redis.from_url(stack.env["REDIS_URL"])
    queue_key = f"{stack.env['APIMIRROR_REDIS_PREFIX']}:celery:{QUEUE}"
    lengths = []

    def failed_three_times() -> bool:
        lengths.append(int(broker.llen(queue_key)))
        return _worker_metric(stack, "apimirror_task_runs_total", outcome="failure") >= 3

    _wait(failed_three_times, 60, "three failed refreshes while hanging", stack)
    assert max(lengths) <= 3, lengths
    count = _worker_metric(stack, "apimirror_task_duration_seconds_count", task=REFRESH_TASK)
    within_soft = _worker_metric(
        stack, "apimirror_task_duration_seconds_bucket", task=REFRESH_TASK, le="5.0"
    )
    assert count == within_soft
    assert "TimeLimitExceeded" not in stack.logs("worker")
    _set_faults(stack, hang=False)


def test_tight_budget_never_exceeds_limits_in_any_window(stack_factory: Any) -> None:
    """With a tight budget, the simulator never receives more calls than the limits allow."""
    env = {
        **FAST,
        "APIMIRROR_REFRESH_INTERVAL": "1",
        "APIMIRROR_LIMIT_MINUTE": "3",
        "APIMIRROR_LIMIT_HOUR": "4",
        "APIMIRROR_BATCH_SIZE": "1",
        "APIMIRROR_SIM_RATE_LIMIT": "true",
        "APIMIRROR_SIM_LIMIT_MINUTE": "3",
        "APIMIRROR_SIM_LIMIT_HOUR": "4",
    }
    stack = stack_factory(env=env)
    _create_locations(stack, 2)

    def held_back() -> bool:
        deferred = _worker_metric(stack, "apimirror_upstream_throttled_total", reason="budget")
        skipped = _worker_metric(stack, "apimirror_task_runs_total", outcome="skipped")
        return deferred >= 1 and skipped >= 5

    _wait(held_back, 60, "the budget holding refreshes back", stack)
    stats = _sim(stack)
    assert stats["windows"]["minute"]["max_received"] <= 3
    assert stats["windows"]["hour"]["max_received"] <= 4
    assert "429" not in stats["statuses"]
    assert stats["total"] >= 3


def test_two_beats_started_by_mistake_do_not_double_upstream_calls(stack_factory: Any) -> None:
    """A second beat sends duplicate refreshes, but the upstream sees one call per interval."""
    stack = stack_factory(env=FAST)
    _create_locations(stack, 1)
    tmp = stack.log_dir / "beat2-tmp"
    tmp.mkdir()
    extra = apimirror(
        "beat2",
        ["beat", "--metrics-port", str(free_port())],
        env={**stack.env, "TMPDIR": str(tmp)},
        log_dir=stack.log_dir,
    ).start()
    stack.procs["beat2"] = extra

    def published(name: str) -> int:
        return stack.logs(name).count("Sending due task refresh-openmeteo")

    _wait(lambda: published("beat2") >= 5, 60, "the second beat publishing", stack)
    calls = sum(1 for c in _calls(stack) if c["status"] == 200)
    assert calls <= max(published("beat"), published("beat2")) + 1
    assert "already_scheduled" in stack.logs("worker")
