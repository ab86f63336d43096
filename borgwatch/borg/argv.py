"""Pure argv builders, one per borg command (borg 1.2 / 1.4 dialect). Tested without running borg."""

from __future__ import annotations

import datetime
import fnmatch
import re

from borgwatch.config.schema import CheckConfig, CompactConfig, JobConfig, PruneConfig

# strftime directives of a {now:…} placeholder -> the digits they always expand to
_FIXED_DIGITS = {"Y": 4, "m": 2, "d": 2, "H": 2, "M": 2, "S": 2, "y": 2, "j": 3, "f": 6, "U": 2, "W": 2}
_DEFAULT_TIME = "%Y-%m-%dT%H:%M:%S"  # borg's format for a bare {now} / {utcnow}
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}:]*)(?::([^{}]*))?\}")


def archive_glob(job: JobConfig, job_name: str, hostname: str) -> str:
    """Glob (borg ``sh:`` rules, 1.2 and 1.4) matching exactly the archives this job's name template makes.

    Literal text stays literal and ``{now:…}`` becomes one digit class per digit, so the glob of job
    ``web`` has a fixed length and cannot match ``web-db``'s longer names (a prefix glob ``HOST-web-*``
    did, and prune deleted the other job's archives). Names stay as they were: existing repositories
    keep working. Only placeholders of unknown width ({user}, {pid}…) become ``*``."""
    template = render_name(job.archive_name, job_name, hostname)
    out, pos = [], 0
    for m in _PLACEHOLDER.finditer(template):
        out.append(_literal(template[pos:m.start()]))
        pos = m.end()
        if m.group(0) in ("{{", "}}"):
            out.append(_literal(m.group(0)[0]))
        elif m.group(1) in ("now", "utcnow"):
            out.append(_time_glob(m.group(2) or _DEFAULT_TIME))
        else:
            out.append("*")
    out.append(_literal(template[pos:]))
    return "".join(out)


def glob_is_exact(glob: str) -> bool:
    """Whether the glob matches names of one length only (then no other job's name can fit it)."""
    return "*" not in glob.replace("[*]", "")


def overlapping_job(glob: str, jobs: dict[str, JobConfig], job_name: str, hostname: str) -> str | None:
    """Another job whose archive names this glob would match (possible only when the glob has a ``*``:
    a placeholder of unknown width after {job}); prune must not run then."""
    if glob_is_exact(glob):
        return None
    now = datetime.datetime.now()

    def sample(m: re.Match[str]) -> str:
        if m.group(0) in ("{{", "}}"):
            return m.group(0)[0]
        return now.strftime(m.group(2) or _DEFAULT_TIME) if m.group(1) in ("now", "utcnow") else "x"

    for name, job in jobs.items():
        if name != job_name and fnmatch.fnmatchcase(
                _PLACEHOLDER.sub(sample, render_name(job.archive_name, name, hostname)), glob):
            return name
    return None


def _literal(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[]" else c for c in text)


def _time_glob(fmt: str) -> str:
    out, i = [], 0
    while i < len(fmt):
        c = fmt[i]
        if c == "%" and i + 1 < len(fmt):
            directive = fmt[i + 1]
            i += 2
            if directive == "%":
                out.append("%")
            elif directive in _FIXED_DIGITS:
                out.append("[0-9]" * _FIXED_DIGITS[directive])
            else:  # names of days and months, time zones: width varies
                out.append("*")
            continue
        out.append(_literal(c))
        i += 1
    return "".join(out)


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
                  last: int | None = None, checkpoints: bool = False) -> list[str]:
    argv = [*base(borg, "list", lock_wait), "--json"]
    if glob:
        argv += ["--glob-archives", glob]
    if last:
        argv += ["--last", str(last)]
    if checkpoints:  # an interrupted create leaves NAME.checkpoint[.N] (borg 1.2 and 1.4)
        argv.append("--consider-checkpoints")
    return [*argv, repository]


def list_items(borg: str, repository: str, archive: str, lock_wait: int) -> list[str]:
    return [*base(borg, "list", lock_wait), "--json-lines", f"{repository}::{archive}"]


def info_repository(borg: str, repository: str, lock_wait: int) -> list[str]:
    return [*base(borg, "info", lock_wait), "--json", repository]
