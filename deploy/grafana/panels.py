"""Small builders shared by the dashboards in generate.py (grafana-foundation-sdk underneath)."""

from __future__ import annotations

from collections.abc import Sequence

from grafana_foundation_sdk.builders import common as common_b
from grafana_foundation_sdk.builders import dashboard as dash_b
from grafana_foundation_sdk.builders import logs as logs_b
from grafana_foundation_sdk.builders import loki as loki_b
from grafana_foundation_sdk.builders import prometheus as prom_b
from grafana_foundation_sdk.builders import stat as stat_b
from grafana_foundation_sdk.builders import timeseries as ts_b
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models import common as common_m
from grafana_foundation_sdk.models import dashboard as dash_m

# Fixed uids, provisioned in provisioning/datasources/apimirror.yml.
PROMETHEUS = dash_m.DataSourceRef(type_val="prometheus", uid="prometheus")
LOKI = dash_m.DataSourceRef(type_val="loki", uid="loki")

Query = cogbuilder.Builder[cogvariants.Dataquery]
REF_IDS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def prom(expr: str, legend: str = "__auto", *, instant: bool = False) -> Query:
    """Return a Prometheus query; `legend` is a Grafana legend template."""
    query = prom_b.Dataquery().expr(expr).legend_format(legend).datasource(PROMETHEUS)
    return query.instant() if instant else query.range()


def loki(expr: str, legend: str | None = None) -> Query:
    """Return a Loki query (a log query, or a metric query with a legend)."""
    query = loki_b.Dataquery().expr(expr).datasource(LOKI)
    return query.legend_format(legend) if legend is not None else query


def _with_targets(panel: cogbuilder.Builder[dash_m.Panel], targets: Sequence[Query]) -> None:
    for ref_id, target in zip(REF_IDS, targets, strict=False):
        ref = getattr(target, "ref_id", None)
        if callable(ref):
            ref(ref_id)
        panel.with_target(target)  # type: ignore[attr-defined]


def thresholds(*steps: tuple[float | None, str]) -> dash_b.ThresholdsConfig:
    """Return absolute thresholds from (value, colour) pairs; the first value is None."""
    return (
        dash_b.ThresholdsConfig()
        .mode(dash_m.ThresholdsMode.ABSOLUTE)
        .steps([dash_m.Threshold(value=v, color=c) for v, c in steps])
    )


GREEN_ONLY = thresholds((None, "green"))


def timeseries(
    title: str,
    targets: Sequence[Query],
    *,
    unit: str = "short",
    description: str = "",
    width: int = 12,
    height: int = 8,
    stacked: bool = False,
) -> ts_b.Panel:
    """Return a time-series panel with a table legend under it."""
    panel = (
        ts_b.Panel()
        .title(title)
        .description(description)
        .datasource(PROMETHEUS)
        .unit(unit)
        .span(width)
        .height(height)
        .fill_opacity(10)
        .legend(
            common_b.VizLegendOptions()
            .display_mode(common_m.LegendDisplayMode.TABLE)
            .placement(common_m.LegendPlacement.BOTTOM)
            .show_legend(True)
            .calcs(["mean", "max", "lastNotNull"])
        )
    )
    if stacked:
        panel.stacking(common_b.StackingConfig().mode(common_m.StackingMode.NORMAL))
    _with_targets(panel, targets)
    return panel


def stat(
    title: str,
    targets: Sequence[Query],
    *,
    unit: str = "short",
    description: str = "",
    steps: dash_b.ThresholdsConfig = GREEN_ONLY,
    width: int = 6,
    height: int = 4,
) -> stat_b.Panel:
    """Return a single-value panel coloured by `steps`."""
    panel = (
        stat_b.Panel()
        .title(title)
        .description(description)
        .datasource(PROMETHEUS)
        .unit(unit)
        .span(width)
        .height(height)
        .thresholds(steps)
        .color_mode(common_m.BigValueColorMode.BACKGROUND)
        .graph_mode(common_m.BigValueGraphMode.AREA)
        .reduce_options(common_b.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )
    _with_targets(panel, targets)
    return panel


def logs(title: str, expr: str, *, description: str = "", height: int = 12) -> logs_b.Panel:
    """Return a full-width logs panel for one LogQL log query."""
    panel = (
        logs_b.Panel()
        .title(title)
        .description(description)
        .datasource(LOKI)
        .span(24)
        .height(height)
        .show_time(True)
        .wrap_log_message(True)
        .enable_log_details(True)
        .sort_order(common_m.LogsSortOrder.DESCENDING)
    )
    _with_targets(panel, [loki(expr)])
    return panel


def prom_variable(name: str, label: str, query: str) -> dash_b.QueryVariable:
    """Return a multi-select Prometheus label variable whose "All" matches everything."""
    return (
        dash_b.QueryVariable(name)
        .label(label)
        .datasource(PROMETHEUS)
        .query(query)
        .refresh(dash_m.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dash_m.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .current(dash_m.VariableOption(selected=True, text="All", value="$__all"))
    )


def loki_variable(name: str, label: str, all_value: str) -> dash_b.QueryVariable:
    """Return a multi-select Loki label variable; `all_value` is the regex for "All"."""
    return (
        dash_b.QueryVariable(name)
        .label(label)
        .datasource(LOKI)
        .query(f"label_values({name})")
        .refresh(dash_m.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dash_m.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(all_value)
        .current(dash_m.VariableOption(selected=True, text="All", value="$__all"))
    )


def dashboard(uid: str, title: str, description: str) -> dash_b.Dashboard:
    """Return a dashboard with the house defaults: UTC, 6 h, 30 s refresh, linked siblings."""
    return (
        dash_b.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["apimirror"])
        .readonly()  # provisioned from code: edit generate.py, not the UI
        .timezone("utc")
        .time("now-6h", "now")
        .refresh("30s")
        .tooltip(dash_m.DashboardCursorSync.CROSSHAIR)
        .link(
            dash_b.DashboardLink("apimirror")
            .type(dash_m.DashboardLinkType.DASHBOARDS)
            .tags(["apimirror"])
            .as_dropdown(True)
            .keep_time(True)
            .include_vars(False)
        )
    )
