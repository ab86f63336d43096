"""Per-job state: last result, last success, persisted counters, the previous archive's name.

Written atomically (temp file, fsync, rename; a temp file left by a killed run is removed at the next
write). A missing or corrupt file means a fresh start with a warning, never a crash; a field of the
wrong type is dropped with a warning and repaired by the next write.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from borgwatch.errors import UserError
from borgwatch.model import RunResult
from borgwatch.store.files import (
    atomic_write,
    check_private_dir,
    fsync_dir,
    make_dirs,
    read_own_file,
    remove_stale_temps,
)

__all__ = ["JobState", "ensure_state_dir", "fsync_dir", "load_state", "save_state", "state_from_result"]

STATE_VERSION = 1
MAX_STATE_BYTES = 16 * 1024 * 1024  # a state file is a few kB; anything bigger is not ours


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
    """Create state_dir (0700, whatever the umask) and refuse one other users can plant files in."""
    try:
        make_dirs(state_dir)
    except OSError as exc:
        raise UserError(f"cannot create state_dir {state_dir}: {exc.strerror}; create it or set state_dir "
                        "to a writable directory") from None
    check_private_dir(state_dir, "state_dir")
    return state_dir


def state_path(state_dir: Path, job: str) -> Path:
    return state_dir / f"{job}.json"


def load_state(state_dir: Path, job: str) -> tuple[JobState, str | None]:
    """-> (state, warning). The warning names the problem when the file, or a field of it, was unusable."""
    path = state_path(state_dir, job)
    if not path.exists() and not path.is_symlink():
        return JobState(), None
    try:
        data = read_own_file(path, MAX_STATE_BYTES)
        if data is None:
            raise ValueError("not a regular file of borgwatch's user, or too big")
        raw = json.loads(data.decode("utf-8"))
        if not isinstance(raw, dict) or raw.get("version") != STATE_VERSION:
            raise ValueError("unknown format")
    except (OSError, ValueError) as exc:
        return JobState(), (f"state file {path} is unreadable or corrupt ({exc}); starting fresh — "
                            "last success and counters restart from this run")
    hints = typing.get_type_hints(JobState)
    kept: dict[str, Any] = {}
    bad: list[str] = []
    for name in JobState.__dataclass_fields__:
        if name not in raw:
            continue
        value = raw[name]
        if name == "last_result" and value is not None:
            ok = isinstance(value, dict) and conforms(RunResult, value)
        else:
            ok = conforms(hints[name], value)
        if ok:
            kept[name] = value
        elif isinstance(value, dict) and typing.get_origin(hints[name]) is dict and name != "last_result":
            kept[name] = {k: v for k, v in value.items() if conforms(hints[name], {k: v})}  # keep the good
            bad += [f"{name}.{k}" for k in value if k not in kept[name]]
        else:
            bad.append(name)
    warning = None
    if bad:
        warning = (f"state file {path}: ignored wrongly typed field(s) {', '.join(bad)[:200]}; they restart "
                   "from this run and are repaired when its state is written")
    return JobState(**kept), warning


def conforms(hint: Any, value: Any) -> bool:
    """Whether JSON-decoded ``value`` fits the type ``hint`` (dataclasses: their fields, recursively)."""
    if hint is Any:
        return True
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(conforms(a, value) for a in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if origin is list:
        (item,) = typing.get_args(hint)
        return isinstance(value, list) and all(conforms(item, v) for v in value)
    if origin is dict:
        key, item = typing.get_args(hint)
        return isinstance(value, dict) and all(conforms(key, k) and conforms(item, v) for k, v in value.items())
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            return False
        hints = typing.get_type_hints(hint)
        for f in dataclasses.fields(hint):
            if f.name in value:
                if not conforms(hints[f.name], value[f.name]):
                    return False
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                return False
        return True
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def save_state(state_dir: Path, job: str, state: JobState) -> None:
    path = state_path(state_dir, job)
    remove_stale_temps(path)  # the job's lock is held: any temp file of this job is a killed run's
    data = json.dumps({"version": STATE_VERSION, **asdict(state)}, indent=1, sort_keys=True)
    # durable (both fsyncs): the only record of the last success, the counters and the diff's baseline; a
    # run that has exited must not come undone, nor the file be emptied, by a power loss
    atomic_write(path, data.encode("utf-8"))


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
