"""`borgwatch drill JOB…|--all`: restore a sample of the job's newest (or a named) archive with real
`borg extract` into a private temporary directory, verify it, record the result and deliver it.

A drill is a RunSession like `run` and `exec`: the job's lock (a backup and a drill of one job never
overlap; borg gets the job's lock wait), the signal handlers, and the sinks through the registry — the
drill's record and textfile series first, then Loki (its events), the drill's own ping check and the
Pushgateway (the drill's series only). It writes nothing but its temporary directory (removed
afterwards), its record and the job's files, and never changes the repository.
"""

from __future__ import annotations

from borgwatch.commands import console
from borgwatch.config.load import load_config
from borgwatch.config.schema import Config
from borgwatch.drill.core import SHOWN_PROBLEMS, summary
from borgwatch.errors import UserError
from borgwatch.model import Command
from borgwatch.run.drill_stage import drill_with_events
from borgwatch.run.session import RunOutcome, RunSession


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
        outcome = drill_job(config, name, archive)  # JobLocked: refused, nothing recorded
        worst = worst or outcome.exit_code
        drill = outcome.result.drill
        assert drill is not None
        results.append(drill.as_dict())
        if not as_json:
            print(summary(drill))
        for line in drill.problems[:SHOWN_PROBLEMS]:
            console.problem(f"drill of {name}: {line}")
        if len(drill.problems) > SHOWN_PROBLEMS:
            console.problem(f"drill of {name}: … and {len(drill.problems) - SHOWN_PROBLEMS} more (see --json)")
        for line in outcome.problems:
            console.problem(f"drill of {name}: {line}")
    if as_json:
        console.print_json(results)
    return worst


def drill_job(config: Config, name: str, archive: str | None = None) -> RunOutcome:
    """One drill of ``name`` through the run lifecycle (lock, signals, record, delivery)."""
    with RunSession(config, name, Command.DRILL) as session:
        drill, exit_code, _ = drill_with_events(config, name, session.stop, session.event, session.redact,
                                                archive, on_started=session.start_sinks)
        return session.finish_drill(drill, exit_code)
