"""`borgwatch status`: every job's last run, from its state file and lock (never from borg)."""

from __future__ import annotations

import time
from pathlib import Path

from borgwatch.commands import console
from borgwatch.config.load import load_config
from borgwatch.config.schema import Config
from borgwatch.drill.result import load_record
from borgwatch.errors import EXIT_ERROR
from borgwatch.model import DrillResult
from borgwatch.run.lifecycle import RunMarker
from borgwatch.store.lock import JobLock
from borgwatch.store.state import load_state


def status_rows(config: Config, problems: list[str] | None = None) -> list[dict]:
    """``problems`` receives one line per job whose state cannot be read (its row says "unknown")."""
    rows = []
    for name in config.jobs:
        state, warning = load_state(Path(config.state_dir), name)
        if warning and problems is not None:
            problems.append(f"{name}: {warning.split('; ')[0]}; its last run is unknown until the next run "
                            "records one")
        last = state.previous_result()
        running = JobLock(Path(config.state_dir), name).held()
        rows.append({
            "unknown": bool(warning),
            "job": name,
            "running": running,
            # a run marker nobody holds the lock for: that run was killed before it recorded itself
            "killed": not running and RunMarker(Path(config.state_dir), name).path.is_file(),
            "status": last.status if last else None,
            "exit_code": last.exit_code if last else None,
            "started_at": last.started_at if last else None,
            "duration_seconds": last.duration_seconds if last else None,
            "last_success_at": state.last_success_at,
            "last_success_age_seconds": (time.time() - state.last_success_at) if state.last_success_at else None,
            "max_age_seconds": last.max_age_seconds if last else None,
            "archive": last.archive_name if last else None,
            "dataset": ({**last.dataset.as_counts(), "method": last.dataset.method, "exact": last.dataset.exact}
                        if last and last.dataset else None),
            "error": last.error if last else None,
            "drill": _drill_row(load_record(Path(config.state_dir), name)),
        })
    return rows


def _drill_row(drill: DrillResult | None) -> dict | None:
    """The job's last restore drill (its record in state_dir), or None when it never had one."""
    if drill is None:
        return None
    return {key: getattr(drill, key) for key in (
        "status", "started_at", "ended_at", "archive", "seed", "files_verified", "files_mismatched",
        "files_unreadable", "coverage_ratio", "last_success_at", "max_age_seconds")} | {
        "archive_age_seconds": drill.archive_age_seconds, "problems": drill.problems[:10]}


def status_command(config_path: str | None, as_json: bool) -> int:
    config = load_config(config_path)
    problems: list[str] = []
    rows = status_rows(config, problems)
    if as_json:
        console.print_json(rows)
    else:
        print(console.status_table(rows))
        if any(r["drill"] for r in rows):
            print()
            print(console.drill_table(rows))
    for text in problems:
        console.problem(text)
    return EXIT_ERROR if problems else 0
