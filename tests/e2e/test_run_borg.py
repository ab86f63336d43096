"""`borgwatch run` against real borg: metrics, dataset diff truth, stages, state."""

from __future__ import annotations

import json
import socket
import stat
import subprocess
import time

import pytest
from helpers.workspace import BORGWATCH, PASSPHRASE, Workspace, parse_metrics

import borgwatch

pytestmark = pytest.mark.slow


def ground_truth(ws: Workspace, old: str, new: str) -> dict[str, int]:
    """What borg diff --content-only says about two archives (the definition of the truth)."""
    proc = ws.borg_cmd("diff", "--json-lines", "--content-only", f"{ws.repo}::{old}", new)
    assert proc.returncode == 0, proc.stderr
    counts = {"added": 0, "modified": 0, "removed": 0}
    for line in proc.stdout.splitlines():
        for change in json.loads(line)["changes"]:
            kind = change["type"]
            if kind == "modified" and (change.get("added") or change.get("removed")):
                counts["modified"] += 1
            elif kind in ("added", "removed"):
                counts[kind] += 1
    return counts


def archives(ws: Workspace) -> list[str]:
    proc = ws.borg_cmd("list", "--json", str(ws.repo))
    assert proc.returncode == 0, proc.stderr
    return [a["name"] for a in json.loads(proc.stdout)["archives"]]


def test_first_run_publishes_truthful_metrics(workspace: Workspace) -> None:
    ws = workspace
    proc = ws.run()
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "" and proc.stderr == ""  # quiet when not on a terminal
    m = ws.metrics()
    job = frozenset({("backup_job", "home")})
    assert m[("borgwatch_run_exit_code", job)] == 0
    assert m[("borgwatch_run_status", job | {("status", "success")})] == 1
    assert m[("borgwatch_run_status", job | {("status", "error")})] == 0
    assert m[("borgwatch_run_in_progress", job)] == 0
    assert m[("borgwatch_archive_files", job)] == 60
    assert m[("borgwatch_dataset_files", job | {("change", "added")})] == 60
    assert m[("borgwatch_max_age_seconds", job)] == 26 * 3600
    start, end = m[("borgwatch_run_start_timestamp_seconds", job)], m[("borgwatch_run_end_timestamp_seconds", job)]
    assert 0 < end - start == pytest.approx(m[("borgwatch_run_duration_seconds", job)], abs=1e-3)
    assert m[("borgwatch_last_success_timestamp_seconds", job)] == end
    assert m[("borgwatch_borg_cpu_seconds", job | {("mode", "user")})] > 0
    assert m[("borgwatch_borg_max_rss_bytes", job)] > 10e6
    assert m[("borgwatch_repository_unique_compressed_bytes", job)] > 0
    info = [k for k in m if k[0] == "borgwatch_build_info"]
    assert len(info) == 1 and ("borg_version", ws.borg_cmd("--version").stdout.split()[1]) in info[0][1]
    # the archive really exists and its stats agree with borg's own view
    names = archives(ws)
    assert len(names) == 1
    assert stat.S_IMODE(ws.prom.stat().st_mode) == 0o644
    assert not [p for p in ws.textfile_dir.iterdir() if p.name != ws.prom.name]  # no temp files left


def test_dataset_diff_is_the_truth_against_the_previous_archive(workspace: Workspace) -> None:
    ws = workspace
    assert ws.run().returncode == 0
    first = archives(ws)[0]
    files = sorted(ws.src.rglob("*.bin"))
    files[0].write_bytes(files[0].read_bytes() + b"grown")  # content + size change
    same = files[1].read_bytes()
    files[1].write_bytes(bytes(b ^ 0xFF for b in same))  # same size, new content
    files[2].touch()  # metadata only: borg says M
    files[3].chmod(0o600)  # metadata only: borg says M
    files[4].unlink()
    files[5].unlink()
    (ws.src / "d0" / "new.bin").write_bytes(b"n" * 100)
    # a file that vanished and came back with the same content counts as unchanged, not added
    time.sleep(1.05)
    proc = ws.run()
    assert proc.returncode == 0, proc.stderr
    second = [a for a in archives(ws) if a != first][0]
    truth = ground_truth(ws, first, second)
    assert truth == {"added": 1, "modified": 2, "removed": 2}
    for change, count in {**truth, "unchanged": 60 - 2 - 2, "error": 0}.items():
        assert ws.value("borgwatch_dataset_files", change=change) == count, change
    assert ws.value("borgwatch_dataset_diff_exact") == 1
    assert ws.value("borgwatch_dataset_diff_method", method="files_cache") == 1
    assert ws.value("borgwatch_dataset_diff_method", method="borg_diff") == 0
    assert ws.value("borgwatch_stage_duration_seconds", stage="diff") > 0
    # no change at all: nothing added, nothing modified, whatever borg's files cache says
    time.sleep(1.05)
    assert ws.run().returncode == 0
    assert ws.value("borgwatch_dataset_files", change="unchanged") == 59
    assert ws.value("borgwatch_dataset_files", change="added") == 0
    assert ws.value("borgwatch_dataset_files", change="modified") == 0


def test_fast_is_a_deprecated_alias_of_exact_and_off_drops_the_diff(workspace: Workspace) -> None:
    ws = workspace
    ws.write_config('dataset_diff = "fast"')
    checked = ws.borgwatch("check-config", "-c", str(ws.config))
    assert checked.returncode == 0
    assert [line for line in checked.stderr.splitlines() if "deprecated" in line] == [
        'warning: jobs.home.dataset_diff = "fast" is deprecated: the exact diff costs what borg create costs '
        'now, and the run uses it; write "exact"']
    assert ws.run().returncode == 0
    assert ws.value("borgwatch_dataset_diff_method", method="first_backup") == 1
    files = sorted(ws.src.rglob("*.bin"))
    files[0].touch()  # mtime moved, content did not: fast mode used to call this modified
    time.sleep(1.05)
    proc = ws.run()
    assert proc.returncode == 0 and proc.stderr == ""  # the run itself says nothing about it
    assert ws.value("borgwatch_dataset_files", change="modified") == 0
    assert ws.value("borgwatch_dataset_files", change="unchanged") == 60
    assert ws.value("borgwatch_dataset_diff_exact") == 1
    assert ws.value("borgwatch_dataset_diff_method", method="files_cache") == 1
    ws.write_config('dataset_diff = "off"')
    assert ws.run().returncode == 0
    assert ws.value("borgwatch_dataset_files", change="added") is None
    assert ws.value("borgwatch_stage_exit_code", stage="diff") is None


def test_prune_compact_check_stages(workspace: Workspace) -> None:
    ws = workspace
    ws.write_config("[jobs.home.prune]\nkeep_last = 1\n[jobs.home.compact]\n[jobs.home.check]\n")
    for _ in range(2):
        assert ws.run().returncode == 0
        time.sleep(1.05)
    assert len(archives(ws)) == 1
    assert ws.value("borgwatch_prune_archives", action="pruned") == 1
    assert ws.value("borgwatch_prune_archives", action="kept") == 1
    for stage in ("create", "diff", "prune", "compact", "check"):
        assert ws.value("borgwatch_stage_exit_code", stage=stage) == 0, stage
    check_ts = ws.value("borgwatch_check_last_success_timestamp_seconds")
    assert check_ts and check_ts >= ws.value("borgwatch_run_start_timestamp_seconds")


def test_check_every_skips_until_due_and_keeps_last_success(workspace: Workspace) -> None:
    ws = workspace
    ws.write_config('[jobs.home.check]\nevery = "7d"\n')
    assert ws.run().returncode == 0
    first_check = ws.value("borgwatch_check_last_success_timestamp_seconds")
    assert ws.run().returncode == 0
    assert ws.value("borgwatch_stage_exit_code", stage="check") is None  # skipped: not due
    assert ws.value("borgwatch_check_last_success_timestamp_seconds") == first_check


def test_warning_run_and_warning_policy(workspace: Workspace) -> None:
    ws = workspace
    missing = ws.root / "does-not-exist"
    cfg = ws.config.read_text().replace(f'paths = ["{ws.src}"]', f'paths = ["{ws.src}", "{missing}"]')
    ws.config.write_text(cfg)
    proc = ws.run()
    modern = proc.returncode != 1  # borg 1.2 has no specific codes
    assert proc.returncode == (107 if modern else 1)
    assert "warning" in proc.stderr and "does-not-exist" in proc.stderr and "Traceback" not in proc.stderr
    assert ws.value("borgwatch_run_status", status="warning") == 1
    assert ws.value("borgwatch_log_messages", level="warning") == 1
    assert ws.value("borgwatch_last_success_timestamp_seconds") is not None
    ws.config.write_text(cfg.replace('max_age = "26h"', 'max_age = "26h"\nwarnings = "success"'))
    assert ws.run().returncode == 0
    ws.config.write_text(cfg.replace('max_age = "26h"', 'max_age = "26h"\nwarnings = "error"'))
    before = ws.value("borgwatch_last_success_timestamp_seconds")
    assert ws.run().returncode == 2
    assert ws.value("borgwatch_last_success_timestamp_seconds") == before


def test_in_progress_is_written_at_start_with_last_values_kept(workspace: Workspace) -> None:
    ws = workspace
    assert ws.run().returncode == 0
    archive_files = ws.value("borgwatch_archive_files")
    ws.make_slow(4)
    run = subprocess.Popen([BORGWATCH, "run", "home", "-c", str(ws.config)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seen = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and run.poll() is None:
        m = parse_metrics(ws.prom.read_text())
        if m.get(("borgwatch_run_in_progress", frozenset({("backup_job", "home")}))) == 1:
            seen = m
            break
        time.sleep(0.05)
    assert run.wait(timeout=300) == 0
    assert seen is not None, "in_progress=1 was never visible"
    assert seen[("borgwatch_archive_files", frozenset({("backup_job", "home")}))] == archive_files
    assert ws.value("borgwatch_run_in_progress") == 0


def test_corrupt_state_is_a_warning_and_a_fresh_start(workspace: Workspace) -> None:
    ws = workspace
    assert ws.run().returncode == 0
    (ws.state_dir / "home.json").write_text("{not json")
    time.sleep(1.05)
    proc = ws.run()
    assert proc.returncode == 0
    assert "corrupt" in proc.stderr and "starting fresh" in proc.stderr and "Traceback" not in proc.stderr
    assert ws.value("borgwatch_runs_total", status="success") == 1
    # the baseline is rebuilt from the newest archive: files already backed up are not "added"
    assert ws.value("borgwatch_dataset_files", change="added") == 0
    assert ws.value("borgwatch_dataset_files", change="unchanged") == 60


def test_first_borgwatch_run_on_an_existing_repository_uses_its_newest_archive(workspace: Workspace) -> None:
    ws = workspace
    host = socket.gethostname()
    # made by hand, named like the job's archives (an archive named otherwise is not the job's)
    made = ws.borg_cmd("create", f"{ws.repo}::{host}-home-{{now:%Y-%m-%dT%H:%M:%S.%f}}", str(ws.src))
    assert made.returncode == 0, made.stderr
    sorted(ws.src.rglob("*.bin"))[0].unlink()
    (ws.src / "d1" / "fresh.bin").write_bytes(b"x" * 10)
    time.sleep(1.05)
    assert ws.run().returncode == 0
    assert ws.value("borgwatch_dataset_files", change="added") == 1
    assert ws.value("borgwatch_dataset_files", change="removed") == 1
    assert ws.value("borgwatch_dataset_files", change="unchanged") == 59
    assert ws.value("borgwatch_dataset_diff_method", method="borg_diff") == 1  # no snapshot yet: borg diff
    assert json.loads(ws.borgwatch("status", "-c", str(ws.config), "--json").stdout)[0]["status"] == "success"


def test_status_and_json_output(workspace: Workspace) -> None:
    ws = workspace
    proc = ws.run("--json")
    assert proc.returncode == 0
    summary = json.loads(proc.stdout)
    assert summary["status"] == "success" and summary["archive"]["files"] == 60
    assert summary["dataset"]["added"] == 60 and "events" not in summary
    status = ws.borgwatch("status", "-c", str(ws.config), "--json", check=True)
    (row,) = json.loads(status.stdout)
    assert row["job"] == "home" and row["status"] == "success" and row["running"] is False
    assert (row["dataset"]["added"], row["dataset"]["method"], row["dataset"]["exact"]) == (60, "first_backup", True)
    assert row["last_success_at"] == pytest.approx(summary["ended_at"])
    table = ws.borgwatch("status", "-c", str(ws.config), check=True).stdout
    assert table.splitlines()[0].startswith("JOB") and "success" in table and "+60/~0/-0" in table


def test_exec_wraps_a_users_borg_command(workspace: Workspace) -> None:
    ws = workspace
    env = {"BORG_PASSPHRASE": PASSPHRASE, "BORG_BASE_DIR": str(ws.root / "base")}
    proc = ws.borgwatch("exec", "manual", "-c", str(ws.config), "--", ws.borg, "create", "--json",
                        f"{ws.repo}::manual-1", str(ws.src), env=env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["archive"]["name"] == "manual-1"  # borg's stdout passes through
    m = parse_metrics((ws.textfile_dir / "borgwatch-manual.prom").read_text())
    job = frozenset({("backup_job", "manual")})
    assert m[("borgwatch_stage_exit_code", job | {("stage", "create")})] == 0
    assert m[("borgwatch_archive_files", job)] == 60
    version = subprocess.run([ws.borg, "--version"], capture_output=True, text=True).stdout.split()[-1]
    assert m[("borgwatch_build_info", job | {("version", borgwatch.__version__), ("borg_version", version)})] == 1
    bad = ws.borgwatch("exec", "manual", "-c", str(ws.config), "--", ws.borg, "list", f"{ws.repo}::nope",
                       env=env)
    assert bad.returncode != 0
    m = parse_metrics((ws.textfile_dir / "borgwatch-manual.prom").read_text())
    assert m[("borgwatch_run_status", job | {("status", "error")})] == 1
    assert m[("borgwatch_last_success_timestamp_seconds", job)] > 0  # kept from the create


def test_demo_command(tmp_path) -> None:  # noqa: ANN001
    proc = subprocess.run([BORGWATCH, "demo", "--workdir", str(tmp_path)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    m = parse_metrics((tmp_path / "textfile" / "borgwatch-demo.prom").read_text())
    job = frozenset({("backup_job", "demo")})
    assert m[("borgwatch_dataset_files", job | {("change", "added")})] == 1
    assert m[("borgwatch_dataset_files", job | {("change", "modified")})] == 1
    assert m[("borgwatch_dataset_files", job | {("change", "removed")})] == 1
    assert m[("borgwatch_dataset_files", job | {("change", "unchanged")})] == 198


def test_without_a_snapshot_one_borg_diff_counts_hard_links_by_name_then_the_files_cache_takes_over(
        workspace: Workspace) -> None:
    ws = workspace
    host = socket.gethostname()
    linked = ws.src / "linked-a.bin"
    linked.write_bytes(b"x" * 3000)
    (ws.src / "linked-b.bin").hardlink_to(linked)
    assert ws.borg_cmd("create", f"{ws.repo}::{host}-home-{{now:%Y-%m-%dT%H:%M:%S.%f}}", str(ws.src)).returncode == 0
    target = sorted(ws.src.rglob("f*.bin"))[0]
    target.write_bytes(bytes(b ^ 0x55 for b in target.read_bytes()))  # same size, new content
    linked.write_bytes(b"y" * 3000)  # same size, new content, seen through both names
    time.sleep(1.05)
    proc = ws.run("--json")
    assert proc.returncode == 0, proc.stderr
    dataset = json.loads(proc.stdout)["dataset"]
    assert (dataset["modified"], dataset["unchanged"], dataset["added"]) == (3, 59, 0), str(dataset)
    assert (dataset["method"], dataset["exact"]) == ("borg_diff", True)
    new, old = archives(ws)[-1], archives(ws)[0]
    assert ground_truth(ws, old, new)["modified"] == 3
    linked.write_bytes(b"z" * 3000)
    time.sleep(1.05)
    dataset = json.loads(ws.run("--json").stdout)["dataset"]
    assert (dataset["modified"], dataset["unchanged"], dataset["method"]) == (2, 60, "files_cache"), str(dataset)
