"""The record of the last drill in state_dir (``JOB.drill.json``, replaced atomically). DrillResult lives in
model.py: RunResult carries the job's last drill to the sinks."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from borgwatch.model import DRILL_STATUSES, DrillResult
from borgwatch.store.files import atomic_write, read_own_file

MAX_RECORD_BYTES = 1 << 20
__all__ = ["DRILL_STATUSES", "DrillResult", "load_record", "record_path", "save_record"]


def record_path(state_dir: Path, job: str) -> Path:
    return state_dir / f"{job}.drill.json"


def save_record(state_dir: Path, result: DrillResult) -> None:
    atomic_write(record_path(state_dir, result.job), json.dumps(result.as_dict(), indent=1).encode(), 0o600)


def load_record(state_dir: Path, job: str) -> DrillResult | None:
    """The last drill's result, or None (none yet, or a record that is not ours or not readable)."""
    data = read_own_file(record_path(state_dir, job), MAX_RECORD_BYTES)
    if data is None:
        return None
    try:
        raw = json.loads(data)
        names = {f.name for f in dataclasses.fields(DrillResult)}
        return DrillResult(**{k: v for k, v in raw.items() if k in names})
    except (ValueError, TypeError):
        return None
