"""The typed result of one run: the only thing sinks receive.

Everything here is plain data (dataclasses of ints, floats and strings) so that a RunResult can be
stored in the state file, printed as JSON and rebuilt with ``RunResult.from_dict``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    """Of a run and of a stage (equal to the strings the state files and metrics carry)."""

    RUNNING = "running"
    SUCCESS = "success"
    WARNING = "warning"
    ERROR = "error"
    INTERRUPTED = "interrupted"
    SKIPPED = "skipped"  # stages only


class Stage(StrEnum):
    CREATE = "create"
    DIFF = "diff"  # bookkeeping: borgwatch's own borg calls, never the run's status or exit code
    PRUNE = "prune"
    COMPACT = "compact"
    CHECK = "check"
    DRILL = "drill"  # a restore drill when due: its own metrics and record, never the backup's status
    OTHER = "other"  # exec of a borg command that is none of the above


class Command(StrEnum):
    RUN = "run"
    EXEC = "exec"
    DRILL = "drill"  # `borgwatch drill`: the sinks publish the drill (and their own counters), not a backup


class WarningPolicy(StrEnum):
    """How a borg warning counts (``warnings`` of a job)."""

    WARNING = "warning"  # exit non-zero, last success updated
    SUCCESS = "success"  # exit 0
    ERROR = "error"  # exit 2, no last success


class DiffMode(StrEnum):
    """``dataset_diff`` of a job."""

    EXACT = "exact"
    FAST = "fast"  # deprecated alias of exact (check-config says so)
    OFF = "off"


class DiffMethod(StrEnum):
    """How a run's dataset diff was made (``borgwatch_dataset_diff_method``)."""

    FILES_CACHE = "files_cache"  # borg's files cache against the job's previous snapshot
    BORG_DIFF = "borg_diff"  # the fallback: one full borg diff between the previous archive and this one
    FIRST_BACKUP = "first_backup"  # no previous archive of the job: every file is added
    NONE = "none"  # no count could be trusted this run (the reason is the run's problem line)


class Level(StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class EventName(StrEnum):
    """The one table of event names: value, usual level ("varies" when it follows a status), meaning, fields."""

    level: str
    meaning: str
    fields: tuple[str, ...]

    def __new__(cls, value: str, level: str, meaning: str, fields: tuple[str, ...]) -> EventName:
        member = str.__new__(cls, value)
        member._value_ = value
        member.level, member.meaning, member.fields = level, meaning, fields
        return member

    RUN_STARTED = ("run_started", "info", "a run (or exec) began; sinks see it before borg starts",
                   ("repository", "archive", "borg_version", "run_id", "command"))
    RUN_ERROR = ("run_error", "error", "borgwatch itself refused or failed the run (cause and remedy)", ())
    STAGE_STARTED = ("stage_started", "info", "a stage's borg command started", ("stage",))
    STAGE_FINISHED = ("stage_finished", "varies", "a stage ended; its level follows its status",
                      ("stage", "exit_code", "duration_seconds", "status", "added", "modified", "unchanged",
                       "removed", "error", "method"))
    BORG_MESSAGE = ("borg_message", "varies", "a warning or error borg logged (redacted), at borg's own time",
                    ("stage", "msgid", "path"))
    FILE_STATUS = ("file_status", "info", "a file borg added, modified or could not read (log_files)", ("status",))
    DRILL_MISMATCH = ("drill_mismatch", "error", "a restore drill found a file that does not verify (or cannot be "
                      "restored); one event per file, path and cause in the message", ("archive", "path"))
    DRILL_SUMMARY = ("drill_summary", "varies", "a restore drill ended (`borgwatch drill` or a run's drill stage): "
                     "the same numbers as the borgwatch_drill_* metrics",
                     ("status", "archive", "seed", "files_verified", "files_mismatched", "files_unreadable",
                      "coverage_ratio", "duration_seconds"))
    RUN_SUMMARY = ("run_summary", "varies", "the finished run in one line, the same numbers as the textfile "
                   "metrics (the Loki sink adds it)",
                   ("status", "exit_code", "duration_seconds", "started_at", "ended_at", "repository", "archive",
                    "borg_version", "command", "warnings", "errors", "error", "archive_*", "dataset_*",
                    "cpu_user_seconds", "cpu_system_seconds", "max_rss_bytes", "read_bytes", "write_bytes",
                    "repository_*", "prune_kept", "prune_pruned", "stages", "stage_NAME_exit_code",
                    "stage_NAME_duration_seconds", "events_dropped"))


EVENTS: tuple[EventName, ...] = tuple(EventName)

RUN_STATUSES = tuple(s.value for s in (Status.SUCCESS, Status.WARNING, Status.ERROR, Status.INTERRUPTED))
DATASET_CHANGES = ("added", "modified", "unchanged", "removed", "error")


@dataclass
class StageResult:
    name: str
    status: str  # success | warning | error | interrupted | skipped
    exit_code: int
    started_at: float
    duration_seconds: float
    message: str = ""  # borg's first error (or warning) message, already redacted


@dataclass
class ArchiveStats:
    name: str
    id: str = ""
    original_bytes: int = 0
    compressed_bytes: int | None = None  # None where borg lacks Feature.COMPRESSED_SIZE (borg 2)
    deduplicated_bytes: int | None = None
    files: int = 0
    duration_seconds: float = 0.0


@dataclass
class RepositoryStats:
    unique_bytes: int | None = None
    unique_compressed_bytes: int | None = None
    total_bytes: int | None = None
    total_compressed_bytes: int | None = None
    total_chunks: int | None = None
    unique_chunks: int | None = None


@dataclass
class DatasetDiff:
    added: int = 0
    modified: int = 0
    unchanged: int = 0
    removed: int = 0
    error: int = 0
    method: str = DiffMethod.FILES_CACHE
    exact: bool = True

    def as_counts(self) -> dict[str, int]:
        return {change: getattr(self, change) for change in DATASET_CHANGES}


@dataclass
class Resources:
    cpu_user_seconds: float = 0.0
    cpu_system_seconds: float = 0.0
    max_rss_bytes: int = 0
    read_bytes: int = 0
    write_bytes: int = 0

    def add(self, other: Resources) -> None:
        self.cpu_user_seconds += other.cpu_user_seconds
        self.cpu_system_seconds += other.cpu_system_seconds
        self.max_rss_bytes = max(self.max_rss_bytes, other.max_rss_bytes)
        self.read_bytes += other.read_bytes
        self.write_bytes += other.write_bytes


@dataclass
class PruneStats:
    kept: int = 0
    pruned: int = 0


@dataclass
class RunEvent:
    """One structured log event of a run (shipped to Loki / journald)."""

    time: float
    level: str  # debug | info | warning | error
    event: str  # run_started | stage_started | stage_finished | borg_message | file_status | run_summary
    message: str
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass
class SinkReport:
    """What a delivery sink says about itself after a run (exported as metrics)."""

    sink: str
    failures: int = 0  # failed delivery attempts in this run
    spooled: int = 0  # lines/items waiting on disk for the next run
    dropped: int = 0  # lines/items given up for good in this run
    delivered: int = 0


DRILL_STATUSES = ("success", "failed", "error", "interrupted")


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
    problem_paths: dict[str, str] = field(default_factory=dict, repr=False)  # problem line -> its file (events)

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
        data.pop("problem_paths")
        data.update(duration_seconds=self.duration_seconds, archive_age_seconds=self.archive_age_seconds,
                    throughput_bytes_per_second=self.throughput_bytes_per_second, rto_seconds=self.rto_seconds)
        return data


@dataclass
class RunResult:
    job: str
    run_id: str
    host: str
    started_at: float
    repository: str = ""  # already redacted (no credentials)
    archive_name: str = ""
    previous_archive: str = ""  # the job's archive this run is compared against
    borg_version: str = ""
    command: str = Command.RUN
    in_progress: bool = True
    ended_at: float | None = None
    status: str = Status.RUNNING
    exit_code: int = 0
    error: str = ""  # one line: cause and remedy, when borgwatch or borg failed
    stages: list[StageResult] = field(default_factory=list)
    archive: ArchiveStats | None = None
    repository_stats: RepositoryStats | None = None
    dataset: DatasetDiff | None = None
    resources: Resources = field(default_factory=Resources)
    warnings: int = 0
    errors: int = 0
    prune: PruneStats | None = None
    max_age_seconds: float | None = None
    last_success_at: float | None = None
    check_last_success_at: float | None = None
    runs_total: dict[str, int] = field(default_factory=dict)  # persisted, by status
    sink_reports: list[SinkReport] = field(default_factory=list)
    sink_failures_total: dict[str, int] = field(default_factory=dict)  # persisted, by sink
    sink_dropped_total: dict[str, int] = field(default_factory=dict)  # persisted, by sink
    events: list[RunEvent] = field(default_factory=list)
    events_dropped: int = 0
    drill: DrillResult | None = None  # the job's last restore drill (this run's drill stage, or the record)

    @property
    def duration_seconds(self) -> float:
        if self.ended_at is None:
            return 0.0
        return max(0.0, self.ended_at - self.started_at)

    def stage(self, name: str) -> StageResult | None:
        return next((s for s in self.stages if s.name == name), None)

    def to_dict(self, with_events: bool = True) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["duration_seconds"] = self.duration_seconds
        if not with_events:
            data.pop("events")
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunResult:
        return _build(cls, data)


def _build(cls: type, data: Any) -> Any:
    """Rebuild a (nested) dataclass from ``asdict`` output; unknown keys are ignored."""
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            kwargs[f.name] = _convert(hints[f.name], data[f.name])
    return cls(**kwargs)


def _convert(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        return _convert(inner[0], value) if len(inner) == 1 else value
    if origin is list:
        (item,) = typing.get_args(hint)
        return [_convert(item, v) for v in value]
    if dataclasses.is_dataclass(hint):
        return _build(hint, value)
    return value
