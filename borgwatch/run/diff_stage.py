"""The diff stage of a run: the files-cache diff, its one fallback, and which method made the counts.

Normal path (no borg process beyond create): this run's snapshot reconciles with borg's ``nfiles`` and is
merged against the job's previous snapshot; the few paths only borg can judge go to one ``borg diff``
restricted to them. On any doubt, one full ``borg diff --json-lines`` between the previous archive and this
one is counted instead (``DiffMethod.BORG_DIFF``); no previous archive at all is a first backup. When
nothing can be trusted the counts are dropped (``DiffMethod.NONE``, ``diff_exact 0``) and one line says why.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
import threading
import time

from borgwatch.borg import argv as borg_argv
from borgwatch.borg.exitcodes import completed
from borgwatch.borg.paths import archive_path, path_pattern
from borgwatch.borg.results import archive_names, diff_verdicts
from borgwatch.dataset.snapshot import SnapshotDiff, settle, undecided_paths
from borgwatch.model import DatasetDiff, DiffMethod, EventName, Level, Stage, StageResult, Status
from borgwatch.run.filesdiff import FilesCacheRun
from borgwatch.run.stages import StageContext, StageRunner

DIFF_TIMEOUT = 3600
MAX_SETTLE_PATHS = 2000  # more undecided paths than this: the full fallback instead
# bytes of pf: arguments in one restricted borg diff: far below ARG_MAX (2 MiB on Linux, environment included)
MAX_SETTLE_ARG_BYTES = 256 << 10


class Undecidable(Exception):
    """No count of this run can be trusted (``str()``: one line saying why; ``rc``: the failing borg's)."""

    def __init__(self, why: str, rc: int = 0) -> None:
        super().__init__(why)
        self.rc = rc


def run_diff(ctx: StageContext, rec: FilesCacheRun, create_stdout: bytes) -> StageResult:
    started, t0 = time.time(), time.monotonic()
    ctx.event(Level.INFO, EventName.STAGE_STARTED, "stage diff started", stage=Stage.DIFF)
    assert ctx.result.archive is not None
    nfiles, version = ctx.result.archive.files, ctx.plan.version
    archive = borg_argv.archive_ref(ctx.result.archive.name, ctx.result.archive.id, version)
    previous, foreign = rec.previous_archive(), ""
    if previous and not borg_argv.names_jobs_archive(previous, ctx.plan.glob, version):
        foreign, previous = f"the previous snapshot describes {previous}, not an archive of this job", ""
    # no baseline names an archive: only the repository can say whether this is the job's first backup
    listing = PreviousListing(ctx, archive) if archive and not previous else None
    try:
        sealed = rec.seal(create_stdout, ctx.env.env, version, nfiles, archive)
    except (sqlite3.Error, OSError) as exc:  # state_dir full: borg diff against the previous snapshot's archive
        sealed = f"this run's snapshot cannot be written ({exc})"
        ctx.snapshot_error = f"cannot write this run's snapshot beside it: {exc}"
    doubt = borg_argv.files_cache_refusal(ctx.job.extra_args) or sealed or foreign
    dataset: DatasetDiff | None = None
    why, rc = "", 0
    try:
        if not archive:
            raise Undecidable("borg create --json names no id of the archive it made")
        if not doubt:
            dataset, doubt = _files_cache(ctx, rec, previous, archive)
        if dataset is None:
            dataset = _compare(ctx, rec, previous, archive, nfiles, listing)
    except Undecidable as exc:
        why, rc = str(exc), exc.rc
        dataset = DatasetDiff(error=rec.errors, method=DiffMethod.NONE, exact=False)
    finally:
        if listing is not None:
            listing.join()
    if sealed:  # the old baseline goes too: it describes an archive older than the job's last one
        rec.abandon(drop_baseline=True)
    else:
        try:
            rec.promote()
        except OSError as exc:  # the counts stand; the next run has no baseline and falls back
            rec.abandon(drop_baseline=True)
            ctx.snapshot_error = f"cannot replace it: {exc.strerror or exc}"
    ctx.result.dataset = dataset
    ctx.diff_undecided = why
    status = Status.INTERRUPTED if ctx.interrupted is not None else Status.WARNING if why else Status.SUCCESS
    duration = time.monotonic() - t0
    # the stage's message says why the files-cache method was not used (the fallback's counts are exact)
    stage = StageResult(Stage.DIFF, status, rc, started, duration, why or (f"fallback: {doubt}" if doubt else ""))
    ctx.result.stages.append(stage)
    ctx.event(Level.INFO if not why else Level.WARNING, EventName.STAGE_FINISHED, f"stage diff finished: {status}",
              stage=Stage.DIFF, exit_code=rc, duration_seconds=round(duration, 3), status=status,
              **dataset.as_counts(), method=dataset.method)
    return stage


def _files_cache(ctx: StageContext, rec: FilesCacheRun, previous: str, archive: str
                 ) -> tuple[DatasetDiff | None, str]:
    """The snapshots' merge; (None, why) on any doubt."""
    try:
        found = rec.diff()
    except sqlite3.Error as exc:  # a damaged baseline (garbage, a zeroed page) is no baseline
        return None, f"the previous snapshot is unreadable ({exc})"
    if found is None:
        return None, "no previous snapshot of the job"
    if not found.doubt:
        _settle(ctx, rec, found, previous, archive)
    if found.doubt:
        return None, found.doubt
    ctx.result.previous_archive = previous
    return DatasetDiff(added=found.added, modified=found.modified, unchanged=found.unchanged,
                       removed=found.removed, error=rec.errors, method=DiffMethod.FILES_CACHE), ""


def _settle(ctx: StageContext, rec: FilesCacheRun, found: SnapshotDiff, previous: str, archive: str) -> None:
    """The few paths only borg can judge: one borg diff restricted to them, bounded by ARG_MAX."""
    paths: dict[str, bytes] = {}
    size = 0
    for raw in undecided_paths(rec.snapshot):
        text = os.fsdecode(raw)
        if "/./" in text or ".." in text.split("/"):  # borg names these otherwise inside the archive
            found.doubt = f"the undecided path {text!r} has no archive name borgwatch can compute"
            return
        paths[archive_path(text)] = raw
        size += len(path_pattern(text).encode()) + 1
        if len(paths) > MAX_SETTLE_PATHS or size > MAX_SETTLE_ARG_BYTES:
            found.doubt = "too many undecided paths for one restricted borg diff"
            return
    if not paths:
        settle(rec.snapshot, found, {})
        return
    if not previous:
        found.doubt = "the previous snapshot names no archive"
        return
    argv = borg_argv.diff(ctx.borg, ctx.job.repository, previous, archive, ctx.plan.lock_wait,
                          [f"pf:{p}" for p in paths], version=ctx.plan.version, content_only=False)
    runner = StageRunner(ctx, Stage.DIFF, instrumentation=True)
    run = runner.spawn(argv, DIFF_TIMEOUT)
    if not completed(run.returncode) or run.timed_out or ctx.interrupted is not None:
        found.doubt = (f"borg diff of the undecided paths failed (rc {run.returncode}: "
                       f"{runner.first_error or 'see log'})")
        return
    verdicts = {paths[p]: v for p, v in diff_verdicts(run.stdout.splitlines()) if p in paths}
    settle(rec.snapshot, found, verdicts)


def _listed_previous(ctx: StageContext, archive: str) -> str:
    """The job's newest archive before this run's, asked of the repository: only when the job keeps no
    snapshot (first run, state lost, the last snapshot could not vouch)."""
    _not_stopped(ctx)
    runner = StageRunner(ctx, Stage.DIFF, instrumentation=True)
    run = runner.spawn(borg_argv.list_archives(ctx.borg, ctx.job.repository, ctx.plan.lock_wait, ctx.plan.glob,
                                               version=ctx.plan.version))
    names = archive_names(run.stdout, ctx.plan.version)
    if run.returncode != 0 or names is None or ctx.interrupted is not None:
        raise Undecidable(f"cannot list the job's archives to find the previous one (borg list rc "
                          f"{run.returncode}: {runner.first_error or 'see log'})", run.returncode)
    older = [name for name in names if name != archive]  # borg 2: aid:ID, as this run's archive
    return older[-1] if older else ""  # borg lists them by time


class PreviousListing:
    """``_listed_previous`` in a thread, started before this run's snapshot is sealed: the seal (a second of
    CPU at 100k files) and the listing borg's start-up (most of its time) overlap instead of adding up."""

    def __init__(self, ctx: StageContext, archive: str) -> None:
        self._outcome: str | Exception = ""
        self._thread = threading.Thread(target=self._list, args=(ctx, archive), daemon=True)
        self._thread.start()

    def _list(self, ctx: StageContext, archive: str) -> None:
        try:
            self._outcome = _listed_previous(ctx, archive)
        except Exception as exc:  # noqa: BLE001 - raised again by result(), in the run's own thread
            self._outcome = exc

    def join(self) -> None:
        self._thread.join()

    def result(self) -> str:
        self.join()
        if isinstance(self._outcome, Exception):
            raise self._outcome
        return self._outcome


def _compare(ctx: StageContext, rec: FilesCacheRun, previous: str, archive: str, nfiles: int,
             listing: PreviousListing | None = None) -> DatasetDiff:
    """The fallback against the archive the snapshot names; when that one is gone (deleted, pruned by
    hand), against the job's newest archive the repository still has (``listing``: already asked)."""
    if not previous:
        return _fallback(ctx, rec, listing.result() if listing else _listed_previous(ctx, archive), archive, nfiles)
    try:
        return _fallback(ctx, rec, previous, archive, nfiles)
    except Undecidable:
        listed = _listed_previous(ctx, archive)
        if not listed or listed == previous:
            raise
        return _fallback(ctx, rec, listed, archive, nfiles)


def _not_stopped(ctx: StageContext) -> None:
    if ctx.interrupted is not None:
        raise Undecidable("borgwatch was stopped before the dataset diff could ask borg")


def _fallback(ctx: StageContext, rec: FilesCacheRun, previous: str, archive: str, nfiles: int) -> DatasetDiff:
    """One full borg diff, streamed and counted; or a first backup when the job has no previous archive."""
    files = rec.names(nfiles, ctx.plan.version)
    if not previous:
        return DatasetDiff(added=files, error=rec.errors, method=DiffMethod.FIRST_BACKUP)
    _not_stopped(ctx)
    ctx.result.previous_archive = previous
    counts = {"added": 0, "removed": 0, "modified": 0}
    runner = StageRunner(ctx, Stage.DIFF, instrumentation=True)
    argv = borg_argv.diff(ctx.borg, ctx.job.repository, previous, archive, ctx.plan.lock_wait,
                          version=ctx.plan.version, content_only=False)
    with tempfile.TemporaryFile() as out:
        run = runner.spawn(argv, DIFF_TIMEOUT, stdout_file=out)
        if not completed(run.returncode) or run.timed_out or ctx.interrupted is not None:
            raise Undecidable(f"borg diff against {previous} failed (rc {run.returncode}: "
                              f"{runner.first_error or 'see log'})", run.returncode)
        out.seek(0)
        for _, verdict in diff_verdicts(out):
            counts[verdict] += 1
    unchanged = files - counts["added"] - counts["modified"]
    if unchanged < 0:
        raise Undecidable(f"borg diff reports more added and modified files than the archive holds ({files})")
    return DatasetDiff(added=counts["added"], modified=counts["modified"], unchanged=unchanged,
                       removed=counts["removed"], error=rec.errors, method=DiffMethod.BORG_DIFF)
