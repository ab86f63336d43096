"""The run session and its verdict rules, driven by a stand-in borg (tests/data/fakeborg) that replays
streams recorded from borg 1.4: exit status, warning policy, stage skipping, signals, the event cap."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from helpers.servers import receiver
from helpers.workspace import BORGWATCH, ROOT, parse_metrics

from borgwatch.borg.env import BorgEnv
from borgwatch.borg.events import LogMessage
from borgwatch.borg.feature import DEFAULT
from borgwatch.config.load import load_config
from borgwatch.model import RunEvent, RunResult, Stage, Status
from borgwatch.redact import Redactor
from borgwatch.run.lifecycle import StopForwarder
from borgwatch.run.plan import plan_job
from borgwatch.run.session import run_job
from borgwatch.run.stages import MAX_EVENTS, StageContext, StageRunner
from borgwatch.store.state import load_state

FAKEBORG = ROOT / "tests" / "data" / "fakeborg"


class Fake:
    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = root
        self.calls = root / "calls.jsonl"
        self.plan_file = root / "plan.json"
        self.config = root / "c.toml"
        self.state = root / "state"
        self.textfile = root / "textfile"
        self.textfile.mkdir()
        (root / "src").mkdir()
        self.env = {"FAKEBORG_CALLS": str(self.calls), "FAKEBORG_PLAN": str(self.plan_file)}
        for key, value in self.env.items():
            monkeypatch.setenv(key, value)
        self.plan()
        self.write()

    def plan(self, **steps: object) -> None:
        self.plan_file.write_text(json.dumps(steps))
        self.calls.unlink(missing_ok=True)

    def write(self, job_extra: str = 'dataset_diff = "off"', tables: str = "[jobs.home.prune]\nkeep_last = 1\n"
              "[jobs.home.compact]\n[jobs.home.check]\n", global_extra: str = "") -> None:
        self.config.write_text(
            f'textfile_dir = "{self.textfile}"\nstate_dir = "{self.state}"\nborg = "{FAKEBORG}"\n{global_extra}\n'
            f'[jobs.home]\nrepository = "/nowhere/repo"\npaths = ["{self.root / "src"}"]\n'
            f'{job_extra}\n{tables}')

    def run(self) -> tuple[int, RunResult]:
        outcome = run_job(load_config(str(self.config)), "home")
        return outcome.exit_code, outcome.result

    def commands(self) -> list[str]:
        return [json.loads(line)[0] for line in self.calls.read_text().splitlines()] if self.calls.exists() else []

    def metric(self, name: str, **labels: str) -> float | None:
        m = parse_metrics((self.textfile / "borgwatch-home.prom").read_text())
        return m.get((name, frozenset({"backup_job": "home", **labels}.items())))


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Fake:
    return Fake(tmp_path, monkeypatch)


def statuses(result: RunResult) -> dict[str, str]:
    return {s.name: s.status for s in result.stages}


def test_a_successful_run_runs_every_stage_in_order(fake: Fake) -> None:
    code, result = fake.run()
    assert code == 0 and result.status == Status.SUCCESS
    assert fake.commands() == ["create", "prune", "compact", "check"]
    assert statuses(result) == {"create": "success", "prune": "success", "compact": "success", "check": "success"}
    assert result.archive_name == "home-1" and result.prune is not None and result.prune.kept == 1
    assert fake.metric("borgwatch_run_exit_code") == 0


@pytest.mark.parametrize(("policy", "exit_code", "fresh"), [("warning", 1, True), ("success", 0, True),
                                                            ("error", 2, False)])
def test_the_warning_policy_decides_the_exit_status(fake: Fake, policy: str, exit_code: int, fresh: bool) -> None:
    fake.plan(create="create-warning")
    fake.write(job_extra=f'warnings = "{policy}"\ndataset_diff = "off"')
    code, result = fake.run()
    assert (code, result.status, result.exit_code) == (exit_code, Status.WARNING, 1)
    assert (result.last_success_at is not None) is fresh
    assert result.warnings == 1
    (message,) = [e for e in result.events if e.event == "borg_message"]
    assert message.fields["msgid"] == "BackupFileNotFoundError" and message.fields["stage"] == "create"
    assert message.time == pytest.approx(1796176625.5124357)  # borg's own time, from the recorded stream
    assert fake.commands() == ["create", "prune", "compact", "check"]  # a warning still made an archive


def test_a_failed_create_skips_prune_compact_and_check(fake: Fake) -> None:
    fake.plan(create="create-error")
    code, result = fake.run()
    assert code == 2 and result.status == Status.ERROR
    assert fake.commands() == ["create"]
    assert statuses(result) == {"create": "error", "prune": "skipped", "compact": "skipped", "check": "skipped"}
    assert "does not exist" in result.error and result.archive_name == ""
    assert fake.metric("borgwatch_run_status", status="error") == 1


def test_check_runs_only_when_due(fake: Fake) -> None:
    fake.write(tables='[jobs.home.check]\nevery = "7d"\n')
    first_code, first = fake.run()
    assert first_code == 0 and fake.commands() == ["create", "check"]
    fake.plan()
    code, result = fake.run()
    assert code == 0 and fake.commands() == ["create"]
    assert result.stage(Stage.CHECK).message == "not due"
    assert result.check_last_success_at == first.check_last_success_at


def test_check_damage_with_rc_1_is_an_error(fake: Fake) -> None:
    fake.plan(check={"replay": "check-ok", "rc": 1})
    code, result = fake.run()
    assert code == 1 and statuses(result)["check"] == "error" and result.status == Status.ERROR
    assert result.check_last_success_at is None


def test_bookkeeping_never_sets_the_exit_code(fake: Fake) -> None:
    # the dataset diff's listing of the previous archive fails; the backup itself succeeded
    fake.plan(**{"list-archives": "create-error"})
    fake.write(job_extra='dataset_diff = "exact"', tables="")
    code, result = fake.run()
    assert code == 0 and result.status == Status.SUCCESS
    assert fake.commands() == ["create", "list"]
    assert result.dataset is not None and (result.dataset.method, result.dataset.exact) == ("none", False)
    assert result.errors == 0  # borgwatch's own borg calls are not the backup's errors


def test_a_signal_during_borg_exits_128_plus_n_and_skips_the_rest(fake: Fake) -> None:
    fake.plan(create={"replay": "create-ok", "hang": True})
    proc = subprocess.Popen([BORGWATCH, "run", "home", "-c", str(fake.config)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while "create" not in fake.commands():
        assert time.monotonic() < deadline, "the stand-in borg never started"
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    assert fake.commands() == ["create"]
    state, _ = load_state(fake.state, "home")
    last = state.previous_result()
    assert last is not None and last.status == "interrupted" and last.exit_code == 143
    assert fake.metric("borgwatch_run_status", status="interrupted") == 1


def test_exec_survives_a_signal_during_a_slow_delivery(fake: Fake) -> None:
    with receiver() as rx:
        rx.mode = "hang"
        fake.write(tables=f'[jobs.home.ping]\nsuccess = "{rx.url}/done"\ntimeout = 60\n')
        proc = subprocess.Popen([BORGWATCH, "exec", "home", "-c", str(fake.config), "--", str(FAKEBORG),
                                 "compact", "/nowhere/repo"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        deadline = time.monotonic() + 30
        while not rx.requests:
            assert time.monotonic() < deadline, "the ping was never sent"
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    assert "stopped by SIGTERM while delivering to ping" in stderr and "recorded" in stderr
    assert "Traceback" not in stderr
    assert fake.metric("borgwatch_run_status", status="success") == 1  # the run was recorded first
    assert fake.metric("borgwatch_run_in_progress") == 0


def test_exec_ships_msgids_as_run_does(fake: Fake) -> None:
    fake.plan(create="create-warning")
    proc = subprocess.run([BORGWATCH, "exec", "home", "-c", str(fake.config), "--json", "--", str(FAKEBORG),
                           "create", "/nowhere/repo::x", "/src"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert "No such file or directory" in proc.stderr  # borg's own output, echoed
    state, _ = load_state(fake.state, "home")
    assert state.previous_result().warnings == 1


def test_a_dropped_event_never_changes_a_kept_one(tmp_path: Path, fake: Fake) -> None:
    config = load_config(str(fake.config))
    plan = plan_job(config, "home", "host", tmp_path, DEFAULT)
    result = RunResult(job="home", run_id="r", host="host", started_at=0.0)
    ctx = StageContext(plan, str(FAKEBORG), BorgEnv({}), Redactor(), result, StopForwarder())
    result.events = [RunEvent(1.0, "info", "file_status", f"/f{i}", {}) for i in range(MAX_EVENTS)]
    runner = StageRunner(ctx, Stage.CREATE)
    runner(LogMessage("WARNING", "/x: stat: gone", "BackupFileNotFoundError", "borg.archiver", 999.0))
    assert result.events_dropped == 1 and result.warnings == 1
    assert [e.time for e in result.events] == [1.0] * MAX_EVENTS
    assert result.events[-1].message == f"/f{MAX_EVENTS - 1}"


def test_a_new_job_in_a_known_state_dir_does_not_ask_borg_its_version(fake: Fake, tmp_path: Path) -> None:
    """The first backup of a job pays no `borg --version` when another job of the state dir already asked
    this binary; a new binary (an upgrade) is asked again."""
    asked = tmp_path / "asked.log"

    def install_borg() -> Path:
        new = tmp_path / "borg.new"
        new.write_text(f'#!/bin/sh\n[ "$1" = --version ] && echo asked >> {asked}\nexec {FAKEBORG} "$@"\n')
        new.chmod(0o755)
        os.replace(new, tmp_path / "borg")  # as a package upgrade does: a new file
        return tmp_path / "borg"

    borg = install_borg()
    fake.config.write_text(fake.config.read_text().replace(str(FAKEBORG), str(borg)))
    config = load_config(str(fake.config))
    assert run_job(config, "home").exit_code == 0
    assert asked.read_text().splitlines() == ["asked"]
    config.jobs["second"] = config.jobs["home"]  # a job added to the config later
    outcome = run_job(config, "second")
    assert outcome.exit_code == 0 and outcome.result.borg_version == "1.4.5"
    assert asked.read_text().splitlines() == ["asked"]
    install_borg()
    config.jobs["third"] = config.jobs["home"]
    assert run_job(config, "third").exit_code == 0
    assert asked.read_text().splitlines() == ["asked", "asked"]
