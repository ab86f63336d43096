"""Pure argv builders, one per borg command (borg 1.2 / 1.4 dialect). Tested without running borg."""

from __future__ import annotations

from borgwatch.config.schema import CheckConfig, CompactConfig, JobConfig, PruneConfig


def archive_glob(job: JobConfig, job_name: str, hostname: str) -> str:
    """Glob matching every archive of this job: the name template up to its first borg placeholder."""
    prefix = render_name(job.archive_name, job_name, hostname).split("{", 1)[0]
    return f"{prefix}*"


def render_name(template: str, job_name: str, hostname: str) -> str:
    return template.replace("{job}", job_name).replace("{hostname}", hostname)


def base(borg: str, command: str, lock_wait: int) -> list[str]:
    """Every command logs JSON to stderr, reports its rc in the stream and waits boundedly for locks."""
    return [borg, command, "--log-json", "--show-rc", "--lock-wait", str(lock_wait)]


def create(borg: str, job: JobConfig, archive: str, lock_wait: int, list_files: bool,
           progress: bool = False) -> list[str]:
    argv = [*base(borg, "create", lock_wait), "--json"]
    if list_files:
        argv.append("--list")
    if progress:
        argv.append("--progress")
    if job.compression:
        argv += ["--compression", job.compression]
    for pattern in job.exclude:
        argv += ["--exclude", pattern]
    if job.exclude_from:
        argv += ["--exclude-from", job.exclude_from]
    if job.patterns_from:
        argv += ["--patterns-from", job.patterns_from]
    if job.exclude_caches:
        argv.append("--exclude-caches")
    if job.one_file_system:
        argv.append("--one-file-system")
    argv += job.extra_args
    argv += [f"{job.repository}::{archive}", *job.paths]
    return argv


def prune(borg: str, job: JobConfig, cfg: PruneConfig, glob: str, lock_wait: int) -> list[str]:
    argv = [*base(borg, "prune", lock_wait), "--list", "--glob-archives", glob]
    for key in ("keep_within", "keep_last", "keep_minutely", "keep_hourly", "keep_daily", "keep_weekly",
                "keep_monthly", "keep_yearly"):
        value = getattr(cfg, key)
        if value is not None:
            argv += [f"--{key.replace('_', '-')}", str(value)]
    return [*argv, *cfg.extra_args, job.repository]


def compact(borg: str, job: JobConfig, cfg: CompactConfig, lock_wait: int) -> list[str]:
    argv = [*base(borg, "compact", lock_wait)]
    if cfg.threshold is not None:
        argv += ["--threshold", str(cfg.threshold)]
    return [*argv, *cfg.extra_args, job.repository]


def check(borg: str, job: JobConfig, cfg: CheckConfig, lock_wait: int) -> list[str]:
    argv = [*base(borg, "check", lock_wait)]
    if cfg.repository_only:
        argv.append("--repository-only")
    if cfg.archives_only:
        argv.append("--archives-only")
    if cfg.verify_data:
        argv.append("--verify-data")
    if cfg.max_duration is not None:
        argv += ["--max-duration", str(cfg.max_duration)]
    return [*argv, *cfg.extra_args, job.repository]


def diff(borg: str, repository: str, old: str, new: str, lock_wait: int,
         paths: list[str] | None = None) -> list[str]:
    """Content-only diff; ``paths`` (archive paths) restricts it to the files that need a verdict."""
    return [*base(borg, "diff", lock_wait), "--json-lines", "--content-only",
            f"{repository}::{old}", new, *(paths or [])]


def list_digests(borg: str, repository: str, archive: str, lock_wait: int, paths: list[str]) -> list[str]:
    """Content fingerprints (blake2b-512, hex) of the archived files matching ``paths`` (``pf:`` patterns):
    one pass over one archive's metadata, file data read only for the matches."""
    return [*base(borg, "list", lock_wait), "--format", "{blake2b}{TAB}{path}{NUL}", f"{repository}::{archive}",
            *paths]


def list_archives(borg: str, repository: str, lock_wait: int, glob: str | None = None,
                  last: int | None = None) -> list[str]:
    argv = [*base(borg, "list", lock_wait), "--json"]
    if glob:
        argv += ["--glob-archives", glob]
    if last:
        argv += ["--last", str(last)]
    return [*argv, repository]


def list_items(borg: str, repository: str, archive: str, lock_wait: int) -> list[str]:
    return [*base(borg, "list", lock_wait), "--json-lines", f"{repository}::{archive}"]


def info_repository(borg: str, repository: str, lock_wait: int) -> list[str]:
    return [*base(borg, "info", lock_wait), "--json", repository]
