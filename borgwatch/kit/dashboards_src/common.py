"""What the three dashboards share: datasources, label selectors, variables, value mappings and the builder
calls every panel makes, so that a dashboard module only says what its panels show."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Protocol, Self, TypeVar

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import loki, prometheus
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.variants import Dataquery
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

PROM = dm.DataSourceRef(type_val="prometheus", uid="${datasource}")
LOKI = dm.DataSourceRef(type_val="loki", uid="${loki_datasource}")
# instance is "host:port" in Prometheus but plain "host" in Loki: the host variable holds the bare name.
HOST = 'instance=~"$host(:[0-9]+)?"'
JOB = f'{HOST}, backup_job=~"$backup_job"'

Query = prometheus.Dataquery | loki.Dataquery
Step = tuple[str, float | None]  # threshold: colour from this value on (None: the base colour)


class PanelBuilder(Protocol):
    """The builder methods every SDK panel kind (stat.Panel, timeseries.Panel, logs.Panel…) has."""

    def id(self, id_val: int) -> Self: ...
    def title(self, title: str) -> Self: ...
    def description(self, description: str) -> Self: ...
    def datasource(self, datasource: dm.DataSourceRef) -> Self: ...
    def targets(self, targets: list[Builder[Dataquery]]) -> Self: ...
    def span(self, w: int) -> Self: ...
    def height(self, h: int) -> Self: ...
    def unit(self, unit: str) -> Self: ...
    def mappings(self, mappings: list[dm.ValueMapping]) -> Self: ...
    def thresholds(self, thresholds: Builder[dm.ThresholdsConfig]) -> Self: ...


P = TypeVar("P", bound=PanelBuilder)


def prom(expr: str, legend: str = "") -> prometheus.Dataquery:
    query = prometheus.Dataquery().expr(expr).datasource(PROM).range()
    return query.legend_format(legend) if legend else query


def prom_table(expr: str, legend: str = "") -> prometheus.Dataquery:
    """The latest value of every series, one table row each."""
    return prom(expr, legend).format(PromQueryFormat.TABLE).instant()


def logql(expr: str) -> loki.Dataquery:
    return loki.Dataquery().expr(expr).datasource(LOKI).query_type("range")


def panel(
    viz: P,
    title: str,
    *queries: Query,
    width: int,
    height: int = 8,
    unit: str = "",
    description: str = "",
    mappings: Sequence[dm.ValueMapping] = (),
    thresholds: Sequence[Step] = (),
) -> P:
    """``viz`` (an SDK panel builder) with its title, size, queries (refIds A, B, …) and field defaults.

    The dashboard lays panels out left to right: the widths of a line add up to 24."""
    viz.title(title).span(width).height(height).datasource(queries[0].build().datasource)
    viz.targets([q.ref_id(chr(ord("A") + i)) for i, q in enumerate(queries)])
    if description:
        viz.description(description)
    if unit:
        viz.unit(unit)
    if mappings:
        viz.mappings(list(mappings))
    if thresholds:
        steps = [dm.Threshold(value=value, color=color) for color, value in thresholds]
        viz.thresholds(db.ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE).steps(steps))
    return viz


def value_map(options: dict[str, str | tuple[str, str]]) -> dm.ValueMap:
    """Exact values to a text, or to (text, colour)."""
    def result(to: str | tuple[str, str]) -> dm.ValueMappingResult:
        return dm.ValueMappingResult(text=to) if isinstance(to, str) else dm.ValueMappingResult(*to)

    return dm.ValueMap({value: result(to) for value, to in options.items()})


def range_map(low: float, high: float, text: str, color: str) -> dm.RangeMap:
    return dm.RangeMap(dm.DashboardRangeMapOptions(low, high, dm.ValueMappingResult(text=text, color=color)))


def datasource_variable(name: str, kind: str, label: str) -> db.DatasourceVariable:
    return db.DatasourceVariable(name).label(label).type(kind)


def query_variable(name: str, label: str, query: str, regex: str = "") -> db.QueryVariable:
    """A multi-value variable over the label values of a Prometheus query, "All" matching everything."""
    variable = (
        db.QueryVariable(name)
        .label(label)
        .datasource(PROM)
        .query({"query": query, "refId": f"{name}-var"})
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .sort(dm.VariableSort.ALPHABETICAL_ASC)
    )
    return variable.regex(regex) if regex else variable


def dashboard(
    uid: str,
    title: str,
    description: str,
    tags: list[str],
    variables: Sequence[Builder[dm.VariableModel]],
    panels: Sequence[db.Row | PanelBuilder],
) -> db.Dashboard:
    """The dashboard with the kit's common settings; panels get ids 1, 2, … in order and are laid out by
    the SDK (a row starts a new line)."""
    board = (
        db.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(tags)
        .editable()
        .version(1)
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .refresh("5m")
        .timezone("browser")
        .time("now-7d", "now")
        .annotations([])
        .links([])
        .variables(list(variables))
    )
    for pid, item in enumerate(panels, start=1):
        if isinstance(item, db.Row):
            board.with_row(item.id(pid))
        else:
            board.with_panel(item.id(pid))
    return board


def render(board: db.Dashboard) -> str:
    return json.dumps(board.build(), cls=JSONEncoder, indent=2, ensure_ascii=False) + "\n"
