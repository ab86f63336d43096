"""A restore drill with its events and record, for both the run's drill stage and `borgwatch drill` (in
its own module: run/stages.py holds the borg-command stages)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from pathlib import Path

from borgwatch.config.schema import Config, DrillConfig
from borgwatch.drill.config import plan as plan_drill
from borgwatch.drill.core import Stopper, drill, summary
from borgwatch.drill.result import DrillResult, load_record, save_record
from borgwatch.model import EventName, Level, Stage, StageResult, Status
from borgwatch.redact import Redactor
from borgwatch.run.stages import StageContext

MAX_DRILL_EVENTS = 100  # mismatch events per drill (the record and --json keep every problem line)
EventSink = Callable[..., None]  # (level, event name, message, **fields): RunSession.event, StageContext.event


def drill_with_events(config: Config, name: str, stop: Stopper, event: EventSink, redact: Redactor,
                      archive: str | None = None, on_started: Callable[[], None] | None = None
                      ) -> tuple[DrillResult, int, StageResult]:
    """One drill of job ``name``: its events (started, one per problem, summary, finished), its record
    saved. The caller holds the job's lock and the signal handlers (a RunSession); ``redact`` learns the
    job's secrets; ``on_started``: after the start event, before the first borg (the sinks start)."""
    job = config.jobs[name]
    state_dir = Path(config.state_dir)
    previous = load_record(state_dir, name)
    drill_plan = plan_drill(job.drill or DrillConfig())
    result = DrillResult(name, time.time(), drill_plan.seed if drill_plan.seed is not None else secrets.randbits(32),
                         max_age_seconds=drill_plan.max_age_seconds,
                         last_success_at=previous.last_success_at if previous else None)
    event(Level.INFO, EventName.STAGE_STARTED, "stage drill started", stage=Stage.DRILL)
    if on_started is not None:
        on_started()
    rc = drill(config, name, job, drill_plan, archive, result, previous, stop, redact)
    result.ended_at = time.time()
    if result.status == "success":
        result.last_success_at = result.ended_at
    result.verified_paths = []  # the coverage database has them; the record does not need them
    save_record(state_dir, result)
    status = {"success": Status.SUCCESS, "interrupted": Status.INTERRUPTED}.get(result.status, Status.ERROR)
    message = result.problems[0] if result.problems and status != Status.SUCCESS else ""
    stage = StageResult(Stage.DRILL, status, rc, result.started_at, result.ended_at - result.started_at, message)
    for problem in result.problems[:MAX_DRILL_EVENTS]:
        path = result.problem_paths.get(problem)
        event(Level.ERROR, EventName.DRILL_MISMATCH, redact(problem), archive=result.archive or "",
              **({"path": redact(path)} if path else {}))
    result.problem_paths = {}  # events only: the record and the run's state keep the problem lines
    level = Level.INFO if status == Status.SUCCESS else Level.ERROR
    event(level, EventName.DRILL_SUMMARY, summary(result), status=result.status, archive=result.archive or "",
          seed=result.seed, files_verified=result.files_verified, files_mismatched=result.files_mismatched,
          files_unreadable=result.files_unreadable, coverage_ratio=result.coverage_ratio,
          duration_seconds=round(stage.duration_seconds, 3))
    event(level, EventName.STAGE_FINISHED, f"stage drill finished: {status}", stage=Stage.DRILL,
          exit_code=rc, duration_seconds=round(stage.duration_seconds, 3), status=status)
    return result, rc, stage


def run_drill(ctx: StageContext, config: Config) -> StageResult:
    """A restore drill as the run's last stage, under the run's lock and signal handlers; its result is
    recorded (the drill record) and carried by RunResult.drill to every sink."""
    result, _, stage = drill_with_events(config, ctx.plan.job_name, ctx.stop, ctx.event, ctx.redact)
    ctx.result.drill = result
    ctx.result.stages.append(stage)
    return stage
