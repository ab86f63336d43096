"""`borgwatch schedule`: OnCalendar -> cron translation (checked against systemd's own calendar
arithmetic), print / install modes, and the generated cron line actually running a job."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from helpers.borg import VENV_BORG, make_repo, small_tree
from helpers.units import SYSTEMD_ANALYZE, fake_executable, needs_systemd_analyze, verify
from helpers.workspace import ROOT

from borgwatch.commands import schedule
from borgwatch.errors import UserError

CALENDARS = ["daily", "hourly", "weekly", "monthly", "quarterly", "Mon..Fri 02:30", "Sat,Sun 03:00",
             "*:0/15", "*-*-* 01:15:00", "*-*-1..7 4:05", "*-*-* 6,18:00", "Sun 23:59", "Mon,Wed 4:05"]


@pytest.mark.parametrize(("spec", "cron"), [
    ("daily", "0 0 * * *"), ("hourly", "0 * * * *"), ("weekly", "0 0 * * 1"), ("monthly", "0 0 1 * *"),
    ("Mon..Fri 02:30", "30 2 * * 1,2,3,4,5"), ("Sat,Sun 03:00", "0 3 * * 0,6"),
    ("*:0/15", "*/15 * * * *"), ("*-*-* 01:15:00", "15 1 * * *"), ("quarterly", "0 0 1 1,4,7,10 *"),
])
def test_cron_schedule(spec: str, cron: str) -> None:
    assert schedule.cron_schedule(spec) == cron


@pytest.mark.parametrize("spec", ["*-*-* 01:15:30", "2027-01-01", "*-*~03", "Mon *-*-* *:*:*",
                                  "Mon *-*-1..7 04:05"])  # cron ORs weekday and day: systemd ANDs them
def test_cron_schedule_refuses_what_cron_cannot_express(spec: str) -> None:
    with pytest.raises(ValueError, match="cron"):
        schedule.cron_schedule(spec)


def _cron_matches(fields: list[str], t: datetime) -> bool:
    def ok(field: str, value: int, low: int, high: int) -> bool:
        for item in field.split(","):
            rng, _, step = item.partition("/")
            lo, hi = (low, high) if rng == "*" else (int(rng.split("-")[0]), int(rng.split("-")[-1]))
            if lo <= value <= hi and (value - lo) % int(step or 1) == 0:
                return True
        return False

    minute, hour, day, month, dow = fields
    return (ok(minute, t.minute, 0, 59) and ok(hour, t.hour, 0, 23) and ok(day, t.day, 1, 31)
            and ok(month, t.month, 1, 12) and ok(dow, (t.weekday() + 1) % 7, 0, 6))


@pytest.mark.slow
@needs_systemd_analyze
@pytest.mark.parametrize("spec", CALENDARS)
def test_cron_fires_when_systemd_would(spec: str) -> None:
    """The next 5 elapses systemd computes for the OnCalendar value are the next 5 cron matches."""
    assert SYSTEMD_ANALYZE is not None
    env = {**os.environ, "TZ": "UTC", "LC_ALL": "C"}
    out = subprocess.run([SYSTEMD_ANALYZE, "calendar", "--iterations=5", spec], env=env,
                         capture_output=True, text=True, check=True).stdout
    expected = [datetime.strptime(m, "%Y-%m-%d %H:%M:%S")
                for m in re.findall(r"(?:Next elapse|Iter\. #\d+): \w+ (\S+ \S+)", out)]
    assert len(expected) == 5, out
    fields = schedule.cron_schedule(spec).split()
    got: list[datetime] = []
    day = expected[0].replace(hour=0, minute=0, second=0)
    while len(got) < 5:  # walk days, then hours and minutes of matching days only
        if _cron_matches([ "*", "*", *fields[2:]], day):
            for h in range(24):
                for m in range(60):
                    t = day.replace(hour=h, minute=m)
                    if t >= expected[0] and len(got) < 5 and _cron_matches(fields, t):
                        got.append(t)
        day += timedelta(days=1)
    assert got == expected


def test_normalize_calendar_agrees_with_systemd() -> None:
    if SYSTEMD_ANALYZE is None:
        pytest.skip("systemd-analyze not installed")
    for spec in CALENDARS:
        out = subprocess.run([SYSTEMD_ANALYZE, "calendar", spec], capture_output=True, text=True).stdout
        systemd_form = re.search(r"Normalized form: (.*)", out).group(1)  # type: ignore[union-attr]
        ours = schedule.normalize_calendar(spec)
        assert re.sub(r"\b0(\d)", r"\1", systemd_form) == re.sub(r"\b0(\d)", r"\1", ours), spec


def test_delay_seconds() -> None:
    assert schedule.delay_seconds("30m") == 1800
    assert schedule.delay_seconds("1h 30min") == 5400
    assert schedule.delay_seconds("0") == 0
    with pytest.raises(ValueError):
        schedule.delay_seconds("soon")


def test_cron_line_shape() -> None:
    line = schedule.cron_line("home", "Mon..Fri 02:30", "30m", "/usr/local/bin/borgwatch", "/etc/b w.toml")
    assert line.startswith("30 2 * * 1,2,3,4,5 root sleep $(shuf -i 0-1800 -n 1); ")
    assert "BORGWATCH_CONFIG='/etc/b w.toml' /usr/local/bin/borgwatch run home >/dev/null" in line
    assert "%" not in line  # cron would turn it into a newline


def _config(tmp: Path, repo_path: str = "/srv/borg/home") -> Path:
    (tmp / "tf").mkdir(exist_ok=True)
    path = tmp / "config.toml"
    path.write_text(f'textfile_dir = "{tmp / "tf"}"\nstate_dir = "{tmp / "state"}"\n'
                    f'[jobs.home]\nrepository = "{repo_path}"\npaths = ["/etc"]\n')
    return path


def test_print_mode(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _config(tmp_path)
    assert schedule.schedule_command(str(cfg), "home", "Mon..Fri 02:30", "1h", False, "/etc/systemd/system",
                                     False) == 0
    out = capsys.readouterr().out
    for name in ("borgwatch@.service", "borgwatch-failure@.service", "borgwatch@home.timer",
                 "borgwatch@home.service.d/repository.conf"):
        assert f"# ---- /etc/systemd/system/{name}" in out
    assert "OnCalendar=Mon..Fri 02:30" in out and "RandomizedDelaySec=1h" in out
    assert f"Environment=BORGWATCH_CONFIG={cfg}" in out
    assert "ReadWritePaths=/srv/borg/home" in out
    assert "# 30 2 * * 1,2,3,4,5 root sleep $(shuf -i 0-3600 -n 1); " in out


def test_cron_mode(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert schedule.schedule_command(str(_config(tmp_path)), "home", "daily", "30m", False, "/x", True) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1].startswith("0 0 * * * root sleep $(shuf -i 0-1800 -n 1); BORGWATCH_CONFIG=")
    with pytest.raises(UserError, match="cron"):
        schedule.schedule_command(str(_config(tmp_path)), "home", "*-*-* 01:00:30", "0", False, "/x", True)


@needs_systemd_analyze
def test_bad_input_is_refused(tmp_path: Path) -> None:
    cfg = str(_config(tmp_path))
    with pytest.raises(UserError, match="'nope' is not in"):
        schedule.schedule_command(cfg, "nope", "daily", "30m", False, "/x", False)
    with pytest.raises(UserError, match="calendar"):
        schedule.schedule_command(cfg, "home", "every day", "30m", False, "/x", False)
    with pytest.raises(UserError, match="time span"):
        schedule.schedule_command(cfg, "home", "daily", "soon", False, "/x", False)


@pytest.mark.slow
@needs_systemd_analyze
def test_install_writes_verifiable_units(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    binary = fake_executable(tmp_path / "borgwatch")
    monkeypatch.setattr(schedule, "borgwatch_binary", lambda: str(binary))
    monkeypatch.setattr(schedule, "systemd_running", lambda: False)
    units = tmp_path / "units"
    assert schedule.schedule_command(str(_config(tmp_path)), "home", "*-*-* 01:15", "10m", True, str(units),
                                     False) == 0
    out = capsys.readouterr().out
    assert "systemctl enable --now borgwatch@home.timer" in out  # not run: systemd is not PID 1 here
    for name in ("borgwatch@.service", "borgwatch@home.timer", "borgwatch@home.service.d/repository.conf"):
        assert (units / name).stat().st_mode & 0o777 == 0o644
    assert f"{binary} run %i" in (units / "borgwatch@.service").read_text()
    done = verify(units, "borgwatch@home.service", "borgwatch@home.timer")
    assert (done.returncode, done.stderr) == (0, "")


@pytest.mark.slow
def test_cron_line_runs_the_job(tmp_path: Path) -> None:
    """Execute the command part of the generated cron line the way cron does (/bin/sh -c, a bare
    environment): the job runs, the textfile is written, and nothing is printed (no cron mail)."""
    repo = make_repo(tmp_path, VENV_BORG)
    src = small_tree(tmp_path)
    (tmp_path / "tf").mkdir()
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'textfile_dir = "{tmp_path / "tf"}"\nstate_dir = "{tmp_path / "state"}"\n'
                   f'borg = "{VENV_BORG}"\nborg_base_dir = "{repo.base_dir}"\n'
                   f'[jobs.home]\nrepository = "{repo.path}"\npaths = ["{src}"]\n'
                   f'passphrase_file = "{repo.passfile}"\n')
    wrapper = tmp_path / "bin" / "borgwatch"  # what the console script does, without installing it
    wrapper.parent.mkdir()
    wrapper.write_text(f"#!/bin/sh\nexec {sys.executable} -m borgwatch \"$@\"\n")
    wrapper.chmod(0o755)
    line = schedule.cron_line("home", "daily", "2s", str(wrapper), str(cfg))
    command = line.split(" ", 6)[6]  # 5 time fields, the user, then the command
    assert command.startswith("sleep $(shuf -i 0-2 -n 1); ")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "SHELL": "/bin/sh", "LOGNAME": "root",
           "PYTHONPATH": str(ROOT)}
    done = subprocess.run(["/bin/sh", "-c", command], env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=300, cwd=tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    prom = (tmp_path / "tf" / "borgwatch-home.prom").read_text()
    assert 'borgwatch_run_status{backup_job="home",status="success"} 1.0' in prom
    listed = repo.borg_run("list", "--short", str(repo.path)).stdout.split()
    assert len(listed) == 1 and "home" in listed[0]


@pytest.mark.slow
def test_failing_cron_job_speaks(tmp_path: Path) -> None:
    """The other half of 'quiet unless something is wrong': a failing run prints to stderr (mail)."""
    cfg = _config(tmp_path, str(tmp_path / "no-such-repo"))
    wrapper = tmp_path / "borgwatch"
    wrapper.write_text(f"#!/bin/sh\nexec {sys.executable} -m borgwatch \"$@\"\n")
    wrapper.chmod(0o755)
    command = schedule.cron_command("home", str(wrapper), str(cfg), "0")
    env = {"PATH": f"{Path(VENV_BORG).parent}:/usr/bin:/bin", "HOME": str(tmp_path),
           "PYTHONPATH": str(ROOT)}
    done = subprocess.run(["/bin/sh", "-c", command], env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=300)
    assert done.returncode != 0 and done.stdout == "" and done.stderr.strip()


def test_shipped_cron_example_matches_generator() -> None:
    example = ROOT / "examples" / "cron" / "borgwatch"
    lines = [ln for ln in example.read_text().splitlines() if ln and not ln.startswith(("#", "SHELL", "PATH",
                                                                                          "MAILTO"))]
    assert schedule.cron_line("home", "*-*-* 02:30", "30m", schedule.DEFAULT_BINARY,
                              "/etc/borgwatch/config.toml") in lines
    assert shutil.which("shuf")  # the random delay needs coreutils' shuf
