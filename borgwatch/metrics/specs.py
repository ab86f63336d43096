"""Every metric borgwatch exports: one table (the reference docs are checked against it) and the
mapping from a RunResult to samples. Exposition itself lives in ``borgwatch.metrics.exposition``."""

from __future__ import annotations

from dataclasses import dataclass

from borgwatch import __version__
from borgwatch.model import DRILL_STATUSES, RUN_STATUSES, DiffMethod, DrillResult, RunResult


@dataclass(frozen=True)
class MetricSpec:
    name: str  # full exposed name (counters end in _total)
    kind: str  # gauge | counter
    help: str
    labels: tuple[str, ...]
    source: str  # where the value comes from (for the reference)


# What a borg 2 run leaves absent (never zero), and why; the metrics reference prints it per metric.
BORG2_ABSENT: dict[str, str] = {
    "borgwatch_archive_compressed_bytes": "absent: borg 2 reports no compressed size",
    "borgwatch_repository_unique_bytes": "absent: borg 2 reports no repository totals",
    "borgwatch_repository_unique_compressed_bytes": "absent: borg 2 reports no repository totals",
    "borgwatch_repository_total_bytes": "absent: borg 2 reports no repository totals",
    "borgwatch_repository_total_compressed_bytes": "absent: borg 2 reports no repository totals",
    "borgwatch_repository_chunks": "absent: borg 2 reports no repository totals",
    "borgwatch_archive_deduplicated_bytes": "borg 2: the bytes the archive stored in the repository "
                                            "(stats.store_stats.backend_store_volume)",
}


def _g(name: str, help: str, labels: tuple[str, ...], source: str) -> MetricSpec:
    return MetricSpec(name, "gauge", help, ("backup_job", *labels), source)


def _c(name: str, help: str, labels: tuple[str, ...], source: str) -> MetricSpec:
    return MetricSpec(name, "counter", help, ("backup_job", *labels), source)


JOB_METRICS: tuple[MetricSpec, ...] = (
    _g("borgwatch_run_start_timestamp_seconds", "Unix time the last run started.", (), "wrapper clock"),
    _g("borgwatch_run_end_timestamp_seconds", "Unix time the last run ended.", (), "wrapper clock"),
    _g("borgwatch_run_duration_seconds", "Wall time of the last run, all stages.", (), "wrapper clock"),
    _g("borgwatch_run_in_progress", "1 while a run of the job is in progress, else 0.", (),
       "written 1 at start, 0 at the end"),
    _g("borgwatch_run_exit_code", "Borg exit code of the last run (worst backup stage).", (),
       "borg exit codes, BORG_EXIT_CODES=modern; borgwatch's own diff calls excluded"),
    _g("borgwatch_run_status", "Result of the last run, one-hot by status.", ("status",),
       "borg exit code class and warning policy"),
    _g("borgwatch_last_success_timestamp_seconds", "Unix time of the last successful run (persisted).", (),
       "state file"),
    _g("borgwatch_max_age_seconds", "Configured freshness target of the job (max_age).", (), "config"),
    _c("borgwatch_runs_total", "Runs of the job by result (persisted).", ("status",),
       "state file; a killed run is counted as interrupted by the next run"),
    _g("borgwatch_stage_exit_code", "Borg exit code of each stage of the last run.", ("stage",),
       "borg exit codes"),
    _g("borgwatch_stage_duration_seconds", "Wall time of each stage of the last run.", ("stage",),
       "wrapper clock"),
    _g("borgwatch_archive_original_bytes", "Size of the files in the last archive before compression.", (),
       "borg create --json archive.stats.original_size"),
    _g("borgwatch_archive_compressed_bytes", "Size of the last archive after compression.", (),
       "borg create --json archive.stats.compressed_size (borg 1.x)"),
    _g("borgwatch_archive_deduplicated_bytes", "New data the last run added to the repository.", (),
       "borg create --json archive.stats.deduplicated_size (borg 1.x)"),
    _g("borgwatch_archive_files", "Regular files in the last archive.", (), "borg create --json nfiles"),
    _g("borgwatch_archive_duration_seconds", "Duration of the archive creation as borg reports it.", (),
       "borg create --json archive.duration"),
    _g("borgwatch_dataset_files", "Regular files by change against the previous archive of the job.",
       ("change",), "borg's files cache + create --list --filter=AMEhC against the job's previous snapshot; "
       "fallback: borg diff --json-lines; absent when no count could be trusted (method none)"),
    _g("borgwatch_dataset_diff_exact", "1 if the dataset diff of the last run is exact, 0 if it has no "
       "trusted counts.", (), "diff stage; 0 with method none, and one line of the run says why"),
    _g("borgwatch_dataset_diff_method", "How the dataset diff of the last run was made, one-hot by method.",
       ("method",), "diff stage: files_cache, borg_diff (fallback), first_backup, none"),
    _g("borgwatch_log_messages", "Borg log messages of the last run by level.", ("level",),
       "borg --log-json log_message records"),
    _g("borgwatch_borg_cpu_seconds", "CPU time used by the borg processes of the last run.", ("mode",),
       "psutil cpu_times of borg"),
    _g("borgwatch_borg_max_rss_bytes", "Peak resident memory of borg in the last run.", (),
       "psutil memory_info sampled + wait4 rusage"),
    _g("borgwatch_borg_io_bytes", "Bytes borg read and wrote in the last run.", ("direction",),
       "psutil io_counters of borg"),
    _g("borgwatch_repository_unique_bytes", "Deduplicated size of the repository, uncompressed.", (),
       "borg create --json cache.stats.unique_size"),
    _g("borgwatch_repository_unique_compressed_bytes", "Deduplicated, compressed size of the repository.", (),
       "borg create --json cache.stats.unique_csize"),
    _g("borgwatch_repository_total_bytes", "Size of all archives in the repository before dedup.", (),
       "borg create --json cache.stats.total_size"),
    _g("borgwatch_repository_total_compressed_bytes", "Compressed size of all archives before dedup.", (),
       "borg create --json cache.stats.total_csize"),
    _g("borgwatch_repository_chunks", "Distinct chunks in the repository.", (),
       "borg create --json cache.stats.total_unique_chunks"),
    _g("borgwatch_prune_archives", "Archives kept and pruned by the last prune stage.", ("action",),
       "borg prune --list"),
    _g("borgwatch_check_last_success_timestamp_seconds", "Unix time of the last successful check stage.", (),
       "state file"),
    _c("borgwatch_sink_failures_total", "Failed delivery attempts by sink (persisted).", ("sink",),
       "loki, pushgateway and ping sinks"),
    _c("borgwatch_sink_dropped_total", "Items a sink gave up for good: spool full or rejected (persisted).",
       ("sink",), "loki sink (log lines)"),
    _g("borgwatch_sink_spooled_items", "Items waiting in a sink's disk spool for the next run.", ("sink",),
       "loki sink spool (log lines)"),
    _g("borgwatch_build_info", "Always 1; versions of borgwatch and borg.", ("version", "borg_version"),
       "borgwatch and borg --version"),
)

DRILL_PREFIX = "borgwatch_drill_"


def _d(name: str, help: str, labels: tuple[str, ...], source: str) -> MetricSpec:
    return MetricSpec(DRILL_PREFIX + name, "gauge", help, ("backup_job", *labels), source)


# The job's last restore drill (`borgwatch drill` or the run's drill stage), in the same textfile.
DRILL_METRICS: tuple[MetricSpec, ...] = (
    _d("start_timestamp_seconds", "Unix time the last restore drill started.", (), "wrapper clock"),
    _d("end_timestamp_seconds", "Unix time the last restore drill ended.", (), "wrapper clock"),
    _d("duration_seconds", "Wall time of the last restore drill.", (), "wrapper clock"),
    _d("status", "Result of the last restore drill, one-hot by status.", ("status",),
       "verification of the restored files"),
    _d("last_success_timestamp_seconds", "Unix time of the last successful restore drill (persisted).", (),
       "drill record in state_dir"),
    _d("max_age_seconds", "Configured freshness target of the job's drills (drill.max_age).", (), "config"),
    _d("files", "Files of the last drill's sample by verdict.", ("result",),
       "restored files compared with the live file or the archive's content hash"),
    _d("bytes", "Bytes of the last drill's sample by verdict.", ("result",),
       "restored files compared with the live file or the archive's content hash"),
    _d("archive_age_seconds", "Age of the archive the last drill restored from, at the drill's end.", (),
       "borg list --json (archive start)"),
    _d("restore_throughput_bytes_per_second", "Bytes restored per second of borg extract in the last drill.",
       (), "restored bytes / wall time of borg extract"),
    _d("rto_estimate_seconds", "Estimated time to restore the whole archive at the last drill's rate.", (),
       "archive size (borg list) / restore throughput"),
    _d("coverage_ratio", "Share of the archive's files verified by drills over the last 30 days.", (),
       "coverage database in state_dir"),
    _d("dry_run_success", "1 if the last drill's borg extract --dry-run of the whole archive succeeded.", (),
       "borg extract --dry-run (drill.dry_run_archive)"),
)
DRILL_VERDICTS = ("verified", "mismatched", "unreadable")

# Written by ``borgwatch collect`` (repository inventory), one file per repository.
INVENTORY_METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("borgwatch_inventory_archives", "gauge", "Archives in the repository.", ("repository",),
               "borg list --json"),
    MetricSpec("borgwatch_inventory_last_archive_timestamp_seconds", "gauge",
               "Unix time of the newest archive in the repository (any client).", ("repository",),
               "borg list --json --last 1"),
    MetricSpec("borgwatch_inventory_unique_bytes", "gauge", "Deduplicated size of the repository.",
               ("repository",), "borg info --json cache.stats.unique_size"),
    MetricSpec("borgwatch_inventory_unique_compressed_bytes", "gauge",
               "Deduplicated, compressed size of the repository.", ("repository",),
               "borg info --json cache.stats.unique_csize"),
    MetricSpec("borgwatch_inventory_total_bytes", "gauge", "Size of all archives before dedup.",
               ("repository",), "borg info --json cache.stats.total_size"),
    MetricSpec("borgwatch_inventory_collect_success", "gauge",
               "1 if the last inventory collection of the repository succeeded.", ("repository",), "collect"),
    MetricSpec("borgwatch_inventory_collect_skipped", "gauge",
               "1 if the last collection was skipped because a backup held the lock.", ("repository",),
               "collect"),
    MetricSpec("borgwatch_inventory_collect_timestamp_seconds", "gauge",
               "Unix time of the last inventory collection attempt.", ("repository",), "collect"),
    MetricSpec("borgwatch_inventory_collect_duration_seconds", "gauge",
               "Wall time of the last inventory collection.", ("repository",), "collect"),
)

ALL_METRICS: tuple[MetricSpec, ...] = (*JOB_METRICS, *DRILL_METRICS, *INVENTORY_METRICS)
SPECS: dict[str, MetricSpec] = {m.name: m for m in ALL_METRICS}

Sample = tuple[str, dict[str, str], float]  # (metric name, labels without backup_job, value)


def job_samples(result: RunResult) -> list[Sample]:
    """All samples of one job's textfile, from its latest RunResult."""
    out: list[Sample] = []

    def add(name: str, value: float | int | None, **labels: str) -> None:
        if value is not None:
            out.append((name, labels, float(value)))

    add("borgwatch_run_start_timestamp_seconds", result.started_at)
    add("borgwatch_run_end_timestamp_seconds", result.ended_at)
    add("borgwatch_run_duration_seconds", result.duration_seconds if result.ended_at else None)
    add("borgwatch_run_in_progress", 1 if result.in_progress else 0)
    if result.status != "running":
        add("borgwatch_run_exit_code", result.exit_code)
        for status in RUN_STATUSES:
            add("borgwatch_run_status", 1 if result.status == status else 0, status=status)
    add("borgwatch_last_success_timestamp_seconds", result.last_success_at)
    add("borgwatch_max_age_seconds", result.max_age_seconds)
    for status in RUN_STATUSES:
        add("borgwatch_runs_total", result.runs_total.get(status, 0), status=status)
    for stage in result.stages:
        if stage.status == "skipped":
            continue
        add("borgwatch_stage_exit_code", stage.exit_code, stage=stage.name)
        add("borgwatch_stage_duration_seconds", stage.duration_seconds, stage=stage.name)
    if result.archive:
        a = result.archive
        add("borgwatch_archive_original_bytes", a.original_bytes)
        add("borgwatch_archive_compressed_bytes", a.compressed_bytes)
        add("borgwatch_archive_deduplicated_bytes", a.deduplicated_bytes)
        add("borgwatch_archive_files", a.files)
        add("borgwatch_archive_duration_seconds", a.duration_seconds)
    if result.dataset:
        if result.dataset.method != DiffMethod.NONE:
            for change, count in result.dataset.as_counts().items():
                add("borgwatch_dataset_files", count, change=change)
        add("borgwatch_dataset_diff_exact", 1 if result.dataset.exact else 0)
        for method in DiffMethod:
            add("borgwatch_dataset_diff_method", 1 if result.dataset.method == method else 0, method=method)
    if result.status != "running":
        add("borgwatch_log_messages", result.warnings, level="warning")
        add("borgwatch_log_messages", result.errors, level="error")
        r = result.resources
        add("borgwatch_borg_cpu_seconds", r.cpu_user_seconds, mode="user")
        add("borgwatch_borg_cpu_seconds", r.cpu_system_seconds, mode="system")
        add("borgwatch_borg_max_rss_bytes", r.max_rss_bytes)
        add("borgwatch_borg_io_bytes", r.read_bytes, direction="read")
        add("borgwatch_borg_io_bytes", r.write_bytes, direction="write")
    if result.repository_stats:
        rs = result.repository_stats
        add("borgwatch_repository_unique_bytes", rs.unique_bytes)
        add("borgwatch_repository_unique_compressed_bytes", rs.unique_compressed_bytes)
        add("borgwatch_repository_total_bytes", rs.total_bytes)
        add("borgwatch_repository_total_compressed_bytes", rs.total_compressed_bytes)
        add("borgwatch_repository_chunks", rs.unique_chunks)
    if result.prune:
        add("borgwatch_prune_archives", result.prune.kept, action="kept")
        add("borgwatch_prune_archives", result.prune.pruned, action="pruned")
    add("borgwatch_check_last_success_timestamp_seconds", result.check_last_success_at)
    for sink, count in sorted(result.sink_failures_total.items()):
        add("borgwatch_sink_failures_total", count, sink=sink)
    for sink, count in sorted(result.sink_dropped_total.items()):
        add("borgwatch_sink_dropped_total", count, sink=sink)
    for report in result.sink_reports:
        add("borgwatch_sink_spooled_items", report.spooled, sink=report.sink)
    add("borgwatch_build_info", 1, version=__version__, borg_version=result.borg_version or "unknown")
    if result.drill is not None:
        out += drill_samples(result.drill)
    return out


def drill_samples(result: DrillResult) -> list[Sample]:
    out: list[Sample] = []

    def add(name: str, value: float | None, **labels: str) -> None:
        if value is not None:
            out.append((DRILL_PREFIX + name, labels, float(value)))

    add("start_timestamp_seconds", result.started_at)
    add("end_timestamp_seconds", result.ended_at)
    add("duration_seconds", result.duration_seconds)
    for status in DRILL_STATUSES:
        add("status", 1 if result.status == status else 0, status=status)
    add("last_success_timestamp_seconds", result.last_success_at)
    add("max_age_seconds", result.max_age_seconds)
    for verdict in DRILL_VERDICTS:
        add("files", getattr(result, f"files_{verdict}"), result=verdict)
        add("bytes", getattr(result, f"bytes_{verdict}"), result=verdict)
    add("archive_age_seconds", result.archive_age_seconds)
    add("restore_throughput_bytes_per_second", result.throughput_bytes_per_second)
    add("rto_estimate_seconds", result.rto_seconds)
    add("coverage_ratio", result.coverage_ratio)
    if result.dry_run_ok is not None:
        add("dry_run_success", 1 if result.dry_run_ok else 0)
    return out
