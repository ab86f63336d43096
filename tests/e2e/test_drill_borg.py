"""Issue #13, restore drills against real borg (1.4 from the venv; 1.2.4 with BORGWATCH_TEST_BORG; 2.0.0b23
through the ``workspace2`` fixture): what a drill verifies, what it must not call a mismatch, repository
damage, the job lock, SIGTERM, coverage over repeated drills."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import time
from pathlib import Path

import psutil
import pytest
from helpers.run_checks import assert_one_clear_line
from helpers.workspace import BORGWATCH, PASSPHRASE, Workspace, parse_metrics
from test_run_robust import borg_children

pytestmark = pytest.mark.slow


def drill_config(ws: Workspace, **settings: object) -> Path:
    """ws.config plus a [jobs.home.drill] table (restores go to ws.root/drilltmp, so leftovers show)."""
    (ws.root / "drilltmp").mkdir(exist_ok=True)
    table = {"temp_dir": str(ws.root / "drilltmp"), **settings}
    lines = [f"{k} = {json.dumps(v)}" for k, v in table.items()]
    path = ws.root / "drill.toml"
    path.write_text(ws.config.read_text() + "\n[jobs.home.drill]\n" + "\n".join(lines) + "\n")
    return path


def drill(ws: Workspace, config: Path, *extra: str, **kw) -> subprocess.CompletedProcess[str]:  # noqa: ANN003
    return ws.borgwatch("drill", "home", "-c", str(config), *extra, **kw)


def drill_json(ws: Workspace, config: Path) -> tuple[subprocess.CompletedProcess[str], dict]:
    proc = drill(ws, config, "--json")
    return proc, json.loads(proc.stdout)[0]


def tree_files(ws: Workspace) -> dict[str, int]:
    return {str(p): p.stat().st_size for p in ws.src.rglob("*") if p.is_file()}


def damage_largest_file(ws: Workspace) -> None:
    """Overwrite bytes in the middle of the repository's largest data file (a borg 1.x segment, a borg 2
    pack): a data chunk of the largest source file."""
    data = [p for p in ws.repo.rglob("*") if p.is_file() and p.parent.parent.name in ("data", "packs")]
    largest = max(data, key=lambda p: p.stat().st_size)
    with open(largest, "r+b") as fh:
        fh.seek(largest.stat().st_size // 2)
        fh.write(b"\xde\xad\xbe\xef" * 64)


def test_clean_drill_restores_and_verifies_every_sampled_file(workspace: Workspace) -> None:
    ws = workspace
    ws.run(check=True)
    config = drill_config(ws, sample_percent=100, max_files=1000)
    proc, result = drill_json(ws, config)
    assert proc.returncode == 0, proc.stderr
    files = tree_files(ws)
    assert result["status"] == "success"
    assert result["archive_files"] == result["files_verified"] == len(files) == 60
    assert result["bytes_verified"] == sum(files.values()) == result["archive_bytes"]
    assert result["files_mismatched"] == result["files_unreadable"] == 0
    assert result["coverage_ratio"] == 1.0
    assert result["throughput_bytes_per_second"] > 0 and result["rto_seconds"] > 0
    m = ws.metrics()
    job = ("backup_job", "home")
    assert m[("borgwatch_drill_status", frozenset({job, ("status", "success")}))] == 1
    assert m[("borgwatch_drill_files", frozenset({job, ("result", "verified")}))] == 60
    assert m[("borgwatch_drill_last_success_timestamp_seconds", frozenset({job}))] == result["ended_at"]
    # the run's series stay in the same file
    assert m[("borgwatch_run_status", frozenset({job, ("status", "success")}))] == 1
    assert list((ws.root / "drilltmp").iterdir()) == []
    record = ws.state_dir / "home.drill.json"
    assert stat.S_IMODE(record.stat().st_mode) == 0o600
    assert json.loads(record.read_text())["seed"] == result["seed"]


def test_a_file_edited_or_deleted_after_the_backup_is_not_a_mismatch(workspace: Workspace) -> None:
    ws = workspace
    ws.run(check=True)
    edited = ws.src / "d1" / "f1.bin"
    edited.write_bytes(b"edited after the backup")
    (ws.src / "d2" / "f2.bin").unlink()
    config = drill_config(ws, sample_percent=100, max_files=1000)
    proc, result = drill_json(ws, config)
    assert proc.returncode == 0, proc.stderr
    assert result["status"] == "success"
    assert result["files_verified"] == 60 and result["files_mismatched"] == 0


@pytest.mark.parametrize("fixture", ["workspace", "workspace2"])  # borg 1.x (segments), borg 2 (packs)
def test_repository_damage_fails_the_drill_naming_the_damaged_file(fixture: str,
                                                                   request: pytest.FixtureRequest) -> None:
    ws: Workspace = request.getfixturevalue(fixture)
    (ws.src / "big.bin").write_bytes(os.urandom(3_000_000))
    time.sleep(3.1)  # files changed within 3 s (borg 2; 1 s for 1.x) before a backup are not cached
    ws.run(check=True)
    damage_largest_file(ws)
    config = drill_config(ws, sample_percent=100, max_files=1000, max_bytes=50_000_000)
    proc = drill(ws, config)
    assert proc.returncode == 2, proc.stderr
    assert_one_clear_line(proc, "big.bin", "borg")
    assert "drill home: failed" in proc.stdout
    assert ws.value("borgwatch_drill_status", status="failed") == 1
    bad = ws.value("borgwatch_drill_files", result="unreadable") + ws.value("borgwatch_drill_files",
                                                                            result="mismatched")
    assert bad >= 1
    assert ws.value("borgwatch_drill_files", result="verified") >= 1  # the rest was checked
    assert list((ws.root / "drilltmp").iterdir()) == []
    record = (ws.state_dir / "home.drill.json").read_text()
    assert "big.bin" in record and PASSPHRASE not in proc.stdout + proc.stderr + record + ws.prom.read_text()


def test_a_drill_during_a_running_backup_of_the_job_is_refused(workspace: Workspace) -> None:
    ws = workspace
    ws.make_slow(6)
    config = drill_config(ws)
    run = subprocess.Popen([BORGWATCH, "run", "home", "-c", str(ws.config)], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not any("create" in p.info["cmdline"] for p in borg_children(ws)):
            assert time.monotonic() < deadline and run.poll() is None, "borg create never ran"
            time.sleep(0.05)
        proc = drill(ws, config)
        assert proc.returncode == 75, proc.stderr
        assert_one_clear_line(proc, "home", "already running")
        assert not (ws.state_dir / "home.drill.json").exists()
    finally:
        assert run.wait(timeout=300) == 0
    assert "borgwatch_drill_status" not in ws.prom.read_text()


def test_sigterm_mid_drill_stops_borg_and_leaves_no_temporary_files(workspace: Workspace) -> None:
    ws = workspace
    ws.make_slow(6)
    ws.run(check=True)
    config = drill_config(ws, sample_percent=100, max_files=1000, max_bytes=200_000_000)
    proc = subprocess.Popen([BORGWATCH, "drill", "home", "-c", str(config)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not any("extract" in p.info["cmdline"] for p in borg_children(ws)):
        assert time.monotonic() < deadline and proc.poll() is None, "borg extract never ran"
        time.sleep(0.02)
    assert list((ws.root / "drilltmp").iterdir())  # the restore is under way in its private directory
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert list((ws.root / "drilltmp").iterdir()) == []
    assert not [p for p in borg_children(ws) if p.status() != psutil.STATUS_ZOMBIE]
    record = json.loads((ws.state_dir / "home.drill.json").read_text())
    assert record["status"] == "interrupted"
    assert ws.value("borgwatch_drill_status", status="interrupted") == 1


def test_coverage_grows_over_repeated_drills_and_reaches_the_whole_tree(workspace: Workspace) -> None:
    ws = workspace
    ws.run(check=True)
    config = drill_config(ws, sample_percent=25)
    seen: list[float] = []
    while not seen or seen[-1] < 1.0:
        proc, result = drill_json(ws, config)
        assert proc.returncode == 0, proc.stderr
        assert result["files_verified"] == 15  # 25 % of 60
        seen.append(result["coverage_ratio"])
        assert len(seen) <= 6, seen
    assert seen == sorted(seen) and len(set(seen)) == len(seen), seen  # every drill covered new files
    assert parse_metrics(ws.prom.read_text())[
        ("borgwatch_drill_coverage_ratio", frozenset({("backup_job", "home")}))] == 1.0


def test_borg2_drill_stage_and_drill_verify_the_newest_archive_of_the_series(workspace2: Workspace) -> None:
    ws = workspace2
    (ws.root / "drilltmp").mkdir()
    ws.write_config(f'[jobs.home.drill]\nevery = "7d"\nsample_percent = 100\nmax_files = 1000\n'
                    f'temp_dir = "{ws.root / "drilltmp"}"\n')
    first = ws.run()
    assert first.returncode == 0, first.stderr
    assert ws.value("borgwatch_stage_exit_code", stage="drill") == 0  # the drill stage runs with borg 2
    assert ws.value("borgwatch_drill_files", result="verified") == 60
    (ws.src / "d0" / "new.bin").write_bytes(b"n" * 1000)
    (ws.src / "d1" / "f1.bin").write_bytes(b"edited after the backup")
    time.sleep(1.05)
    assert ws.run().returncode == 0
    (ws.src / "d2" / "f2.bin").write_bytes(b"edited after the second backup")
    proc, result = drill_json(ws, ws.config)
    assert proc.returncode == 0, proc.stderr
    assert result["status"] == "success" and result["files_mismatched"] == result["files_unreadable"] == 0
    assert result["archive_files"] == result["files_verified"] == 61  # the newest archive of the series
    assert "aid:" in result["archive"] and result["coverage_ratio"] == 1.0
    assert ws.value("borgwatch_drill_status", status="success") == 1
    assert list((ws.root / "drilltmp").iterdir()) == []
