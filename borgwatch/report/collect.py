"""Reads one period of borgwatch series from Prometheus and turns them into the report's numbers."""

from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass, field

from borgwatch.errors import UserError
from borgwatch.kit import read_asset
from borgwatch.model import RUN_STATUSES
from borgwatch.report.prom import PromClient, Series
from borgwatch.report.slo import Points, RunSlo, TimeSlo, day_of, fmt_time, increments, runs_by_status, stale_intervals

Key = tuple[str, str]  # (instance, backup_job)
OBJECTIVES = {  # report field -> recording rule in borgwatch-slo-rules.yml (the one place to edit them)
    "freshness": "borgwatch:slo_freshness_objective",
    "runs": "borgwatch:slo_run_success_objective",
    "integrity": "borgwatch:slo_check_objective",
    "check_max_age": "borgwatch:slo_check_max_age_seconds",
    "drill_freshness": "borgwatch:slo_drill_freshness_objective",
    "drill_coverage": "borgwatch:slo_drill_coverage_objective",
}
CHURN = ("added", "modified", "removed")


@dataclass
class Run:
    end: float
    status: str
    duration: float | None
    added_bytes: float | None
    churn: dict[str, float]


@dataclass
class DrillReport:
    """Restore drills of one job: freshness as a time-slice SLO, coverage and RTO estimate as sampled."""

    freshness: TimeSlo
    max_age: float
    coverage_objective: float
    coverage: Points  # (t, share of the archive's files verified by drills within 30 days)
    rto: Points  # (t, estimated seconds to restore the whole archive)
    successes: list[float]  # times of successful drills in the period

    @property
    def coverage_last(self) -> float | None:
        return self.coverage[-1][1] if self.coverage else None

    @property
    def coverage_min(self) -> float | None:
        return min(v for _, v in self.coverage) if self.coverage else None

    @property
    def coverage_met(self) -> bool | None:
        last = self.coverage_last
        return None if last is None else last >= self.coverage_objective

    @property
    def rto_last(self) -> float | None:
        return self.rto[-1][1] if self.rto else None

    @property
    def rto_max(self) -> float | None:
        return max(v for _, v in self.rto) if self.rto else None

    @property
    def met(self) -> bool:
        return self.freshness.attainment >= self.freshness.objective and self.coverage_met is not False


@dataclass
class JobReport:
    instance: str
    job: str
    freshness: TimeSlo
    runs: RunSlo
    integrity: TimeSlo | None
    age: Points  # (t, age of the newest successful backup in seconds)
    max_age: float
    check_age: Points
    check_max_age: float
    repository_bytes: Points
    run_list: list[Run] = field(default_factory=list)
    checks: list[float] = field(default_factory=list)  # times of successful checks in the period
    drill: DrillReport | None = None  # None: the job ran no restore drill (no borgwatch_drill_* series)

    @property
    def name(self) -> str:
        return self.job


@dataclass
class Report:
    since: float
    until: float
    prometheus: str
    objectives_from: str  # "Prometheus rules" or "defaults (SLO rules not loaded)"
    jobs: list[JobReport]

    def fleet_freshness(self) -> TimeSlo:
        return _fleet([j.freshness for j in self.jobs])

    def fleet_integrity(self) -> TimeSlo | None:
        slos = [j.integrity for j in self.jobs if j.integrity]
        return _fleet(slos) if slos else None

    def fleet_runs(self) -> RunSlo:
        """All runs together; the failures allowed are the sum of every job's allowance."""
        out = RunSlo(objective=1.0)
        for j in self.jobs:
            for status, n in j.runs.by_status.items():
                out.by_status[status] = out.by_status.get(status, 0) + n
        if out.total:
            out.objective = 1 - sum((1 - j.runs.objective) * j.runs.total for j in self.jobs) / out.total
        return out

    def runs_per_day(self) -> dict[str, dict[str, int]]:
        days: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(RUN_STATUSES, 0))
        t = self.since
        while t < self.until:  # every day of the period, also the ones without runs
            days[day_of(t)]
            t += 86400
        for j in self.jobs:
            for run in j.run_list:
                days[day_of(run.end)][run.status] += 1
        return dict(sorted(days.items()))


def _fleet(slos: list[TimeSlo]) -> TimeSlo:
    """All jobs' time together: stale seconds over observed seconds; the error budget is the sum of every
    job's budget, so the fleet objective is the time-weighted mean of the jobs' objectives."""
    observed = sum(s.observed_seconds for s in slos)
    allowed = sum((1 - s.objective) * s.observed_seconds for s in slos)
    fleet = TimeSlo(1 - allowed / observed if observed else 1.0, observed, [])
    fleet.breaches = [b for s in slos for b in s.breaches]
    return fleet


def default_objectives() -> dict[str, float]:
    """The default (last) value of each objective rule in the kit's SLO rules file."""
    text = read_asset("slo-rules")
    out = {}
    for field_name, record in OBJECTIVES.items():
        expr = text.split(f"record: {record}\n", 1)[1].split("\n      - ", 1)[0]
        factors = re.findall(r"([\d.]+(?: \* [\d.]+)*) \* group by", expr)
        out[field_name] = math.prod(float(x) for x in factors[-1].split(" * "))
    return out


def _by_key(series: list[Series]) -> dict[Key, Points]:
    return {(s[0].get("instance", ""), s[0]["backup_job"]): s[1] for s in series if "backup_job" in s[0]}


def _by_key_label(series: list[Series], label: str) -> dict[Key, dict[str, Points]]:
    out: dict[Key, dict[str, Points]] = defaultdict(dict)
    for labels, points in series:
        if "backup_job" in labels and label in labels:
            out[(labels.get("instance", ""), labels["backup_job"])][labels[label]] = points
    return out


def _value_at(points: Points, t: float) -> float | None:
    for pt, v in points:
        if pt == t:
            return v
    return None


def step_for(since: float, until: float) -> float:
    """Query resolution: at most ~8000 points per series (Prometheus refuses more than 11000)."""
    return max(60.0, math.ceil((until - since) / 8000 / 60) * 60)


def collect(client: PromClient, since: float, until: float, jobs: list[str], now: float) -> Report:
    sel = ""
    if jobs:
        sel = 'backup_job=~"^(?:' + "|".join(re.escape(j).replace("\\", "\\\\") for j in jobs) + ')$"'
    step = step_for(since, until)

    def rng(metric: str, extra: str = "") -> list[Series]:
        labels = ", ".join(x for x in (sel, extra) if x)
        return client.query_range(f"{metric}{{{labels}}}", since, until, step)

    max_age = _by_key(rng("borgwatch_max_age_seconds"))
    if not max_age:
        if not client.series_exist("borgwatch_max_age_seconds"):
            raise UserError(f"Prometheus at {client.shown_url} has no borgwatch series (borgwatch_max_age_seconds); "
                            "check that it scrapes node_exporter's textfile collector where borgwatch writes")
        what = f"of job(s) {', '.join(jobs)} " if jobs else ""
        raise UserError(f"no borgwatch data {what}between {fmt_time(since)} and {fmt_time(until)} UTC at "
                        f"{client.shown_url}; choose another period (--since/--until) or job (--job)")
    if jobs and (missing := set(jobs) - {job for _, job in max_age}):
        raise UserError(f"no data of job(s) {', '.join(sorted(missing))} in the period; drop them from --job")

    last_success = _by_key(rng("borgwatch_last_success_timestamp_seconds"))
    runs_total = _by_key_label(rng("borgwatch_runs_total"), "status")
    run_end = _by_key(rng("borgwatch_run_end_timestamp_seconds"))
    duration = _by_key(rng("borgwatch_run_duration_seconds"))
    added = _by_key(rng("borgwatch_archive_deduplicated_bytes"))
    churn = _by_key_label(rng("borgwatch_dataset_files", 'change=~"added|modified|removed"'), "change")
    repo = _by_key(rng("borgwatch_repository_unique_compressed_bytes"))
    checks = _by_key(rng("borgwatch_check_last_success_timestamp_seconds"))
    drill_max_age = _by_key(rng("borgwatch_drill_max_age_seconds"))
    drill_ok = _by_key(rng("borgwatch_drill_last_success_timestamp_seconds"))
    coverage = _by_key(rng("borgwatch_drill_coverage_ratio"))
    rto = _by_key(rng("borgwatch_drill_rto_estimate_seconds"))
    objectives, source = _objectives(client, sel, until, now)

    reports = []
    for key in sorted(max_age, key=lambda k: (k[1], k[0])):
        defaults = objectives.get(None, {})
        obj = {**defaults, **objectives.get(key, {})}
        observed, breaches = stale_intervals(last_success.get(key, []), max_age[key], since, until)
        age = [(t, t - s) for t, s in last_success.get(key, [])]
        integrity, check_age, check_times = None, [], []
        if key in checks:
            limit = obj["check_max_age"]
            c_observed, c_breaches = stale_intervals(checks[key], [(checks[key][0][0], limit)], since, until)
            integrity = TimeSlo(obj["integrity"], c_observed, c_breaches)
            check_age = [(t, t - s) for t, s in checks[key]]
            check_times = sorted({s for _, s in checks[key] if since < s <= until})
        counters = runs_total.get(key, {})
        reports.append(JobReport(
            instance=key[0], job=key[1],
            freshness=TimeSlo(obj["freshness"], observed, breaches),
            runs=RunSlo(obj["runs"], runs_by_status(counters)),
            integrity=integrity, age=age, max_age=max_age[key][-1][1], check_age=check_age,
            check_max_age=obj["check_max_age"], repository_bytes=repo.get(key, []),
            run_list=_runs(counters, run_end.get(key, []), duration.get(key, []), added.get(key, []),
                           churn.get(key, {})),
            checks=check_times,
            drill=_drill(drill_ok.get(key, []), drill_max_age.get(key), coverage.get(key, []), rto.get(key, []),
                         obj, since, until),
        ))
    return Report(since, until, client.shown_url, source, reports)


def _drill(ok: Points, max_age: Points | None, coverage: Points, rto: Points, obj: dict[str, float],
           since: float, until: float) -> DrillReport | None:
    """Drill freshness exactly as backup freshness (a job whose drills never passed is stale from its first
    drill); coverage and RTO as the textfile reported them during the period."""
    if not max_age:
        return None
    observed, breaches = stale_intervals(ok, max_age, since, until)
    return DrillReport(TimeSlo(obj["drill_freshness"], observed, breaches), max_age[-1][1], obj["drill_coverage"],
                       coverage, rto, sorted({s for _, s in ok if since < s <= until}))


def _objectives(client: PromClient, sel: str, until: float, now: float) -> tuple[dict, str]:
    """Objectives per job from the loaded SLO rules (they are configuration: read at the period's end,
    else now); the rules file's defaults when Prometheus does not evaluate them."""
    out: dict[Key | None, dict[str, float]] = {None: default_objectives()}
    found = False
    for field_name, record in OBJECTIVES.items():
        for at in dict.fromkeys((until, now)):
            result = client.query(f"{record}{{{sel}}}", at)
            if result:
                found = True
                for labels, value in result:
                    key = (labels.get("instance", ""), labels.get("backup_job", ""))
                    out.setdefault(key, {})[field_name] = value
                break
    return out, ("read from Prometheus" if found else
                 "the file's defaults: Prometheus does not evaluate the SLO rules")


def _runs(counters: dict[str, Points], ends: Points, duration: Points, added: Points,
          churn: dict[str, Points]) -> list[Run]:
    """One Run per counter increment; its gauges are read at the same sample."""
    runs = []
    for status, points in counters.items():
        for t, inc in increments(points):
            for _ in range(round(inc)):
                runs.append(Run(
                    end=_value_at(ends, t) or t, status=status, duration=_value_at(duration, t),
                    added_bytes=_value_at(added, t),
                    churn={c: v for c in CHURN if (v := _value_at(churn.get(c, []), t)) is not None},
                ))
    return sorted(runs, key=lambda r: r.end)
