"""Per-job state: last result, last success, persisted counters, the previous archive's name.

Written atomically (temp file, fsync, rename). A missing or corrupt file means a fresh start with a
warning, never a crash.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from borgwatch.errors import UserError
from borgwatch.model import RunResult

STATE_VERSION = 1


@dataclass
class JobState:
    last_result: dict[str, Any] | None = None
    last_success_at: float | None = None
    check_last_success_at: float | None = None
    last_archive: str | None = None  # the last archive this job committed (the diff's baseline)
    runs_total: dict[str, int] = field(default_factory=dict)
    sink_failures_total: dict[str, int] = field(default_factory=dict)
    sink_dropped_total: dict[str, int] = field(default_factory=dict)

    def previous_result(self) -> RunResult | None:
        if not self.last_result:
            return None
        try:
            return RunResult.from_dict(self.last_result)
        except (TypeError, ValueError, KeyError):
            return None


def ensure_state_dir(state_dir: Path) -> Path:
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create state_dir {state_dir}: {exc.strerror}; create it or set state_dir "
                        "to a writable directory") from None
    return state_dir


def state_path(state_dir: Path, job: str) -> Path:
    return state_dir / f"{job}.json"


def load_state(state_dir: Path, job: str) -> tuple[JobState, str | None]:
    """-> (state, warning). The warning names the problem when the file was unusable."""
    path = state_path(state_dir, job)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(raw, dict) or raw.get("version") != STATE_VERSION:
            raise ValueError("unknown format")
        known = {k: raw[k] for k in JobState.__dataclass_fields__ if k in raw}
        return JobState(**known), None
    except FileNotFoundError:
        return JobState(), None
    except (OSError, ValueError, TypeError) as exc:
        return JobState(), (f"state file {path} is unreadable or corrupt ({exc}); starting fresh — "
                            "last success and counters restart from this run")


def save_state(state_dir: Path, job: str, state: JobState) -> None:
    path = state_path(state_dir, job)
    data = json.dumps({"version": STATE_VERSION, **asdict(state)}, indent=1, sort_keys=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=state_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(state_dir)


def state_from_result(result: RunResult, last_archive: str | None) -> JobState:
    return JobState(
        last_result=result.to_dict(with_events=False),
        last_success_at=result.last_success_at,
        check_last_success_at=result.check_last_success_at,
        last_archive=last_archive,
        runs_total=dict(result.runs_total),
        sink_failures_total=dict(result.sink_failures_total),
        sink_dropped_total=dict(result.sink_dropped_total),
    )


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (best effort)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
