"""Honest behaviour under trouble, with real borg: one clear line, non-zero exit, truthful metrics,
no traceback, no secret anywhere."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest
from helpers.run_checks import (
    all_output_and_files,
    assert_one_clear_line,
    assert_promtool_accepts,
    scrape_a_run,
    wait_in_progress,
)
from helpers.workspace import BORGWATCH, PASSPHRASE, Workspace

pytestmark = pytest.mark.slow


def test_wrong_passphrase(workspace: Workspace) -> None:
    ws = workspace
    (ws.root / "pass").write_text("not-the-passphrase-91c2\n")
    proc = ws.run()
    assert proc.returncode in (52, 2)  # 52 PassphraseWrong (modern), 2 on borg 1.2
    assert_one_clear_line(proc, "assphrase", "incorrect")
    assert ws.value("borgwatch_run_status", status="error") == 1
    assert ws.value("borgwatch_run_exit_code") == proc.returncode
    assert ws.value("borgwatch_last_success_timestamp_seconds") is None
    assert ws.value("borgwatch_run_in_progress") == 0
    everything = all_output_and_files(ws, proc)
    assert "not-the-passphrase-91c2" not in everything and PASSPHRASE not in everything


def test_missing_repository(workspace: Workspace) -> None:
    ws = workspace
    ws.write_config(repository=str(ws.root / "no-such-repo"))
    proc = ws.run()
    assert proc.returncode in (13, 2)
    assert_one_clear_line(proc, "does not exist")
    assert ws.value("borgwatch_stage_exit_code", stage="create") == proc.returncode
    assert ws.value("borgwatch_run_status", status="error") == 1


def test_borg_missing(workspace: Workspace) -> None:
    ws = workspace
    ws.config.write_text(ws.config.read_text().replace(f'borg = "{ws.borg}"', 'borg = "/nonexistent/borg"'))
    proc = ws.run()
    assert proc.returncode == 2
    assert_one_clear_line(proc, "borg binary", "not found", "install borgbackup")
    assert ws.value("borgwatch_run_status", status="error") == 1  # failure metrics still written


def test_unwritable_textfile_dir_still_backs_up_and_says_so(workspace: Workspace) -> None:
    ws = workspace
    ws.config.write_text(ws.config.read_text().replace(str(ws.textfile_dir), str(ws.root / "missing-dir")))
    proc = ws.run()
    assert proc.returncode == 2
    assert_one_clear_line(proc, "cannot write metrics to", "missing-dir", "writable")
    listing = ws.borg_cmd("list", "--short", str(ws.repo))
    assert len(listing.stdout.split()) == 1  # the backup itself was made
    status = ws.borgwatch("status", "-c", str(ws.config), "--json", check=True)
    assert '"status": "success"' in status.stdout  # state is truthful about the backup


def test_passphrase_from_env_and_command_never_leak(workspace: Workspace) -> None:
    ws = workspace
    cfg = ws.config.read_text().replace(f'passphrase_file = "{ws.root / "pass"}"', 'passphrase_env = "MY_PASS"')
    ws.config.write_text(cfg)
    missing = ws.run()
    assert missing.returncode == 2 and "MY_PASS" in missing.stderr and "not set" in missing.stderr
    ok = ws.run(env={"MY_PASS": PASSPHRASE})
    assert ok.returncode == 0, ok.stderr
    ws.config.write_text(cfg.replace('passphrase_env = "MY_PASS"', f'passcommand = "echo {PASSPHRASE}x"'))
    bad = ws.run()
    assert bad.returncode != 0
    assert PASSPHRASE not in all_output_and_files(ws, bad)


def test_concurrent_run_is_refused_quickly_and_leaves_the_running_job_alone(workspace: Workspace) -> None:
    ws = workspace
    ws.make_slow(3)
    first = subprocess.Popen([BORGWATCH, "run", "home", "-c", str(ws.config)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    wait_in_progress(ws)
    before = ws.prom.read_bytes()
    t0 = time.monotonic()
    second = ws.run()
    elapsed = time.monotonic() - t0
    assert second.returncode == 75
    assert_one_clear_line(second, "already running", "refused")
    assert elapsed < 5
    assert ws.prom.read_bytes() == before  # the running job's metrics were not touched
    assert first.wait(timeout=300) == 0
    assert ws.value("borgwatch_run_status", status="success") == 1


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_mid_run_is_forwarded_and_recorded_as_interrupted(workspace: Workspace, signum: int) -> None:
    ws = workspace
    ws.make_slow(6, '[jobs.home.prune]\nkeep_last = 1\n')
    proc = subprocess.Popen([BORGWATCH, "run", "home", "-c", str(ws.config)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    wait_in_progress(ws)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, stderr
    assert "Traceback" not in stderr
    assert ws.value("borgwatch_run_status", status="interrupted") == 1
    assert ws.value("borgwatch_run_in_progress") == 0
    assert ws.value("borgwatch_last_success_timestamp_seconds") is None
    assert ws.value("borgwatch_stage_exit_code", stage="prune") is None  # nothing ran after the signal
    # no borg left behind holding the lock: a new run works
    ws.write_config()
    time.sleep(0.5)
    again = ws.run()
    assert again.returncode == 0, again.stderr


def test_invalid_config_writes_nothing(workspace: Workspace) -> None:
    ws = workspace
    ws.config.write_text(ws.config.read_text() + "\nbogus = 1\n")
    proc = ws.run()
    assert proc.returncode == 78
    assert_one_clear_line(proc, str(ws.config), "bogus", "unknown key")
    assert not ws.prom.exists()


def test_unknown_job(workspace: Workspace) -> None:
    proc = workspace.borgwatch("run", "nope", "-c", str(workspace.config))
    assert proc.returncode == 78 and "job 'nope' is not in" in proc.stderr


def test_node_exporter_scrapes_the_textfile_and_promtool_accepts_it(workspace: Workspace, node_exporter) -> None:  # noqa: ANN001
    scrape = scrape_a_run(workspace, node_exporter, umask=0o077)  # a strict umask must not hide the file
    job = ("backup_job", "home")
    assert scrape.samples[("borgwatch_run_status", frozenset({job, ("status", "success")}))] == 1
    assert scrape.samples[("borgwatch_archive_files", frozenset({job}))] == 60
    assert_promtool_accepts(scrape.text)
