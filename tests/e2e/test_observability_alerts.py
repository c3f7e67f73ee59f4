"""A real Prometheus with the project's rules, scraping the live api, worker, beat and simulator.

The rule *expressions* are the real files, byte for byte. Two things are shortened for the
test's sake: thresholds through settings (the services export `apimirror_config_*` gauges the
rules compare against), and the rules' `for:` durations, which the copies below scale down.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.e2e.conftest import Stack
from tests.factories import location_payload
from tests.support.procs import ROOT, wait_for

pytestmark = pytest.mark.e2e

RULES_DIR = ROOT / "deploy" / "prometheus" / "rules"
FAST_ENV = {
    "APIMIRROR_REFRESH_INTERVAL": "2",
    "APIMIRROR_STALE_AFTER_SECONDS": "20",
    "APIMIRROR_METRICS_SAMPLE_INTERVAL": "1",
    # A budget the fast schedule cannot project to exhaust today.
    "APIMIRROR_LIMIT_HOUR": "10000000",
    "APIMIRROR_LIMIT_DAY": "100000000",
    "APIMIRROR_LIMIT_MONTH": "1000000000",
    "APIMIRROR_RETRY_MAX_COUNTDOWN": "2",
    "APIMIRROR_RETRY_JITTER": "0.5",
}


# Series every alert depends on, and the job that must export each of them.
LIVE_SERIES = (
    ("apimirror_http_requests_total", "api"),
    ("apimirror_http_request_duration_seconds_bucket", "api"),
    ("apimirror_build_info", "api"),
    ("apimirror_task_runs_total", "worker"),
    ("apimirror_task_duration_seconds_count", "worker"),
    ("apimirror_upstream_requests_total", "worker"),
    ("apimirror_upstream_cost_total", "worker"),
    ("apimirror_upstream_throttled_total", "worker"),
    ("apimirror_records_upserted_total", "worker"),
    ("apimirror_ratelimit_remaining", "worker"),
    ("apimirror_mongo_command_duration_seconds_count", "worker"),
    ("apimirror_refresh_last_success_timestamp_seconds", "beat"),
    ("apimirror_data_age_seconds", "beat"),
    ("apimirror_queue_length", "beat"),
    ("apimirror_beat_last_publish_timestamp_seconds", "beat"),
    ("apimirror_build_info", "worker"),
    ("apimirror_build_info", "beat"),
)


def fast_rule_files(directory: Path, for_duration: str = "3s") -> list[str]:
    """Copy the real rule files with every alert's `for:` set to `for_duration`; nothing else."""
    paths = []
    for source in sorted(RULES_DIR.glob("*.yml")):
        text = source.read_text(encoding="utf-8")
        copy = re.sub(r"(?m)^(\s+for:\s*)\S+$", rf"\g<1>{for_duration}", text)
        target = directory / source.name
        target.write_text(copy, encoding="utf-8")
        paths.append(str(target))
    return paths


def rule_expressions() -> list[tuple[str, str]]:
    """Return (name, expression) for every recording and alerting rule in the real files."""
    found = []
    for path in sorted(RULES_DIR.glob("*.yml")):
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            for rule in group["rules"]:
                found.append((rule.get("record") or rule["alert"], rule["expr"]))
    return found


def active_alerts(stack: Stack) -> list[dict[str, Any]]:
    """Return Prometheus's pending and firing alerts."""
    return stack.alerts()


def alert_state(stack: Stack, name: str) -> str | None:
    """Return the state of alert `name` (pending/firing), or None when it is inactive."""
    states = [a["state"] for a in stack.alerts() if a["labels"]["alertname"] == name]
    return "firing" if "firing" in states else (states[0] if states else None)


def wait_until(check: Callable[[], bool], what: str, timeout: float = 90) -> None:
    """Poll a live condition with a generous timeout (Prometheus evaluates every second)."""
    wait_for(check, timeout=timeout, what=what, interval=0.5)


def all_targets_up(stack: Stack) -> bool:
    """Say whether Prometheus scrapes every job successfully."""
    up = {r["metric"]["job"]: r["value"][1] for r in stack.prom_query("up")}
    return all(up.get(job) == "1" for job in ("api", "worker", "beat", "upstream-sim"))


def start_observed_stack(
    stack_factory: Callable[..., Stack], tmp_path: Path, extra_env: dict[str, str] | None = None
) -> Stack:
    """Start the stack with Prometheus on fast rules, track one location, wait for refreshes."""
    stack = stack_factory(
        env={**FAST_ENV, **(extra_env or {})},
        prometheus=True,
        rule_files=fast_rule_files(tmp_path),
        scrape_interval="1s",
    )
    with stack.client() as client:
        created = client.post("/api/v1/locations", json=location_payload(), headers=stack.auth)
        assert created.status_code == 201, created.text
    wait_until(lambda: all_targets_up(stack), "every target up")
    wait_until(
        lambda: bool(stack.prom_query('apimirror_task_runs_total{outcome="success"} > 0')),
        "a successful refresh in Prometheus",
    )
    wait_until(
        lambda: bool(stack.prom_query("source:apimirror_data_age_seconds")),
        "the data age gauge",
    )
    return stack


def test_healthy_stack_has_no_alerts_and_every_rule_evaluates(
    stack_factory: Callable[..., Stack], tmp_path: Path
) -> None:
    """In the healthy steady state nothing is pending or firing, and every rule evaluates cleanly."""
    stack = start_observed_stack(stack_factory, tmp_path)
    time.sleep(10)  # several evaluation rounds with every series present
    for _ in range(10):
        assert active_alerts(stack) == [], stack.alerts()
        time.sleep(0.5)
    for name, expr in rule_expressions():
        stack.prom_query(expr)  # raises on a PromQL error
        assert name
    rules = httpx.get(f"{stack.prometheus_url}/api/v1/rules", timeout=10).json()
    for group in rules["data"]["groups"]:
        for rule in group["rules"]:
            assert rule["health"] == "ok", rule
            assert not rule.get("lastError"), rule
    for name in ("source:apimirror_refresh_age_seconds", "apimirror:config_stale_after_seconds"):
        assert stack.prom_query(name), f"{name} has no live value"
    assert stack.prom_query("apimirror:config_stale_after_seconds")[0]["value"][1] == "20"
    for metric, job in LIVE_SERIES:
        assert stack.prom_query(f'{metric}{{job="{job}"}}'), f"{metric} not scraped from {job}"


def test_upstream_outage_fires_upstream_down_then_data_stale(
    stack_factory: Callable[..., Stack], tmp_path: Path
) -> None:
    """With the upstream down, UpstreamDown and DataStale go from inactive to firing."""
    stack = start_observed_stack(stack_factory, tmp_path)
    assert alert_state(stack, "UpstreamDown") is None
    assert alert_state(stack, "DataStale") is None
    faults = httpx.post(f"{stack.sim_url}/admin/faults", json={"outage": True}, timeout=5)
    assert faults.status_code == 200, faults.text
    wait_until(lambda: alert_state(stack, "UpstreamDown") == "firing", "UpstreamDown", 180)
    wait_until(lambda: alert_state(stack, "DataStale") == "firing", "DataStale", 180)
    firing = {a["labels"]["alertname"]: a for a in stack.alerts() if a["state"] == "firing"}
    assert firing["DataStale"]["labels"]["severity"] == "critical"
    assert firing["DataStale"]["annotations"]["runbook"] == "README.md#alert-datastale"
    assert "WorkerDown" not in firing


def test_restarted_worker_restores_last_success_and_data_stale_stays_quiet(
    stack_factory: Callable[..., Stack], tmp_path: Path, mongo_client: Any
) -> None:
    """A restarted worker exports the stored last success (not 0), so DataStale stays quiet."""
    stack = start_observed_stack(
        stack_factory, tmp_path, extra_env={"APIMIRROR_STALE_AFTER_SECONDS": "300"}
    )
    stack.stop("beat")  # no new refreshes: what the worker exports next can only be restored
    wait_until(lambda: float(queue_length(stack)) == 0, "the queue to drain")
    time.sleep(3)  # let a refresh that was already running finish and store its success
    stack.stop("worker")
    wait_until(lambda: not stack.prom_query('up{job="worker"} == 1'), "the worker to be down")
    stored = mongo_client[stack.env["MONGODB_DB"]].source_status.find_one({"_id": "openmeteo"})
    expected = stored["last_success_at"].timestamp()

    stack.procs["worker"].start()
    query = 'apimirror_refresh_last_success_timestamp_seconds{job="worker"}'
    wait_until(lambda: bool(stack.prom_query(query)), "the restored gauge from the new worker")
    restored = float(stack.prom_query(query)[0]["value"][1])
    assert restored == pytest.approx(expected, abs=0.01)
    for _ in range(10):
        assert alert_state(stack, "DataStale") is None, stack.alerts()
        time.sleep(0.5)


def queue_length(stack: Stack) -> str:
    """Return the refresh queue's length as last sampled by beat, via Prometheus."""
    result = stack.prom_query("max(apimirror_queue_length)")
    return str(result[0]["value"][1]) if result else "0"
