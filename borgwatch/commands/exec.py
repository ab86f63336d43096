"""``borgwatch exec NAME -- borg …``: run the user's own borg command line unchanged and record what
can be known (exit code, duration, resources; archive stats when it is a ``create --json``)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import sys
import time
import uuid
from pathlib import Path

from borgwatch.borg.env import BorgEnv
from borgwatch.borg.events import Event, LogMessage
from borgwatch.borg.exitcodes import classify
from borgwatch.borg.process import BorgProcess
from borgwatch.borg.results import parse_create_json
from borgwatch.borg.version import detect_version
from borgwatch.commands import console
from borgwatch.config.checks import name_problem
from borgwatch.config.load import config_path, load_config
from borgwatch.config.schema import Config, JobConfig
from borgwatch.errors import EXIT_ERROR, UserError
from borgwatch.model import RunEvent, RunResult, StageResult
from borgwatch.redact import RedactingWriter, Redactor, url_passwords
from borgwatch.run.session import FORWARDED_SIGNALS, deliver, finish_result, make_sinks, notify
from borgwatch.store.lock import JobLock
from borgwatch.store.state import ensure_state_dir, load_state

STAGE_NAMES = ("create", "prune", "compact", "check")


def exec_command(config_file: str | None, name: str, argv: list[str], as_json: bool) -> int:
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv or "borg" not in Path(argv[0]).name:
        raise UserError("usage: borgwatch exec NAME -- borg COMMAND [ARGS…] (the command must be borg)")
    if problem := name_problem(name):  # NAME becomes file names in state_dir and textfile_dir
        raise UserError(f"borgwatch exec NAME: {problem}")
    config = load_config(config_file) if config_file or config_path(None).exists() else Config()
    job = config.jobs.get(name) or JobConfig(repository="")
    config.jobs.setdefault(name, job)
    state_dir = ensure_state_dir(Path(config.state_dir))
    lock = JobLock(state_dir, name)
    lock.acquire()
    try:
        return _exec_locked(config, name, job, argv, as_json, state_dir)
    finally:
        lock.release()


def _exec_locked(config: Config, name: str, job: JobConfig, argv: list[str], as_json: bool,
                 state_dir: Path) -> int:
    state, warning = load_state(state_dir, name)
    problems = [warning] if warning else []
    redact = Redactor([os.environ.get("BORG_PASSPHRASE", ""), *url_passwords(argv)])
    if url_passwords(argv):
        problems.append("the repository URL on this command line carries a password, which every local user "
                        "can read in the process list: use an ssh key, or BORG_REPO in the environment")
    sub = next((a for a in argv[1:] if not a.startswith("-")), "borg")
    stage_name = sub if sub in STAGE_NAMES else "other"
    result = RunResult(job=name, run_id=uuid.uuid4().hex[:16], host=config.hostname or socket.gethostname(),
                       started_at=time.time(), command="exec", last_success_at=state.last_success_at,
                       check_last_success_at=state.check_last_success_at, runs_total=dict(state.runs_total),
                       sink_failures_total=dict(state.sink_failures_total),
                       sink_dropped_total=dict(state.sink_dropped_total))
    borg_path = shutil.which(argv[0])
    if borg_path:  # cached per binary: a borg --version only the first time this borg is seen
        with contextlib.suppress(UserError):
            result.borg_version = detect_version(borg_path, dict(os.environ), state_dir).text
    result.events.append(RunEvent(time.time(), "info", "run_started", f"exec of {name} started",
                                  {"command": redact(" ".join(argv))}))
    sinks = make_sinks(config, name)
    notify(sinks, "on_start", result, problems)

    def on_event(event: Event) -> None:
        if isinstance(event, LogMessage) and event.level in ("WARNING", "ERROR", "CRITICAL"):
            level = "warning" if event.level == "WARNING" else "error"
            if level == "warning":
                result.warnings += 1
            else:
                result.errors += 1
            result.events.append(RunEvent(event.time or time.time(), level, "borg_message",
                                          redact(event.message), {"msgid": event.msgid, "stage": stage_name}))

    proc = BorgProcess(argv, BorgEnv(dict(os.environ)))
    previous = {sig: signal.signal(sig, lambda s, _f: proc.signal(s)) for sig in FORWARDED_SIGNALS}
    echo = RedactingWriter(sys.stderr.buffer, redact)  # borg's messages may quote a URL password
    try:
        run = proc.run(on_event, echo=echo)  # type: ignore[arg-type]
    except OSError as exc:
        raise UserError(f"cannot run {argv[0]}: {exc.strerror}; check the command") from None
    finally:
        echo.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    out = RedactingWriter(sys.stdout.buffer, redact)  # create --json names the repository location
    out.write(run.stdout)
    out.close()
    result.resources = run.resources
    result.stages.append(StageResult(stage_name, classify(run.returncode), run.returncode, run.started_at,
                                     run.duration_seconds))
    if stage_name == "create" and "--json" in argv:
        result.archive, result.repository_stats = parse_create_json(run.stdout)
        result.archive_name = result.archive.name if result.archive else ""
    finish_result(result, job, None)
    if stage_name != "create":  # only a new archive makes the job's data fresher
        result.last_success_at = state.last_success_at
    failed = deliver(sinks, result, problems)
    for text in problems:
        console.problem(f"{name}: {redact(text)}")
    if as_json:
        console.print_json(result.to_dict(with_events=False))
    if run.returncode == 0 and "textfile" in failed:  # as `run`: the command worked, monitoring cannot see it
        return EXIT_ERROR
    return run.returncode
