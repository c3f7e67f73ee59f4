"""List every PromQL and LogQL expression in the generated dashboards, ready to evaluate.

Grafana template variables are replaced with values a real query engine accepts: the
interval macros with `1m`, a multi-select variable with its "All" regex, a text box with its
default. Used by tests/integration/test_deploy.py (LogQL parsing) and
tests/e2e/test_dashboards_live.py (PromQL against a live Prometheus).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
DASHBOARDS = HERE / "dashboards"
DATASOURCES = HERE / "provisioning" / "datasources" / "apimirror.yml"
MACROS = {
    "__rate_interval": "1m",
    "__interval": "1m",
    "__auto": "1m",
    "__range": "1h",
    "__value.raw": "0123456789abcdef",
}
_VARIABLE = re.compile(r"\$\{([A-Za-z0-9_.]+)(?::[a-z]+)?\}|\$([A-Za-z0-9_]+)")


def _variable_values(board: dict[str, Any]) -> dict[str, str]:
    values = dict(MACROS)
    for var in board.get("templating", {}).get("list", []):
        if var.get("includeAll"):
            values[var["name"]] = var.get("allValue") or ".*"
        elif var.get("type") == "textbox":
            values[var["name"]] = str(var.get("query") or "")
        else:
            values[var["name"]] = ".*"
    return values


def substitute(expr: str, values: dict[str, str]) -> str:
    """Replace `$name` and `${name}` in `expr` with `values` (unknown names become `.*`)."""
    return _VARIABLE.sub(lambda m: values.get(m.group(1) or m.group(2), ".*"), expr)


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def targets(kind: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """Yield (dashboard / panel title, raw expr, panel) for every query of datasource `kind`."""
    for path in sorted(DASHBOARDS.glob("*.json")):
        board = json.loads(path.read_text(encoding="utf-8"))
        for panel in _panels(board.get("panels", [])):
            for target in panel.get("targets", []):
                source = target.get("datasource") or panel.get("datasource") or {}
                if source.get("type") == kind and target.get("expr"):
                    yield f"{board['title']} / {panel['title']}", target["expr"], board


def promql_queries() -> list[tuple[str, str]]:
    """Return (dashboard / panel title, PromQL) for every Prometheus query, variables filled."""
    return [
        (title, substitute(expr, _variable_values(board)))
        for title, expr, board in targets("prometheus")
    ]


def logql_queries() -> list[tuple[str, str]]:
    """Return (where, LogQL) for every Loki query in dashboards and datasource provisioning."""
    found = [
        (title, substitute(expr, _variable_values(board))) for title, expr, board in targets("loki")
    ]
    provisioning = yaml.safe_load(DATASOURCES.read_text(encoding="utf-8"))
    for source in provisioning["datasources"]:
        for field in source.get("jsonData", {}).get("derivedFields", []):
            if field.get("datasourceUid") == "loki":
                # Grafana expands $VAR in provisioning files; "$$" is its escape for "$".
                url = field["url"].replace("$$", "$")
                found.append(
                    (f"datasource {source['name']} / {field['name']}", substitute(url, MACROS))
                )
    return found


if __name__ == "__main__":
    for title, expr in [*promql_queries(), *logql_queries()]:
        print(f"{title}\n    {expr}")
