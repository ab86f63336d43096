"""The restore drill as a stage of `borgwatch run` (real borg 1.4; 1.2.4 with BORGWATCH_TEST_BORG): due by
drill.every, its series and the backup's side by side in the job's textfile whoever wrote it last, the
drill record carried by every run, and `borgwatch status` showing the drill."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest
from helpers.workspace import BORGWATCH, Workspace

pytestmark = pytest.mark.slow

DRILL = '[jobs.home.drill]\nevery = "7d"\nsample_percent = 100\nmax_files = 1000\ntemp_dir = "{tmp}"\n'


def with_drill(ws: Workspace) -> None:
    (ws.root / "drilltmp").mkdir(exist_ok=True)
    ws.write_config(DRILL.format(tmp=ws.root / "drilltmp"))


def test_the_drill_stage_runs_when_due_and_both_sets_of_series_stay(workspace: Workspace) -> None:
    ws = workspace
    with_drill(ws)
    first = ws.run()
    assert first.returncode == 0, first.stderr
    assert ws.value("borgwatch_stage_exit_code", stage="drill") == 0
    assert ws.value("borgwatch_drill_status", status="success") == 1
    assert ws.value("borgwatch_drill_files", result="verified") == 60
    assert ws.value("borgwatch_drill_files", result="mismatched") == 0
    assert ws.value("borgwatch_archive_files") == 60
    drilled_at = ws.value("borgwatch_drill_last_success_timestamp_seconds")
    assert drilled_at >= ws.value("borgwatch_run_start_timestamp_seconds")
    assert not list((ws.root / "drilltmp").iterdir())  # the restore directory is gone
    # not due: the backup runs, the drill does not, and the last drill's series stay in the textfile
    (ws.src / "d0" / "new.bin").write_bytes(b"n" * 1000)
    time.sleep(1.05)
    second = ws.run()
    assert second.returncode == 0, second.stderr
    assert ws.value("borgwatch_archive_files") == 61
    assert ws.value("borgwatch_stage_exit_code", stage="drill") is None  # skipped
    assert ws.value("borgwatch_drill_last_success_timestamp_seconds") == drilled_at
    assert ws.value("borgwatch_drill_files", result="verified") == 60
    # a drill of its own keeps the backup's series
    alone = ws.borgwatch("drill", "home", "-c", str(ws.config))
    assert alone.returncode == 0, alone.stderr
    assert ws.value("borgwatch_archive_files") == 61
    assert ws.value("borgwatch_run_status", status="success") == 1
    assert ws.value("borgwatch_drill_files", result="verified") == 61
    assert ws.value("borgwatch_drill_last_success_timestamp_seconds") > drilled_at
    # and the next run carries that drill on
    time.sleep(1.05)
    assert ws.run().returncode == 0
    assert ws.value("borgwatch_drill_files", result="verified") == 61


def test_a_drill_mismatch_is_a_problem_line_never_the_backups_status(workspace: Workspace) -> None:
    ws = workspace
    with_drill(ws)
    (ws.root / "drilltmp").rmdir()  # the drill cannot make its restore directory: an error of the drill only
    proc = ws.run()
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert any("restore drill error" in line and "drill.temp_dir" in line for line in proc.stderr.splitlines()), \
        proc.stderr
    assert ws.value("borgwatch_run_status", status="success") == 1
    assert ws.value("borgwatch_drill_status", status="error") == 1
    assert ws.value("borgwatch_drill_last_success_timestamp_seconds") is None


def test_status_shows_the_last_drill(workspace: Workspace) -> None:
    ws = workspace
    with_drill(ws)
    assert ws.run().returncode == 0
    table = ws.borgwatch("status", "-c", str(ws.config), check=True)
    lines = table.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("JOB") and "DRILL RESULT" in line)
    assert lines[header + 1].split()[0] == "home" and "success" in lines[header + 1].split()
    assert "60" in lines[header + 1].split() and "100 %" in lines[header + 1]
    data = json.loads(ws.borgwatch("status", "-c", str(ws.config), "--json", check=True).stdout)
    entry = data[0] if isinstance(data, list) else data["home"]
    assert entry["drill"]["status"] == "success" and entry["drill"]["files_verified"] == 60


def test_sigterm_in_the_drill_stage_removes_the_restore_and_records_interrupted(workspace: Workspace) -> None:
    ws = workspace
    (ws.root / "drilltmp").mkdir()
    ws.make_slow(6, DRILL.format(tmp=ws.root / "drilltmp") + "max_bytes = 100000000\n")
    proc = subprocess.Popen([BORGWATCH, "run", "home", "-c", str(ws.config)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not any((ws.root / "drilltmp").iterdir()):  # the drill made its restore directory
        assert proc.poll() is None and time.monotonic() < deadline, "the drill stage never started"
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    assert "Traceback" not in stderr
    assert not list((ws.root / "drilltmp").iterdir())
    assert ws.value("borgwatch_drill_status", status="interrupted") == 1
    assert ws.value("borgwatch_stage_exit_code", stage="create") == 0  # the backup itself was made
