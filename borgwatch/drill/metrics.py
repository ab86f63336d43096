"""The drill's metrics (``borgwatch_drill_*``): one table, the samples of a DrillResult, and the merge
into the job's textfile that replaces only the drill series and keeps the run's."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from borgwatch.drill.result import DRILL_STATUSES, DrillResult
from borgwatch.metrics.exposition import FullSample, build_registry, render_text
from borgwatch.metrics.specs import SPECS, MetricSpec, Sample
from borgwatch.store.files import atomic_write, read_own_file, remove_stale_temps

PREFIX = "borgwatch_drill_"
MAX_TEXTFILE_BYTES = 1024 * 1024  # as the textfile sink: a bigger file is not ours


def _g(name: str, help: str, labels: tuple[str, ...], source: str) -> MetricSpec:
    return MetricSpec(PREFIX + name, "gauge", help, ("backup_job", *labels), source)


DRILL_METRICS: tuple[MetricSpec, ...] = (
    _g("start_timestamp_seconds", "Unix time the last restore drill started.", (), "wrapper clock"),
    _g("end_timestamp_seconds", "Unix time the last restore drill ended.", (), "wrapper clock"),
    _g("duration_seconds", "Wall time of the last restore drill.", (), "wrapper clock"),
    _g("status", "Result of the last restore drill, one-hot by status.", ("status",),
       "verification of the restored files"),
    _g("last_success_timestamp_seconds", "Unix time of the last successful restore drill (persisted).", (),
       "drill record in state_dir"),
    _g("max_age_seconds", "Configured freshness target of the job's drills (drill.max_age).", (), "config"),
    _g("files", "Files of the last drill's sample by verdict.", ("result",),
       "restored files compared with the live file or the archive's content hash"),
    _g("bytes", "Bytes of the last drill's sample by verdict.", ("result",),
       "restored files compared with the live file or the archive's content hash"),
    _g("archive_age_seconds", "Age of the archive the last drill restored from, at the drill's end.", (),
       "borg list --json (archive start)"),
    _g("restore_throughput_bytes_per_second", "Bytes restored per second of borg extract in the last drill.",
       (), "restored bytes / wall time of borg extract"),
    _g("rto_estimate_seconds", "Estimated time to restore the whole archive at the last drill's rate.", (),
       "archive size (borg list) / restore throughput"),
    _g("coverage_ratio", "Share of the archive's files verified by drills over the last 30 days.", (),
       "coverage database in state_dir"),
    _g("dry_run_success", "1 if the last drill's borg extract --dry-run of the whole archive succeeded.", (),
       "borg extract --dry-run (drill.dry_run_archive)"),
)
DRILL_SPECS: dict[str, MetricSpec] = {m.name: m for m in DRILL_METRICS}
VERDICTS = ("verified", "mismatched", "unreadable")


def drill_samples(result: DrillResult) -> list[Sample]:
    out: list[Sample] = []

    def add(name: str, value: float | None, **labels: str) -> None:
        if value is not None:
            out.append((PREFIX + name, labels, float(value)))

    add("start_timestamp_seconds", result.started_at)
    add("end_timestamp_seconds", result.ended_at)
    add("duration_seconds", result.duration_seconds)
    for status in DRILL_STATUSES:
        add("status", 1 if result.status == status else 0, status=status)
    add("last_success_timestamp_seconds", result.last_success_at)
    add("max_age_seconds", result.max_age_seconds)
    for verdict in VERDICTS:
        add("files", getattr(result, f"files_{verdict}"), result=verdict)
        add("bytes", getattr(result, f"bytes_{verdict}"), result=verdict)
    add("archive_age_seconds", result.archive_age_seconds)
    add("restore_throughput_bytes_per_second", result.throughput_bytes_per_second)
    add("rto_estimate_seconds", result.rto_seconds)
    add("coverage_ratio", result.coverage_ratio)
    if result.dry_run_ok is not None:
        add("dry_run_success", 1 if result.dry_run_ok else 0)
    return out


class DrillCollector(Collector):
    """The drill families with HELP/TYPE from DRILL_SPECS (a seam: once metrics/specs.py lists
    DRILL_METRICS, exposition's SnapshotCollector serves them and this class goes)."""

    def __init__(self, samples: Iterable[FullSample]) -> None:
        self.samples = list(samples)

    def collect(self) -> Iterable[Metric]:
        for name, spec in DRILL_SPECS.items():
            family = GaugeMetricFamily(name, spec.help, labels=list(spec.labels))
            rows = [(labels, value) for n, labels, value in self.samples if n == name]
            for labels, value in rows:
                family.add_metric([labels.get(n, "") for n in spec.labels], value)
            if rows:
                yield family


def merge_into_textfile(path: Path, job: str, result: DrillResult) -> None:
    """Replace the drill series in the job's textfile and keep every other series (call under the job's
    lock: a run of the job rewrites the same file)."""
    remove_stale_temps(path)
    kept = [s for s in _existing(path, job) if not s[0].startswith(PREFIX)]
    drill = CollectorRegistry(auto_describe=False)
    drill.register(DrillCollector([(n, {"backup_job": job, **labels}, v) for n, labels, v
                                   in drill_samples(result)]))
    atomic_write(path, render_text(build_registry(kept)) + render_text(drill), mode=0o644)


def _existing(path: Path, job: str) -> list[FullSample]:
    # the textfile dir may be writable by others: never follow a planted symlink, FIFO or hard link
    data = read_own_file(path, MAX_TEXTFILE_BYTES)
    try:
        text = data.decode("utf-8") if data is not None else ""
        return [(s.name, dict(s.labels), s.value) for family in text_string_to_metric_families(text)
                for s in family.samples if s.name in SPECS and s.labels.get("backup_job") == job]
    except (UnicodeDecodeError, ValueError):
        return []
