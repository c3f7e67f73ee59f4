"""Multi-process counter correctness and label cardinality, measured on the live processes."""

from __future__ import annotations

import contextlib
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import Stack
from tests.factories import location_payload
from tests.support.procs import wait_for

pytestmark = pytest.mark.e2e

LIST_ROUTE = "/api/v1/locations"
QUIET_ENV = {
    # No scheduled refreshes interfere: beat is not started and the interval is long anyway.
    "APIMIRROR_REFRESH_INTERVAL": "3600",
    "APIMIRROR_METRICS_SAMPLE_INTERVAL": "1",
}


def scrape(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Return every sample of a `/metrics` page, grouped by sample name."""
    text = httpx.get(url, timeout=10).text
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return samples


def total(samples: list[tuple[dict[str, str], float]], **match: str) -> float:
    """Sum the samples whose labels include `match`."""
    return sum(v for labels, v in samples if all(labels.get(k) == x for k, x in match.items()))


def finished_runs(stack: Stack) -> float:
    """Return task runs that ended (success, failure or skipped; a retry is not an end)."""
    runs = scrape(f"http://127.0.0.1:{stack.ports['worker-metrics']}/metrics").get(
        "apimirror_task_runs_total", []
    )
    return sum(v for labels, v in runs if labels["outcome"] != "retry")


def prom_value(stack: Stack, expr: str) -> float | None:
    """Return a single-valued PromQL result, or None when it is empty."""
    result = stack.prom_query(expr)
    return float(result[0]["value"][1]) if result else None


def test_counts_are_exact_with_two_api_workers_and_two_worker_children(
    stack_factory: Callable[..., Stack],
) -> None:
    """N requests and M tasks show up as exactly N and M in Prometheus, never decreasing."""
    stack = stack_factory(
        env=QUIET_ENV,
        api_workers=2,
        worker_concurrency=2,
        beat=False,
        prometheus=True,
        rule_files=[],
    )
    requests, tasks = 300, 6
    with stack.client() as client:
        assert (
            client.post(LIST_ROUTE, json=location_payload(), headers=stack.auth).status_code == 201
        )

    def get(_: int) -> int:
        return httpx.get(f"{stack.api_url}{LIST_ROUTE}", timeout=10).status_code

    with ThreadPoolExecutor(max_workers=16) as pool:
        assert set(pool.map(get, range(requests))) == {200}
    for _ in range(tasks):
        queued = httpx.post(
            f"{stack.api_url}/api/v1/sources/openmeteo/refresh", headers=stack.auth, timeout=10
        )
        assert queued.status_code == 202, queued.text
    wait_for(lambda: finished_runs(stack) >= tasks, timeout=90, what="M finished task runs")

    http_expr = f'sum(apimirror_http_requests_total{{route="{LIST_ROUTE}",method="GET"}})'
    task_expr = 'sum(apimirror_task_runs_total{outcome!="retry"})'
    with contextlib.suppress(AssertionError):  # the assertion below shows the value seen
        wait_for(lambda: prom_value(stack, http_expr) == requests, timeout=30, what="N")
    assert prom_value(stack, http_expr) == requests, stack.prom_query(http_expr)
    with contextlib.suppress(AssertionError):
        wait_for(lambda: prom_value(stack, task_expr) == tasks, timeout=30, what="M")
    assert prom_value(stack, task_expr) == tasks, stack.prom_query(task_expr)
    # Every scrape of the API sees the whole count, whichever uvicorn worker answers it.
    for _ in range(10):
        page = scrape(f"{stack.api_url}/metrics")["apimirror_http_requests_total"]
        assert total(page, route=LIST_ROUTE, method="GET") == requests
    assert finished_runs(stack) == tasks
    for metric in ("apimirror_http_requests_total", "apimirror_task_runs_total"):
        resets = prom_value(stack, f"max(resets({metric}[10m]))")
        assert resets == 0, f"{metric} went backwards between scrapes"


def test_random_ids_and_unknown_paths_add_at_most_one_series_per_route_and_status(
    stack_factory: Callable[..., Stack],
) -> None:
    """1,000 random ids and 1,000 unknown paths add at most one series per route per status."""
    stack = stack_factory(env=QUIET_ENV, worker=False, beat=False)
    metrics_url = f"{stack.api_url}/metrics"
    scrape(metrics_url)  # the first scrape adds the /metrics route's own series
    before = scrape(metrics_url)
    probes = [f"{LIST_ROUTE}/{uuid.uuid4().hex[:24]}" for _ in range(1000)]
    probes += [f"/{uuid.uuid4().hex}/{uuid.uuid4().hex[:8]}" for _ in range(1000)]
    with httpx.Client(base_url=stack.api_url, timeout=10) as client:

        def get(path: str) -> int:
            return client.get(path).status_code

        with ThreadPoolExecutor(max_workers=16) as pool:
            statuses = set(pool.map(get, probes))
    assert statuses == {404}
    after = scrape(metrics_url)

    def keys(
        page: dict[str, list[tuple[dict[str, str], float]]], name: str
    ) -> set[tuple[str, ...]]:
        return {tuple(sorted(labels.items())) for labels, _ in page.get(name, [])}  # type: ignore[misc]

    added = keys(after, "apimirror_http_requests_total") - keys(
        before, "apimirror_http_requests_total"
    )
    per_route_status = Counter((dict(k)["route"], dict(k)["status"]) for k in added)
    assert all(n <= 1 for n in per_route_status.values()), per_route_status
    assert len(added) <= 2, added
    for name in after:
        if name.startswith("apimirror_http_"):
            new = keys(after, name) - keys(before, name)
            routes = {dict(k).get("route") for k in new}
            assert len(routes - {f"{LIST_ROUTE}/{{location_id}}", "<unmatched>", None}) <= 1, routes
    label_values = {
        v for labels, _ in after["apimirror_http_requests_total"] for v in labels.values()
    }
    assert not any(probe in label_values for probe in probes)
