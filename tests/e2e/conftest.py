"""A `stack_factory` that starts the real processes (sim, api, worker, beat, Prometheus).

Each stack gets free ports, its own MongoDB database and its own Redis key prefix. The prefix
also namespaces Celery's broker keys, so a `make demo` (or another stack) running on the same
Redis never consumes this stack's tasks; stacks also use a Redis database reserved for e2e runs
(E2E_REDIS_DB) to keep their keys away from a demo's.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from pymongo import MongoClient

from tests.support.procs import ROOT, Proc, apimirror, free_port, port_open, wait_for

E2E_REDIS_DB = int(os.environ.get("APIMIRROR_E2E_REDIS_DB", "14"))
TOKEN = "e2e-token"
# Job names match deploy/prometheus/prometheus.local.yml so the real rules apply unchanged.
JOBS = ("api", "worker", "beat", "upstream-sim")


def _with_db(url: str, db: int) -> str:
    base = url.rsplit("/", 1)[0] if url.count("/") >= 3 else url.rstrip("/")
    return f"{base}/{db}"


@dataclass
class Stack:
    """A running set of apimirror processes and the URLs to reach them."""

    env: dict[str, str]
    log_dir: Path
    ports: dict[str, int]
    procs: dict[str, Proc] = field(default_factory=dict)

    @property
    def api_url(self) -> str:
        """Return the API's base URL."""
        return f"http://127.0.0.1:{self.ports['api']}"

    @property
    def sim_url(self) -> str:
        """Return the upstream simulator's base URL."""
        return f"http://127.0.0.1:{self.ports['upstream-sim']}"

    @property
    def prometheus_url(self) -> str:
        """Return Prometheus's base URL (when the stack has one)."""
        return f"http://127.0.0.1:{self.ports['prometheus']}"

    @property
    def token(self) -> str:
        """Return the write token."""
        return TOKEN

    @property
    def auth(self) -> dict[str, str]:
        """Return the Authorization header for writes."""
        return {"Authorization": f"Bearer {TOKEN}"}

    def client(self, **kwargs: Any) -> httpx.Client:
        """Return an HTTP client on the API."""
        return httpx.Client(base_url=self.api_url, timeout=10, **kwargs)

    def logs(self, name: str) -> str:
        """Return everything process `name` printed."""
        return self.procs[name].output()

    def stop(self, name: str) -> None:
        """Stop one process (for fault tests)."""
        self.procs[name].stop()

    def prom_query(self, expr: str) -> list[dict[str, Any]]:
        """Evaluate an instant PromQL query; fail on a Prometheus error."""
        resp = httpx.get(f"{self.prometheus_url}/api/v1/query", params={"query": expr}, timeout=10)
        body = resp.json()
        assert body.get("status") == "success", f"{expr!r}: {body}"
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def alerts(self) -> list[dict[str, Any]]:
        """Return Prometheus's active (pending or firing) alerts."""
        body = httpx.get(f"{self.prometheus_url}/api/v1/alerts", timeout=10).json()
        alerts: list[dict[str, Any]] = body["data"]["alerts"]
        return alerts


def _prometheus_config(stack: Stack, rule_files: list[str], scrape_interval: str) -> str:
    targets = {
        "api": stack.ports["api"],
        "worker": stack.ports["worker-metrics"],
        "beat": stack.ports["beat-metrics"],
        "upstream-sim": stack.ports["upstream-sim"],
    }
    config = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
        "rule_files": rule_files,
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
            for job, port in targets.items()
        ],
    }
    return yaml.safe_dump(config, sort_keys=False)


def _start(stack: Stack, name: str, args: list[str], ready: Callable[[], bool] | None) -> None:
    proc = apimirror(name, args, env=stack.env, log_dir=stack.log_dir).start()
    stack.procs[name] = proc
    if ready is not None:
        try:
            wait_for(lambda: not proc.alive() or ready(), timeout=60, what=f"{name} to be ready")
        except AssertionError:
            raise AssertionError(f"{name} never became ready:\n{proc.output()[-4000:]}") from None
        assert proc.alive(), f"{name} exited at start-up:\n{proc.output()[-4000:]}"


def _http_ok(url: str) -> Callable[[], bool]:
    return lambda: httpx.get(url, timeout=1).status_code == 200


@pytest.fixture
def stack_factory(
    mongodb_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., Stack]]:
    """Start real processes; every stack started is stopped and its data dropped afterwards."""
    stacks: list[Stack] = []

    def factory(
        *,
        env: Mapping[str, str] | None = None,
        api_workers: int = 1,
        worker_concurrency: int = 2,
        worker: bool = True,
        beat: bool = True,
        prometheus: bool = False,
        rule_files: list[str] | None = None,
        scrape_interval: str = "1s",
    ) -> Stack:
        ports = {
            name: free_port()
            for name in ("api", "upstream-sim", "worker-metrics", "beat-metrics", "prometheus")
        }
        log_dir = tmp_path_factory.mktemp("stack")
        stack_redis = _with_db(redis_url, E2E_REDIS_DB)
        base_env = {
            "APIMIRROR_ENV": "test",
            "MONGODB_URL": mongodb_url,
            "MONGODB_DB": f"e2e_{uuid.uuid4().hex[:10]}",
            "REDIS_URL": stack_redis,
            "APIMIRROR_REDIS_PREFIX": f"e2e:{uuid.uuid4().hex[:10]}",
            "APIMIRROR_API_TOKENS": TOKEN,
            "APIMIRROR_UPSTREAM_BASE_URL": f"http://127.0.0.1:{ports['upstream-sim']}",
            "PROMETHEUS_MULTIPROC_DIR": "",
            "APIMIRROR_MULTIPROC_ROOT": str(log_dir / "metrics"),
        }
        base_env.pop("PROMETHEUS_MULTIPROC_DIR")
        stack = Stack(env={**base_env, **(env or {})}, log_dir=log_dir, ports=ports)
        stacks.append(stack)

        sim_port = ports["upstream-sim"]
        _start(
            stack,
            "upstream-sim",
            ["upstream-sim", "--port", str(sim_port)],
            _http_ok(f"{stack.sim_url}/healthz"),
        )
        _start(
            stack,
            "api",
            ["api", "--port", str(ports["api"]), "--workers", str(api_workers)],
            _http_ok(f"{stack.api_url}/readyz"),
        )
        if worker:
            _start(
                stack,
                "worker",
                [
                    "worker",
                    "--concurrency",
                    str(worker_concurrency),
                    "--metrics-port",
                    str(ports["worker-metrics"]),
                ],
                lambda: port_open(ports["worker-metrics"]),
            )
        if beat:
            _start(
                stack,
                "beat",
                ["beat", "--metrics-port", str(ports["beat-metrics"])],
                lambda: port_open(ports["beat-metrics"]),
            )
        if prometheus:
            _start_prometheus(stack, rule_files, scrape_interval)
        return stack

    yield factory

    client: MongoClient[dict[str, object]] = MongoClient(mongodb_url, serverSelectionTimeoutMS=3000)
    for stack in stacks:
        for proc in reversed(list(stack.procs.values())):
            proc.stop()
        client.drop_database(stack.env["MONGODB_DB"])
    client.close()


def _start_prometheus(stack: Stack, rule_files: list[str] | None, scrape_interval: str) -> None:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus is not installed: run `scripts/services.sh install`")
    rules = (
        rule_files
        if rule_files is not None
        else sorted(str(p) for p in (ROOT / "deploy" / "prometheus" / "rules").glob("*.yml"))
    )
    config_path = stack.log_dir / "prometheus.yml"
    config_path.write_text(_prometheus_config(stack, rules, scrape_interval), encoding="utf-8")
    data_dir = Path(tempfile.mkdtemp(prefix="prom-", dir=stack.log_dir))
    port = stack.ports["prometheus"]
    argv = [
        binary,
        f"--config.file={config_path}",
        f"--storage.tsdb.path={data_dir}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--web.enable-lifecycle",
        "--storage.tsdb.retention.time=1h",
    ]
    proc = Proc("prometheus", argv, dict(os.environ), stack.log_dir / "prometheus.log").start()
    stack.procs["prometheus"] = proc
    wait_for(_http_ok(f"{stack.prometheus_url}/-/ready"), timeout=60, what="prometheus ready")
