"""Issue #10, the run core: what held only by luck before — similar job names, kill -9, archives
borgwatch did not record, signals around the backup, failing bookkeeping, silent failures. Real borg."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import psutil
import pytest
from helpers.run_checks import assert_one_clear_line, wait_in_progress
from helpers.servers import receiver
from helpers.workspace import BORGWATCH, Workspace, parse_metrics
from test_run_borg import archives, ground_truth

pytestmark = pytest.mark.slow
TEMPLATE_NOW = "{now:%Y-%m-%dT%H:%M:%S.%f}"


def borg_children(ws: Workspace) -> list[psutil.Process]:
    """borg processes working on this workspace's repository (whoever their parent is now)."""
    found = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = p.info["cmdline"] or []
        if any(str(ws.repo) in part for part in cmd) and any("borg" in part for part in cmd[:2]):
            found.append(p)
    return found


def wait_gone(ws: Workspace, timeout: float = 20) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout
    while (left := borg_children(ws)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def two_jobs(ws: Workspace, web_extra: str = "", db_extra: str = "") -> None:
    common = (f'repository = "{ws.repo}"\npaths = ["{ws.src}"]\npassphrase_file = "{ws.root / "pass"}"\n')
    ws.config.write_text(
        f'textfile_dir = "{ws.textfile_dir}"\nstate_dir = "{ws.state_dir}"\nborg = "{ws.borg}"\n'
        f'borg_base_dir = "{ws.root / "base"}"\n'
        f'[jobs.web]\n{common}{web_extra}\n[jobs.web-db]\n{common}{db_extra}\n')


def test_prune_and_baseline_of_a_job_never_take_the_archives_of_a_job_whose_name_extends_it(
        workspace: Workspace) -> None:
    ws = workspace
    two_jobs(ws, web_extra="[jobs.web.prune]\nkeep_last = 1\n")
    for _ in range(2):
        ws.borgwatch("run", "web-db", "-c", str(ws.config), check=True)
    db_archives = archives(ws)
    assert len(db_archives) == 2
    first = ws.borgwatch("run", "web", "-c", str(ws.config), "--json", check=True)
    # web's first run has no previous archive: it was not bootstrapped from web-db's newest one
    assert json.loads(first.stdout)["dataset"]["method"] == "first_backup"
    assert json.loads(first.stdout)["previous_archive"] == ""
    ws.borgwatch("run", "web", "-c", str(ws.config), check=True)
    left = archives(ws)
    assert [a for a in left if a in db_archives] == db_archives  # web's keep_last = 1 left web-db alone
    assert len([a for a in left if a not in db_archives]) == 1


def test_kill_9_takes_borg_with_it_and_the_next_run_reports_the_lost_run(workspace: Workspace) -> None:
    ws = workspace
    ws.make_slow(6)
    proc = subprocess.Popen([BORGWATCH, "run", "home", "-c", str(ws.config)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not any("create" in p.info["cmdline"] for p in borg_children(ws)):
        assert time.monotonic() < deadline and proc.poll() is None, "borg create never ran"
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert wait_gone(ws) == [], "borg outlived borgwatch"
    assert ws.value("borgwatch_run_in_progress") == 1  # what a killed run leaves behind
    status = ws.borgwatch("status", "-c", str(ws.config))
    assert "killed" in status.stdout.splitlines()[1]  # and status says what became of it
    again = ws.run()
    assert again.returncode == 0, again.stderr  # no stale repository lock
    assert len(archives(ws)) == 1  # the killed run committed nothing nobody records
    assert_one_clear_line(again, "previous run", "without recording", "interrupted")
    assert ws.value("borgwatch_run_in_progress") == 0
    assert ws.value("borgwatch_runs_total", status="interrupted") == 1
    assert ws.value("borgwatch_runs_total", status="success") == 1
    assert not (ws.state_dir / "home.running").exists()


def test_an_archive_borgwatch_did_not_record_cannot_fool_the_diff(workspace: Workspace) -> None:
    ws = workspace
    assert ws.run().returncode == 0
    files = sorted(ws.src.rglob("*.bin"))
    for f in files[:20]:  # same size, new content, mtime moved: borg's files cache notices
        f.write_bytes(bytes(b ^ 0x5A for b in f.read_bytes()))
    time.sleep(1.05)
    # an archive of the job that borgwatch never saw (an orphaned borg, a hand-made create): it moves
    # borg's files cache on, and borg says U for the 20 files next time; the job's snapshot still knows them
    host = socket.gethostname()
    assert ws.borg_cmd("create", f"{ws.repo}::{host}-home-{TEMPLATE_NOW}", str(ws.src)).returncode == 0
    for f in files[20:25]:
        f.write_bytes(f.read_bytes() + b"more")
    time.sleep(1.05)
    proc = ws.run("--json")
    assert proc.returncode == 0, proc.stderr
    names = archives(ws)
    truth = ground_truth(ws, names[-3], names[-1])  # against the job's own previous run
    result = json.loads(proc.stdout)
    dataset = result["dataset"]
    # the hand-made create memorized the file job's last run could not (the newest one): only borg knows its
    # key now, so the snapshot cannot pair it and the run falls back to one borg diff, exact
    assert (dataset["exact"], dataset["method"]) == (True, "borg_diff")
    assert {k: dataset[k] for k in truth} == truth == {"added": 0, "modified": 25, "removed": 0}
    assert result["previous_archive"] == names[-3]


def test_sigterm_while_create_waits_for_the_lock_makes_no_archive(workspace: Workspace) -> None:
    ws = workspace
    ws.write_config("lock_wait = 60\n")
    # another borg holds the repository: borg create waits for its lock
    holder = subprocess.Popen([ws.borg, "with-lock", str(ws.repo), "sleep", "15"],
                              env={**os.environ, "BORG_PASSPHRASE": "x", "BORG_BASE_DIR": str(ws.root / "base")},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1)
        proc = subprocess.Popen([BORGWATCH, "run", "home", "-c", str(ws.config)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 20
        while not any("create" in p.cmdline() for p in borg_children(ws) if p.pid != holder.pid):
            assert time.monotonic() < deadline, "borgwatch never started borg create"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        holder.kill()
        holder.wait()
    assert archives(ws) == []
    assert ws.value("borgwatch_dataset_files", change="added") is None  # no diff of an archive never made
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    assert not (ws.state_dir / "home.snapshot.db.new").exists()
    assert "Traceback" not in stderr and stderr.strip(), stderr
    assert ws.value("borgwatch_run_status", status="interrupted") == 1
    assert ws.value("borgwatch_run_in_progress") == 0
    assert "interrupted" in json.loads(ws.borgwatch("status", "-c", str(ws.config), "--json").stdout)[0]["status"]


def test_the_finished_backup_is_recorded_before_a_hanging_ping_and_sigterm_there_keeps_it(
        workspace: Workspace) -> None:
    ws = workspace
    with receiver() as rx:
        rx.mode = "hang"
        ws.write_config(f'[jobs.home.ping]\nsuccess = "{rx.url}/done"\ntimeout = 60\n')
        proc = subprocess.Popen([BORGWATCH, "run", "home", "-c", str(ws.config)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 25  # the receiver holds a request 30 s
        while not (rx.requests and ws.prom.exists()
                   and parse_metrics(ws.prom.read_text()).get(
                       ("borgwatch_run_in_progress", frozenset({("backup_job", "home")}))) == 0):
            assert time.monotonic() < deadline, "the run was not recorded while the ping hung"
            time.sleep(0.05)
        assert ws.value("borgwatch_run_status", status="success") == 1
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=15)
    assert proc.returncode == 128 + signal.SIGTERM
    assert_one_clear_line(proc_like(proc, stderr), "stopped by SIGTERM", "ping", "recorded")
    assert ws.value("borgwatch_run_status", status="success") == 1
    assert ws.value("borgwatch_run_in_progress") == 0
    status = json.loads(ws.borgwatch("status", "-c", str(ws.config), "--json").stdout)[0]
    assert status["status"] == "success" and status["archive"] == archives(ws)[0]


def proc_like(proc: subprocess.Popen[str], stderr: str) -> subprocess.CompletedProcess[str]:
    return subprocess.CompletedProcess(proc.args, proc.returncode or 0, "", stderr)


def test_a_hanging_start_of_run_sink_never_holds_borg_up(workspace: Workspace) -> None:
    ws = workspace
    with receiver() as rx:
        rx.mode = "hang"
        ws.write_config(f'[jobs.home.ping]\nstart = "{rx.url}/start"\ntimeout = 60\n')
        proc = subprocess.Popen([BORGWATCH, "run", "home", "-c", str(ws.config)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 25
        while not (ws.prom.exists() and ws.value("borgwatch_run_in_progress") == 0):
            assert time.monotonic() < deadline, "borg waited for the start-of-run ping"
            time.sleep(0.05)
        # the whole backup ran and was recorded while the start ping still hung
        assert [r.path for r in rx.requests] == ["/start"]
        assert ws.value("borgwatch_run_status", status="success") == 1
        rx.mode = "ok"
        rx.release.set()
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert len(archives(ws)) == 1


def test_a_borg_killed_without_a_word_still_gets_one_line(workspace: Workspace) -> None:
    ws = workspace
    ws.make_slow(4)
    proc = subprocess.Popen([BORGWATCH, "run", "home", "-c", str(ws.config)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    wait_in_progress(ws)
    deadline = time.monotonic() + 30  # the create, not the baseline listing that may run before it
    while not (creates := [p for p in borg_children(ws) if "create" in (p.info["cmdline"] or [])]):
        assert time.monotonic() < deadline, "borg create never started"
        time.sleep(0.05)
    for p in creates:  # the OOM killer's way: SIGKILL, nothing on stderr
        p.kill()
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 137
    assert_one_clear_line(proc_like(proc, stderr), "SIGKILL")
    assert ws.value("borgwatch_run_exit_code") == 137


def test_a_plain_text_borg_error_is_printed(workspace: Workspace) -> None:
    ws = workspace
    ws.write_config(global_extra='hostname = "nas/1"')
    proc = ws.run()
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert 1 <= len(lines) <= 3 and all(line.startswith("borgwatch: ") for line in lines), proc.stderr


def failing_borg(ws: Workspace, fail_when: str) -> Path:
    """The real borg, except that borgwatch's own bookkeeping calls matching ``fail_when`` (a shell
    ``case`` pattern over the arguments) fail like a deleted archive would."""
    script = ws.root / "borg-wrapper"
    script.write_text(f'#!/bin/sh\ncase "$*" in\n  {fail_when}) echo "Archive does not exist" >&2; exit 2 ;;\n'
                      f'esac\nexec {ws.borg} "$@"\n')
    script.chmod(0o755)
    return script


def test_failing_bookkeeping_never_becomes_the_runs_exit_code(workspace: Workspace) -> None:
    ws = workspace
    assert ws.run().returncode == 0
    target = sorted(ws.src.rglob("*.bin"))[0]
    target.write_bytes(bytes(b ^ 0x33 for b in target.read_bytes()))
    time.sleep(1.05)
    (ws.state_dir / "home.snapshot.db").unlink()  # the state was lost: the fallback's borg diff is needed
    wrapper = failing_borg(ws, "diff*")
    ws.config.write_text(ws.config.read_text().replace(f'borg = "{ws.borg}"', f'borg = "{wrapper}"'))
    proc = ws.run()
    assert proc.returncode == 0, proc.stderr
    assert_one_clear_line(proc, "not exact", "borg diff against")
    assert ws.value("borgwatch_run_exit_code") == 0
    assert ws.value("borgwatch_run_status", status="success") == 1
    assert ws.value("borgwatch_dataset_diff_exact") == 0
    assert ws.value("borgwatch_dataset_diff_method", method="none") == 1
    assert ws.value("borgwatch_dataset_files", change="modified") is None  # absent, never a made-up count
    assert ws.value("borgwatch_stage_exit_code", stage="diff") == 2  # the bookkeeping's own signal
    # the snapshot this run made is the next run's baseline: exact again, without borg diff
    ws.config.write_text(ws.config.read_text().replace(f'borg = "{wrapper}"', f'borg = "{ws.borg}"'))
    time.sleep(1.05)
    assert ws.run().returncode == 0
    assert ws.value("borgwatch_dataset_diff_method", method="files_cache") == 1
    assert ws.value("borgwatch_dataset_files", change="unchanged") == 60


def test_without_a_baseline_a_failing_archive_listing_is_not_called_exact(workspace: Workspace) -> None:
    ws = workspace
    assert ws.run().returncode == 0
    (ws.state_dir / "home.snapshot.db").unlink()
    wrapper = failing_borg(ws, "list*")
    ws.config.write_text(ws.config.read_text().replace(f'borg = "{ws.borg}"', f'borg = "{wrapper}"'))
    time.sleep(1.05)
    proc = ws.run()
    assert proc.returncode == 0, proc.stderr
    assert_one_clear_line(proc, "not exact", "cannot list")
    assert ws.value("borgwatch_dataset_diff_exact") == 0
    assert ws.value("borgwatch_run_exit_code") == 0


def test_status_says_when_it_cannot_read_a_state_and_a_textfile_error_is_one_line(workspace: Workspace) -> None:
    ws = workspace
    missing = ws.root / "missing-dir"
    ws.config.write_text(ws.config.read_text().replace(str(ws.textfile_dir), str(missing)))
    proc = ws.run()
    assert proc.returncode == 2
    assert proc.stderr.count("cannot write metrics") == 1, proc.stderr
    (ws.state_dir / "home.json").write_text("{garbage")
    status = ws.borgwatch("status", "-c", str(ws.config))
    assert status.returncode != 0
    assert_one_clear_line(status, "home", "state", "corrupt")
    assert "never" not in status.stdout.splitlines()[1]


def _garbage(db: Path) -> None:
    db.write_bytes(os.urandom(9000))


def _truncated(db: Path) -> None:
    data = db.read_bytes()
    db.write_bytes(data[: len(data) // 3])


def _zeroed_page(db: Path) -> None:
    data = bytearray(db.read_bytes())
    data[4096:8192] = bytes(4096)  # the second page: a table's b-tree
    db.write_bytes(bytes(data))


def _other_schema(db: Path) -> None:
    import sqlite3
    db.unlink()
    with sqlite3.connect(db) as other:
        other.execute("CREATE TABLE meta(k, v, extra)")
        other.execute("CREATE TABLE prev(a TEXT, b TEXT)")
        other.execute("INSERT INTO prev VALUES ('x', 'y')")


def _directory(db: Path) -> None:
    db.unlink()
    db.mkdir()


def _immutable(db: Path) -> None:
    if subprocess.run(["chattr", "+i", str(db)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available here")


@pytest.mark.parametrize("damage", [_garbage, _truncated, _zeroed_page, _other_schema, _directory, _immutable],
                         ids=lambda f: f.__name__.strip("_"))
def test_a_damaged_snapshot_costs_at_most_one_line_never_the_backup(workspace: Workspace, damage) -> None:  # noqa: ANN001
    ws = workspace
    make_more = [ws.src / "d3" / f"extra{i}.bin" for i in range(30)]
    for f in make_more:  # enough rows for several pages
        f.write_bytes(os.urandom(64))
    time.sleep(1.05)
    assert ws.run().returncode == 0
    db = ws.state_dir / "home.snapshot.db"
    damage(db)
    try:
        files = sorted(ws.src.rglob("*.bin"))
        files[0].write_bytes(files[0].read_bytes() + b"grown")
        files[1].unlink()
        time.sleep(1.05)
        proc = ws.run("--json")
        assert proc.returncode == 0, proc.stderr
        if damage in (_directory, _immutable):  # it cannot be replaced: one line says so
            assert_one_clear_line(proc, "dataset snapshot", str(db))
        else:  # unreadable: it is no baseline, and borg diff counts this run
            assert proc.stderr == ""
        assert ws.value("borgwatch_run_status", status="success") == 1
        assert ws.value("borgwatch_run_in_progress") == 0
        dataset = json.loads(proc.stdout)["dataset"]
        names = archives(ws)
        assert dataset["exact"] and dataset["method"] == ("files_cache" if damage is _immutable else "borg_diff")
        truth = ground_truth(ws, names[-2], names[-1])
        assert {k: dataset[k] for k in truth} == truth
    finally:
        subprocess.run(["chattr", "-i", str(db)], capture_output=True)


def test_a_full_state_dir_costs_each_job_one_line_and_the_other_jobs_still_run(workspace: Workspace) -> None:
    ws = workspace
    two_jobs(ws)
    assert ws.borgwatch("run", "--all", "-c", str(ws.config)).returncode == 0
    saved = {p.name: p.read_bytes() for p in ws.state_dir.iterdir() if p.is_file()}
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs", str(ws.state_dir)],
                           capture_output=True, text=True)
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mount.stderr.strip()}")
    try:
        for name, data in saved.items():
            if not name.endswith(".db"):
                (ws.state_dir / name).write_bytes(data)
        fd = os.open(ws.state_dir / "filler", os.O_WRONLY | os.O_CREAT)
        with contextlib.suppress(OSError):  # fill what is left
            while True:
                os.write(fd, b"\0" * 4096)
        os.close(fd)
        for f in sorted(ws.src.rglob("*.bin"))[:3]:
            f.write_bytes(f.read_bytes() + b"grown")
        time.sleep(1.05)
        proc = ws.borgwatch("run", "--all", "-c", str(ws.config))
        assert "Traceback" not in proc.stderr, proc.stderr
        assert proc.returncode != 0
        for job in ("web", "web-db"):
            lines = [line for line in proc.stderr.splitlines() if line.startswith(f"borgwatch: {job}: ")]
            assert lines, proc.stderr
            prom = parse_metrics((ws.textfile_dir / f"borgwatch-{job}.prom").read_text())
            key = frozenset({("backup_job", job)})
            assert prom[("borgwatch_run_in_progress", key)] == 0
            assert prom[("borgwatch_run_status", key | {("status", "success")})] == 1  # the backup was made
        assert len(archives(ws)) == 4  # both jobs ran twice
    finally:
        subprocess.run(["umount", str(ws.state_dir)], capture_output=True)


def test_after_the_last_archive_was_deleted_the_diff_still_compares_with_it(workspace: Workspace) -> None:
    ws = workspace
    assert ws.run().returncode == 0
    for f in sorted(ws.src.rglob("*.bin"))[:10]:
        f.write_bytes(f.read_bytes() + b"grown")
    time.sleep(1.05)
    assert ws.run().returncode == 0
    deleted = archives(ws)[-1]
    assert ws.borg_cmd("delete", f"{ws.repo}::{deleted}").returncode == 0
    time.sleep(1.05)
    proc = ws.run("--json")  # borg's files cache still vouches for the deleted archive's versions
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    # the job's snapshot describes the deleted archive and says so: nothing changed since that run
    assert result["previous_archive"] == deleted
    assert {k: result["dataset"][k] for k in ("added", "modified", "removed", "unchanged", "exact", "method")} == {
        "added": 0, "modified": 0, "removed": 0, "unchanged": 60, "exact": True, "method": "files_cache"}
