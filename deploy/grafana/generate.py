"""Generate apimirror's Grafana dashboards as code: `python deploy/grafana/generate.py [--out DIR]`.

Writes deploy/grafana/dashboards/*.json (committed; a test checks they match this code).
Only metric names from DESIGN.md's metrics contract are used, plus Prometheus's own `up`
with the job names of deploy/prometheus/prometheus.yml.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from grafana_foundation_sdk.builders import dashboard as dash_b
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as dash_m
from panels import (
    LOKI,
    Query,
    dashboard,
    logs,
    loki,
    loki_variable,
    prom,
    prom_variable,
    stat,
    thresholds,
    timeseries,
)

HERE = Path(__file__).resolve().parent
RATE = "[$__rate_interval]"
# Seconds in each rate-limit window (the `window` label of apimirror_ratelimit_*), and the
# range over which the projection averages recent spend.
WINDOWS = (
    ("minute", 60, "5m"),
    ("hour", 3600, "1h"),
    ("day", 86400, "6h"),
    ("month", 2592000, "1d"),
)
STALE_AFTER_S = 2700  # APIMIRROR_STALE_AFTER_SECONDS default
ROUTE = '{route=~"$route"}'
SRC = '{source=~"$source"}'
Panel = cogbuilder.Builder[dash_m.Panel]


def _rate(metric: str, selector: str = "") -> str:
    return f"rate({metric}{selector}{RATE})"


def _quantile(q: float, metric: str, by: str, selector: str = "") -> str:
    inner = _rate(f"{metric}_bucket", selector)
    return f"histogram_quantile({q}, sum by ({', '.join(['le', *by.split()])}) ({inner}))"


def _quantiles(metric: str, by: str = "", selector: str = "") -> list[Query]:
    legend = " ".join("{{" + label + "}}" for label in by.split())
    return [
        prom(_quantile(q, metric, by, selector), f"p{round(q * 100)} {legend}".strip())
        for q in (0.5, 0.9, 0.99)
    ]


def _api_stats() -> list[Panel]:
    reqs = f"sum({_rate('apimirror_http_requests_total', ROUTE)})"
    errors = _rate("apimirror_http_requests_total", '{route=~"$route", status=~"5.."}')
    return [
        stat("Requests / s", [prom(reqs, "requests")], unit="reqps"),
        stat(
            "5xx ratio",
            [prom(f"(sum({errors}) or vector(0)) / {reqs}", "5xx")],
            unit="percentunit",
            steps=thresholds((None, "green"), (0.01, "orange"), (0.05, "red")),
        ),
        stat(
            "p99 latency",
            [prom(_quantile(0.99, "apimirror_http_request_duration_seconds", "", ROUTE), "p99")],
            unit="s",
            steps=thresholds((None, "green"), (0.5, "orange"), (1.0, "red")),
        ),
        stat(
            "API processes up",
            [prom('sum(up{job="api"})', "up")],
            description="API replicas that Prometheus scrapes successfully.",
            steps=thresholds((None, "red"), (1, "green")),
        ),
    ]


def _api_graphs() -> list[Panel]:
    requests = _rate("apimirror_http_requests_total", ROUTE)
    errors = _rate("apimirror_http_requests_total", '{route=~"$route", status=~"[45].."}')
    return [
        timeseries(
            "Request rate by route",
            [prom(f"sum by (method, route) ({requests})", "{{method}} {{route}}")],
            unit="reqps",
        ),
        timeseries(
            "Errors by route and status",
            [prom(f"sum by (route, status) ({errors})", "{{status}} {{route}}")],
            unit="reqps",
        ),
        timeseries(
            "Latency percentiles",
            _quantiles("apimirror_http_request_duration_seconds", "", ROUTE),
            unit="s",
        ),
        timeseries(
            "p99 latency by route",
            [prom(_quantile(0.99, "apimirror_http_request_duration_seconds", "route", ROUTE))],
            unit="s",
        ),
        timeseries(
            "Requests in progress",
            [prom("sum(apimirror_http_requests_in_progress)", "in progress")],
            width=8,
        ),
        timeseries(
            "Response size p90 by route",
            [prom(_quantile(0.9, "apimirror_http_response_size_bytes", "route", ROUTE))],
            unit="bytes",
            width=8,
        ),
        timeseries(
            "MongoDB command p99 by command",
            [prom(_quantile(0.99, "apimirror_mongo_command_duration_seconds", "command"))],
            unit="s",
            width=8,
        ),
    ]


def service_overview() -> dash_b.Dashboard:
    """Build "Service overview": API RED metrics by route, latency percentiles, error logs."""
    board = dashboard(
        "apimirror-service-overview",
        "Service overview",
        "Is the API answering, how fast, and with how many errors?",
    ).with_variable(
        prom_variable("route", "Route", "label_values(apimirror_http_requests_total, route)")
    )
    error_logs = logs(
        "Error logs (api, worker, beat)",
        '{service=~"api|worker|beat", level=~"error|critical"} | json',
        description="Click a request_id to see every line of that request.",
    )
    for panel in [*_api_stats(), *_api_graphs(), error_logs]:
        board.with_panel(panel)
    return board


def _freshness_stats() -> list[Panel]:
    stale = thresholds((None, "green"), (STALE_AFTER_S * 2 / 3, "orange"), (STALE_AFTER_S, "red"))
    last = f"max by (source) (apimirror_refresh_last_success_timestamp_seconds{SRC})"
    refused = 'apimirror_upstream_throttled_total{source=~"$source", reason="429"}'
    return [
        stat(
            "Data age (stalest active location)",
            [prom(f"max by (source) (apimirror_data_age_seconds{SRC})", "{{source}}")],
            unit="s",
            steps=stale,
            width=8,
        ),
        stat(
            "Since last successful refresh",
            [prom(f"time() - {last}", "{{source}}")],
            unit="s",
            steps=stale,
            width=8,
        ),
        stat(
            "Upstream 429s (last hour)",
            [prom(f"sum(increase({refused}[1h])) or vector(0)", "429s")],
            steps=thresholds((None, "green"), (1, "orange"), (10, "red")),
            width=8,
        ),
        timeseries(
            "Data age per source",
            [prom(f"max by (source) (apimirror_data_age_seconds{SRC})", "{{source}}")],
            unit="s",
        ),
        timeseries(
            "Last success",
            [prom(f"{last} * 1000", "{{source}}")],
            unit="dateTimeAsIsoNoDateIfToday",
            description="Wall-clock time of each source's last successful refresh.",
        ),
    ]


def _upstream_graphs() -> list[Panel]:
    requests = _rate("apimirror_upstream_requests_total", SRC)
    throttled = _rate("apimirror_upstream_throttled_total", SRC)
    return [
        timeseries(
            "Upstream requests by status",
            [prom(f"sum by (source, status) ({requests})", "{{source}} {{status}}")],
            unit="reqps",
            stacked=True,
        ),
        timeseries(
            "Upstream latency",
            _quantiles("apimirror_upstream_request_duration_seconds", "source", SRC),
            unit="s",
        ),
        timeseries(
            "Throttled: 429s and budget hold-backs",
            [prom(f"sum by (source, reason) ({throttled})", "{{source}} {{reason}}")],
            unit="ops",
            description="reason=429: the upstream refused; reason=budget: we held back first.",
        ),
    ]


def _budget_graphs() -> list[Panel]:
    # Beat samples the budget every few seconds; other processes only when they spend or serve
    # GET /sources, so after a window resets their gauges still show its old, lower figure.
    fresh = 'apimirror_ratelimit_remaining{job="beat", source=~"$source"}'
    remaining = (
        f"(min by (source, window) ({fresh})"
        f" or min by (source, window) (apimirror_ratelimit_remaining{SRC}))"
    )
    limit = f"max by (source, window) (apimirror_ratelimit_limit{SRC} > 0)"  # 0: window off
    upserts = _rate("apimirror_records_upserted_total", SRC)
    return [
        timeseries(
            "Budget remaining per window",
            [prom(f"{remaining} / {limit}", "{{source}} {{window}}")],
            unit="percentunit",
        ),
        timeseries(
            "Projected use per window",
            _projections(),
            unit="percentunit",
            description="Spend at the recent rate for a whole window, over that window's limit.",
        ),
        timeseries(
            "Records upserted by result",
            [prom(f"sum by (source, result) ({upserts})", "{{source}} {{result}}")],
            unit="ops",
            stacked=True,
        ),
        timeseries(
            "Weighted calls spent per hour",
            [prom(f"sum by (source) (increase(apimirror_upstream_cost_total{SRC}[1h]))")],
        ),
    ]


def _projections() -> list[Query]:
    """Return one query per window: spend at the recent rate over a whole window / its limit."""
    queries = []
    for window, seconds, avg in WINDOWS:
        spend = f"sum by (source) (rate(apimirror_upstream_cost_total{SRC}[{avg}])) * {seconds}"
        limit = f'apimirror_ratelimit_limit{{source=~"$source", window="{window}"}}'
        expr = f"({spend}) / on (source) group_left (window) max by (source, window) ({limit} > 0)"
        queries.append(prom(expr, "{{source}} {{window}}"))
    return queries


def freshness_upstream() -> dash_b.Dashboard:
    """Build "Freshness & upstream": data age, last success, upstream health and budget."""
    board = dashboard(
        "apimirror-freshness-upstream",
        "Freshness & upstream",
        "Can users trust the data we serve right now? Age, upstream health, rate-limit headroom.",
    ).with_variable(
        prom_variable("source", "Source", "label_values(apimirror_ratelimit_limit, source)")
    )
    for panel in [*_freshness_stats(), *_upstream_graphs(), *_budget_graphs()]:
        board.with_panel(panel)
    return board


def _worker_panels() -> list[Panel]:
    red_below_1 = thresholds((None, "red"), (1, "green"))
    runs = _rate("apimirror_task_runs_total")
    bad = _rate("apimirror_task_runs_total", '{outcome=~"failure|retry"}')
    return [
        stat("Workers up", [prom('sum(up{job="worker"})', "workers")], steps=red_below_1, width=8),
        stat("Beat up", [prom('sum(up{job="beat"})', "beat")], steps=red_below_1, width=8),
        stat(
            "Messages queued",
            [prom("sum(apimirror_queue_length)", "queued")],
            steps=thresholds((None, "green"), (100, "orange"), (1000, "red")),
            width=8,
        ),
        timeseries(
            "Task runs by outcome",
            [prom(f"sum by (task, outcome) ({runs})", "{{task}} {{outcome}}")],
            unit="ops",
            stacked=True,
        ),
        timeseries(
            "Task failure and retry ratio",
            [prom(f"sum by (task) ({bad}) / sum by (task) ({runs})", "{{task}}")],
            unit="percentunit",
        ),
        timeseries(
            "Task duration", _quantiles("apimirror_task_duration_seconds", "task"), unit="s"
        ),
        timeseries("Queue length", [prom("max by (queue) (apimirror_queue_length)", "{{queue}}")]),
        timeseries("Scrape targets up by job", [prom("sum by (job) (up)", "{{job}}")], width=24),
    ]


def workers_queue() -> dash_b.Dashboard:
    """Build "Workers & queue": task outcomes and durations, queue length, processes up."""
    board = dashboard(
        "apimirror-workers-queue", "Workers & queue", "Are the workers and beat up, and keeping up?"
    )
    worker_logs = logs(
        "Worker and beat warnings and errors",
        '{service=~"worker|beat", level=~"warning|error|critical"} | json',
        height=10,
    )
    for panel in [*_worker_panels(), worker_logs]:
        board.with_panel(panel)
    return board


def logs_dashboard() -> dash_b.Dashboard:
    """Build "Logs": every service's JSON lines, filtered by service, level and request_id."""
    selector = '{stack=~"$stack", service=~"$service", level=~"$level"} |= "$request_id"'
    board = (
        dashboard("apimirror-logs", "Logs", "All JSON log lines, by service, level and request_id.")
        .with_variable(loki_variable("stack", "Stack", ".+"))
        .with_variable(loki_variable("service", "Service", ".+"))
        .with_variable(loki_variable("level", "Level", ".*"))
        .with_variable(dash_b.TextBoxVariable("request_id").label("request_id").default_value(""))
    )
    volume = timeseries(
        "Log lines by level",
        [loki(f"sum by (level) (count_over_time({selector} [$__auto]))", "{{level}}")],
        width=24,
        height=6,
        stacked=True,
    ).datasource(LOKI)
    board.with_panel(volume)
    board.with_panel(logs("Logs", f"{selector} | json", height=20))
    return board


DASHBOARDS: dict[str, Callable[[], dash_b.Dashboard]] = {
    "service-overview.json": service_overview,
    "freshness-upstream.json": freshness_upstream,
    "workers-queue.json": workers_queue,
    "logs.json": logs_dashboard,
}


def render(board: dash_b.Dashboard) -> str:
    """Return a dashboard as stable, pretty JSON."""
    return json.dumps(board.build(), cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


def write_all(out_dir: Path) -> list[Path]:
    """Write every dashboard into `out_dir`; return the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, build in DASHBOARDS.items():
        path = out_dir / name
        path.write_text(render(build()), encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    """Generate the dashboards; print what was written."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=HERE / "dashboards")
    args = parser.parse_args(argv)
    for path in write_all(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
