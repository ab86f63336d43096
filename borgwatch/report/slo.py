"""SLO arithmetic of the report, exact in time, from sampled series (pure: no Prometheus, no I/O).

The recording rules of borgwatch-slo-rules.yml slice time into rule evaluations; they have no history
before they were loaded. The report instead reads the raw series over the period: a timestamp series
(last success, last check) holds the exact time of each success, so stale intervals are exact
(``success + limit`` until the next success), and counters give exact run counts."""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import UTC, datetime

from borgwatch.model import RUN_STATUSES

GOOD_STATUSES = ("success", "warning")  # as in borgwatch:slo_run_success:* (a warning run wrote an archive)
Points = list[tuple[float, float]]


@dataclass(frozen=True)
class Breach:
    start: float
    end: float  # the period's end while still ongoing
    ongoing: bool

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass
class TimeSlo:
    """A time-slice SLO (freshness, integrity): the share of the period a timestamp was young enough."""

    objective: float
    observed_seconds: float
    breaches: list[Breach]

    @property
    def bad_seconds(self) -> float:
        return sum(b.seconds for b in self.breaches)

    @property
    def attainment(self) -> float:
        return 1 - self.bad_seconds / self.observed_seconds if self.observed_seconds else 1.0

    @property
    def budget_remaining(self) -> float:
        """Share of the period's error budget left: 1 untouched, 0 spent, negative overspent."""
        budget = (1 - self.objective) * self.observed_seconds
        return 1 - self.bad_seconds / budget if budget else (1.0 if not self.bad_seconds else float("-inf"))


@dataclass
class RunSlo:
    objective: float
    by_status: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.by_status.values())

    @property
    def good(self) -> int:
        return sum(self.by_status.get(s, 0) for s in GOOD_STATUSES)

    @property
    def attainment(self) -> float | None:
        return self.good / self.total if self.total else None

    @property
    def budget_remaining(self) -> float | None:
        if not self.total:
            return None
        allowed = (1 - self.objective) * self.total
        bad = self.total - self.good
        return 1 - bad / allowed if allowed else (1.0 if not bad else float("-inf"))


def stale_intervals(stamps: Points, limits: Points, start: float, end: float) -> tuple[float, list[Breach]]:
    """Observed seconds and the intervals within [start, end] when ``now - stamp`` exceeded the limit.

    ``stamps`` are samples (t, unix time of the last success); ``limits`` samples (t, allowed age).
    Observation starts at the first sample of either series; before the first known success the job
    counts as stale (there was no backup to restore). The limit in force for a gap is the one sampled
    last while that success was the newest."""
    first = min([t for t, _ in stamps[:1]] + [t for t, _ in limits[:1]], default=None)
    if first is None or first >= end:
        return 0.0, []
    begin = max(start, first)
    limit_times = [t for t, _ in limits]

    def limit_at(t: float) -> float:
        i = bisect_right(limit_times, t) - 1
        return limits[max(i, 0)][1] if limits else 0.0

    successes: list[tuple[float, float]] = []  # (success time, limit while it was the newest)
    for t, stamp in stamps:
        if successes and stamp == successes[-1][0]:
            successes[-1] = (stamp, limit_at(t))
        elif not successes or stamp > successes[-1][0]:
            successes.append((stamp, limit_at(t)))
    bad: list[tuple[float, float, bool]] = []
    prev_end = float("-inf")  # stale from the beginning until the first success
    for stamp, limit in successes:
        if stamp > prev_end:
            bad.append((prev_end, stamp, False))
        prev_end = stamp + limit
    bad.append((prev_end, float("inf"), True))
    breaches = [Breach(max(a, begin), min(b, end), ongoing) for a, b, ongoing in bad if min(b, end) > max(a, begin)]
    return end - begin, breaches


def counter_increase(points: Points) -> float:
    """Increase of a counter over its samples, counting a drop as a reset (like PromQL's increase())."""
    total = 0.0
    for (_, a), (_, b) in zip(points, points[1:], strict=False):
        total += b - a if b >= a else b
    return total


def increments(points: Points) -> list[tuple[float, float]]:
    """(t, increase) at each sample where the counter moved."""
    out = []
    for (_, a), (t, b) in zip(points, points[1:], strict=False):
        inc = b - a if b >= a else b
        if inc:
            out.append((t, inc))
    return out


def runs_by_status(counters: dict[str, Points]) -> dict[str, int]:
    return {s: round(counter_increase(counters[s])) for s in RUN_STATUSES if s in counters}


def day_of(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d")


def fmt_time(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M")


def fmt_duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    parts = [f"{days} d"] if days else []
    if hours or days:
        parts.append(f"{hours} h")
    if not days:
        parts.append(f"{mins} min")
    return " ".join(parts)
