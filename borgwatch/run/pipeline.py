"""The stages of `borgwatch run`, in order, and the rules that skip them: create, diff (bookkeeping),
prune, compact, check. Runs inside a RunSession, which records and delivers what happened."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from borgwatch.borg.env import BorgEnv, build_env
from borgwatch.borg.paths import archive_path
from borgwatch.borg.version import detect_version, find_borg
from borgwatch.errors import EXIT_ERROR, UserError
from borgwatch.model import EventName, Level, Stage, StageResult, Status
from borgwatch.run.plan import JobPlan, plan_job
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

if TYPE_CHECKING:
    import sqlite3

    from borgwatch.dataset.index import DatasetIndex
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
    index = None
    if Stage.DIFF in plan.stages:  # sqlite3 and the index are imported only for a diff: every use needs an index
        import sqlite3

        from borgwatch.dataset.index import close_quietly, open_index
        index, note = open_index(plan.index_path, archive_path)
        problems.append(note)
    made_archive = False
    try:
        if index is not None:
            try:
                ctx.result.previous_archive = verify_baseline(ctx, index, plan.glob)
            except sqlite3.Error as exc:
                index = drop_index(ctx, index, exc)
        if ctx.interrupted is not None:  # e.g. during the baseline listing: no backup after a stop
            skipped(ctx, Stage.CREATE, "borgwatch was stopped before borg create started")
            return
        create = run_create(ctx, plan.archive, index)
        made_archive = ctx.result.archive is not None and create.status in (Status.SUCCESS, Status.WARNING)
        if index is not None:
            _diff_stage(ctx, index, made_archive)
            index = None
    finally:
        if index is not None:
            close_quietly(index)
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


def _diff_stage(ctx: StageContext, index: DatasetIndex, made_archive: bool) -> None:
    import sqlite3

    from borgwatch.dataset.index import close_quietly
    try:
        if made_archive and ctx.interrupted is None and not ctx.index_error:
            has_prev = bool(ctx.result.previous_archive) and index.has_previous_files()
            index.finish_recording()
            run_diff(ctx, index, ctx.plan.diff_mode, has_prev)
            index.promote(ctx.result.archive_name)
            close_quietly(index)
            return
        index.abandon()
        skipped(ctx, Stage.DIFF, "the dataset index failed" if ctx.index_error else "no archive was created")
        if ctx.index_error:
            drop_index(ctx, index, None)
        else:
            close_quietly(index)
    except sqlite3.Error as exc:
        ctx.result.dataset = None
        drop_index(ctx, index, exc)


def drop_index(ctx: StageContext, index: DatasetIndex, exc: sqlite3.Error | None) -> None:
    """The index failed mid-run (state_dir full, damaged): no diff this run, and a fresh one next run."""
    from borgwatch.dataset.index import close_quietly, remove_index
    close_quietly(index)
    why = ctx.index_error or str(exc)
    removed = remove_index(index.path)
    ctx.index_error = f"{why}; it {removed}" if removed else why


def _diff_problems(ctx: StageContext, plan: JobPlan, problems: Problems) -> None:
    """Bookkeeping trouble is its own line (and diff_exact 0), never the backup's exit code."""
    if ctx.index_error:
        problems.append(f"dataset index {plan.index_path} is unusable ({ctx.index_error}); no dataset diff this "
                        "run — the next run rebuilds it; check free space and permissions of state_dir")
        return
    dataset = ctx.result.dataset
    if dataset is not None and not dataset.exact and ctx.diff_doubt:
        problems.append(f"the dataset diff of this run is not exact: {ctx.diff_doubt}")
    stage = ctx.result.stage(Stage.DIFF)
    if stage is not None and stage.status == Status.WARNING and stage.message:
        problems.append(stage.message)


def check_due(plan: JobPlan, last: float | None) -> bool:
    if plan.check_every_seconds is None or last is None:
        return True
    return time.time() - last >= plan.check_every_seconds
