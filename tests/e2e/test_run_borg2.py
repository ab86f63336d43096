"""`borgwatch run` against the real borg 2.0.0b23 (the ``workspace2`` fixture skips when it is absent):
first run, incremental, prune/compact/check, wrong passphrase, missing repository, lock timeout,
SIGTERM, and a textfile node_exporter and promtool accept."""

from __future__ import annotations

import json
import os
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

from borgwatch.borg.exitcodes import LOCK_TIMEOUT_RC
from borgwatch.metrics.specs import BORG2_ABSENT

pytestmark = pytest.mark.slow

def series(ws: Workspace) -> list[dict[str, str]]:
    done = ws.borg_cmd("repo-list", "-r", str(ws.repo), "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["archives"]


def test_first_and_incremental_run_publish_borg2_metrics(workspace2: Workspace) -> None:
    ws = workspace2
    first = ws.run()
    assert first.returncode == 0, first.stderr
    assert first.stderr == ""  # the dataset diff is on for 2.0.0b23: no line says it is off
    assert ws.value("borgwatch_run_status", status="success") == 1
    assert ws.value("borgwatch_archive_files") == 60
    assert ws.value("borgwatch_archive_compressed_bytes") is None  # borg 2 does not report it: absent, not 0
    assert ws.value("borgwatch_dataset_files", change="added") == 60
    assert ws.value("borgwatch_dataset_diff_method", method="first_backup") == 1
    written = {name for name, _ in ws.metrics()}
    absent = {name for name, why in BORG2_ABSENT.items() if why.startswith("absent")}
    assert absent and not absent & written  # docs/metrics.md says what borg 2 leaves absent: it is
    (ws.src / "d0" / "new.bin").write_bytes(b"x" * 100)
    time.sleep(1.05)
    second = ws.run()
    assert second.returncode == 0, second.stderr
    assert ws.value("borgwatch_archive_files") == 61
    assert ws.value("borgwatch_dataset_diff_method", method="files_cache") == 1
    assert ws.value("borgwatch_dataset_files", change="added") == 1
    assert ws.value("borgwatch_dataset_files", change="unchanged") == 60
    assert ws.value("borgwatch_last_success_timestamp_seconds") == ws.value("borgwatch_run_end_timestamp_seconds")
    archives = series(ws)
    assert len(archives) == 2 and len({a["name"] for a in archives}) == 1  # one series, two archives
    assert archives[0]["name"].endswith("-home")
    info = [k for k in ws.metrics() if k[0] == "borgwatch_build_info"]
    assert ("borg_version", "2.0.0b23") in info[0][1]


def test_prune_compact_check_stages_with_borg2(workspace2: Workspace) -> None:
    ws = workspace2
    ws.write_config('dataset_diff = "off"\n[jobs.home.prune]\nkeep_last = 1\n[jobs.home.compact]\n'
                    '[jobs.home.check]\n')
    for _ in range(2):
        proc = ws.run()
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr == ""  # borg 2's "Done. Run borg compact" advice is no warning; diff off: no line
        time.sleep(1.05)
    assert len(series(ws)) == 1
    assert ws.value("borgwatch_prune_archives", action="pruned") == 1
    assert ws.value("borgwatch_prune_archives", action="kept") == 1
    for stage in ("create", "prune", "compact", "check"):
        assert ws.value("borgwatch_stage_exit_code", stage=stage) == 0, stage
    assert ws.value("borgwatch_run_warnings") in (None, 0)
    assert ws.value("borgwatch_check_last_success_timestamp_seconds") >= ws.value(
        "borgwatch_run_start_timestamp_seconds")


def test_prune_of_a_borg2_series_never_touches_another_jobs_series(workspace2: Workspace) -> None:
    ws = workspace2
    ws.write_config('dataset_diff = "off"\n[jobs.home.prune]\nkeep_last = 1\n')
    assert ws.run().returncode == 0
    mine = series(ws)[0]["name"]
    other = ws.borg_cmd("create", "-r", str(ws.repo), f"{mine}-db", str(ws.src))
    assert other.returncode == 0, other.stderr
    assert ws.run().returncode == 0
    assert sorted(a["name"] for a in series(ws)) == [mine, f"{mine}-db"]
    assert ws.value("borgwatch_prune_archives", action="pruned") == 1


def test_wrong_passphrase_with_borg2(workspace2: Workspace) -> None:
    ws = workspace2
    (ws.root / "pass").write_text("not-the-passphrase-5e1d\n")
    proc = ws.run()
    assert proc.returncode == 52
    assert_one_clear_line(proc, "assphrase", "incorrect")
    assert ws.value("borgwatch_run_status", status="error") == 1
    assert ws.value("borgwatch_last_success_timestamp_seconds") is None
    everything = all_output_and_files(ws, proc)
    assert "not-the-passphrase-5e1d" not in everything and PASSPHRASE not in everything


def test_missing_repository_with_borg2(workspace2: Workspace) -> None:
    ws = workspace2
    ws.write_config(repository=str(ws.root / "no-such-repo"))
    proc = ws.run()
    assert proc.returncode == 13
    assert_one_clear_line(proc, "does not exist")
    assert ws.value("borgwatch_stage_exit_code", stage="create") == 13
    assert ws.value("borgwatch_run_status", status="error") == 1


def test_lock_timeout_with_borg2(workspace2: Workspace) -> None:
    ws = workspace2
    ws.write_config("lock_wait = 1\n")
    holder = subprocess.Popen([ws.borg, "with-lock", "-r", str(ws.repo), "sleep", "30"],
                              env={**os.environ, "BORG_PASSPHRASE": PASSPHRASE,
                                   "BORG_BASE_DIR": str(ws.root / "base")},
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(2)  # borg with-lock has taken the lock
        proc = ws.run()
    finally:
        holder.terminate()
        holder.wait(timeout=30)
    assert proc.returncode == LOCK_TIMEOUT_RC, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.strip()
    assert ws.value("borgwatch_run_status", status="error") == 1
    assert ws.value("borgwatch_stage_exit_code", stage="create") == LOCK_TIMEOUT_RC


def test_sigterm_mid_borg2_run_is_recorded_as_interrupted(workspace2: Workspace) -> None:
    ws = workspace2
    ws.make_slow(6, 'dataset_diff = "off"\n[jobs.home.prune]\nkeep_last = 1\n')
    proc = subprocess.Popen([BORGWATCH, "run", "home", "-c", str(ws.config)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    wait_in_progress(ws)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    assert "Traceback" not in stderr
    assert ws.value("borgwatch_run_status", status="interrupted") == 1
    assert ws.value("borgwatch_stage_exit_code", stage="prune") is None
    ws.write_config('dataset_diff = "off"\n')
    again = ws.run()
    assert again.returncode == 0, again.stderr  # no borg left holding the lock


def test_node_exporter_and_promtool_accept_a_borg2_textfile(workspace2: Workspace, node_exporter) -> None:  # noqa: ANN001
    scrape = scrape_a_run(workspace2, node_exporter)
    assert scrape.samples[("borgwatch_archive_files", frozenset({("backup_job", "home")}))] == 60
    assert_promtool_accepts(scrape.text)


def test_check_config_warns_about_keep_rules_borg2_lacks(workspace2: Workspace) -> None:
    ws = workspace2
    ws.write_config('[jobs.home.prune]\nkeep_last = 3\nkeep_within = "2d"\n')
    proc = ws.borgwatch("check-config", "-c", str(ws.config))
    assert proc.returncode == 0, proc.stderr
    assert_one_clear_line(proc, "warning: jobs.home.prune.keep_last", "2.0.0b23")
    ws.write_config('[jobs.home.prune]\nkeep_within = "2d"\n')
    assert ws.borgwatch("check-config", "-c", str(ws.config)).stderr == ""
