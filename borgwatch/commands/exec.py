"""``borgwatch exec NAME -- borg …``: run the user's own borg command line unchanged and record what
can be known (exit code, duration, resources; archive stats when it is a ``create --json``). The run's
lifecycle (lock, state, signals through the delivery, record before delivery, exit status) is `run`'s."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from pathlib import Path

from borgwatch.borg.argv import command_of
from borgwatch.borg.env import BorgEnv
from borgwatch.borg.exitcodes import classify
from borgwatch.borg.feature import DEFAULT
from borgwatch.borg.results import parse_create_json
from borgwatch.borg.version import detect_version
from borgwatch.commands import console
from borgwatch.config.checks import name_problem
from borgwatch.config.load import config_path, load_config
from borgwatch.config.schema import Config, JobConfig
from borgwatch.errors import UserError
from borgwatch.model import Command, EventName, Level, Stage, StageResult, WarningPolicy
from borgwatch.redact import RedactingWriter, url_passwords
from borgwatch.run.plan import plan_job
from borgwatch.run.session import RunSession
from borgwatch.run.stages import StageContext, StageRunner

STAGE_NAMES = (Stage.CREATE, Stage.PRUNE, Stage.COMPACT, Stage.CHECK)


def exec_command(config_file: str | None, name: str, argv: list[str], as_json: bool) -> int:
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv or "borg" not in Path(argv[0]).name:
        raise UserError("usage: borgwatch exec NAME -- borg COMMAND [ARGS…] (the command must be borg)")
    if problem := name_problem(name):  # NAME becomes file names in state_dir and textfile_dir
        raise UserError(f"borgwatch exec NAME: {problem}")
    config = load_config(config_file) if config_file or config_path(None).exists() else Config()
    config.jobs.setdefault(name, JobConfig(repository=""))
    with RunSession(config, name, Command.EXEC) as session:
        return _exec(session, argv, as_json)


def _exec(session: RunSession, argv: list[str], as_json: bool) -> int:
    name, result, redact = session.job_name, session.result, session.redact
    for secret in (os.environ.get("BORG_PASSPHRASE", ""), *url_passwords(argv)):
        redact.add(secret)
    if url_passwords(argv):
        session.problems.append("the repository URL on this command line carries a password, which every local "
                                "user can read in the process list: use an ssh key, or BORG_REPO in the "
                                "environment")
    sub = command_of(argv)
    stage_name = Stage(sub) if sub in STAGE_NAMES else Stage.OTHER
    borg_path = shutil.which(argv[0])
    version = DEFAULT
    if borg_path:  # cached per binary: a borg --version only the first time this borg is seen
        with contextlib.suppress(UserError):
            version = detect_version(borg_path, dict(os.environ), session.state_dir)
            result.borg_version = version.text
    plan = plan_job(session.config, name, result.host, session.state_dir, version)
    ctx = StageContext(plan, argv[0], BorgEnv(dict(os.environ)), redact, result, session.stop,
                       on_spawn=session.start_sinks)
    ctx.event(Level.INFO, EventName.RUN_STARTED, f"exec of {name} started", command=redact(" ".join(argv)))
    echo = RedactingWriter(sys.stderr.buffer, redact)  # borg's messages may quote a URL password
    try:
        run = StageRunner(ctx, stage_name).spawn(argv, echo=echo)  # type: ignore[arg-type]
    except OSError as exc:  # recorded as a failed run: the metrics say so, too
        session.fail(UserError(f"cannot run {argv[0]}: {exc.strerror}; check the command"))
        run = None
    finally:
        echo.close()
    if run is not None:
        out = RedactingWriter(sys.stdout.buffer, redact)  # create --json names the repository location
        out.write(run.stdout)
        out.close()
        result.stages.append(StageResult(stage_name, classify(run.returncode), run.returncode, run.started_at,
                                         run.duration_seconds))
        if stage_name == Stage.CREATE and "--json" in argv:
            result.archive, result.repository_stats = parse_create_json(run.stdout)
            result.archive_name = result.archive.name if result.archive else ""
    # exec keeps borg's exit code: no warning policy; only a new archive makes the job's data fresher
    outcome = session.finish(WarningPolicy.WARNING, makes_fresh=stage_name == Stage.CREATE)
    for text in outcome.problems:
        console.problem(f"{name}: {text}")
    if as_json:
        console.print_json(result.to_dict(with_events=False))
    return outcome.exit_code
