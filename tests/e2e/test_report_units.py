"""The weekly report units: systemd-analyze verify, and the service's command line run for real against a
stand-in borgwatch (it must name the past ISO week's directory and pass the settings through)."""

from __future__ import annotations

import os
import re
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from helpers.units import fake_executable, needs_systemd_analyze, unit_settings, verify
from helpers.workspace import ROOT

from borgwatch.commands import schedule

SHIPPED = ROOT / "systemd"
UNITS = ("borgwatch-report.service", "borgwatch-report.timer")


@pytest.mark.slow
@needs_systemd_analyze
def test_report_units_verify_clean(tmp_path: Path) -> None:
    binary = fake_executable(tmp_path / "borgwatch-bin")
    units = tmp_path / "units"
    units.mkdir()
    for name in UNITS:
        (units / name).write_text((SHIPPED / name).read_text().replace(schedule.DEFAULT_BINARY, str(binary)))
    assert str(binary) in (units / UNITS[0]).read_text()
    done = verify(units, *UNITS)
    assert (done.returncode, done.stderr) == (0, "")


def test_timer_is_weekly_and_catches_up() -> None:
    timer = unit_settings((SHIPPED / UNITS[1]).read_text())
    assert timer["Timer.OnCalendar"] == ["Mon *-*-* 06:00:00"] and timer["Timer.Persistent"] == ["true"]


def test_service_writes_last_weeks_directory(tmp_path: Path) -> None:
    service = unit_settings((SHIPPED / UNITS[0]).read_text())
    (exec_start,) = service["Service.ExecStart"]
    command = re.fullmatch(r"/bin/sh -c '(.+)'", exec_start).group(1).replace("%%", "%")
    log = tmp_path / "argv"
    stub = tmp_path / "borgwatch"
    stub.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {log}\necho "{{}}"\n')
    stub.chmod(0o755)
    env = {**os.environ, "REPORT_DIR": str(tmp_path), "BORGWATCH_PROMETHEUS_URL": "http://127.0.0.1:9090",
           "REPORT_ARGS": "--username reports --password-file /etc/borgwatch/prometheus-password"}
    proc = subprocess.run(["/bin/sh", "-c", command.replace(schedule.DEFAULT_BINARY, str(stub))], env=env,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    argv = log.read_text().splitlines()
    week = (datetime.now(UTC) - timedelta(days=1)).strftime("%G-W%V")
    assert argv[:2] == ["report", "--since"] and argv[2] == "7d"
    assert argv[argv.index("--output") + 1] == f"{tmp_path}/{week}"
    assert argv[4:8] == ["--username", "reports", "--password-file", "/etc/borgwatch/prometheus-password"]
    assert (tmp_path / "latest.json").read_text() == "{}\n"
