"""The report's charts as PNG (matplotlib, Agg backend), drawn for readers who never saw Prometheus:
plain titles, units on the axes, legends, targets as dashed lines, times in UTC."""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import matplotlib

matplotlib.use("Agg")  # no display; must precede pyplot

import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import FuncFormatter, PercentFormatter  # noqa: E402

from borgwatch.report.collect import CHURN, Report  # noqa: E402
from borgwatch.report.slo import Points  # noqa: E402

WIDTH_IN, HEIGHT_IN, DPI = 10.0, 4.0, 100  # every PNG is 1000 x 400 pixels
STATUS_COLORS = {"success": "#2e7d32", "warning": "#f9a825", "error": "#c62828", "interrupted": "#6a1b9a"}
GOOD, BAD = "#66bb6a", "#e53935"


@dataclass(frozen=True)
class Chart:
    name: str  # file name without .png
    title: str
    caption: str
    png: bytes


def _dt(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def _open_axes(ax: plt.Axes) -> None:
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _value_axes(ax: plt.Axes, ylabel: str) -> None:
    if ylabel:
        ax.set_ylabel(ylabel)
    ax.grid(True, axis="y", alpha=0.3)
    _open_axes(ax)


def _figure(title: str, ylabel: str = "") -> tuple[plt.Figure, plt.Axes]:
    fig, ax = plt.subplots(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI)
    ax.set_title(title, fontsize=13, loc="left", fontweight="bold")
    _value_axes(ax, ylabel)
    return fig, ax


def _time_axis(ax: plt.Axes, report: Report, ticks: tuple[int, int] = (5, 10)) -> None:
    ax.set_xlim(_dt(report.since), _dt(report.until))
    ax.xaxis.set_major_locator(mdates.AutoDateLocator(minticks=ticks[0], maxticks=ticks[1]))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%d %b", tz=UTC))
    ax.set_xlabel("date (UTC)")


def _stacked_bars(ax: plt.Axes, xs: list[datetime], layers: Iterable[tuple[str, str, Sequence[float]]]) -> None:
    """One bar a day, its (label, colour, counts) layers stacked in order."""
    bottom = [0] * len(xs)
    for label, color, counts in layers:
        ax.bar(xs, counts, bottom=bottom, color=color, width=0.8, label=label, align="edge")
        bottom = [b + c for b, c in zip(bottom, counts, strict=True)]


def _ages_with_limits(report: Report, title: str, ylabel: str, ages: list[tuple[str, Points, float]],
                      unit: tuple[float, str], linewidth: float | None = None) -> plt.Figure:
    """One line a job of (t, seconds) ages in ``unit``, with its limit as a dashed line of the same colour."""
    scale, label = unit
    fig, ax = _figure(title, ylabel)
    for name, points, limit in ages:
        line, = ax.plot([_dt(t) for t, _ in points], [a / scale for _, a in points], label=name, linewidth=linewidth)
        ax.axhline(limit / scale, color=line.get_color(), linestyle="--", linewidth=1,
                   label=f"{name} limit ({limit / scale:g} {label})")
    _time_axis(ax, report)
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8, ncol=2, loc="upper left")
    return fig


def _legend_when_drawn(ax: plt.Axes) -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=9, loc="upper left", ncol=4)


def _span(start: float, end: float) -> tuple[float, float]:
    return mdates.date2num(_dt(start)), mdates.date2num(_dt(end)) - mdates.date2num(_dt(start))


def _png(fig: plt.Figure) -> bytes:
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    plt.close(fig)
    return buf.getvalue()


def _bytes_formatter() -> FuncFormatter:
    def fmt(value: float, _pos: int) -> str:
        for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
            if abs(value) < 1000 or unit == "PB":
                return f"{value:.0f} {unit}" if unit == "B" else f"{value:.3g} {unit}"
            value /= 1000
        return str(value)
    return FuncFormatter(fmt)


def attainment(report: Report) -> Chart:
    names = [j.name for j in report.jobs] + ["all jobs"]
    fresh = [j.freshness.attainment for j in report.jobs] + [report.fleet_freshness().attainment]
    runs = [j.runs.attainment for j in report.jobs] + [report.fleet_runs().attainment]
    targets_f = [j.freshness.objective for j in report.jobs] + [report.fleet_freshness().objective]
    targets_r = [j.runs.objective for j in report.jobs] + [report.fleet_runs().objective]
    fig, axes = plt.subplots(1, 2, figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI, sharey=True)
    fig.suptitle("Did each backup job keep its promise?", fontsize=13, x=0.01, ha="left", fontweight="bold")
    for ax, values, targets, title in (
        (axes[0], fresh, targets_f, "Time a recent backup existed"),
        (axes[1], runs, targets_r, "Backup runs that succeeded"),
    ):
        ys = range(len(names))
        shown = [v if v is not None else 0 for v in values]
        colors = [GOOD if v is not None and v >= t else BAD for v, t in zip(values, targets, strict=True)]
        ax.barh(ys, shown, color=colors, height=0.6)
        for y, target in zip(ys, targets, strict=True):
            ax.plot([target, target], [y - 0.4, y + 0.4], color="black", linestyle="--", linewidth=1.5)
        for y, v in zip(ys, values, strict=True):
            ax.text(0.02, y, "no runs" if v is None else f"{v:.1%}", va="center", color="white" if v else "black",
                    fontweight="bold")
        ax.set_title(title, fontsize=11)
        ax.set_xlim(0, 1)
        ax.xaxis.set_major_formatter(PercentFormatter(1.0))
        ax.set_yticks(list(ys), names)
        _open_axes(ax)
    axes[0].invert_yaxis()  # shared y axis: once for both, first job on top, "all jobs" last
    axes[1].plot([], [], color="black", linestyle="--", label="target")
    axes[1].legend(loc="lower right", fontsize=9)
    return Chart("slo-attainment", "SLO attainment",
                 "Green bars met their target (dashed line), red bars missed it.", _png(fig))


def freshness(report: Report) -> Chart:
    fig, ax = _figure("Was a recent backup available?")
    for y, job in enumerate(report.jobs):
        begin = report.until - job.freshness.observed_seconds
        ax.broken_barh([_span(begin, report.until)], (y - 0.35, 0.7), color=GOOD)
        ax.broken_barh([_span(b.start, b.end) for b in job.freshness.breaches], (y - 0.35, 0.7), color=BAD)
    ax.set_yticks(range(len(report.jobs)), [j.name for j in report.jobs])
    ax.set_ylim(len(report.jobs) - 0.5, -0.5)
    ax.grid(False)
    ax.legend(handles=[Patch(color=GOOD, label="recent backup available"),
                       Patch(color=BAD, label="newest backup too old")], fontsize=9, loc="upper left",
              bbox_to_anchor=(0, -0.16), ncol=2, frameon=False)
    _time_axis(ax, report)
    return Chart("freshness", "Freshness timeline",
                 "Each row is a backup job. Red stretches are times when the newest successful backup was older "
                 "than the job's limit (max_age): a restore then would have lost more data than promised.", _png(fig))


def age(report: Report) -> Chart:
    fig = _ages_with_limits(report, "Age of the newest successful backup", "hours",
                            [(j.name, j.age, j.max_age) for j in report.jobs], (3600, "h"), linewidth=1.2)
    return Chart("backup-age", "Age of the newest backup",
                 "The saw-tooth drops to zero at every successful backup; above its dashed line a job is stale.",
                 _png(fig))


def runs_by_day(report: Report) -> Chart:
    days = report.runs_per_day()
    fig, ax = _figure("Backup runs per day by result (all jobs)", "runs")
    xs = [datetime.strptime(d, "%Y-%m-%d").replace(tzinfo=UTC) for d in days]
    layers = [(status, color, [days[d][status] for d in days]) for status, color in STATUS_COLORS.items()]
    _stacked_bars(ax, xs, [layer for layer in layers if any(layer[2])])
    _time_axis(ax, report)
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.legend(fontsize=9, loc="upper left", ncol=4)
    return Chart("runs-by-day", "Runs by day",
                 "success and warning count as successful (a warning run still wrote its archive).", _png(fig))


def _per_run(report: Report, name: str, title: str, ylabel: str, caption: str, value, scale: float = 1,
             formatter: FuncFormatter | None = None) -> Chart:  # noqa: ANN001
    fig, ax = _figure(title, ylabel)
    for job in report.jobs:
        points = [(_dt(r.end), v / scale) for r in job.run_list if (v := value(r)) is not None]
        if points:
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", markersize=3, linewidth=1,
                    label=job.name)
    _time_axis(ax, report)
    ax.set_ylim(bottom=0)
    if formatter:
        ax.yaxis.set_major_formatter(formatter)
    _legend_when_drawn(ax)
    return Chart(name, title, caption, _png(fig))


def duration(report: Report) -> Chart:
    return _per_run(report, "duration", "How long each backup run took", "minutes",
                    "One dot per run. A sudden rise usually means much more changed data or a slow link.",
                    lambda r: r.duration, scale=60)


def added_bytes(report: Report) -> Chart:
    return _per_run(report, "bytes-added", "New data stored by each run (after deduplication)", "size",
                    "What each run added to its repository; the rest of the data was already stored.",
                    lambda r: r.added_bytes, formatter=_bytes_formatter())


def churn(report: Report) -> Chart:
    fig, ax = _figure("Files changed per day (all jobs)", "files")
    days = sorted({r.end // 86400 for j in report.jobs for r in j.run_list})
    xs = [_dt(d * 86400) for d in days]
    runs = [[r for j in report.jobs for r in j.run_list if r.end // 86400 == d] for d in days]
    _stacked_bars(ax, xs, [(change, color, [sum(r.churn.get(change, 0) for r in day) for day in runs])
                           for change, color in zip(CHURN, ("#1e88e5", "#fb8c00", "#8e24aa"), strict=True)])
    _time_axis(ax, report)
    ax.legend(fontsize=9, loc="upper left", ncol=3)
    return Chart("churn", "Dataset churn",
                 "Files added, modified and removed since the previous backup. A tall spike of modified or "
                 "removed files can mean mass deletion or ransomware.", _png(fig))


def repository(report: Report) -> Chart:
    fig, ax = _figure("Repository size on disk (deduplicated and compressed)", "size")
    for job in report.jobs:
        if job.repository_bytes:
            ax.plot([_dt(t) for t, _ in job.repository_bytes], [v for _, v in job.repository_bytes],
                    label=job.name, linewidth=1.5)
    _time_axis(ax, report)
    ax.yaxis.set_major_formatter(_bytes_formatter())
    _legend_when_drawn(ax)
    return Chart("repository-size", "Repository growth", "Storage the backups occupy; drops follow pruning.",
                 _png(fig))


def checks(report: Report) -> Chart | None:
    jobs = [j for j in report.jobs if j.check_age]
    if not jobs:
        return None
    fig = _ages_with_limits(report, "Days since the repository was last verified (borg check)", "days",
                            [(j.name, j.check_age, j.check_max_age) for j in jobs], (86400, "days"))
    return Chart("checks", "Integrity checks",
                 "A verified repository is known to be readable; above the dashed line the check is overdue.",
                 _png(fig))


def drills(report: Report) -> Chart | None:
    jobs = [j for j in report.jobs if j.drill]
    if not jobs:
        return None
    fig, (cov, rto) = plt.subplots(1, 2, figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI)
    targets = {j.drill.coverage_objective for j in jobs if j.drill}
    if len(targets) == 1:  # the usual case: one target line for all jobs
        (target,) = targets
        cov.axhline(target, color="black", linestyle="--", linewidth=1, label=f"target ({target:.0%})")
    fig.suptitle("Restore drills: how much was proven restorable, and how long a full restore takes",
                 fontsize=13, x=0.01, ha="left", fontweight="bold")
    for job in jobs:
        d = job.drill
        assert d is not None
        line, = cov.step([_dt(t) for t, _ in d.coverage], [v for _, v in d.coverage], where="post",
                         label=job.name, linewidth=1.5)
        if len(targets) > 1:
            cov.axhline(d.coverage_objective, color=line.get_color(), linestyle="--", linewidth=1,
                        label=f"{job.name} target ({d.coverage_objective:.0%})")
        rto.step([_dt(t) for t, _ in d.rto], [v / 3600 for _, v in d.rto], where="post", label=job.name,
                 color=line.get_color(), linewidth=1.5)
    for ax, title, ylabel in ((cov, "Files verified by drills in 30 days", "share of the archive's files"),
                              (rto, "Estimated time to restore everything", "hours")):
        ax.set_title(title, fontsize=11)
        _value_axes(ax, ylabel)
        _time_axis(ax, report, ticks=(3, 6))
        ax.set_ylim(bottom=0)
    cov.yaxis.set_major_formatter(PercentFormatter(1.0))
    cov.legend(fontsize=8, loc="upper left")
    rto.legend(fontsize=8, loc="upper left")
    return Chart("restore-drills", "Restore drills",
                 "Left: the share of each archive's files that drills restored and verified within 30 days, against "
                 "its target (dashed). Right: how long restoring the whole archive would take at the last drill's "
                 "restore rate.", _png(fig))


def all_charts(report: Report) -> list[Chart]:
    charts = [attainment(report), freshness(report), age(report), runs_by_day(report), duration(report),
              added_bytes(report), churn(report), repository(report), checks(report), drills(report)]
    return [c for c in charts if c is not None]
