"""The stages of a run (create, diff, prune, compact, check): run borg, read its stream, fill the result."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO

from borgwatch.borg import argv as borg_argv
from borgwatch.borg.env import BorgEnv
from borgwatch.borg.events import Event, FileStatus, LogMessage, Progress, Prompt, Text, msgid_suffix
from borgwatch.borg.exitcodes import check_status, classify, completed, signal_name
from borgwatch.borg.paths import path_pattern
from borgwatch.borg.process import BorgProcess, BorgRun
from borgwatch.borg.results import (
    archive_names,
    content_changed_paths,
    is_archive_progress,
    message_path,
    parse_create_json,
    parse_digest_listing,
    problem_level,
    prune_action,
    regular_files,
)
from borgwatch.config.schema import JobConfig
from borgwatch.model import (
    DatasetDiff,
    DiffMode,
    EventName,
    Level,
    PruneStats,
    RunEvent,
    RunResult,
    Stage,
    StageResult,
    Status,
)
from borgwatch.redact import Redactor
from borgwatch.run.lifecycle import Output, StopForwarder
from borgwatch.run.plan import JobPlan

if TYPE_CHECKING:
    from borgwatch.dataset.index import DatasetIndex

MAX_EVENTS = 2000
MAX_FILE_EVENTS = 10000
MAX_DIFF_PATHS = 2000  # more same-size candidates than this: one unrestricted borg diff instead
DIFF_TIMEOUT = 3600
LIST_DIGEST_BYTES = 256 << 20  # file data borg may read back to fingerprint previous versions


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
    diff_doubt: str = ""  # why this run's dataset diff cannot be exact (baseline unverifiable)
    index_error: str = ""  # the dataset index failed (disk full, corrupt): no diff this run

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


def run_create(ctx: StageContext, archive: str, index: DatasetIndex | None) -> StageResult:
    if index is not None:  # sqlite3 only with a diff (its errors are caught only where there is an index)
        import sqlite3
    runner = StageRunner(ctx, Stage.CREATE)
    log_files = ctx.job.log_files

    def on_file(event: Event) -> None:
        nonlocal index
        if not isinstance(event, FileStatus):
            return
        if index is not None:
            try:
                index.record(event.status, event.path)
            except sqlite3.Error as exc:  # state_dir full, index damaged: borg goes on, the diff is dropped
                ctx.index_error = ctx.index_error or str(exc)
                index = None
        if log_files and event.status in ("A", "M", "C", "E") and ctx.files_logged < MAX_FILE_EVENTS:
            ctx.files_logged += 1
            ctx.event(Level.INFO, EventName.FILE_STATUS, ctx.redact(event.path), status=event.status)

    runner.extra = on_file
    if index is not None and ctx.plan.diff_mode == DiffMode.EXACT:
        try:
            index.start_fingerprints()
        except sqlite3.Error as exc:
            ctx.index_error, index = str(exc), None
    list_files = index is not None or log_files
    argv = borg_argv.create(ctx.borg, ctx.job, archive, ctx.plan.lock_wait, list_files,
                            progress=ctx.output.on_progress is not None, version=ctx.plan.version)
    stage, run = runner.run(argv)
    ctx.result.archive, ctx.result.repository_stats = parse_create_json(run.stdout)
    if ctx.result.archive:
        ctx.result.archive_name = ctx.result.archive.name
    return stage


def verify_baseline(ctx: StageContext, index: DatasetIndex, glob: str) -> str:
    """The index is the diff's baseline only while it describes the job's newest archive in the
    repository: an archive borgwatch did not record (a killed run, a kill in the diff stage, a manual
    ``borg create``) moved borg's files cache on, and its ``U`` would vouch for files that changed since
    the index. So ask the repository (one ``borg list`` of the job's archives) and rebuild the index from
    the newest one when they differ. Returns the baseline archive ("" when the job has none);
    ``ctx.diff_doubt`` says why the diff cannot be exact."""
    import fnmatch
    import tempfile

    runner = StageRunner(ctx, Stage.DIFF, instrumentation=True)
    # all of the job's archives (the manifest only: as cheap as --last 1), checkpoints included
    listing = runner.spawn(borg_argv.list_archives(ctx.borg, ctx.job.repository, ctx.plan.lock_wait, f"{glob}*",
                                                   checkpoints=True))
    known = index.previous_archive() or ""
    if ctx.interrupted is not None:
        return known
    names = archive_names(listing.stdout)
    newest = names[-1] if names else ""  # borg lists them by time
    if listing.returncode != 0 or names is None:
        ctx.diff_doubt = (f"cannot list the job's archives (borg list rc {listing.returncode}: "
                          f"{runner.first_error or 'see log'})")
        return known
    if newest and not fnmatch.fnmatchcase(newest, glob):
        # an interrupted create saved a checkpoint and borg's files cache with it
        ctx.diff_doubt = f"the newest archive of the job is the checkpoint {newest} of an interrupted run"
        return known
    if newest == known:
        return known
    if known and known not in names:
        # the archive the last run made was deleted: borg's files cache may still vouch for its files
        ctx.diff_doubt = f"the job's last archive {known} was deleted; borg's files cache may still describe it"
    if not newest:
        index.bootstrap("", ())
        return ""
    with tempfile.TemporaryFile() as out:
        argv = borg_argv.list_items(ctx.borg, ctx.job.repository, newest, ctx.plan.lock_wait)
        if runner.spawn(argv, stdout_file=out).returncode != 0 or ctx.interrupted is not None:
            index.bootstrap("", ())
            ctx.diff_doubt = ctx.diff_doubt or (f"cannot list archive {newest} to rebuild the baseline "
                                                f"({runner.first_error or 'see log'})")
            return ""
        out.seek(0)
        index.bootstrap(newest, regular_files(out))
    ctx.event(Level.INFO, EventName.BASELINE_REBUILT, f"dataset baseline rebuilt from archive {newest}", archive=newest,
              previous=known)
    return newest


def run_diff(ctx: StageContext, index: DatasetIndex, mode: str, has_previous: bool) -> StageResult:
    """Evaluate the recorded index; in exact mode ask borg diff about same-size changes only."""
    started, t0 = time.time(), time.monotonic()
    ctx.event(Level.INFO, EventName.STAGE_STARTED, "stage diff started", stage=Stage.DIFF)
    diff = index.evaluate(has_previous)
    rc, status, message = 0, Status.SUCCESS, ""
    if diff.verified and mode == DiffMode.EXACT:
        diff = _previous_fingerprints(ctx, index, diff, has_previous)
    if diff.verified and mode == DiffMode.FAST:
        index.resolve_by_mtime(diff)
    elif diff.verified:
        restrict = diff.verified <= MAX_DIFF_PATHS and not index.hard_link_undecided()
        paths = list(index.candidate_paths()) if restrict else []
        runner = StageRunner(ctx, Stage.DIFF, instrumentation=True)
        argv = borg_argv.diff(ctx.borg, ctx.job.repository, ctx.result.previous_archive,
                              ctx.result.archive_name, ctx.plan.lock_wait, [path_pattern(p) for p in paths],
                              version=ctx.plan.version)
        run = runner.spawn(argv, DIFF_TIMEOUT)
        rc = run.returncode
        if completed(rc) and not run.timed_out:
            index.resolve_by_content(diff, content_changed_paths(run.stdout))
        else:
            index.resolve_by_mtime(diff)
            status = Status.WARNING if ctx.interrupted is None else Status.INTERRUPTED
            message = (f"borg diff failed (rc {rc}): {runner.first_error or 'see log'}; same-size changes "
                       "were estimated by mtime")
    if ctx.diff_doubt:
        diff.exact = False
    ctx.result.dataset = diff
    duration = time.monotonic() - t0
    ctx.result.stages.append(StageResult(Stage.DIFF, status, rc, started, duration, message))
    ctx.event(Level.INFO if status == Status.SUCCESS else Level.WARNING, EventName.STAGE_FINISHED,
              f"stage diff finished: {status}", stage=Stage.DIFF, exit_code=rc,
              duration_seconds=round(duration, 3), status=status, **diff.as_counts(), method=diff.method)
    return ctx.result.stages[-1]


def _previous_fingerprints(ctx: StageContext, index: DatasetIndex, diff: DatasetDiff,
                           has_previous: bool) -> DatasetDiff:
    """Same-size candidates fingerprinted in this run but not in the previous one: one ``borg list`` of
    the previous archive supplies the missing fingerprints (cheaper than a borg diff reading both)."""
    from borgwatch.dataset.fingerprint import DIGEST_BYTES

    paths = index.prev_digests_wanted(LIST_DIGEST_BYTES, MAX_DIFF_PATHS)
    if not paths:
        return diff
    argv = borg_argv.list_digests(ctx.borg, ctx.job.repository, ctx.result.previous_archive, ctx.plan.lock_wait,
                                  [path_pattern(p) for p in paths])
    run = StageRunner(ctx, Stage.DIFF, instrumentation=True).spawn(argv, DIFF_TIMEOUT)
    if not completed(run.returncode) or run.timed_out:
        return diff  # borg diff decides them all
    index.store_prev_digests(parse_digest_listing(run.stdout, DIGEST_BYTES))
    return index.evaluate(has_previous)


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

