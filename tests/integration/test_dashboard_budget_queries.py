"""The budget panels' PromQL evaluated by promtool against series shaped like a real stack."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from tests.support.deploy import deploy_module

pytestmark = pytest.mark.integration

# Just after a window reset: beat (sampled every few seconds) sees the full budget, the API's
# gauge is still the figure from its last GET /sources, and the month window is off (limit 0).
SERIES = [
    ('apimirror_ratelimit_remaining{job="beat",source="openmeteo",window="day"}', "9990x10"),
    ('apimirror_ratelimit_remaining{job="api",source="openmeteo",window="day"}', "20x10"),
    ('apimirror_ratelimit_limit{job="beat",source="openmeteo",window="day"}', "10000x10"),
    ('apimirror_ratelimit_remaining{job="beat",source="openmeteo",window="month"}', "0x10"),
    ('apimirror_ratelimit_limit{job="beat",source="openmeteo",window="month"}', "0x10"),
    ('apimirror_upstream_cost_total{job="worker",source="openmeteo"}', "0+10x10"),
]


def _panel_queries(title: str) -> list[str]:
    found = [
        expr for where, expr in deploy_module("queries").promql_queries() if where.endswith(title)
    ]
    assert found, f"no panel titled {title!r}"
    return found


def _evaluate(tmp_path: Path, expr: str) -> list[str]:
    """Return promtool's "labels value" lines for `expr` evaluated at 5m."""
    # promtool has no "print the result"; a test that expects nothing fails and shows `got`.
    spec = {
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in SERIES],
                "promql_expr_test": [{"expr": expr, "eval_time": "5m", "exp_samples": []}],
            }
        ],
    }
    path = tmp_path / "probe_test.yml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed: run `scripts/services.sh install`")
    result = subprocess.run(
        [promtool, "test", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    output = result.stdout + result.stderr
    if result.returncode == 0:
        return []
    assert "got:" in output, output
    return [line.strip() for line in output.split("got:")[1].splitlines() if "{" in line]


def test_budget_remaining_panel_ignores_stale_gauges_and_disabled_windows(tmp_path: Path) -> None:
    """The "Budget remaining" panel shows beat's fresh figure and no series for a window whose limit is 0."""
    (expr,) = _panel_queries("Budget remaining per window")
    got = _evaluate(tmp_path, expr)
    assert len(got) == 1, got
    assert 'window="day"' in got[0], got
    assert float(got[0].split()[-1]) == pytest.approx(0.999), got


def test_projected_use_panel_has_no_series_for_a_disabled_window(tmp_path: Path) -> None:
    """The "Projected use" panel divides by no 0 limit, so a window that is off shows no +Inf line."""
    month = [e for e in _panel_queries("Projected use per window") if 'window="month"' in e]
    assert len(month) == 1
    assert _evaluate(tmp_path, month[0]) == []
