"""Demo data for the report tests: 33 days of borgwatch series of three nightly jobs with known breaches
(and weekly restore drills of two of them),
as OpenMetrics text for ``promtool tsdb create-blocks-from openmetrics``, plus the truth it was made from
(every run with its end time and result) so that tests compute the expected numbers on their own."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from borgwatch.drill.metrics import DRILL_SPECS
from borgwatch.metrics.specs import SPECS

DAY = 86400
SCRAPE = 240  # seconds between samples: within Prometheus' 5-minute lookback
INSTANCE = "nas:9100"
MAX_AGE = {"home": 26 * 3600, "etc": 26 * 3600, "media": 30 * 3600}
CHECK_EVERY = {"home": 7, "etc": 7}  # days between check stages; media runs none
DRILL_MAX_AGE = {"home": 8 * DAY, "etc": 8 * DAY}  # weekly drills after the night's run; media drills never


@dataclass
class Run:
    end: float
    status: str  # success | warning | error | interrupted
    duration: float
    added: int
    churn: dict[str, int]
    check_ok: bool = False


@dataclass
class Drill:
    end: float
    ok: bool
    coverage: float
    rto: float  # estimated seconds to restore the whole archive


@dataclass
class Job:
    name: str
    max_age: int
    runs: list[Run] = field(default_factory=list)
    drills: list[Drill] = field(default_factory=list)
    drill_max_age: int | None = None

    def drill_successes(self) -> list[float]:
        return [d.end for d in self.drills if d.ok]

    def successes(self) -> list[float]:
        return [r.end for r in self.runs if r.status in ("success", "warning")]

    def checks(self) -> list[float]:
        return [r.end for r in self.runs if r.check_ok]


def _outcome(job: str, day: int, days: int) -> str:
    """The known breaches: home misses nights 9 and 10 (pages), media night 20 (tickets) and the last two
    nights (stale at the end), etc never; a few warnings and an interruption that still count right."""
    if job == "home" and day in (9, 10):
        return "error"
    if job == "media" and day in (20, days - 2, days - 1):
        return "error" if day == 20 else "interrupted"
    if (job, day) in (("etc", 4), ("home", 15), ("media", 12)):
        return "warning"
    if (job, day) == ("etc", 17):
        return "interrupted"  # a second run the same night succeeds
    return "success"


def make_jobs(end: float, days: int = 33, seed: int = 7) -> list[Job]:
    """Nightly runs between 01:00 and 03:00 UTC of each of the ``days`` days before the day of ``end``."""
    rng = random.Random(seed)
    first_day = (int(end) // DAY - days) * DAY
    jobs = []
    for name, max_age in MAX_AGE.items():
        job = Job(name, max_age)
        for d in range(days):
            start = first_day + d * DAY + 3600 + rng.randint(0, 7200)
            status = _outcome(name, d, days)
            duration = rng.randint(300, 2400)
            churn = {"added": rng.randint(0, 400), "modified": rng.randint(0, 200), "removed": rng.randint(0, 50)}
            skipped = (name, d) == ("home", 14)  # home's check is two weeks overdue once
            check = name in CHECK_EVERY and d % CHECK_EVERY[name] == 0 and status == "success" and not skipped
            job.runs.append(Run(start + duration, status, duration, rng.randint(10**6, 5 * 10**8), churn, check))
            if (name, d) == ("etc", 17):
                job.runs.append(Run(start + duration + 1800, "success", 900, 10**6, churn))
        if name in DRILL_MAX_AGE:
            job.drill_max_age = DRILL_MAX_AGE[name]
            _drills(job, first_day, days, rng)
        jobs.append(job)
    return jobs


def _drills(job: Job, first_day: int, days: int, rng: random.Random) -> None:
    """A drill at 05:00 every 7th day; home's drill of day 9 fails, is retried every morning and passes on
    day 13 (stale from day 10 on: more than its budget)."""
    coverage = 0.0
    for d in range(2 if job.name == "home" else 4, days, 7):
        for day in ([9, 10, 11, 12, 13] if (job.name, d) == ("home", 9) else [d]):
            ok = not (job.name == "home" and 9 <= day < 13)
            coverage = min(1.0, coverage + rng.uniform(0.03, 0.08)) if ok else coverage
            job.drills.append(Drill(first_day + day * DAY + 5 * 3600 + rng.randint(0, 1800), ok, round(coverage, 4),
                                    float(rng.randint(2 * 3600, 9 * 3600))))


def openmetrics(jobs: list[Job], start: float, end: float) -> str:
    """Samples every SCRAPE seconds in [start, end], as node_exporter would have exposed borgwatch's files."""
    families: dict[str, list[str]] = {}
    times = list(range(int(start), int(end) + 1, SCRAPE))
    for job in jobs:
        base = f'backup_job="{job.name}",instance="{INSTANCE}",job="node"'
        series: dict[tuple[str, str], list[str]] = {}
        runs = sorted(job.runs, key=lambda r: r.end)
        i, counts = 0, dict.fromkeys(("success", "warning", "error", "interrupted"), 0)
        last: Run | None = None
        last_success = last_check = None
        repo = 2 * 10**10
        for t in times:
            while i < len(runs) and runs[i].end <= t:
                last = runs[i]
                counts[last.status] += 1
                repo += last.added // 3
                if last.status in ("success", "warning"):
                    last_success = last.end
                if last.check_ok:
                    last_check = last.end
                i += 1

            def put(name: str, value: float, extra: str = "", _t: int = t, _base: str = base,
                    _series: dict = series) -> None:
                labels = _base + (f",{extra}" if extra else "")
                _series.setdefault((name, labels), []).append(f"{name}{{{labels}}} {value:.17g} {_t}")

            put("borgwatch_max_age_seconds", job.max_age)
            for status, n in counts.items():
                put("borgwatch_runs_total", n, f'status="{status}"')
            if last_success is not None:
                put("borgwatch_last_success_timestamp_seconds", last_success)
            if last_check is not None:
                put("borgwatch_check_last_success_timestamp_seconds", last_check)
            if last is not None:
                put("borgwatch_run_end_timestamp_seconds", last.end)
                put("borgwatch_run_duration_seconds", last.duration)
                put("borgwatch_archive_deduplicated_bytes", last.added)
                put("borgwatch_repository_unique_compressed_bytes", repo)
                for change, n in last.churn.items():
                    put("borgwatch_dataset_files", n, f'change="{change}"')
            drills = [x for x in job.drills if x.end <= t]
            if drills and job.drill_max_age is not None:
                put("borgwatch_drill_max_age_seconds", job.drill_max_age)
                put("borgwatch_drill_coverage_ratio", drills[-1].coverage)
                put("borgwatch_drill_rto_estimate_seconds", drills[-1].rto)
                if ok := [x.end for x in drills if x.ok]:
                    put("borgwatch_drill_last_success_timestamp_seconds", ok[-1])
        for (name, _), lines in series.items():
            families.setdefault(name, []).extend(lines)
    out = []
    for name, lines in families.items():
        spec = SPECS.get(name) or DRILL_SPECS[name]  # the real metric names only
        family = name.removesuffix("_total") if spec.kind == "counter" else name
        out.append(f"# HELP {family} {spec.help}\n# TYPE {family} {spec.kind}\n")
        out.append("\n".join(lines) + "\n")
    out.append("# EOF\n")
    return "".join(out)


def seed_successes(jobs: list[Job], before: float) -> None:
    """A successful run of every job one hour before the data starts (the period starts fresh)."""
    for job in jobs:
        job.runs.insert(0, Run(before - 3600, "success", 600, 10**6, {"added": 0, "modified": 0, "removed": 0},
                               check_ok=job.name in CHECK_EVERY))
