"""The log contract on the live processes: every line is JSON with the contract's fields."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Stack
from tests.factories import location_payload
from tests.support.procs import wait_for

pytestmark = pytest.mark.e2e

CONTRACT = ("ts", "level", "event", "logger", "service")
FAST_ENV = {"APIMIRROR_REFRESH_INTERVAL": "2", "APIMIRROR_METRICS_SAMPLE_INTERVAL": "1"}


def json_lines(stack: Stack, name: str) -> list[dict[str, Any]]:
    """Parse every line process `name` printed; fail naming the first line that is not JSON."""
    parsed = []
    for number, line in enumerate(stack.logs(name).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            pytest.fail(f"{name} line {number} is not JSON: {line[:300]!r}")
        assert isinstance(record, dict), line
        parsed.append(record)
    return parsed


def successful_runs(stack: Stack) -> bool:
    """Say whether the worker has finished a refresh successfully."""
    text = httpx.get(f"http://127.0.0.1:{stack.ports['worker-metrics']}/metrics", timeout=5).text
    return any(
        line.startswith("apimirror_task_runs_total{")
        and 'outcome="success"' in line
        and not line.endswith(" 0.0")
        for line in text.splitlines()
    )


def test_every_live_log_line_is_contract_json_and_request_ids_match(
    stack_factory: Callable[..., Stack],
) -> None:
    """api, worker and beat print only JSON lines with the contract fields; ids match headers."""
    stack = stack_factory(env=FAST_ENV)
    sent_id = f"e2e-{uuid.uuid4().hex}"
    with stack.client() as client:
        created = client.post("/api/v1/locations", json=location_payload(), headers=stack.auth)
        assert created.status_code == 201, created.text
        echoed = client.get("/api/v1/locations", headers={"X-Request-ID": sent_id})
        generated = client.get(f"/api/v1/locations/{'0' * 24}")
        client.get("/no/such/path")
    assert echoed.headers["x-request-id"] == sent_id
    generated_id = generated.headers["x-request-id"]
    wait_for(lambda: successful_runs(stack), timeout=60, what="a successful refresh")

    by_service = {name: json_lines(stack, name) for name in ("api", "worker", "beat")}
    for name, records in by_service.items():
        assert records, f"{name} printed nothing"
        for record in records:
            missing = [f for f in CONTRACT if f not in record]
            assert not missing, f"{name}: {missing} missing in {record}"
            assert record["service"] == name, record

    access = [r for r in by_service["api"] if r["event"] == "http_request"]
    [mine] = [r for r in access if r.get("request_id") == sent_id]
    assert mine["route"] == "/api/v1/locations"
    assert mine["method"] == "GET"
    assert mine["status"] == 200
    assert isinstance(mine["duration_ms"], float | int)
    [theirs] = [r for r in access if r.get("request_id") == generated_id]
    assert theirs["route"] == "/api/v1/locations/{location_id}"
    assert theirs["status"] == 404

    task_lines = [r for r in by_service["worker"] if r.get("task")]
    assert task_lines, "no worker line names its task"
    assert all(r.get("task_id") for r in task_lines)
