"""The swarm stack's promises, read from deploy/stack.yml itself."""

from __future__ import annotations

from typing import Any

import pytest
from tests.support.deploy import load_stack

pytestmark = pytest.mark.integration

APP = ("api", "worker", "beat")
MONITORING = ("prometheus", "alertmanager", "loki", "promtail", "grafana")


@pytest.fixture(scope="module")
def stack() -> dict[str, Any]:
    """deploy/stack.yml as data."""
    return load_stack()


def test_stack_runs_every_required_service(stack: dict[str, Any]) -> None:
    """The stack has the data stores, the app processes and the whole monitoring stack."""
    assert {"mongo", "redis", *APP, *MONITORING} <= set(stack["services"])
    sim = load_stack("stack.sim.yml")["services"]
    assert sim["upstream-sim"]["command"][0] == "upstream-sim"
    assert sim["worker"]["environment"]["APIMIRROR_UPSTREAM_BASE_URL"] == "http://upstream-sim:8081"


def test_only_api_and_grafana_publish_ports(stack: dict[str, Any]) -> None:
    """No service but the API and Grafana is reachable from outside the swarm."""
    publishing = {name for name, svc in stack["services"].items() if svc.get("ports")}
    assert publishing == {"api", "grafana"}
    assert load_stack("stack.sim.yml")["services"]["upstream-sim"].get("ports") is None


def test_every_service_has_limits_restart_policy_and_healthcheck(stack: dict[str, Any]) -> None:
    """Each long-running service has resource limits, a restart policy and a real healthcheck."""
    for name, svc in stack["services"].items():
        deploy = svc["deploy"]
        assert deploy["resources"]["limits"]["memory"], name
        assert deploy["resources"]["limits"]["cpus"], name
        assert deploy["restart_policy"]["condition"] in {"any", "on-failure"}, name
        assert svc["healthcheck"]["test"][0] == "CMD", name


def test_app_processes_use_their_own_healthcheck_target(stack: dict[str, Any]) -> None:
    """api, worker and beat run `apimirror healthcheck <their own process type>`."""
    for name in APP:
        svc = stack["services"][name]
        assert svc["command"][0] == name
        assert svc["healthcheck"]["test"] == ["CMD", "apimirror", "healthcheck", name]


def test_replicas_and_update_order(stack: dict[str, Any]) -> None:
    """API and workers run two replicas; beat exactly one, replaced stop-first."""
    services = stack["services"]
    assert services["api"]["deploy"]["replicas"] == 2
    assert services["worker"]["deploy"]["replicas"] == 2
    beat = services["beat"]["deploy"]
    assert beat["replicas"] == 1
    assert beat["update_config"]["order"] == "stop-first"
    assert beat["rollback_config"]["order"] == "stop-first"
    assert services["promtail"]["deploy"]["mode"] == "global"


def test_secrets_come_from_files_never_from_plain_values(stack: dict[str, Any]) -> None:
    """Passwords and tokens reach the containers only as Docker secrets (*_FILE variables)."""
    assert stack["services"]["mongo"]["environment"]["MONGO_INITDB_ROOT_PASSWORD_FILE"].startswith(
        "/run/secrets/"
    )
    grafana_env = stack["services"]["grafana"]["environment"]
    assert grafana_env["GF_SECURITY_ADMIN_PASSWORD__FILE"] == "/run/secrets/grafana_admin_password"
    for name in APP:
        env = stack["services"][name]["environment"]
        assert env["MONGODB_URL_FILE"] == "/run/secrets/mongodb_url"
        assert env["APIMIRROR_API_TOKENS_FILE"] == "/run/secrets/api_tokens"
        assert env["APIMIRROR_ENV"] == "production"
        assert not {"MONGODB_URL", "APIMIRROR_API_TOKENS"} & set(env)
    for name, secret in stack["secrets"].items():
        assert secret["file"].startswith("./secrets/"), name


def test_internal_networks_keep_data_and_monitoring_private(stack: dict[str, Any]) -> None:
    """MongoDB and Redis sit only on internal networks; only public services join frontend."""
    nets = stack["networks"]
    assert nets["backend"]["internal"] is True
    assert nets["monitoring"]["internal"] is True
    for name in ("mongo", "redis"):
        assert stack["services"][name]["networks"] == ["backend"]
    frontend = {n for n, s in stack["services"].items() if "frontend" in s.get("networks", [])}
    assert frontend == {"api", "grafana"}
