"""The configuration schema: the single source of truth for keys, types, defaults and docs.

Each dataclass is one TOML table. ``field(metadata=...)`` carries the documentation (``doc``), allowed
values (``choices``) and value kinds (``kind``: duration, secret-path, command) used by the loader and
by the generated reference (docs/config.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from borgwatch.config.agent import PingConfig, PushgatewayConfig, RepositoryConfig
from borgwatch.config.fields import opt, required
from borgwatch.config.loki import LokiConfig

DEFAULT_TEXTFILE_DIR = "/var/lib/prometheus/node-exporter"
DEFAULT_STATE_DIR = "/var/lib/borgwatch"
DEFAULT_CONFIG_PATH = "/etc/borgwatch/config.toml"
DEFAULT_ARCHIVE_NAME = "{hostname}-{job}-{now:%Y-%m-%dT%H:%M:%S.%f}"  # as borgmatic: 2 runs in 1 s


@dataclass
class PruneConfig:
    keep_within: str | None = opt(None, "Keep all archives within this time interval (borg syntax, e.g. 2d).")
    keep_last: int | None = opt(None, "Number of archives to keep regardless of age.", min=0)
    keep_minutely: int | None = opt(None, "Number of minutely archives to keep.", min=0)
    keep_hourly: int | None = opt(None, "Number of hourly archives to keep.", min=0)
    keep_daily: int | None = opt(None, "Number of daily archives to keep.", min=0)
    keep_weekly: int | None = opt(None, "Number of weekly archives to keep.", min=0)
    keep_monthly: int | None = opt(None, "Number of monthly archives to keep.", min=0)
    keep_yearly: int | None = opt(None, "Number of yearly archives to keep.", min=0)
    extra_args: list[str] = opt([], "Extra arguments appended to borg prune.")


@dataclass
class CompactConfig:
    threshold: int | None = opt(None, "Minimum saved space in percent for a segment to be compacted.",
                                  min=0, max=100)
    extra_args: list[str] = opt([], "Extra arguments appended to borg compact.")


@dataclass
class CheckConfig:
    every: str | None = opt(None, "Run the check only when the last successful one is older than this "
                                  "(e.g. 7d); empty means every run.", kind="duration")
    repository_only: bool = opt(False, "Only check the repository (--repository-only).")
    archives_only: bool = opt(False, "Only check the archives (--archives-only).")
    verify_data: bool = opt(False, "Read and verify all data (--verify-data); slow.")
    max_duration: int | None = opt(None, "Partial repository check of at most this many seconds.", min=0)
    extra_args: list[str] = opt([], "Extra arguments appended to borg check.")


@dataclass
class DrillConfig:
    every: str = opt("7d", "Run a drill after a backup when the last drill is older than this.", kind="duration")
    max_age: str = opt("8d", "No successful drill for this long fires BackupRestoreDrillStale.",
                       kind="duration")
    max_files: int = opt(200, "Most files restored and verified per drill.", min=1)
    max_bytes: int = opt(256 << 20, "Most bytes restored per drill (bounds the temporary directory).", min=1)
    sample_percent: float = opt(5.0, "Share of the archive's files sampled per drill (before max_files).",
                                gt=0, max=100)
    seed: int | None = opt(None, "Seed of the sample choice (default: a new one per drill, recorded).", min=0)
    dry_run_archive: bool = opt(False, "Also `borg extract --dry-run` the whole archive (reads every chunk).")
    paths: list[str] = opt([], "Source paths restored in full (within max_bytes) for a real restore time.")
    temp_dir: str | None = opt(None, "Where the private restore directory is made (default: the system's "
                                     "temporary directory); never inside the job's paths.", kind="path")
    ping: PingConfig | None = opt(None, "The drill's own healthchecks-style check: the keys of [jobs.NAME.ping]; "
                                        "a drill never pings the job's backup check.")


@dataclass
class JobConfig:
    repository: str = required("Borg repository (path or ssh://… URL).", kind="secret-url")
    paths: list[str] = opt([], "Source paths to back up (required for `borgwatch run`).")
    exclude: list[str] = opt([], "Exclude patterns (borg --exclude).")
    exclude_from: str | None = opt(None, "File with exclude patterns (borg --exclude-from).")
    patterns_from: str | None = opt(None, "File with include/exclude patterns (borg --patterns-from).")
    exclude_caches: bool = opt(False, "Exclude directories tagged with CACHEDIR.TAG.")
    one_file_system: bool = opt(False, "Stay in the same file system (borg --one-file-system).")
    archive_name: str = opt(DEFAULT_ARCHIVE_NAME, "Archive name template; {job} and {hostname} are "
                                                  "filled in by borgwatch, other {…} placeholders by borg.")
    compression: str | None = opt(None, "Compression spec (borg --compression), e.g. zstd,3.")
    passcommand: str | None = opt(None, "Command that prints the passphrase (BORG_PASSCOMMAND).",
                                  kind="secret-command")
    passphrase_file: str | None = opt(None, "File holding the passphrase (passed via BORG_PASSPHRASE_FD).",
                                      kind="path")
    passphrase_env: str | None = opt(None, "Name of an environment variable holding the passphrase.")
    environment: dict[str, str] = opt({}, "Extra environment for borg, e.g. BORG_RSH. Values are "
                                          "treated as secrets in all output.", kind="secret-values")
    extra_args: list[str] = opt([], "Extra arguments appended to borg create.")
    lock_wait: int | None = opt(None, "Seconds borg waits for the repository lock (default: global).", min=0)
    max_age: str | None = opt(None, "Freshness target, e.g. 26h; exported as borgwatch_max_age_seconds.",
                              kind="duration")
    warnings: str = opt("warning", "How a borg warning counts: warning (exit non-zero, last success "
                                   "updated), success (exit 0) or error (exit non-zero, no last success).",
                        choices=("warning", "success", "error"))
    dataset_diff: str = opt("exact", "Dataset diff against the previous run's archive: exact (from borg's "
                                     "files cache) or off; fast is a deprecated alias of exact.",
                            choices=("exact", "fast", "off"))
    log_files: bool = opt(False, "Ship one log event per changed file (A/M/E/C) to Loki/journald.")
    prune: PruneConfig | None = opt(None, "Prune stage; present = enabled.")
    compact: CompactConfig | None = opt(None, "Compact stage; present = enabled.")
    check: CheckConfig | None = opt(None, "Check stage; present = enabled.")
    drill: DrillConfig | None = opt(None, "Restore drill stage after a backup when due (drill.every) and the "
                                          "settings of `borgwatch drill`; present = enabled.")
    pushgateway: bool = opt(True, "Push this job's metrics when [pushgateway] is configured.")
    ping: PingConfig | None = opt(None, "Healthchecks-style pings for this job.")


@dataclass
class Config:
    textfile_dir: str = opt(DEFAULT_TEXTFILE_DIR, "node_exporter textfile collector directory.")
    state_dir: str = opt(DEFAULT_STATE_DIR, "Directory for per-job state, locks and spools.")
    borg: str = opt("borg", "Borg binary (name on PATH or absolute path).")
    hostname: str | None = opt(None, "Host name used in archive names and the Loki host label "
                                     "(default: the machine's).")
    lock_wait: int = opt(60, "Seconds borg waits for a repository lock held by someone else.", min=0)
    borg_base_dir: str | None = opt(None, "BORG_BASE_DIR for borg (cache, config, keys).")
    jobs: dict[str, JobConfig] = opt({}, "Backup jobs, one [jobs.NAME] table each.")
    loki: LokiConfig | None = opt(None, "Ship structured run logs to Loki.")
    pushgateway: PushgatewayConfig | None = opt(None, "Push job metrics to a Prometheus Pushgateway.")
    repositories: dict[str, RepositoryConfig] = opt({}, "Repositories watched by `borgwatch collect`.")
    source: str = field(default="<embedded>", metadata={"internal": True})
