"""`borgwatch report` against a real Prometheus (TLS + basic auth, 33 backfilled days, SLO rules loaded):
numbers equal to the ones computed here from the generated runs and restore drills, the HTML rendered by
headless Chromium,
PNGs of the expected size, and one clear line for every kind of bad input."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from helpers.report_data import DAY, INSTANCE, SCRAPE, Job
from helpers.report_prometheus import (
    MEDIA_OBJECTIVE,
    OPENSSL,
    PASSWORD,
    PROMETHEUS,
    PROMTOOL,
    USER,
    PromServer,
    demo_server,
    start_prometheus,
    wait_ready,
)
from helpers.workspace import BORGWATCH, free_port

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (PROMETHEUS and PROMTOOL and OPENSSL), reason="prometheus, promtool and openssl needed"),
]
CHROMIUM = shutil.which("chromium")
CHECK_LIMIT, CHECK_OBJECTIVE, RUN_OBJECTIVE = 8 * 86400, 0.99, 0.9


@pytest.fixture(scope="module")
def prom(tmp_path_factory: pytest.TempPathFactory):
    server = demo_server(tmp_path_factory.mktemp("prometheus"))
    yield server
    server.proc.terminate()
    server.proc.wait(timeout=30)


def report(prom: PromServer, *args: str, auth: bool = True) -> subprocess.CompletedProcess[str]:
    argv = [BORGWATCH, "report", "--prometheus", prom.url, "--since", str(prom.since), "--until", str(prom.until),
            *(prom.auth_args() if auth else ()), *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def rendered(prom: PromServer, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("report") / "weekly"
    proc = report(prom, "--output", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    return out, json.loads(proc.stdout)


# ------------------------------------------------------------------ expected numbers, from the generated runs
def stale(successes: list[float], limit: float, start: float, end: float) -> list[tuple[float, float]]:
    """Intervals in [start, end] when the newest success was older than limit, walking minute-free."""
    out, newest = [], None
    for s in sorted(successes) + [float("inf")]:
        if newest is not None and s > newest + limit:
            a, b = max(newest + limit, start), min(s, end)
            if b > a:
                out.append((a, b))
        newest = s if s != float("inf") else newest
    return out


def expected(job: Job, since: float, until: float, objective: float) -> dict:
    bad = stale(job.successes(), job.max_age, since, until)
    period = until - since
    bad_seconds = sum(b - a for a, b in bad)
    statuses = Counter(r.status for r in job.runs if since < r.end <= until)
    good = statuses["success"] + statuses["warning"]
    total = sum(statuses.values())
    out = {
        "attainment": 1 - bad_seconds / period,
        "budget": 1 - bad_seconds / ((1 - objective) * period),
        "breaches": bad,
        "runs": {s: statuses[s] for s in ("success", "warning", "error", "interrupted")},
        "run_attainment": good / total,
        "run_budget": 1 - (total - good) / ((1 - RUN_OBJECTIVE) * total),
        "bad_seconds": bad_seconds,
    }
    if job.checks():
        check_bad = stale(job.checks(), CHECK_LIMIT, since, until)
        out["integrity"] = 1 - sum(b - a for a, b in check_bad) / period
    return out


def test_numbers_equal_the_generated_truth(prom: PromServer, rendered: tuple[Path, dict]) -> None:
    _, data = rendered
    assert data["objectives_from"] == "read from Prometheus"
    by_job = {j["backup_job"]: j for j in data["jobs"]}
    assert sorted(by_job) == ["etc", "home", "media"]
    fleet_bad = 0.0
    for job in prom.jobs:
        got = by_job[job.name]
        objective = MEDIA_OBJECTIVE if job.name == "media" else 0.95
        want = expected(job, prom.since, prom.until, objective)
        assert got["instance"] == INSTANCE
        fresh = got["freshness"]
        assert fresh["objective"] == pytest.approx(objective)
        assert fresh["attainment"] == pytest.approx(want["attainment"], abs=1e-9)
        assert fresh["budget_remaining"] == pytest.approx(want["budget"], abs=1e-9)
        assert [(b["start"], b["end"]) for b in fresh["breaches"]] == want["breaches"]
        assert got["runs"]["by_status"] == want["runs"]
        assert got["runs"]["attainment"] == pytest.approx(want["run_attainment"])
        assert got["runs"]["budget_remaining"] == pytest.approx(want["run_budget"])
        if "integrity" in want:
            assert got["integrity"]["attainment"] == pytest.approx(want["integrity"], abs=1e-9)
        else:
            assert got["integrity"] is None
        fleet_bad += want["bad_seconds"]
    # the known breaches are really in the data: home's two missed nights, media's one and its stale end
    assert len(by_job["home"]["freshness"]["breaches"]) == 1 and not by_job["etc"]["freshness"]["breaches"]
    media = by_job["media"]["freshness"]["breaches"]
    assert len(media) == 2 and media[-1]["ongoing"] and media[-1]["end"] == prom.until
    assert by_job["home"]["freshness"]["budget_remaining"] < 0 < by_job["etc"]["freshness"]["budget_remaining"]
    period = prom.until - prom.since
    assert data["fleet"]["freshness"]["attainment"] == pytest.approx(1 - fleet_bad / (3 * period))
    allowed = (0.05 + 0.05 + (1 - MEDIA_OBJECTIVE)) * period  # the fleet budget: the jobs' budgets together
    assert data["fleet"]["freshness"]["budget_remaining"] == pytest.approx(1 - fleet_bad / allowed)
    fleet_runs = data["fleet"]["runs"]["by_status"]
    assert fleet_runs == {s: sum(by_job[j]["runs"]["by_status"][s] for j in by_job) for s in fleet_runs}


def first_point(t: float, since: float, until: float) -> float:
    """The first point of the report's range queries showing a value that appeared at t: the next scrape
    of the generated data, then the next step of the query (see collect.step_for)."""
    data_start = until - 33 * DAY - 1800
    sample = data_start + math.ceil((t - data_start) / SCRAPE) * SCRAPE
    step = max(60.0, math.ceil((until - since) / 8000 / 60) * 60)
    return max(since, since + math.ceil((sample - since) / step) * step)


def test_restore_drills_equal_the_generated_truth(prom: PromServer, rendered: tuple[Path, dict]) -> None:
    _, data = rendered
    drills = {d["backup_job"]: d for d in data["restore_drills"]}
    drilled = [j for j in prom.jobs if j.drills]
    assert sorted(drills) == sorted(j.name for j in drilled) == ["etc", "home"]  # media runs none
    for job in drilled:
        got = drills[job.name]
        assert got["instance"] == INSTANCE and got["max_age_seconds"] == job.drill_max_age
        begin = first_point(job.drills[0].end, prom.since, prom.until)
        bad = stale(job.drill_successes(), job.drill_max_age, begin, prom.until)
        bad_seconds = sum(b - a for a, b in bad)
        fresh = got["freshness"]
        assert fresh["objective"] == pytest.approx(0.95)
        assert fresh["observed_seconds"] == prom.until - begin
        assert [(b["start"], b["end"]) for b in fresh["breaches"]] == bad
        assert fresh["attainment"] == pytest.approx(1 - bad_seconds / (prom.until - begin), abs=1e-9)
        assert fresh["budget_remaining"] == pytest.approx(1 - bad_seconds / (0.05 * (prom.until - begin)), abs=1e-9)
        assert got["successes"] == [d.end for d in job.drills if d.ok and prom.since < d.end <= prom.until]
        # in force during the period: the last drill before it began, and every drill within it
        shown = [d for d in job.drills if prom.since < d.end <= prom.until]
        shown = [d for d in job.drills if d.end <= prom.since][-1:] + shown
        assert got["coverage"] == {"objective": pytest.approx(0.1), "last": shown[-1].coverage,
                                   "min": min(d.coverage for d in shown), "met": shown[-1].coverage >= 0.1}
        assert got["rto_estimate_seconds"] == {"last": shown[-1].rto, "max": max(d.rto for d in shown)}
    # the known breach: home's drill failed for 4 mornings, which is more than its 30-day budget
    (breach,) = drills["home"]["freshness"]["breaches"]
    assert breach["seconds"] > 0.05 * (prom.until - prom.since) and drills["home"]["freshness"]["budget_remaining"] < 0
    assert not drills["etc"]["freshness"]["breaches"] and drills["etc"]["freshness"]["attainment"] == 1
    assert drills["home"]["coverage"]["min"] < 0.1 <= drills["home"]["coverage"]["last"]


def test_one_run_per_generated_run_with_its_gauges(prom: PromServer, rendered: tuple[Path, dict]) -> None:
    _, data = rendered
    home = next(j for j in prom.jobs if j.name == "home")
    runs = next(j for j in data["jobs"] if j["backup_job"] == "home")["run_list"]
    want = [r for r in home.runs if prom.since < r.end <= prom.until]
    assert [(r["end"], r["status"], r["duration_seconds"], r["added_bytes"]) for r in runs] == [
        (r.end, r.status, r.duration, r.added) for r in want]
    assert runs[0]["files"] == want[0].churn


def test_files_and_pngs(rendered: tuple[Path, dict]) -> None:
    from PIL import Image
    out, _ = rendered
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == sorted(["slo-attainment.png", "freshness.png", "backup-age.png", "runs-by-day.png",
                           "duration.png", "bytes-added.png", "churn.png", "repository-size.png", "checks.png",
                           "restore-drills.png"])
    for name in pngs:
        with Image.open(out / name) as img:
            img.load()
            assert img.size == (1000, 400), name
            colors = img.convert("RGB").getcolors(maxcolors=1_000_000)
            assert colors and len(colors) > 20, f"{name} looks empty"
    html = (out / "report.html").read_text()
    assert html.count('src="data:image/png;base64,') == len(pngs)
    assert 'src="http' not in html and "<link" not in html and "<script" not in html  # self-contained
    assert PASSWORD not in html and PASSWORD not in (out / "report.json").read_text()
    assert oct(out.stat().st_mode & 0o777) == "0o755"


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed")
def test_chromium_renders_the_report(rendered: tuple[Path, dict], tmp_path: Path) -> None:
    from PIL import Image
    out, _ = rendered
    shot = tmp_path / "shot.png"
    proc = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1100,5200",
                           f"--screenshot={shot}", (out / "report.html").as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and shot.is_file(), proc.stderr
    with Image.open(shot) as img:
        rgb = img.convert("RGB")
        assert img.size == (1100, 5200)
        colors = dict((c, n) for n, c in rgb.getcolors(maxcolors=10_000_000))
    # the attainment bars (green #66bb6a, red #e53935) and the run bars (#2e7d32) were painted
    for color in ((0x66, 0xBB, 0x6A), (0xE5, 0x39, 0x35), (0x2E, 0x7D, 0x32)):
        assert colors.get(color, 0) > 500, color
    dom = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                          f"--user-data-dir={tmp_path / 'profile2'}", "--dump-dom", (out / "report.html").as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0 and 'id="chart-slo-attainment"' in dom.stdout and "home" in dom.stdout
    for part in ('id="drills"', 'id="drill-breaches"', "No restore drills: media"):
        assert part in dom.stdout, part


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed")
def test_pdf(prom: PromServer, tmp_path: Path) -> None:
    proc = report(prom, "--output", str(tmp_path / "r"), "--pdf", "--job", "etc")
    assert proc.returncode == 0, proc.stderr
    pdf = (tmp_path / "r" / "report.pdf").read_bytes()
    assert pdf.startswith(b"%PDF-") and len(pdf) > 20_000
    assert not (tmp_path / "r" / "chromium-profile").exists()


def test_job_filter_and_json_only(prom: PromServer, tmp_path: Path) -> None:
    proc = report(prom, "--json", "--job", "media", "--job", "etc")
    assert proc.returncode == 0, proc.stderr
    assert sorted(j["backup_job"] for j in json.loads(proc.stdout)["jobs"]) == ["etc", "media"]
    assert [d["backup_job"] for d in json.loads(proc.stdout)["restore_drills"]] == ["etc"]
    proc = report(prom, "--json", "--job", "media")
    assert proc.returncode == 0 and json.loads(proc.stdout)["restore_drills"] is None  # no job of it drills


# ------------------------------------------------------------------ bad input: one line, no traceback, nothing written
def _one_line(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr and PASSWORD not in proc.stderr + proc.stdout
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_unreachable(prom: PromServer, tmp_path: Path) -> None:
    out = tmp_path / "r"
    proc = subprocess.run([BORGWATCH, "report", "--prometheus", f"http://127.0.0.1:{free_port()}", "-o", str(out)],
                          capture_output=True, text=True, timeout=60)
    _one_line(proc, "cannot reach Prometheus", "Connection refused")
    assert not out.exists() and os.listdir(tmp_path) == []


@pytest.mark.parametrize(("args", "needles"), [
    (["--username", USER, "--password-command", "echo wrong-password"], ("refused the credentials", "401")),
    ([], ("refused the credentials", "401")),
    (["--username", USER, "--password-file", "/nonexistent/pw"], ("cannot read the Prometheus password",)),
])
def test_wrong_credentials(prom: PromServer, tmp_path: Path, args: list[str], needles: tuple[str, ...]) -> None:
    proc = report(prom, "-o", str(tmp_path / "r"), "--ca-file", str(prom.ca), *args, auth=False)
    _one_line(proc, *needles)
    assert os.listdir(tmp_path) == []


def test_tls_without_the_ca(prom: PromServer, tmp_path: Path) -> None:
    proc = report(prom, "-o", str(tmp_path / "r"), "--username", USER, "--password-file", str(prom.password_file),
                  auth=False)
    _one_line(proc, "TLS error", "--ca-file")
    assert os.listdir(tmp_path) == []


def test_empty_period_and_unknown_job(prom: PromServer, tmp_path: Path) -> None:
    argv = [BORGWATCH, "report", "--prometheus", prom.url, *prom.auth_args(), "-o", str(tmp_path / "r")]
    proc = subprocess.run([*argv, "--since", "2021-01-01", "--until", "2021-02-01"], capture_output=True,
                          text=True, timeout=60)
    _one_line(proc, "no borgwatch data between 2021-01-01 00:00 and 2021-02-01 00:00", "--since/--until")
    proc = subprocess.run([*argv, "--job", "nosuch"], capture_output=True, text=True, timeout=60)
    _one_line(proc, "no borgwatch data of job(s) nosuch")
    proc = subprocess.run([*argv, "--since", "2030-01-01"], capture_output=True, text=True, timeout=60)
    _one_line(proc, "must be before --until")
    assert os.listdir(tmp_path) == []


def test_prometheus_without_borgwatch_series(tmp_path: Path) -> None:
    server, url, log = start_prometheus(tmp_path, tmp_path / "tsdb", None, None)
    try:
        wait_ready(url, server, log)
        proc = subprocess.run([BORGWATCH, "report", "--prometheus", url, "-o", str(tmp_path / "r")],
                              capture_output=True, text=True, timeout=60)
    finally:
        server.terminate()
        server.wait(timeout=30)
    _one_line(proc, "has no borgwatch series", "textfile")
    assert not (tmp_path / "r").exists()


def test_output_never_follows_a_symlink_nor_clobbers_foreign_files(prom: PromServer, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (tmp_path / "link").symlink_to(victim)
    _one_line(report(prom, "-o", str(tmp_path / "link"), "--job", "etc"), "symbolic link")
    (victim / "notes.txt").write_text("keep me")
    _one_line(report(prom, "-o", str(victim), "--job", "etc"), "not part of a report")
    assert os.listdir(victim) == ["notes.txt"]
    # a previous report is replaced as a whole
    out = tmp_path / "weekly"
    assert report(prom, "-o", str(out), "--job", "etc").returncode == 0
    (out / "stale.png").write_bytes(b"old chart")
    assert report(prom, "-o", str(out), "--job", "etc").returncode == 0
    assert not (out / "stale.png").exists() and (out / "report.html").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "victim", "weekly"]


def test_wrapper_start_up_does_not_load_the_report_libraries() -> None:
    code = ("import sys, borgwatch.cli; "
            "print(sorted(m for m in ('matplotlib', 'jinja2', 'requests') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "[]", proc.stdout + proc.stderr
