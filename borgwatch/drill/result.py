"""The result of one drill and its record in state_dir (``JOB.drill.json``, replaced atomically)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from borgwatch.store.files import atomic_write, read_own_file

DRILL_STATUSES = ("success", "failed", "error", "interrupted")
MAX_RECORD_BYTES = 1 << 20


@dataclass
class DrillResult:
    job: str
    started_at: float
    seed: int
    status: str = "error"
    ended_at: float | None = None
    archive: str | None = None
    archive_time: float | None = None  # when borg made the archive (Unix time)
    archive_files: int = 0
    archive_bytes: int = 0
    files_sampled: int = 0
    files_verified: int = 0
    bytes_verified: int = 0
    files_mismatched: int = 0
    bytes_mismatched: int = 0
    files_unreadable: int = 0
    bytes_unreadable: int = 0
    restored_bytes: int = 0
    restore_seconds: float = 0.0
    dry_run_ok: bool | None = None
    coverage_ratio: float | None = None
    max_age_seconds: float | None = None
    last_success_at: float | None = None  # persisted across drills
    problems: list[str] = field(default_factory=list)  # one line each: the file (or step) and the cause
    verified_paths: list[str] = field(default_factory=list, repr=False)

    @property
    def duration_seconds(self) -> float | None:
        return None if self.ended_at is None else self.ended_at - self.started_at

    @property
    def throughput_bytes_per_second(self) -> float | None:
        if self.restored_bytes <= 0 or self.restore_seconds <= 0:
            return None
        return self.restored_bytes / self.restore_seconds

    @property
    def rto_seconds(self) -> float | None:
        """Time to restore the whole archive at this drill's restore rate."""
        rate = self.throughput_bytes_per_second
        return self.archive_bytes / rate if rate and self.archive_bytes else None

    @property
    def archive_age_seconds(self) -> float | None:
        if self.archive_time is None or self.ended_at is None:
            return None
        return max(0.0, self.ended_at - self.archive_time)

    def as_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data.pop("verified_paths")
        data.update(duration_seconds=self.duration_seconds, archive_age_seconds=self.archive_age_seconds,
                    throughput_bytes_per_second=self.throughput_bytes_per_second, rto_seconds=self.rto_seconds)
        return data


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
