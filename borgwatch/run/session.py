"""One job run, end to end: lock, sinks at start, stages, result recorded, delivery sinks, exit status."""

from __future__ import annotations

import errno
import signal
import socket
import sqlite3
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from borgwatch.borg import argv as borg_argv
from borgwatch.borg.env import BorgEnv, build_env
from borgwatch.borg.exitcodes import SEVERITY, classify, signal_name, worst
from borgwatch.borg.version import detect_version, find_borg
from borgwatch.config.load import parse_duration
from borgwatch.config.schema import Config, JobConfig
from borgwatch.dataset.index import DatasetIndex, close_quietly, open_index, remove_index
from borgwatch.errors import EXIT_ERROR, UserError
from borgwatch.model import RunEvent, RunResult, SinkReport, StageResult
from borgwatch.redact import Redactor
from borgwatch.run.lifecycle import PrintedLines, Problems, RunMarker, SinkStarter, StopForwarder, Stopped, why_line
from borgwatch.run.stages import (
    StageContext,
    run_check,
    run_compact,
    run_create,
    run_diff,
    run_prune,
    skipped,
    verify_baseline,
)
from borgwatch.sinks import SINKS, load
from borgwatch.sinks.base import Sink
from borgwatch.store.lock import JobLock
from borgwatch.store.state import ensure_state_dir, load_state

FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
RECORD_SINKS = ("textfile", "state")  # local files, written before any sink that may wait on a network
BOOKKEEPING_STAGES = ("diff",)
START_WAIT = 30.0  # most seconds the end of a run waits for the start-of-run deliveries


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
    problems = Problems([state_warning] if state_warning else [])
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
    marker = RunMarker(state_dir, job_name)
    lost = marker.replace(result)
    if lost:  # the previous run died before it could record itself (kill -9, OOM killer, power loss)
        result.runs_total["interrupted"] = result.runs_total.get("interrupted", 0) + 1
        problems.append(f"the previous run ({lost}) ended without recording a result (borgwatch was killed); "
                        "counted as interrupted")
    sinks = make_sinks(config, job_name)
    for sink in sinks:  # counters exist from the first run on, so increase() sees the first failure
        if sink.name not in RECORD_SINKS:
            result.sink_failures_total.setdefault(sink.name, 0)
            result.sink_dropped_total.setdefault(sink.name, 0)
    starter = SinkStarter(sinks, result, problems)
    env: BorgEnv | None = None
    ctx: StageContext | None = None
    printed = PrintedLines(options.on_message)
    stop = StopForwarder()
    previous_handlers = {sig: signal.signal(sig, stop) for sig in FORWARDED_SIGNALS}
    try:
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
                               options.on_progress, printed)
            ctx.event("info", "run_started", f"run of {job_name} started", repository=result.repository,
                      archive=archive, borg_version=version.text, run_id=result.run_id)
            stop.attach(ctx)
            # the sinks start once borg runs, in a thread: their imports, file writes and network calls
            # overlap borg's own start-up and never sit on the path that reads borg's stream
            ctx.on_borg_started = starter.start
            run_stages(ctx, config, job_name, host, archive, state_dir, problems)
        except UserError as exc:
            result.error = redact(str(exc))
            result.status, result.exit_code = "error", EXIT_ERROR
            problems.append(result.error)
            result.events.append(RunEvent(time.time(), "error", "run_error", result.error, {}))
        finally:
            if env is not None:
                env.close()
        starter.start()  # no borg ran: start the sinks all the same
        starter.wait_recorded()
        finish_result(result, job, ctx, stop.signum)
        exit_code = _exit_status(result, job, set())
        if exit_code != 0 and not printed.lines:
            problems.append(why_line(result))  # every non-zero exit says why, even when borg said nothing
        return _record_and_deliver(sinks, starter, stop, result, job, problems, marker)
    finally:
        for sig, handler in previous_handlers.items():
            signal.signal(sig, handler)


def _record_and_deliver(sinks: list[Sink], starter: SinkStarter, stop: StopForwarder, result: RunResult,
                        job: JobConfig, problems: Problems, marker: RunMarker) -> RunOutcome:
    """The finished run is recorded (textfile, state: local files) before anything that can hang; the
    delivery sinks (network) follow, and a signal while they wait ends the delivery, not the record."""
    record = [s for s in sinks if s.name in RECORD_SINKS]
    delivery = [s for s in sinks if s.name not in RECORD_SINKS]
    failed = deliver(record, result, problems)
    marker.clear()
    stopped = None
    if delivery:
        stop.raising = True
        try:
            if stop.signum is not None and result.status != "interrupted":
                raise Stopped(stop.signum)
            starter.join(START_WAIT)
            late = [s for s in delivery if s.name not in starter.done]
            for sink in late:
                problems.append(f"{sink.name} sink: the start-of-run delivery still runs after {START_WAIT:.0f}s; "
                                "end-of-run delivery skipped")
                _count(result.sink_failures_total, sink.name, 1)
            deliver([s for s in delivery if s not in late], result, problems)
        except Stopped as exc:
            stopped = exc.signum
            problems.append(f"stopped by {signal_name(128 + exc.signum)} while delivering to "
                            f"{', '.join(s.name for s in delivery)}; the run itself was recorded")
        finally:
            stop.raising = False
        failed = deliver(record, result, problems)  # again, with the delivery sinks' counters
    code = _exit_status(result, job, failed)
    if stopped is None and stop.signum is not None and result.status != "interrupted":
        stopped = stop.signum  # while the result was being written: it was written all the same
        problems.append(f"stopped by {signal_name(128 + stopped)} after the run was recorded")
    if stopped is not None and result.status != "interrupted":
        code = 128 + stopped
    return RunOutcome(result, code, problems.items)


def run_stages(ctx: StageContext, config: Config, job_name: str, host: str, archive: str, state_dir: Path,
               problems: Problems) -> None:
    job = ctx.job
    if ctx.interrupted is not None:
        skipped(ctx, "create", "borgwatch was stopped before borg started")
        return
    if not job.paths:
        raise UserError(f"jobs.{job_name}.paths is empty: list the directories to back up")
    glob = borg_argv.archive_glob(job, job_name, host)
    index_path = state_dir / f"{job_name}.files.db"
    index = None
    if job.dataset_diff != "off":
        index, note = open_index(index_path)
        problems.append(note)
    made_archive = False
    try:
        if index is not None:
            try:
                ctx.result.previous_archive = verify_baseline(ctx, index, glob)
            except sqlite3.Error as exc:
                index = drop_index(ctx, index, exc)
        if ctx.interrupted is not None:  # e.g. during the baseline listing: no backup after a stop
            skipped(ctx, "create", "borgwatch was stopped before borg create started")
            return
        create = run_create(ctx, archive, index)
        made_archive = ctx.result.archive is not None and create.status in ("success", "warning")
        if index is not None:
            _diff_stage(ctx, index, made_archive)
            index = None
    finally:
        if index is not None:
            close_quietly(index)
        _diff_problems(ctx, index_path, problems)
    go_on = made_archive and ctx.interrupted is None
    overlap = borg_argv.overlapping_job(glob, config.jobs, job_name, host) if job.prune else None
    if job.prune:
        if go_on and overlap:
            why = (f"prune refused: jobs.{job_name}.archive_name also matches the archives of job {overlap}; "
                   "end archive_name with {now} (or put a fixed text after {job})")
            ctx.result.stages.append(StageResult("prune", "error", EXIT_ERROR, time.time(), 0.0, why))
            problems.append(why)
        elif go_on:
            run_prune(ctx, glob)
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


def _diff_stage(ctx: StageContext, index: DatasetIndex, made_archive: bool) -> None:
    try:
        if made_archive and ctx.interrupted is None and not ctx.index_error:
            has_prev = bool(ctx.result.previous_archive) and index.count("SELECT count(*) FROM prev") > 0
            index.finish_recording()
            run_diff(ctx, index, ctx.job.dataset_diff, has_prev)
            index.promote(ctx.result.archive_name)
            close_quietly(index)
            return
        index.abandon()
        skipped(ctx, "diff", "the dataset index failed" if ctx.index_error else "no archive was created")
        if ctx.index_error:
            drop_index(ctx, index, None)
        else:
            close_quietly(index)
    except sqlite3.Error as exc:
        ctx.result.dataset = None
        drop_index(ctx, index, exc)


def drop_index(ctx: StageContext, index: DatasetIndex, exc: sqlite3.Error | None) -> None:
    """The index failed mid-run (state_dir full, damaged): no diff this run, and a fresh one next run."""
    close_quietly(index)
    why = ctx.index_error or str(exc)
    removed = remove_index(index.path)
    ctx.index_error = f"{why}; it {removed}" if removed else why
    return None


def _diff_problems(ctx: StageContext, index_path: Path, problems: Problems) -> None:
    """Bookkeeping trouble is its own line (and diff_exact 0), never the backup's exit code."""
    if ctx.index_error:
        problems.append(f"dataset index {index_path} is unusable ({ctx.index_error}); no dataset diff this run "
                        "— the next run rebuilds it; check free space and permissions of state_dir")
        return
    dataset = ctx.result.dataset
    if dataset is not None and not dataset.exact and ctx.diff_doubt:
        problems.append(f"the dataset diff of this run is not exact: {ctx.diff_doubt}")
    stage = ctx.result.stage("diff")
    if stage is not None and stage.status == "warning" and stage.message:
        problems.append(stage.message)


def _check_due(job: JobConfig, last: float | None) -> bool:
    assert job.check is not None
    if not job.check.every or last is None:
        return True
    return time.time() - last >= parse_duration(job.check.every)


def finish_result(result: RunResult, job: JobConfig, ctx: StageContext | None,
                  interrupted: int | None = None) -> None:
    """``interrupted``: the signal that stopped a run before it had a stage context."""
    result.ended_at = time.time()
    result.in_progress = False
    # borgwatch's own borg calls (the diff stage) never decide the run's status or exit code
    ran = [s for s in result.stages if s.status != "skipped" and s.name not in BOOKKEEPING_STAGES]
    if ran:
        status = worst(*(s.status for s in ran))
        result.exit_code = next(s.exit_code for s in ran if s.status == status)
        if result.status != "error" or SEVERITY[status] > SEVERITY["error"]:
            result.status = status  # a borgwatch-level error is not downgraded by earlier stages
    elif result.status == "running":
        result.status = "error"
    signum = ctx.interrupted if ctx is not None and ctx.interrupted is not None else interrupted
    if signum is not None:
        result.status = "interrupted"
        if result.exit_code < 128:
            result.exit_code = 128 + signum
    if result.status == "success" or (result.status == "warning" and job.warnings != "error"):
        result.last_success_at = result.ended_at
    result.runs_total[result.status] = result.runs_total.get(result.status, 0) + 1
    if result.archive is None and result.status in ("error", "interrupted"):
        result.archive_name = ""
    failed = next((s for s in ran if s.status in ("error", "interrupted")), None)
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
    if code == 0 and failed_sinks & set(RECORD_SINKS):  # the backup worked, but it could not be recorded
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
        remedy = "free space there" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "make it writable"
        return f"cannot save state in {sink.config.state_dir}: {exc.strerror or exc}; {remedy}"
    return f"{sink.name} sink failed: {type(exc).__name__}: {exc}"
