"""The Prometheus and Alertmanager configs, rules and rule unit tests, checked by the real tools."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import pytest
import yaml
from tests.support.procs import ROOT

pytestmark = pytest.mark.integration

PROM = ROOT / "deploy" / "prometheus"
RULES = sorted((PROM / "rules").glob("*.yml"))
RULE_TESTS = sorted((PROM / "tests").glob("*.yml"))
ALERTMANAGER = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: run `scripts/services.sh install`")
    return path


def _run(*argv: str) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(argv)} failed:\n{output}"
    return output


def _alerts() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for path in RULES:
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            rules.extend(r for r in group["rules"] if "alert" in r)
    return rules


@pytest.mark.parametrize("config", ["prometheus.yml", "prometheus.local.yml"])
def test_prometheus_config_and_its_rule_files_pass_promtool(config: str) -> None:
    """`promtool check config` accepts each Prometheus config, including the rules it loads."""
    output = _run(_tool("promtool"), "check", "config", str(PROM / config))
    assert "rule files found" in output


def test_rule_files_pass_promtool_check_rules() -> None:
    """`promtool check rules` accepts every rule file."""
    assert RULES
    _run(_tool("promtool"), "check", "rules", *map(str, RULES))


def test_rule_unit_tests_pass() -> None:
    """`promtool test rules` passes every rule unit test."""
    assert RULE_TESTS
    output = _run(_tool("promtool"), "test", "rules", *map(str, RULE_TESTS))
    assert "FAILED" not in output


def test_alertmanager_config_passes_amtool() -> None:
    """`amtool check-config` accepts the Alertmanager config."""
    _run(_tool("amtool"), "check-config", str(ALERTMANAGER))


def test_every_alert_has_a_firing_and_a_silent_unit_test() -> None:
    """Each alert has at least one promtool case where it fires and one where it must not."""
    fires: set[str] = set()
    silent: set[str] = set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]:
            for check in case.get("alert_rule_test", []):
                (fires if check.get("exp_alerts") else silent).add(check["alertname"])
    names = {rule["alert"] for rule in _alerts()}
    assert names - fires == set(), "alerts without a firing case"
    assert names - silent == set(), "alerts without a must-not-fire case"


def test_every_alert_has_for_severity_and_runbook_annotations() -> None:
    """Each alert declares `for`, a severity, summary, description and a README runbook anchor."""
    for rule in _alerts():
        name = rule["alert"]
        assert rule.get("for"), name
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        annotations = rule["annotations"]
        assert annotations["summary"], name
        assert annotations["description"], name
        assert annotations["runbook"] == f"README.md#alert-{name.lower()}", name


def test_runbook_anchors_exist_in_the_readme() -> None:
    """Every runbook annotation points at a `### Alert: <name>` heading in the README."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for rule in _alerts():
        assert f"### Alert: {rule['alert']}\n" in readme, rule["alert"]
