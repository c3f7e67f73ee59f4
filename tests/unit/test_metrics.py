"""API and task metrics: route-template labels, request ids, central task outcomes, multiprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest
import structlog
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from apimirror.observability import celery as celery_obs
from apimirror.observability.http import install, request_id_from
from apimirror.observability.metrics import UNMATCHED_ROUTE

ITEM_ROUTE = "/api/v1/things/{thing_id}"


def _app() -> FastAPI:
    app = FastAPI()
    things = APIRouter(prefix="/things")

    @things.get("/{thing_id}")
    async def get_thing(thing_id: str) -> dict[str, str]:
        return {"id": thing_id}

    @things.post("")
    async def boom() -> dict[str, str]:
        raise RuntimeError("unhandled")

    # Nested routers with prefixes, like the real app: the label must be the full template.
    v1 = APIRouter(prefix="/api/v1")
    v1.include_router(things)
    app.include_router(v1)
    install(app)
    return app


def _requests(method: str, route: str, status: str) -> float:
    labels = {"method": method, "route": route, "status": status}
    return REGISTRY.get_sample_value("apimirror_http_requests_total", labels) or 0.0


def _series(name: str) -> set[tuple[tuple[str, str], ...]]:
    return {
        tuple(sorted(sample.labels.items()))
        for metric in REGISTRY.collect()
        for sample in metric.samples
        if sample.name == name
    }


def test_requests_are_labelled_by_route_template_not_path() -> None:
    """Requests to different ids share the route template's series; ids never become labels."""
    client = TestClient(_app())
    before = _requests("GET", ITEM_ROUTE, "200")
    for _ in range(5):
        assert client.get(f"/api/v1/things/{uuid.uuid4().hex}").status_code == 200
    assert _requests("GET", ITEM_ROUTE, "200") - before == 5
    assert not any(
        "things/" in dict(s).get("route", "{") and "{" not in dict(s)["route"]
        for s in _series("apimirror_http_requests_total")
    )


def test_unknown_paths_share_one_route_value() -> None:
    """Any number of unknown paths adds at most one series per status."""
    client = TestClient(_app())
    before_series = _series("apimirror_http_requests_total")
    before = _requests("GET", UNMATCHED_ROUTE, "404")
    for _ in range(50):
        client.get(f"/nope/{uuid.uuid4().hex}")
    added = _series("apimirror_http_requests_total") - before_series
    assert len(added) <= 1
    assert _requests("GET", UNMATCHED_ROUTE, "404") - before == 50


def test_unhandled_errors_are_counted_as_500_and_carry_the_request_id() -> None:
    """A route that raises is counted as 500 under its template; the 500 has X-Request-ID."""
    app = _app()
    seen: list[object] = []

    async def catch_all(request: Request, exc: Exception) -> JSONResponse:
        seen.append(structlog.contextvars.get_contextvars().get("request_id"))
        return JSONResponse({"title": "failed"}, status_code=500)

    app.add_exception_handler(Exception, catch_all)
    client = TestClient(app, raise_server_exceptions=False)
    before = _requests("POST", "/api/v1/things", "500")
    response = client.post("/api/v1/things", headers={"X-Request-ID": "boom-request-1"})
    assert response.status_code == 500
    assert response.headers["x-request-id"] == "boom-request-1"
    assert seen == ["boom-request-1"]
    assert _requests("POST", "/api/v1/things", "500") - before == 1


def test_sane_request_id_is_echoed_and_insane_one_replaced() -> None:
    """A sane X-Request-ID is returned unchanged; a hostile one is replaced by a fresh id."""
    client = TestClient(_app())
    sane = client.get("/api/v1/things/x", headers={"X-Request-ID": "client-req-0042"})
    assert sane.headers["x-request-id"] == "client-req-0042"
    hostile = client.get("/api/v1/things/x", headers={"X-Request-ID": "bad id\u0001<script>"})
    assert hostile.headers["x-request-id"] != "bad id\u0001<script>"
    assert len(hostile.headers["x-request-id"]) == 32
    generated = client.get("/api/v1/things/x").headers["x-request-id"]
    assert generated != hostile.headers["x-request-id"]


def test_request_id_parser_rejects_overlong_values() -> None:
    """An X-Request-ID longer than 128 characters is not trusted."""
    scope = {"headers": [(b"x-request-id", b"a" * 200)]}
    assert request_id_from(scope) != "a" * 200


def test_metrics_endpoint_exposes_build_info_and_thresholds() -> None:
    """`/metrics` serves the text format with build info and the configured alert thresholds."""
    body = TestClient(_app()).get("/metrics").text
    assert "apimirror_build_info{" in body
    assert "apimirror_config_stale_after_seconds " in body
    assert "apimirror_http_requests_in_progress " in body


@pytest.mark.parametrize(
    ("state", "retval", "outcome"),
    [
        ("SUCCESS", {"outcome": "success"}, "success"),
        ("SUCCESS", {"outcome": "skipped", "reason": "locked"}, "skipped"),
        ("SUCCESS", None, "success"),
        ("RETRY", None, "retry"),
        ("IGNORED", None, "skipped"),
        ("FAILURE", ValueError("x"), "failure"),
    ],
)
def test_task_outcome_mapping(state: str, retval: object, outcome: str) -> None:
    """Celery states and a task's `skipped` return value map onto the four outcome labels."""
    assert celery_obs.outcome_of(state, retval) == outcome


def test_task_signals_count_each_run_once_with_its_duration() -> None:
    """prerun/postrun record exactly one outcome and one duration per run, centrally."""
    task = SimpleNamespace(name="apimirror.test_task")
    labels = {"task": "apimirror.test_task", "outcome": "success"}
    before = REGISTRY.get_sample_value("apimirror_task_runs_total", labels) or 0.0
    count = {"task": "apimirror.test_task"}
    before_n = REGISTRY.get_sample_value("apimirror_task_duration_seconds_count", count) or 0.0
    celery_obs._on_prerun(sender=task, task_id="t-1", task=task)
    celery_obs._on_postrun(sender=task, task_id="t-1", task=task, retval={}, state="SUCCESS")
    assert REGISTRY.get_sample_value("apimirror_task_runs_total", labels) == before + 1
    after_n = REGISTRY.get_sample_value("apimirror_task_duration_seconds_count", count)
    assert after_n == before_n + 1


def test_failure_reported_by_the_pool_parent_is_counted_once() -> None:
    """A failure signalled for a run the process never started (hard limit) counts once."""
    task = SimpleNamespace(name="apimirror.test_task")
    labels = {"task": "apimirror.test_task", "outcome": "failure"}
    before = REGISTRY.get_sample_value("apimirror_task_runs_total", labels) or 0.0
    celery_obs._on_failure(sender=task, task_id="killed-child")
    assert REGISTRY.get_sample_value("apimirror_task_runs_total", labels) == before + 1
    # In the child that ran the task, the failure signal precedes postrun: only postrun counts.
    celery_obs._on_prerun(sender=task, task_id="t-2", task=task)
    celery_obs._on_failure(sender=task, task_id="t-2")
    celery_obs._on_postrun(sender=task, task_id="t-2", task=task, retval=None, state="FAILURE")
    assert REGISTRY.get_sample_value("apimirror_task_runs_total", labels) == before + 2


_CHILD = textwrap.dedent(
    """
    import sys
    from apimirror.observability.metrics import HTTP_REQUESTS, HTTP_IN_PROGRESS
    for _ in range(int(sys.argv[1])):
        HTTP_REQUESTS.labels("GET", "/x", "200").inc()
    HTTP_IN_PROGRESS.inc()
    """
)
_PARENT = textwrap.dedent(
    """
    import os, subprocess, sys
    from apimirror.observability import multiproc
    path = multiproc.prepare("api")
    assert not any(path.iterdir()), "the directory is wiped at start-up"
    for n in (3, 4):
        subprocess.run([sys.executable, "-c", sys.argv[1], str(n)], check=True)
    from prometheus_client import generate_latest
    from apimirror.observability.exporter import registry
    text = generate_latest(registry()).decode()
    print([l for l in text.splitlines() if l.startswith("apimirror_http_requests_total")][0])
    for f in path.glob("gauge_livesum_*.db"):
        multiproc.mark_process_dead(int(f.stem.rsplit("_", 1)[1]))
    text = generate_latest(registry()).decode()
    live = [l for l in text.splitlines() if l.startswith("apimirror_http_requests_in_progress")]
    print(live[0] if live else "in_progress absent")
    """
)


def test_multiprocess_counters_sum_across_processes_and_dead_gauges_vanish(tmp_path: Path) -> None:
    """Counters from several processes add up in one scrape; a dead process's live gauge goes."""
    root = tmp_path / "metrics"
    (root / "api").mkdir(parents=True)
    (root / "api" / "counter_999.db").write_bytes(b"stale")  # left over from a previous run
    env = {**os.environ, "APIMIRROR_MULTIPROC_ROOT": str(root)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    result = subprocess.run(
        [sys.executable, "-c", _PARENT, _CHILD],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    counter, in_progress = result.stdout.splitlines()[-2:]
    assert counter.endswith(" 7.0")
    assert in_progress == "in_progress absent"


def test_prepare_refuses_to_run_after_prometheus_client_was_imported() -> None:
    """prepare() fails loudly when metrics were already imported in single-process mode."""
    from apimirror.observability import multiproc

    with pytest.raises(RuntimeError, match="before prometheus_client"):
        multiproc.prepare("api")
