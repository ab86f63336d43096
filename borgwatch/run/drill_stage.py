"""The drill stage of a run (in its own module: run/stages.py holds the borg-command stages)."""

from __future__ import annotations

import secrets
import time
from pathlib import Path

from borgwatch.config.schema import Config
from borgwatch.drill.config import plan as plan_drill
from borgwatch.drill.core import drill, summary
from borgwatch.drill.result import DrillResult, load_record, save_record
from borgwatch.model import EventName, Level, Stage, StageResult, Status
from borgwatch.run.stages import StageContext

MAX_DRILL_EVENTS = 100  # mismatch events per drill (the record and --json keep every problem line)


def run_drill(ctx: StageContext, config: Config) -> StageResult:
    """A restore drill as the run's last stage, under the run's lock and signal handlers; its result is
    recorded (the drill record) and carried by RunResult.drill to every sink."""
    assert ctx.job.drill is not None
    name, state_dir = ctx.plan.job_name, Path(config.state_dir)
    previous = load_record(state_dir, name)
    drill_plan = plan_drill(ctx.job.drill)
    result = DrillResult(name, time.time(), drill_plan.seed if drill_plan.seed is not None else secrets.randbits(32),
                         max_age_seconds=drill_plan.max_age_seconds,
                         last_success_at=previous.last_success_at if previous else None)
    ctx.event(Level.INFO, EventName.STAGE_STARTED, "stage drill started", stage=Stage.DRILL)
    rc = drill(config, name, ctx.job, drill_plan, None, result, previous, ctx.stop)
    result.ended_at = time.time()
    if result.status == "success":
        result.last_success_at = result.ended_at
    result.verified_paths = []  # the coverage database has them; the state file does not need them
    save_record(state_dir, result)
    ctx.result.drill = result
    status = {"success": Status.SUCCESS, "interrupted": Status.INTERRUPTED}.get(result.status, Status.ERROR)
    message = result.problems[0] if result.problems and status != Status.SUCCESS else ""
    stage = StageResult(Stage.DRILL, status, rc, result.started_at, result.ended_at - result.started_at, message)
    ctx.result.stages.append(stage)
    for problem in result.problems[:MAX_DRILL_EVENTS]:
        ctx.event(Level.ERROR, EventName.DRILL_MISMATCH, ctx.redact(problem), archive=result.archive or "")
    level = Level.INFO if status == Status.SUCCESS else Level.ERROR
    ctx.event(level, EventName.DRILL_SUMMARY, summary(result), status=result.status, archive=result.archive or "",
              seed=result.seed, files_verified=result.files_verified, files_mismatched=result.files_mismatched,
              files_unreadable=result.files_unreadable, coverage_ratio=result.coverage_ratio,
              duration_seconds=round(stage.duration_seconds, 3))
    ctx.event(level, EventName.STAGE_FINISHED, f"stage drill finished: {status}", stage=Stage.DRILL,
              exit_code=rc, duration_seconds=round(stage.duration_seconds, 3), status=status)
    return stage
