"""The borg-command stages of a run (create, prune, compact, check): run borg, read its stream, fill the result."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO

from borgwatch.borg import argv as borg_argv
from borgwatch.borg.env import BorgEnv
from borgwatch.borg.events import Event, FileStatus, LogMessage, Progress, Prompt, Text, msgid_suffix
from borgwatch.borg.exitcodes import check_status, classify, signal_name
from borgwatch.borg.process import BorgProcess, BorgRun
from borgwatch.borg.results import is_archive_progress, message_path, parse_create_json, problem_level, prune_action
from borgwatch.config.schema import JobConfig
from borgwatch.model import EventName, Level, PruneStats, RunEvent, RunResult, Stage, StageResult, Status
from borgwatch.redact import Redactor
from borgwatch.run.lifecycle import Output, StopForwarder
from borgwatch.run.plan import JobPlan

if TYPE_CHECKING:
    from borgwatch.run.filesdiff import FilesCacheRun

MAX_EVENTS = 2000
MAX_FILE_EVENTS = 10000


@dataclass
class StageContext:
    """What the stages share during one run: the frozen plan, the borg to call, where output goes, and
    what this run learned so far."""

    plan: JobPlan
    borg: str
    env: BorgEnv
    redact: Redactor
    result: RunResult
    stop: StopForwarder  # the signal that stops the run, and the borg it is forwarded to
    output: Output = field(default_factory=lambda: Output())
    on_spawn: Callable[[], None] | None = None  # each time a borg runs (the sinks start with the first)
    files_logged: int = 0
    create_stdout: bytes = b""  # create --json: the archive's stats and where borg's files cache is
    diff_undecided: str = ""  # why this run has no dataset counts borgwatch can vouch for
    snapshot_error: str = ""  # the run's snapshot failed (disk full, damaged): no diff this run

    @property
    def job(self) -> JobConfig:
        return self.plan.job

    @property
    def interrupted(self) -> int | None:
        """The signal number once borgwatch was asked to stop."""
        return self.stop.signum

    def event(self, level: str, event: str, message: str, at: float | None = None, **fields: object) -> None:
        """``at``: when it happened (borg's own time for its messages); now by default."""
        if len(self.result.events) >= MAX_EVENTS:
            self.result.events_dropped += 1
            return
        self.result.events.append(RunEvent(time.time() if at is None else float(at), level, event, message,
                                           dict(fields)))


class StageRunner:
    """Runs one borg command as a stage and turns its stream into counts, events and a message."""

    def __init__(self, ctx: StageContext, name: str, instrumentation: bool = False) -> None:
        self.ctx = ctx
        self.name = name
        # borg commands borgwatch runs for itself (diff, listings): their messages explain a diff
        # fallback but are not the backup's warnings, so they are neither counted nor printed
        self.instrumentation = instrumentation
        self.first_error = ""
        self.first_warning = ""
        self.texts: list[str] = []
        self.extra: Callable[[Event], None] | None = None

    def __call__(self, event: Event) -> None:
        if isinstance(event, FileStatus):
            if self.extra:
                self.extra(event)
            return
        if isinstance(event, LogMessage):
            self._log(event)
        elif isinstance(event, Progress):
            if self.ctx.output.on_progress and is_archive_progress(event.data):
                self.ctx.output.on_progress(event.data)
        elif isinstance(event, Prompt):
            self._problem(Level.ERROR, f"borg asked: {event.message.strip()} (answered no)", event.msgid, None)
        elif isinstance(event, Text) and len(self.texts) < 20:
            self.texts.append(self.ctx.redact(event.text))
        if self.extra and isinstance(event, LogMessage):
            self.extra(event)

    def _log(self, msg: LogMessage) -> None:
        level = problem_level(msg.level, msg.name, msg.message)
        if level is not None:
            self._problem(Level(level), msg.message, msg.msgid, msg.time)

    def _problem(self, level: Level, message: str, msgid: str, when: float | None) -> None:
        ctx = self.ctx
        full = ctx.redact(message)
        text = full.strip().splitlines()[0] if full.strip() else full  # one line for humans and metrics
        if self.instrumentation:
            if level != Level.WARNING:
                self.first_error = self.first_error or text
            return
        if level == Level.WARNING:
            ctx.result.warnings += 1
            self.first_warning = self.first_warning or text
        else:
            ctx.result.errors += 1
            self.first_error = self.first_error or text
        fields: dict[str, object] = {"stage": self.name, "msgid": msgid_suffix(msgid) if msgid else ""}
        if path := message_path(text):
            fields["path"] = path
        ctx.event(level, EventName.BORG_MESSAGE, full, at=when, **fields)
        if ctx.output.on_message:
            ctx.output.on_message(level, f"{text} ({fields['msgid']})" if fields["msgid"] else text)

    def spawn(self, argv: list[str], timeout: float | None = None, stdout_file: BinaryIO | None = None,
              echo: BinaryIO | None = None) -> BorgRun:
        """Run borg with this runner reading its stream; signals reach it, its resources are counted."""
        ctx = self.ctx
        proc = BorgProcess(argv, ctx.env)
        ctx.stop.current = proc
        try:
            run = proc.run(self, timeout=timeout, stdout_file=stdout_file, on_spawn=ctx.on_spawn, echo=echo)
        finally:
            ctx.stop.current = None
        ctx.result.resources.add(run.resources)
        return run

    def run(self, argv: list[str], timeout: float | None = None) -> tuple[StageResult, BorgRun]:
        ctx = self.ctx
        ctx.event(Level.INFO, EventName.STAGE_STARTED, f"stage {self.name} started", stage=self.name)
        run = self.spawn(argv, timeout)
        status = (check_status if self.name == Stage.CHECK else classify)(run.returncode)
        if ctx.interrupted is not None:
            status = Status.INTERRUPTED
        message = self.first_error or (self.texts[0] if status == Status.ERROR and self.texts else "")
        if status == Status.ERROR and self.name == Stage.CHECK and run.returncode == 1:
            message = message or self.first_warning or "borg check found problems in the repository"
        elif status == Status.INTERRUPTED and ctx.interrupted is None:  # nobody asked borgwatch to stop
            message = message or (f"borg was killed by {signal_name(run.returncode)} without a message (the "
                                   "OOM killer? see the kernel log)")
        elif status == Status.INTERRUPTED:
            message = message or f"interrupted by {signal_name(run.returncode)}"
        elif status == Status.WARNING:
            message = self.first_warning
        if run.timed_out:
            status, message = Status.ERROR, f"borg {self.name} exceeded its timeout of {timeout:.0f}s"
        stage = StageResult(self.name, status, run.returncode, run.started_at, run.duration_seconds, message)
        ctx.result.stages.append(stage)
        ctx.event(_level(status), EventName.STAGE_FINISHED, f"stage {self.name} finished: {status}", stage=self.name,
                  exit_code=run.returncode, duration_seconds=round(run.duration_seconds, 3), status=status)
        return stage, run


def _level(status: str) -> Level:
    if status in (Status.ERROR, Status.INTERRUPTED):
        return Level.ERROR
    return Level.WARNING if status == Status.WARNING else Level.INFO


def skipped(ctx: StageContext, name: str, why: str) -> None:
    ctx.result.stages.append(StageResult(name, Status.SKIPPED, 0, time.time(), 0.0, why))


def run_create(ctx: StageContext, archive: str, rec: FilesCacheRun | None) -> StageResult:
    """With the dataset diff (``rec``) or log_files: ``--list --filter=AMEhC``, every file borg reads but
    none of the unchanged ones (one ``U`` line per file was most of what a listing cost)."""
    if rec is not None:  # sqlite3 only with a diff (its errors are caught only where there is a snapshot)
        import sqlite3
    runner = StageRunner(ctx, Stage.CREATE)
    log_files = ctx.job.log_files

    def on_file(event: Event) -> None:
        nonlocal rec
        if not isinstance(event, FileStatus):
            return
        if rec is not None:
            try:
                rec.record(event.status, event.path)
            except sqlite3.Error as exc:  # state_dir full, snapshot damaged: borg goes on, the diff is dropped
                ctx.snapshot_error = ctx.snapshot_error or str(exc)
                rec = None
        if log_files and event.status in ("A", "M", "C", "E") and ctx.files_logged < MAX_FILE_EVENTS:
            ctx.files_logged += 1
            ctx.event(Level.INFO, EventName.FILE_STATUS, ctx.redact(event.path), status=event.status)

    runner.extra = on_file
    list_files = rec is not None or log_files
    argv = borg_argv.create(ctx.borg, ctx.job, archive, ctx.plan.lock_wait, list_files,
                            progress=ctx.output.on_progress is not None, version=ctx.plan.version,
                            list_filter="" if borg_argv.files_cache_refusal(ctx.job.extra_args)
                            else borg_argv.FILES_CACHE_FILTER)
    stage, run = runner.run(argv)
    ctx.create_stdout = run.stdout
    ctx.result.archive, ctx.result.repository_stats = parse_create_json(run.stdout)
    if ctx.result.archive:
        ctx.result.archive_name = ctx.result.archive.name
    return stage


def run_prune(ctx: StageContext, glob: str) -> StageResult:
    assert ctx.job.prune is not None
    runner = StageRunner(ctx, Stage.PRUNE)
    stats = PruneStats()

    def on_log(event: Event) -> None:
        if isinstance(event, LogMessage) and event.name == "borg.output.list":
            action = prune_action(event.message)
            if action == "kept":
                stats.kept += 1
            elif action == "pruned":
                stats.pruned += 1

    runner.extra = on_log
    stage, _ = runner.run(borg_argv.prune(ctx.borg, ctx.job, ctx.job.prune, glob, ctx.plan.lock_wait,
                                          version=ctx.plan.version))
    if stage.status in (Status.SUCCESS, Status.WARNING):
        ctx.result.prune = stats
    return stage


def run_compact(ctx: StageContext) -> StageResult:
    assert ctx.job.compact is not None
    stage, _ = StageRunner(ctx, Stage.COMPACT).run(borg_argv.compact(ctx.borg, ctx.job, ctx.job.compact,
                                                                  ctx.plan.lock_wait, version=ctx.plan.version))
    return stage


def run_check(ctx: StageContext) -> StageResult:
    assert ctx.job.check is not None
    stage, _ = StageRunner(ctx, Stage.CHECK).run(borg_argv.check(ctx.borg, ctx.job, ctx.job.check,
                                                                  ctx.plan.lock_wait, version=ctx.plan.version))
    return stage

