"""Every dashboard PromQL expression, evaluated by a real Prometheus scraping the live stack."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.e2e.conftest import Stack
from tests.factories import location_payload
from tests.support.deploy import deploy_module
from tests.support.procs import wait_for

pytestmark = pytest.mark.e2e

FAST_ENV = {
    "APIMIRROR_REFRESH_INTERVAL": "2",
    "APIMIRROR_METRICS_SAMPLE_INTERVAL": "1",
    "APIMIRROR_RETRY_JITTER": "0.5",
}
# Panels that must show data once the stack has served requests and refreshed a location.
# The rest show only faults (errors, 429s, failures) and may rightly be empty when healthy.
HEALTHY_PANELS = {
    "Service overview": [
        "Requests / s",
        "5xx ratio",
        "p99 latency",
        "API processes up",
        "Request rate by route",
        "Latency percentiles",
        "p99 latency by route",
        "Requests in progress",
        "Response size p90 by route",
        "MongoDB command p99 by command",
    ],
    "Freshness & upstream": [
        "Data age (stalest active location)",
        "Since last successful refresh",
        "Upstream 429s (last hour)",
        "Data age per source",
        "Last success",
        "Upstream requests by status",
        "Upstream latency",
        "Budget remaining per window",
        "Projected use per window",
        "Records upserted by result",
        "Weighted calls spent per hour",
    ],
    "Workers & queue": [
        "Workers up",
        "Beat up",
        "Messages queued",
        "Task runs by outcome",
        "Task duration",
        "Queue length",
        "Scrape targets up by job",
    ],
}
EXPECTED = {f"{board} / {panel}" for board, panels in HEALTHY_PANELS.items() for panel in panels}


def _results(stack: Stack) -> dict[str, list[int]]:
    """Evaluate every dashboard query; return the result sizes per panel (fails on any error)."""
    sizes: dict[str, list[int]] = {}
    for title, expr in deploy_module("queries").promql_queries():
        sizes.setdefault(title, []).append(len(stack.prom_query(expr)))
    return sizes


def _empty_expected(stack: Stack) -> list[str]:
    sizes = _results(stack)
    return sorted(t for t in EXPECTED if not any(sizes.get(t, [])))


def _exercise_api(stack: Stack) -> None:
    with stack.client() as client:
        for _ in range(5):
            assert client.get("/api/v1/locations").status_code == 200
            assert client.get("/api/v1/sources").status_code == 200


def test_every_dashboard_query_evaluates_and_healthy_panels_have_data(
    stack_factory: Callable[..., Stack],
) -> None:
    """Every dashboard PromQL query evaluates on live data; healthy-state panels are not empty."""
    queries = deploy_module("queries").promql_queries()
    titles = {title for title, _ in queries}
    assert titles >= EXPECTED, f"panels renamed or gone: {sorted(EXPECTED - titles)}"

    stack = stack_factory(env=FAST_ENV, prometheus=True, scrape_interval="1s")
    with stack.client() as client:
        created = client.post("/api/v1/locations", json=location_payload(), headers=stack.auth)
        assert created.status_code == 201, created.text
    _exercise_api(stack)
    wait_for(
        lambda: bool(stack.prom_query('apimirror_task_runs_total{outcome="success"} > 0')),
        timeout=90,
        what="a successful refresh scraped by Prometheus",
        interval=0.5,
    )

    def settled() -> bool:
        _exercise_api(stack)
        return not _empty_expected(stack)

    try:
        wait_for(settled, timeout=90, what="every healthy panel to have data", interval=1)
    except AssertionError:
        raise AssertionError(f"panels without data: {_empty_expected(stack)}") from None
    _results(stack)  # one final pass: every expression still evaluates without error
