"""The report's outputs: a self-contained HTML page (charts inline), one PNG per chart, an optional PDF
printed by headless Chromium, and the same numbers as JSON. Files appear all at once or not at all."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import jinja2

from borgwatch import __version__
from borgwatch.errors import UserError
from borgwatch.report.charts import Chart
from borgwatch.report.collect import DrillReport, JobReport, Report
from borgwatch.report.slo import RunSlo, TimeSlo, fmt_duration, fmt_time

CHROMIUM = ("chromium", "chromium-browser", "google-chrome")


def _pct(value: float | None) -> str:
    if value is None:
        return "–"
    if value == float("-inf"):
        return "overspent"
    return f"{value:.1%}" if abs(value) < 10 else f"{value:.0%}"


def _cls(value: float | None, objective: float) -> str:
    return "" if value is None else ("met" if value >= objective else "missed")


def _budget(remaining: float, bad: float, allowed: float) -> str:
    left = f"{remaining:.0%} left" if remaining >= 0 else "none left"
    return f"{left}: stale {fmt_duration(bad)} of {fmt_duration(allowed)} allowed"


def _row(name: str, host: str, fresh: TimeSlo, runs: RunSlo, check: TimeSlo | None, fleet: bool = False) -> dict:
    allowed = (1 - fresh.objective) * fresh.observed_seconds
    return {
        "name": name, "host": host, "fleet": fleet,
        "fresh": _pct(fresh.attainment), "fresh_target": _pct(fresh.objective),
        "fresh_class": _cls(fresh.attainment, fresh.objective),
        "budget": _budget(fresh.budget_remaining, fresh.bad_seconds, allowed),
        "runs": _pct(runs.attainment), "runs_class": _cls(runs.attainment, runs.objective),
        "runs_detail": f"({runs.good} of {runs.total}) / {_pct(runs.objective)}",
        "check": f"{_pct(check.attainment)} / {_pct(check.objective)}" if check else "no checks",
        "check_class": _cls(check.attainment, check.objective) if check else "",
    }


def _headline(report: Report) -> str:
    def ok(j: JobReport) -> bool:
        runs_ok = j.runs.attainment is None or j.runs.attainment >= j.runs.objective
        check_ok = j.integrity is None or j.integrity.attainment >= j.integrity.objective
        drill_ok = j.drill is None or j.drill.met
        return j.freshness.attainment >= j.freshness.objective and runs_ok and check_ok and drill_ok
    missed = [j.name for j in report.jobs if not ok(j)]
    if not missed:
        return f"All {len(report.jobs)} backup jobs met their targets."
    return (f"{len(report.jobs) - len(missed)} of {len(report.jobs)} backup jobs met all their targets; "
            f"missed: {', '.join(missed)}.")


def _hours(seconds: float | None) -> str:
    return "–" if seconds is None else fmt_duration(seconds)


def _drill_row(j: JobReport, d: DrillReport) -> dict:
    allowed = (1 - d.freshness.objective) * d.freshness.observed_seconds
    return {
        "job": j.name, "host": j.instance, "count": len(d.successes),
        "fresh": _pct(d.freshness.attainment), "fresh_target": _pct(d.freshness.objective),
        "fresh_class": _cls(d.freshness.attainment, d.freshness.objective),
        "budget": _budget(d.freshness.budget_remaining, d.freshness.bad_seconds, allowed),
        "coverage": _pct(d.coverage_last), "coverage_min": _pct(d.coverage_min),
        "coverage_target": _pct(d.coverage_objective),
        "coverage_class": _cls(d.coverage_last, d.coverage_objective),
        "rto": _hours(d.rto_last), "rto_max": _hours(d.rto_max),
    }


def html(report: Report, charts: list[Chart], generated: float) -> str:
    env = jinja2.Environment(loader=jinja2.PackageLoader("borgwatch.report", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined)
    rows = [_row(j.name, j.instance, j.freshness, j.runs, j.integrity) for j in report.jobs]
    rows.append(_row("all jobs", "", report.fleet_freshness(), report.fleet_runs(), report.fleet_integrity(),
                     fleet=True))
    breaches = sorted(({"job": j.name, "host": j.instance, "start": fmt_time(b.start),
                        "end": "still stale" if b.ongoing else fmt_time(b.end), "length": fmt_duration(b.seconds),
                        "t": b.start} for j in report.jobs for b in j.freshness.breaches), key=lambda b: b["t"])
    checks = [{"job": j.name, "host": j.instance, "count": len(j.checks),
               "overdue": fmt_duration(j.integrity.bad_seconds) if j.integrity.bad_seconds else "never",
               "last": fmt_time(j.check_age[-1][0] - j.check_age[-1][1]) if j.check_age else "–"}
              for j in report.jobs if j.integrity]
    drills = [_drill_row(j, j.drill) for j in report.jobs if j.drill]
    drill_breaches = sorted(({"job": j.name, "host": j.instance, "start": fmt_time(b.start),
                              "end": "still stale" if b.ongoing else fmt_time(b.end),
                              "length": fmt_duration(b.seconds), "t": b.start}
                             for j in report.jobs if j.drill for b in j.drill.freshness.breaches),
                            key=lambda b: b["t"])
    return env.get_template("report.html.j2").render(
        period=f"{fmt_time(report.since)} – {fmt_time(report.until)}", jobs=report.jobs, rows=rows,
        headline=_headline(report), breaches=breaches, checks=checks, drills=drills,
        drill_breaches=drill_breaches, undrilled=[j.name for j in report.jobs if not j.drill],
        check_limit=" / ".join(sorted({f"{j.check_max_age / 86400:g} days" for j in report.jobs if j.integrity})),
        objectives_from=report.objectives_from,
        charts=[{"name": c.name, "title": c.title, "caption": c.caption,
                 "data": base64.b64encode(c.png).decode()} for c in charts],
        generated=fmt_time(generated), version=__version__, prometheus=report.prometheus)


def _time_slo(slo: TimeSlo | None) -> dict[str, Any] | None:
    if slo is None:
        return None
    return {"objective": slo.objective, "attainment": slo.attainment, "budget_remaining": slo.budget_remaining,
            "observed_seconds": slo.observed_seconds, "bad_seconds": slo.bad_seconds,
            "breaches": [{"start": b.start, "end": b.end, "seconds": b.seconds, "ongoing": b.ongoing}
                         for b in slo.breaches]}


def _run_slo(slo: RunSlo) -> dict[str, Any]:
    return {"objective": slo.objective, "attainment": slo.attainment, "budget_remaining": slo.budget_remaining,
            "total": slo.total, "good": slo.good, "by_status": slo.by_status}


def _drill_json(j: JobReport) -> dict[str, Any] | None:
    d = j.drill
    if d is None:
        return None
    return {"backup_job": j.job, "instance": j.instance, "max_age_seconds": d.max_age,
            "freshness": _time_slo(d.freshness), "successes": d.successes,
            "coverage": {"objective": d.coverage_objective, "last": d.coverage_last, "min": d.coverage_min,
                         "met": d.coverage_met},
            "rto_estimate_seconds": {"last": d.rto_last, "max": d.rto_max}}


def as_json(report: Report) -> dict[str, Any]:
    fleet_fresh = _time_slo(report.fleet_freshness())
    assert fleet_fresh is not None
    fleet_fresh.pop("breaches")
    fleet_check = _time_slo(report.fleet_integrity())
    if fleet_check:
        fleet_check.pop("breaches")
    return {
        "since": report.since, "until": report.until, "prometheus": report.prometheus,
        "objectives_from": report.objectives_from,
        "jobs": [{"backup_job": j.job, "instance": j.instance, "max_age_seconds": j.max_age,
                  "freshness": _time_slo(j.freshness), "runs": _run_slo(j.runs), "integrity": _time_slo(j.integrity),
                  "checks": j.checks,
                  "run_list": [{"end": r.end, "status": r.status, "duration_seconds": r.duration,
                                "added_bytes": r.added_bytes, "files": r.churn} for r in j.run_list]}
                 for j in report.jobs],
        "fleet": {"freshness": fleet_fresh, "runs": _run_slo(report.fleet_runs()), "integrity": fleet_check},
        # one entry per job that ran restore drills; null when no job of the report did
        "restore_drills": [_drill_json(j) for j in report.jobs if j.drill] or None,
    }


def print_pdf(html_file: Path, pdf_file: Path, workdir: Path) -> None:
    binary = next((b for b in map(shutil.which, CHROMIUM) if b), None)
    if binary is None:
        raise UserError("--pdf needs Chromium (apt install chromium); the HTML and PNG report work without it")
    argv = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-pdf-header-footer",
            f"--user-data-dir={workdir / 'chromium-profile'}", f"--print-to-pdf={pdf_file}", html_file.as_uri()]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise UserError("Chromium did not print the PDF within 120 s; retry without --pdf") from None
    if proc.returncode != 0 or not pdf_file.is_file() or pdf_file.stat().st_size == 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise UserError(f"Chromium could not print the PDF (exit {proc.returncode}: {last[:160]}); "
                        "retry without --pdf")
    shutil.rmtree(workdir / "chromium-profile", ignore_errors=True)


def _report_file(path: Path) -> bool:
    return path.is_file() and not path.is_symlink() and (
        path.suffix == ".png" or path.name in ("report.html", "report.json", "report.pdf"))


def write(report: Report, charts: list[Chart], out_dir: Path, pdf: bool, json_text: str | None) -> Path:
    """Write everything into a fresh private directory beside ``out_dir``, then swap it into place."""
    out_dir = out_dir.absolute()
    if out_dir.is_symlink():
        raise UserError(f"{out_dir} is a symbolic link; give the real directory as --output")
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"{out_dir} exists and is not a directory; choose another --output")
    if out_dir.is_dir() and (foreign := [f.name for f in out_dir.iterdir() if not _report_file(f)]):
        raise UserError(f"{out_dir} holds files that are not part of a report ({foreign[0]}, ...); "
                        "choose an empty or new --output directory")
    parent = out_dir.parent
    if not parent.is_dir():
        raise UserError(f"{parent} does not exist; create it or choose another --output")
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=parent))
    try:
        for chart in charts:
            (tmp / f"{chart.name}.png").write_bytes(chart.png)
        (tmp / "report.html").write_text(html(report, charts, time.time()), encoding="utf-8")
        if json_text is not None:
            (tmp / "report.json").write_text(json_text, encoding="utf-8")
        if pdf:
            print_pdf(tmp / "report.html", tmp / "report.pdf", tmp)
        for f in tmp.iterdir():
            f.chmod(0o644)
        tmp.chmod(0o755)
        old = None
        if out_dir.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old.", dir=parent))
            os.replace(out_dir, old / "report")
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return out_dir
