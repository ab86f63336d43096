"""One job run, end to end: lock, sinks at start, stages, result, sinks at the end, exit status."""

from __future__ import annotations

import signal
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from borgwatch.borg import argv as borg_argv
from borgwatch.borg.env import BorgEnv, build_env
from borgwatch.borg.exitcodes import SEVERITY, classify, worst
from borgwatch.borg.version import detect_version, find_borg
from borgwatch.config.load import parse_duration
from borgwatch.config.schema import Config, JobConfig
from borgwatch.dataset import DatasetIndex
from borgwatch.errors import EXIT_ERROR, UserError
from borgwatch.lock import JobLock
from borgwatch.model import RunEvent, RunResult, SinkReport
from borgwatch.redact import Redactor
from borgwatch.sinks import SINKS, load
from borgwatch.sinks.base import Sink
from borgwatch.stages import (
    StageContext,
    bootstrap_baseline,
    run_check,
    run_compact,
    run_create,
    run_diff,
    run_prune,
    skipped,
)
from borgwatch.state import JobState, ensure_state_dir, load_state

FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


@dataclass
class RunOptions:
    on_progress: Callable[[dict], None] | None = None
    on_message: Callable[[str, str], None] | None = None  # (level, one line) -> console


@dataclass
class RunOutcome:
    result: RunResult
    exit_code: int
    problems: list[str]  # one-line messages for stderr (cause and remedy)


def hostname(config: Config) -> str:
    return config.hostname or socket.gethostname()


def run_job(config: Config, job_name: str, options: RunOptions | None = None) -> RunOutcome:
    options = options or RunOptions()
    job = config.jobs[job_name]
    state_dir = ensure_state_dir(Path(config.state_dir))
    lock = JobLock(state_dir, job_name)
    lock.acquire()  # raises JobLocked before anything of the running job is touched
    try:
        return _run_locked(config, job_name, job, state_dir, options)
    finally:
        lock.release()


def _run_locked(config: Config, job_name: str, job: JobConfig, state_dir: Path,
                options: RunOptions) -> RunOutcome:
    state, state_warning = load_state(state_dir, job_name)
    problems = [state_warning] if state_warning else []
    host = hostname(config)
    redact = Redactor()
    result = RunResult(
        job=job_name, run_id=uuid.uuid4().hex[:16], host=host, started_at=time.time(),
        repository=redact(job.repository), previous_archive=state.last_archive or "",
        max_age_seconds=parse_duration(job.max_age) if job.max_age else None,
        last_success_at=state.last_success_at, check_last_success_at=state.check_last_success_at,
        runs_total=dict(state.runs_total), sink_failures_total=dict(state.sink_failures_total),
        sink_dropped_total=dict(state.sink_dropped_total),
    )
    sinks = make_sinks(config, job_name)
    for sink in sinks:  # counters exist from the first run on, so increase() sees the first failure
        if sink.name not in ("textfile", "state"):
            result.sink_failures_total.setdefault(sink.name, 0)
            result.sink_dropped_total.setdefault(sink.name, 0)
    env: BorgEnv | None = None
    ctx: StageContext | None = None
    stop = _StopForwarder()
    previous_handlers = {sig: signal.signal(sig, stop) for sig in FORWARDED_SIGNALS}
    try:
        borg = find_borg(config.borg)
        env = build_env(passcommand=job.passcommand, passphrase_file=job.passphrase_file,
                        passphrase_env=job.passphrase_env, extra=job.environment,
                        base_dir=config.borg_base_dir, where=f"jobs.{job_name}")
        for secret in env.secrets:
            redact.add(secret)
        result.repository = redact(job.repository)
        version = detect_version(borg, env.env, state_dir)
        result.borg_version = version.text
        archive = borg_argv.render_name(job.archive_name, job_name, host)
        ctx = StageContext(job_name, job, borg, env, job.lock_wait or config.lock_wait, redact, result,
                           options.on_progress, options.on_message)
        ctx.event("info", "run_started", f"run of {job_name} started", repository=result.repository,
                  archive=archive, borg_version=version.text, run_id=result.run_id)
        stop.attach(ctx)
        # the sinks start once borg runs: their imports, file writes and network calls overlap borg's
        # own start-up instead of delaying it
        ctx.on_borg_started = lambda: notify(sinks, "on_start", result, problems)
        _run_stages(ctx, config, job_name, job, state, host, archive, state_dir)
    except UserError as exc:
        result.error = redact(str(exc))
        result.status, result.exit_code = "error", EXIT_ERROR
        problems.append(result.error)
        result.events.append(RunEvent(time.time(), "error", "run_error", result.error, {}))
    finally:
        for sig, handler in previous_handlers.items():
            signal.signal(sig, handler)
        if env is not None:
            env.close()
    if ctx is not None and ctx.on_borg_started is not None:  # no borg ran: start the sinks all the same
        ctx.on_borg_started()
    finish_result(result, job, ctx)
    failed = deliver(sinks, result, problems)
    return RunOutcome(result, _exit_status(result, job, failed), problems)


class _StopForwarder:
    """Signal handler installed for the whole run: remembers the first signal and forwards every signal
    to the borg that is running (once a stage context exists)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.ctx: StageContext | None = None

    def attach(self, ctx: StageContext) -> None:
        self.ctx = ctx
        ctx.interrupted = self.signum

    def __call__(self, signum: int, _frame: object) -> None:
        self.signum = self.signum or signum
        if self.ctx is not None:
            self.ctx.interrupted = self.ctx.interrupted or signum
            if self.ctx.current is not None:
                self.ctx.current.signal(signum)


def _run_stages(ctx: StageContext, config: Config, job_name: str, job: JobConfig, state: JobState,
                host: str, archive: str, state_dir: Path) -> None:
    if ctx.interrupted is not None:
        skipped(ctx, "create", "borgwatch was stopped before borg started")
        return
    if not job.paths:
        raise UserError(f"jobs.{job_name}.paths is empty: list the directories to back up")
    index = None
    if job.dataset_diff != "off":
        index = DatasetIndex(state_dir / f"{job_name}.files.db")
        baseline = index.previous_archive()
        if not baseline or baseline != state.last_archive:  # index and state disagree, or first run
            ctx.result.previous_archive = bootstrap_baseline(ctx, index, borg_argv.archive_glob(
                job, job_name, host)) or ""
            if not ctx.result.previous_archive:
                index.db.execute("DELETE FROM prev")
    try:
        create = run_create(ctx, archive, index)
        made_archive = ctx.result.archive is not None and create.status in ("success", "warning")
        if index is not None:
            if made_archive and ctx.interrupted is None:
                has_prev = bool(ctx.result.previous_archive) and index.count("SELECT count(*) FROM prev") > 0
                index.finish_recording()
                run_diff(ctx, index, job.dataset_diff, has_prev)
                index.promote(ctx.result.archive_name)
            else:
                index.abandon()
                skipped(ctx, "diff", "no archive was created")
    finally:
        if index is not None:
            index.close()
    go_on = made_archive and ctx.interrupted is None
    if job.prune:
        if go_on:
            run_prune(ctx, borg_argv.archive_glob(job, job_name, host))
        else:
            skipped(ctx, "prune", "create did not succeed")
    if job.compact:
        if go_on and ctx.interrupted is None:
            run_compact(ctx)
        else:
            skipped(ctx, "compact", "create did not succeed")
    if job.check:
        due = _check_due(job, ctx.result.check_last_success_at)
        if go_on and ctx.interrupted is None and due:
            stage = run_check(ctx)
            if stage.status in ("success", "warning"):
                ctx.result.check_last_success_at = time.time()
        else:
            skipped(ctx, "check", "not due" if go_on else "create did not succeed")


def _check_due(job: JobConfig, last: float | None) -> bool:
    assert job.check is not None
    if not job.check.every or last is None:
        return True
    return time.time() - last >= parse_duration(job.check.every)


def finish_result(result: RunResult, job: JobConfig, ctx: StageContext | None) -> None:
    result.ended_at = time.time()
    result.in_progress = False
    ran = [s for s in result.stages if s.status != "skipped"]
    if ran:
        status = worst(*(s.status for s in ran))
        result.exit_code = next(s.exit_code for s in ran if s.status == status)
        if result.status != "error" or SEVERITY[status] > SEVERITY["error"]:
            result.status = status  # a borgwatch-level error is not downgraded by earlier stages
    elif result.status == "running":
        result.status = "error"
    if ctx is not None and ctx.interrupted is not None:
        result.status = "interrupted"
        if result.exit_code < 128:
            result.exit_code = 128 + ctx.interrupted
    if result.status == "success" or (result.status == "warning" and job.warnings != "error"):
        result.last_success_at = result.ended_at
    result.runs_total[result.status] = result.runs_total.get(result.status, 0) + 1
    if result.archive is None and result.status in ("error", "interrupted"):
        result.archive_name = ""
    failed = next((s for s in result.stages if s.status in ("error", "interrupted")), None)
    if failed and not result.error:
        result.error = f"borg {failed.name} failed (rc {failed.exit_code}): {failed.message}"


def _exit_status(result: RunResult, job: JobConfig, failed_sinks: set[str]) -> int:
    if result.status == "interrupted":
        return result.exit_code  # 128+N
    code = result.exit_code
    if result.status == "warning":
        if job.warnings == "success":
            code = 0
        elif job.warnings == "error" and classify(code) != "error":
            code = EXIT_ERROR
    if code == 0 and "textfile" in failed_sinks:  # the backup worked, but monitoring cannot see it
        code = EXIT_ERROR
    return code


def make_sinks(config: Config, job_name: str) -> list[Sink]:
    sinks = []
    for spec in SINKS:
        cls = load(spec)
        if cls.enabled(config, job_name):
            sinks.append(cls(config, job_name))
    return sinks


def notify(sinks: list[Sink], method: str, result: RunResult, problems: list[str]) -> None:
    for sink in sinks:
        try:
            getattr(sink, method)(result)
        except Exception as exc:  # noqa: BLE001 - a sink must never break the backup
            problems.append(_sink_problem(sink, exc))
            _count(result.sink_failures_total, sink.name, 1)


def deliver(sinks: list[Sink], result: RunResult, problems: list[str]) -> set[str]:
    """Hand the final result to every sink; returns the names of sinks that raised."""
    failed: set[str] = set()
    for sink in sinks:
        try:
            report = sink.on_finish(result)
        except Exception as exc:  # noqa: BLE001 - a sink must never break the backup
            problems.append(_sink_problem(sink, exc))
            _count(result.sink_failures_total, sink.name, 1)
            failed.add(sink.name)
            continue
        if isinstance(report, SinkReport):
            result.sink_reports.append(report)
            if report.failures:
                _count(result.sink_failures_total, sink.name, report.failures)
            if report.dropped:
                _count(result.sink_dropped_total, sink.name, report.dropped)
    return failed


def _count(totals: dict[str, int], name: str, n: int) -> None:
    totals[name] = totals.get(name, 0) + n


def _sink_problem(sink: Sink, exc: Exception) -> str:
    if sink.name == "textfile" and isinstance(exc, OSError):
        where = Path(sink.config.textfile_dir)
        why = exc.strerror or str(exc)
        return (f"cannot write metrics to {where}: {why}; create the directory and make it writable for "
                "borgwatch's user, or set textfile_dir")
    if sink.name == "state" and isinstance(exc, OSError):
        return f"cannot save state in {sink.config.state_dir}: {exc.strerror or exc}; make it writable"
    return f"{sink.name} sink failed: {type(exc).__name__}: {exc}"
