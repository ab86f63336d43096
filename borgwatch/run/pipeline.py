"""The stages of `borgwatch run`, in order, and the rules that skip them: create, diff (bookkeeping),
prune, compact, check. Runs inside a RunSession, which records and delivers what happened."""

from __future__ import annotations

import contextlib
import os
import time
from typing import TYPE_CHECKING

from borgwatch.borg.argv import files_cache_mode
from borgwatch.borg.env import BorgEnv, build_env
from borgwatch.borg.version import detect_version, find_borg
from borgwatch.errors import EXIT_ERROR, UserError
from borgwatch.model import EventName, Level, Stage, StageResult, Status
from borgwatch.run.plan import JobPlan, plan_job
from borgwatch.run.stages import (
    StageContext,
    run_check,
    run_compact,
    run_create,
    run_prune,
    skipped,
)

if TYPE_CHECKING:
    from borgwatch.run.filesdiff import FilesCacheRun
    from borgwatch.run.lifecycle import Problems
    from borgwatch.run.session import RunSession


def run_pipeline(session: RunSession) -> None:
    """Everything borgwatch itself refuses (no borg, unreadable passphrase, no paths) ends as the run's
    error line; the session records it like any other outcome."""
    config, job, result, redact = session.config, session.job, session.result, session.redact
    result.repository = redact(job.repository)
    env: BorgEnv | None = None
    try:
        borg = find_borg(config.borg)
        env = build_env(passcommand=job.passcommand, passphrase_file=job.passphrase_file,
                        passphrase_env=job.passphrase_env, extra=job.environment,
                        base_dir=config.borg_base_dir, where=f"jobs.{session.job_name}")
        for secret in env.secrets:
            redact.add(secret)
        result.repository = redact(job.repository)
        version = detect_version(borg, env.env, session.state_dir)
        result.borg_version = version.text
        plan = plan_job(config, session.job_name, result.host, session.state_dir, version)
        result.max_age_seconds = plan.max_age_seconds
        if plan.diff_off_why:
            session.problems.append(plan.diff_off_why)
        ctx = StageContext(plan, borg, env, redact, result, session.stop, session.output,
                           on_spawn=session.start_sinks)
        ctx.event(Level.INFO, EventName.RUN_STARTED, f"run of {plan.job_name} started",
                  repository=result.repository, archive=plan.archive, borg_version=version.text,
                  run_id=result.run_id)
        run_stages(ctx, session.problems)
        _drill_stage(ctx, session, plan)
    except UserError as exc:
        session.fail(exc)
    finally:
        if env is not None:
            env.close()


def run_stages(ctx: StageContext, problems: Problems) -> None:
    plan, job = ctx.plan, ctx.job
    if ctx.interrupted is not None:
        skipped(ctx, Stage.CREATE, "borgwatch was stopped before borg started")
        return
    if not job.paths:
        raise UserError(f"jobs.{plan.job_name}.paths is empty: list the directories to back up")
    rec = _open_snapshot(ctx) if Stage.DIFF in plan.stages else None
    made_archive = False
    try:
        create = run_create(ctx, plan.archive, rec)
        made_archive = ctx.result.archive is not None and create.status in (Status.SUCCESS, Status.WARNING)
        if rec is not None:
            _diff_stage(ctx, rec, made_archive)
            rec = None
    finally:
        if rec is not None:
            rec.abandon()
        _diff_problems(ctx, plan, problems)
    _maintenance(ctx, plan, made_archive and ctx.interrupted is None, problems)


def _maintenance(ctx: StageContext, plan: JobPlan, go_on: bool, problems: Problems) -> None:
    """prune, compact, check: only after a successful create, and never after a stop."""
    if Stage.PRUNE in plan.stages:
        if go_on and plan.overlap:
            why = (f"prune refused: jobs.{plan.job_name}.archive_name also matches the archives of job "
                   f"{plan.overlap}; end archive_name with {{now}} (or put a fixed text after {{job}})")
            ctx.result.stages.append(StageResult(Stage.PRUNE, Status.ERROR, EXIT_ERROR, time.time(), 0.0, why))
            problems.append(why)
        elif go_on:
            run_prune(ctx, plan.glob)
        else:
            skipped(ctx, Stage.PRUNE, "create did not succeed")
    if Stage.COMPACT in plan.stages:
        if go_on and ctx.interrupted is None:
            run_compact(ctx)
        else:
            skipped(ctx, Stage.COMPACT, "create did not succeed")
    if Stage.CHECK in plan.stages:
        due = check_due(plan, ctx.result.check_last_success_at)
        if go_on and ctx.interrupted is None and due:
            stage = run_check(ctx)
            if stage.status in (Status.SUCCESS, Status.WARNING):
                ctx.result.check_last_success_at = time.time()
        else:
            skipped(ctx, Stage.CHECK, "not due" if go_on else "create did not succeed")


def _drill_stage(ctx: StageContext, session: RunSession, plan: JobPlan) -> None:
    """After the backup's stages, when due (drill.every since the last successful drill), and only after a
    successful create: a drill of the archive this run just made."""
    if Stage.DRILL not in plan.stages:
        return
    from borgwatch.run.drill_stage import run_drill  # drill.core and borg.extract: ~7 ms, only for a drill

    create = ctx.result.stage(Stage.CREATE)
    made = create is not None and create.status in (Status.SUCCESS, Status.WARNING)
    last = ctx.result.drill.last_success_at if ctx.result.drill else None
    if not made or ctx.interrupted is not None:
        skipped(ctx, Stage.DRILL, "create did not succeed")
    elif not _due(plan.drill_every_seconds, last):
        skipped(ctx, Stage.DRILL, "not due")
    else:
        stage = run_drill(ctx, session.config)
        if stage.status != Status.SUCCESS and stage.message:
            session.problems.append(f"restore drill {stage.status}: {stage.message}")


def _due(every: float | None, last: float | None) -> bool:
    return every is None or last is None or time.time() - last >= every


def _open_snapshot(ctx: StageContext) -> FilesCacheRun | None:
    import sqlite3  # with the snapshot modules: only for runs that diff

    from borgwatch.run.filesdiff import FilesCacheRun

    plan = ctx.plan
    # the per-path index of borgwatch < 0.9 (a full listing every run): the snapshot replaced it
    with contextlib.suppress(OSError):
        os.unlink(plan.snapshot_path.with_name(f"{plan.job_name}.files.db"))
    try:
        return FilesCacheRun(plan.snapshot_path, mtime_mode="mtime" in files_cache_mode(ctx.job.extra_args))
    except (sqlite3.Error, OSError) as exc:
        ctx.snapshot_error = str(exc)
        # no snapshot of this run's archive will follow the baseline: were it kept, the next run would be
        # compared with an archive older than the job's last one
        with contextlib.suppress(OSError):
            os.unlink(plan.snapshot_path)
        return None


def _diff_stage(ctx: StageContext, rec: FilesCacheRun, made_archive: bool) -> None:
    """Only after a committed create that nobody stopped: otherwise this run's snapshot goes and the
    previous one stays the baseline (the next run is compared with the archive it describes)."""
    import sqlite3

    from borgwatch.run.diff_stage import run_diff

    if not made_archive or ctx.interrupted is not None or ctx.snapshot_error:
        rec.abandon()
        skipped(ctx, Stage.DIFF, "the dataset snapshot failed" if ctx.snapshot_error else "no archive was created")
        return
    try:
        run_diff(ctx, rec, ctx.create_stdout)
    except (sqlite3.Error, OSError) as exc:  # state_dir full or not writable: no diff, the backup stands
        rec.abandon(drop_baseline=True)
        ctx.snapshot_error, ctx.result.dataset = str(exc), None


def _diff_problems(ctx: StageContext, plan: JobPlan, problems: Problems) -> None:
    """Bookkeeping trouble is its own line (and no exact diff), never the backup's exit code."""
    if ctx.snapshot_error:
        lost = "" if ctx.result.dataset is not None else "no dataset diff this run; "
        problems.append(f"dataset snapshot {plan.snapshot_path} is unusable ({ctx.snapshot_error}); {lost}the next "
                        "run compares with borg diff; check free space and permissions of state_dir")
    elif ctx.diff_undecided:
        problems.append(f"the dataset diff of this run is not exact: {ctx.diff_undecided}")


def check_due(plan: JobPlan, last: float | None) -> bool:
    if plan.check_every_seconds is None or last is None:
        return True
    return time.time() - last >= plan.check_every_seconds
