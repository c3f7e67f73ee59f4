"""Deployment files checked by the real validators (Docker itself cannot run on the build hosts)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from tests.support.deploy import DEPLOY, ROOT, deploy_module, load_stack
from tests.support.procs import Proc, free_port, wait_for

pytestmark = pytest.mark.integration

STACK_FILES = ["stack.yml", "stack.sim.yml", "stack.compose.yml", "stack.compose-sim.yml"]
# Every combination the docs tell users to run.
STACK_COMBOS = [
    ["stack.yml"],
    ["stack.yml", "stack.sim.yml"],
    ["stack.yml", "stack.compose.yml"],
    ["stack.yml", "stack.sim.yml", "stack.compose.yml", "stack.compose-sim.yml"],
]
LEZER_LOGQL = "@grafana/lezer-logql@0.4.2"
NODE_DIR = (
    Path(os.environ.get("APIMIRROR_CACHE_DIR", Path.home() / ".cache" / "apimirror")) / "node"
)


def run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run a validator; return its result with output captured as text."""
    return subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False, **kwargs)


@pytest.mark.parametrize("name", STACK_FILES)
def test_stack_file_matches_compose_spec(name: str) -> None:
    """Each stack file validates against the compose-spec JSON schema."""
    argv = ["check-jsonschema", "--builtin-schema", "vendor.compose-spec", str(DEPLOY / name)]
    result = run([sys.executable, "-m", "check_jsonschema", *argv[1:]])
    assert result.returncode == 0, result.stdout + result.stderr


def _composecheck() -> Path:
    """Build deploy/tools/composecheck (compose-go, the loader of `docker compose`) once."""
    go = shutil.which("go")
    if go is None:
        pytest.fail(
            "Go is needed to build deploy/tools/composecheck (scripts/services.sh needs it too)"
        )
    src = DEPLOY / "tools" / "composecheck"
    digest = hashlib.sha256(
        b"".join((src / f).read_bytes() for f in ("go.mod", "go.sum", "main.go"))
    ).hexdigest()[:12]
    binary = NODE_DIR.parent / "bin" / f"composecheck-{digest}"
    if not binary.exists():
        binary.parent.mkdir(parents=True, exist_ok=True)
        result = run([go, "build", "-o", str(binary), "."], cwd=src)
        assert result.returncode == 0, result.stderr
    return binary


@pytest.mark.parametrize("combo", STACK_COMBOS, ids=["+".join(c) for c in STACK_COMBOS])
def test_stack_loads_with_the_compose_loader(combo: list[str]) -> None:
    """Compose-go loads, interpolates and merges each documented combination of stack files."""
    argv = [str(_composecheck())]
    for name in combo:
        argv += ["-f", str(DEPLOY / name)]
    result = run(argv, env={k: v for k, v in os.environ.items() if not k.startswith("APIMIRROR_")})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok:"), result.stdout


def test_dockerfile_passes_hadolint() -> None:
    """hadolint finds nothing in the Dockerfile (any ignored rule carries its reason)."""
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    result = run([hadolint, "--failure-threshold", "style", str(ROOT / "Dockerfile")])
    assert result.returncode == 0, result.stdout + result.stderr


def test_swarm_prometheus_config_passes_promtool() -> None:
    """promtool accepts the swarm Prometheus config and the rule files it loads."""
    result = run(["promtool", "check", "config", str(DEPLOY / "prometheus" / "prometheus.yml")])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "rule files found" in result.stdout


def test_alertmanager_config_passes_amtool() -> None:
    """amtool accepts the Alertmanager config."""
    result = run(["amtool", "check-config", str(DEPLOY / "alertmanager" / "alertmanager.yml")])
    assert result.returncode == 0, result.stdout + result.stderr


def test_committed_dashboards_match_the_generator(tmp_path: Path) -> None:
    """Running the dashboard generator reproduces the committed JSON byte for byte."""
    script = DEPLOY / "grafana" / "generate.py"
    result = run([sys.executable, str(script), "--out", str(tmp_path)])
    assert result.returncode == 0, result.stderr
    committed = sorted(p.name for p in (DEPLOY / "grafana" / "dashboards").glob("*.json"))
    assert sorted(p.name for p in tmp_path.glob("*.json")) == committed
    for name in committed:
        fresh = (tmp_path / name).read_text(encoding="utf-8")
        stored = (DEPLOY / "grafana" / "dashboards" / name).read_text(encoding="utf-8")
        assert fresh == stored, f"{name} is stale: run `make dashboards` and commit the result"


def _lezer_logql() -> Path:
    """Return node_modules holding Grafana's LogQL grammar, installing it from npm once."""
    modules = NODE_DIR / "node_modules"
    if not (modules / "@grafana" / "lezer-logql").exists():
        npm = shutil.which("npm")
        if npm is None or shutil.which("node") is None:
            pytest.fail(
                "node and npm are needed for the LogQL parser check (see README.md, Deploy)"
            )
        NODE_DIR.mkdir(parents=True, exist_ok=True)
        argv = [npm, "install", "--prefix", str(NODE_DIR), "--no-audit", "--no-fund", LEZER_LOGQL]
        result = run(argv)
        assert result.returncode == 0, result.stdout + result.stderr
    return modules


def test_every_logql_query_parses_with_grafanas_parser() -> None:
    """Every LogQL query in the dashboards and datasources parses with @grafana/lezer-logql."""
    queries = deploy_module("queries").logql_queries()
    assert len(queries) >= 5
    env = {**os.environ, "NODE_PATH": str(_lezer_logql())}
    script = DEPLOY / "tools" / "logqlcheck.cjs"
    result = run(["node", str(script)], input=json.dumps(queries), env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"parsed {len(queries)}" in result.stdout


def test_logql_parser_check_rejects_a_broken_query() -> None:
    """The LogQL check fails on a malformed query, so a pass above means something."""
    env = {**os.environ, "NODE_PATH": str(_lezer_logql())}
    broken = json.dumps([["broken", '{service="api" | json']])
    result = run(["node", str(DEPLOY / "tools" / "logqlcheck.cjs")], input=broken, env=env)
    assert result.returncode == 1
    assert "broken" in result.stdout + result.stderr


@pytest.fixture(scope="module")
def bare_prometheus() -> Any:
    """A real Prometheus with no targets: it parses and evaluates any expression."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus is not installed: run `scripts/services.sh install`")
    work = Path(tempfile.mkdtemp(prefix="prom-parse-"))
    (work / "prometheus.yml").write_text("global: {scrape_interval: 15s}\n", encoding="utf-8")
    port = free_port()
    argv = [
        binary,
        f"--config.file={work / 'prometheus.yml'}",
        f"--storage.tsdb.path={work / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    proc = Proc("prometheus", argv, dict(os.environ), work / "prometheus.log").start()
    url = f"http://127.0.0.1:{port}"
    wait_for(
        lambda: httpx.get(f"{url}/-/ready", timeout=1).status_code == 200,
        timeout=60,
        what="prometheus",
    )
    yield url
    proc.stop()
    shutil.rmtree(work, ignore_errors=True)


def test_every_dashboard_promql_expression_is_accepted_by_prometheus(bare_prometheus: str) -> None:
    """Prometheus parses and evaluates every dashboard PromQL expression without an error."""
    queries = deploy_module("queries").promql_queries()
    assert len(queries) >= 30
    errors = []
    for title, expr in queries:
        body = httpx.get(
            f"{bare_prometheus}/api/v1/query", params={"query": expr}, timeout=10
        ).json()
        if body.get("status") != "success":
            errors.append(f"{title}: {expr}: {body.get('error')}")
    assert not errors, "\n".join(errors)


def test_dashboards_use_only_contract_metrics() -> None:
    """Dashboards name only metrics that metrics.py defines (plus Prometheus's own `up`)."""
    from prometheus_client.metrics import MetricWrapperBase

    from apimirror.observability import metrics

    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "gauge": [""]}
    exported = {
        family.name + suffix
        for obj in vars(metrics).values()
        if isinstance(obj, MetricWrapperBase)
        for family in obj.describe()
        for suffix in suffixes[family.type]
    }
    used = set()
    for _, expr in deploy_module("queries").promql_queries():
        used |= {w for w in _words(expr) if w.startswith("apimirror_")}
    assert used, "no apimirror_ metric found in the dashboards"
    assert used <= exported, f"not in metrics.py: {sorted(used - exported)}"


def _words(expr: str) -> set[str]:
    token = "".join(c if c.isalnum() or c in "_:" else " " for c in expr)
    return set(token.split())


def test_promtail_and_alloy_promote_only_service_stack_and_level() -> None:
    """Promtail and Alloy send only `service`, `stack` and `level` as Loki labels."""
    promtail = yaml.safe_load((DEPLOY / "promtail" / "promtail.yml").read_text(encoding="utf-8"))
    (job,) = promtail["scrape_configs"]
    assert "docker_sd_configs" in job
    targets = {r["target_label"] for r in job["relabel_configs"] if "target_label" in r}
    assert targets == {"service", "stack"}
    stages = {next(iter(s)): s[next(iter(s))] for s in job["pipeline_stages"]}
    assert set(stages["labels"]) == {"level"}
    assert set(stages["labelallow"]) == {"service", "stack", "level"}
    alloy = (DEPLOY / "alloy" / "config.alloy").read_text(encoding="utf-8")
    assert 'values = ["service", "stack", "level"]' in alloy
    assert "discovery.docker" in alloy
    assert "loki.source.docker" in alloy


def test_promtail_discovery_and_relabelling_pass_promtool(tmp_path: Path) -> None:
    """Promtail's docker_sd and relabel rules (Prometheus's own formats) pass promtool."""
    promtail = yaml.safe_load((DEPLOY / "promtail" / "promtail.yml").read_text(encoding="utf-8"))
    (job,) = promtail["scrape_configs"]
    keys = ("job_name", "docker_sd_configs", "relabel_configs")
    config = {"scrape_configs": [{k: job[k] for k in keys}]}
    path = tmp_path / "promtail-as-prometheus.yml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    result = run(["promtool", "check", "config", "--syntax-only", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_stack_mounts_every_rule_file_and_dashboard() -> None:
    """Every Prometheus rule file and generated dashboard reaches its container via `configs:`."""
    stack = load_stack()
    files = {Path(c["file"]).resolve() for c in stack["configs"].values()}
    wanted = [
        *(DEPLOY / "prometheus" / "rules").glob("*.yml"),
        *(DEPLOY / "grafana" / "dashboards").glob("*.json"),
        DEPLOY / "prometheus" / "prometheus.yml",
        DEPLOY / "alertmanager" / "alertmanager.yml",
    ]
    missing = [str(p.relative_to(ROOT)) for p in wanted if p.resolve() not in files]
    assert not missing, f"not mounted by deploy/stack.yml: {missing}"
