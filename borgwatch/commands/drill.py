"""`borgwatch drill JOB…|--all`: restore a sample of the job's newest (or a named) archive with real
`borg extract` into a private temporary directory, verify it, record the result and its metrics.

A drill holds the job's lock (a backup and a drill of one job never overlap), passes borg the job's lock
wait, writes nothing but its temporary directory (removed afterwards), its record and the job's textfile,
and never changes the repository.
"""

from __future__ import annotations

import secrets
import signal
import time
from pathlib import Path

from borgwatch.commands import console
from borgwatch.config.load import load_config
from borgwatch.config.schema import Config, DrillConfig
from borgwatch.drill.config import DrillPlan, plan
from borgwatch.drill.core import SHOWN_PROBLEMS, STOP_SIGNALS, Stop, drill, summary
from borgwatch.drill.result import DrillResult, load_record, save_record
from borgwatch.errors import EXIT_ERROR, UserError
from borgwatch.metrics.specs import drill_samples
from borgwatch.sinks.textfile import TextfileSink
from borgwatch.store.files import make_dirs
from borgwatch.store.lock import JobLock
from borgwatch.store.state import load_state


def drill_command(config_path: str | None, jobs: list[str], all_jobs: bool, archive: str | None,
                  as_json: bool) -> int:
    config = load_config(config_path)
    names = list(config.jobs) if all_jobs else jobs
    if not names:
        raise UserError("name the job(s) to drill, or pass --all")
    for name in names:
        if name not in config.jobs:
            raise UserError(f"unknown job {name!r}; configured jobs: {', '.join(config.jobs) or 'none'}")
    worst, results = 0, []
    for name in names:
        result, status = drill_job(config, name, plan(config.jobs[name].drill or DrillConfig()), archive)
        worst = worst or status
        if result is None:
            continue
        results.append(result.as_dict())
        if not as_json:
            print(summary(result))
        for line in result.problems[:SHOWN_PROBLEMS]:
            console.problem(f"drill of {name}: {line}")
        if len(result.problems) > SHOWN_PROBLEMS:
            console.problem(f"drill of {name}: … and {len(result.problems) - SHOWN_PROBLEMS} more (see --json)")
    if as_json:
        console.print_json(results)
    return worst


def drill_job(config: Config, name: str, drill_plan: DrillPlan, archive: str | None
              ) -> tuple[DrillResult | None, int]:
    """One drill under the job's lock; (None, exit status) when the lock is held by a run."""
    job = config.jobs[name]
    state_dir = Path(config.state_dir)
    make_dirs(state_dir)
    lock = JobLock(state_dir, name)
    lock.acquire()  # JobLocked: refused, nothing recorded (the holder owns the job's files)
    stop = Stop()
    previous_handlers = {sig: signal.signal(sig, stop) for sig in STOP_SIGNALS}
    try:
        previous = load_record(state_dir, name)
        result = DrillResult(name, time.time(), drill_plan.seed if drill_plan.seed is not None
                             else secrets.randbits(32), max_age_seconds=drill_plan.max_age_seconds,
                             last_success_at=previous.last_success_at if previous else None)
        exit_status = drill(config, name, job, drill_plan, archive, result, previous, stop)
        result.ended_at = time.time()
        if result.status == "success":
            result.last_success_at = result.ended_at
        save_record(state_dir, result)
        try:
            write_textfile(config, name, state_dir, result)
        except OSError as exc:
            result.problems.append(f"cannot write metrics to {config.textfile_dir}: {exc.strerror or exc}; "
                                   "create the directory and make it writable for borgwatch's user")
            exit_status = exit_status or EXIT_ERROR
        return result, exit_status
    finally:
        for sig, handler in previous_handlers.items():
            signal.signal(sig, handler)
        lock.release()


def write_textfile(config: Config, name: str, state_dir: Path, drill: DrillResult) -> None:
    """The job's textfile from its last run's RunResult carrying this drill: the normal textfile path, so
    the backup's series stay (call under the job's lock)."""
    state, _ = load_state(state_dir, name)
    last_run = state.previous_result()
    if last_run is None:  # no backup recorded yet: the drill's series alone
        from borgwatch.metrics.exposition import build_registry, with_labels
        from borgwatch.metrics.exposition import write_textfile as write
        write(TextfileSink(config, name).path, build_registry(with_labels(drill_samples(drill), backup_job=name)))
        return
    last_run.drill = drill
    TextfileSink(config, name).on_finish(last_run)


