"""Pure argv builders, one per borg command. Tested without running borg.

Every builder speaks the dialect of the ``version`` it is given (borg 1.4 when None), choosing through
the feature table in ``feature.py``: 1.x names a repository and archive as ``REPO::ARCHIVE``; 2.0 takes
``--repo REPO`` and a bare archive name (a series) or ``aid:ID``, and has ``repo-*`` commands."""

from __future__ import annotations

import datetime
import fnmatch
import re

from borgwatch.borg.feature import Feature, available
from borgwatch.borg.version import BorgVersion
from borgwatch.config.schema import CheckConfig, CompactConfig, JobConfig, PruneConfig

# strftime directives of a {now:…} placeholder -> the digits they always expand to
_FIXED_DIGITS = {"Y": 4, "m": 2, "d": 2, "H": 2, "M": 2, "S": 2, "y": 2, "j": 3, "f": 6, "U": 2, "W": 2}
_DEFAULT_TIME = "%Y-%m-%dT%H:%M:%S"  # borg's format for a bare {now} / {utcnow}
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}:]*)(?::([^{}]*))?\}")


def names_jobs_archive(name: str, glob: str, version: BorgVersion | None) -> bool:
    """Whether ``name`` is one of the archives ``glob`` (``archive_glob``) matches; borg 2 names archives by
    id (``aid:ID``), which says nothing of their series, so any name passes there."""
    return available(Feature.ARCHIVE_SERIES, version) or fnmatch.fnmatchcase(name, glob)


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


def series_name(template: str, job_name: str, hostname: str) -> str:
    """The borg 2 archive series of a job: its name template without the time placeholders (and the
    separators left dangling), so every run of the job adds an archive to one series
    (``{hostname}-{job}-{now}`` -> ``nas-home``). borg tells the archives of a series apart by id."""
    def drop_time(m: re.Match[str]) -> str:
        return "" if m.group(1) in ("now", "utcnow") else m.group(0)

    rendered = _PLACEHOLDER.sub(drop_time, render_name(template, job_name, hostname))
    return re.sub(r"[-_.:+ ]{2,}", lambda m: m.group(0)[0], rendered).strip("-_.:+ ") or job_name


def archive_name(job: JobConfig, job_name: str, hostname: str, version: BorgVersion | None = None) -> str:
    """What ``create`` is given: the 1.x name template (borg expands ``{now}``) or the 2.0 series."""
    if available(Feature.ARCHIVE_SERIES, version):
        return series_name(job.archive_name, job_name, hostname)
    return render_name(job.archive_name, job_name, hostname)


def archive_match(job: JobConfig, job_name: str, hostname: str, version: BorgVersion | None = None) -> str:
    """The selector of exactly this job's archives: the 1.x glob of ``archive_glob`` or, in 2.0, the
    series name (an identical match: no other job's series can fit it)."""
    if available(Feature.ARCHIVE_SERIES, version):
        return series_name(job.archive_name, job_name, hostname)
    return archive_glob(job, job_name, hostname)


def archive_id(archive_id_hex: str) -> str:
    """A 2.0 reference to one archive of a series (a bare series name matches all of them)."""
    return f"aid:{archive_id_hex}"


def archive_ref(name: str, archive_id_hex: str, version: BorgVersion | None = None) -> str:
    """How later commands name the archive a create made: its name (1.x), or ``aid:ID`` (2.0: every archive
    of a series shares the name); "" when borg 2 reported no id."""
    if available(Feature.ARCHIVE_SERIES, version):
        return archive_id(archive_id_hex) if archive_id_hex else ""
    return name


def _select(glob: str, version: BorgVersion | None) -> list[str]:
    """A 1.x ``sh:`` glob -> the option selecting the archives it matches. For 2.0 a value that
    already names a style (``aid:``, ``sh:``, ``re:``…) passes unchanged, a bare series name matches
    identically and anything with glob characters is an ``sh:`` pattern."""
    if not available(Feature.MATCH_ARCHIVES, version):
        return ["--glob-archives", glob]
    if ":" not in glob and any(c in glob for c in "*?["):
        glob = f"sh:{glob}"
    return ["--match-archives", glob]


def _repo(repository: str, version: BorgVersion | None) -> list[str]:
    return ["--repo", repository] if available(Feature.REPO_OPTION, version) else []


def _located(repository: str, archive: str, version: BorgVersion | None) -> list[str]:
    """The trailing archive argument: ``REPO::ARCHIVE`` (1.x) or the bare name (2.0, after ``--repo``)."""
    return [archive] if available(Feature.REPO_OPTION, version) else [f"{repository}::{archive}"]


def _trailing_repo(repository: str, version: BorgVersion | None) -> list[str]:
    return [] if available(Feature.REPO_OPTION, version) else [repository]


def base(borg: str, command: str, lock_wait: int, repository: str | None = None,
         version: BorgVersion | None = None) -> list[str]:
    """Every command logs JSON to stderr, reports its rc in the stream and waits boundedly for locks."""
    argv = [borg, command, "--log-json", "--show-rc", "--lock-wait", str(lock_wait)]
    return argv + _repo(repository, version) if repository is not None else argv


# The lines the files-cache diff needs: every file borg read (A, M, C), another name of a hard-linked file
# (h), and errors (E); the U lines, one per unchanged file, are the cost it avoids.
FILES_CACHE_FILTER = "AMEhC"


def create(borg: str, job: JobConfig, archive: str, lock_wait: int, list_files: bool,
           progress: bool = False, *, version: BorgVersion | None = None, list_filter: str = "") -> list[str]:
    argv = [*base(borg, "create", lock_wait, job.repository, version), "--json"]
    if list_files:
        argv.append("--list")
        if list_filter:
            argv += ["--filter", list_filter]
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
    argv += [*_located(job.repository, archive, version), *job.paths]
    return argv


def files_cache_mode(extra_args: list[str]) -> str:
    """The ``--files-cache`` mode ``extra_args`` set ("" when borg's default, ctime,size,inode)."""
    mode = ""
    for i, arg in enumerate(extra_args):
        if arg == "--files-cache" and i + 1 < len(extra_args):
            mode = extra_args[i + 1]
        elif arg.startswith("--files-cache="):
            mode = arg.split("=", 1)[1]
    return mode


def files_cache_refusal(extra_args: list[str]) -> str:
    """Why the files-cache diff cannot read a create run with ``extra_args`` ("" when it can). The config
    refuses ``--filter`` in ``extra_args`` already; refused here too, should that rule ever be relaxed."""
    if any(a == "--filter" or a.startswith("--filter=") for a in extra_args):
        return "extra_args sets --filter, which hides listing lines the files-cache diff needs"
    mode = files_cache_mode(extra_args)
    if "disabled" in mode:
        return f"extra_args sets --files-cache={mode}"
    return ""


_KEEP_RULES = ("keep_minutely", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly")


def unsupported_keep_rules(cfg: PruneConfig, version: BorgVersion | None) -> list[str]:
    """Keep rules of the config this borg cannot express. 2.0.0b22 replaced --keep-last and
    --keep-within by one --keep (a count or an interval): with both set, keep_last is dropped."""
    if available(Feature.KEEP_LAST, version) or cfg.keep_last is None or cfg.keep_within is None:
        return []
    return ["keep_last"]


def dialect_warnings(job: JobConfig, job_name: str, version: BorgVersion) -> list[str]:
    """What `check-config` should say about a job's settings this borg version lacks (one line each)."""
    out = []
    if job.prune is not None:
        for rule in unsupported_keep_rules(job.prune, version):
            out.append(f"jobs.{job_name}.prune.{rule}: borg {version.text} has no --keep-last/--keep-within, "
                       "only one --keep (here keep_within); drop one of the two")
    return out


def prune(borg: str, job: JobConfig, cfg: PruneConfig, glob: str, lock_wait: int, *,
          version: BorgVersion | None = None) -> list[str]:
    argv = [*base(borg, "prune", lock_wait, job.repository, version), "--list", *_select(glob, version)]
    if available(Feature.KEEP_WITHIN, version):
        keep = [("--keep-within", cfg.keep_within), ("--keep-last", cfg.keep_last)]
    else:
        keep = [("--keep", cfg.keep_within if cfg.keep_within is not None else cfg.keep_last)]
    keep += [(f"--{key.replace('_', '-')}", getattr(cfg, key)) for key in _KEEP_RULES]
    for option, value in keep:
        if value is not None:
            argv += [option, str(value)]
    return [*argv, *cfg.extra_args, *_trailing_repo(job.repository, version)]


def compact(borg: str, job: JobConfig, cfg: CompactConfig, lock_wait: int, *,
            version: BorgVersion | None = None) -> list[str]:
    argv = [*base(borg, "compact", lock_wait, job.repository, version)]
    if cfg.threshold is not None:
        argv += ["--threshold", str(cfg.threshold)]
    return [*argv, *cfg.extra_args, *_trailing_repo(job.repository, version)]


def check(borg: str, job: JobConfig, cfg: CheckConfig, lock_wait: int, *,
          version: BorgVersion | None = None) -> list[str]:
    argv = [*base(borg, "check", lock_wait, job.repository, version)]
    if cfg.repository_only:
        argv.append("--repository-only")
    if cfg.archives_only:
        argv.append("--archives-only")
    if cfg.verify_data:
        argv.append("--verify-data")
    if cfg.max_duration is not None:
        argv += ["--max-duration", str(cfg.max_duration)]
    return [*argv, *cfg.extra_args, *_trailing_repo(job.repository, version)]


def diff(borg: str, repository: str, old: str, new: str, lock_wait: int,
         paths: list[str] | None = None, *, version: BorgVersion | None = None,
         content_only: bool = True) -> list[str]:
    """``paths`` (``pf:`` patterns of archive paths) restricts it to the files that need a verdict.
    ``content_only=False``: a regular file that replaced a directory (symlink, FIFO) shows as a mode change,
    which ``--content-only`` hides. In 2.0 ``old`` and ``new`` are ``aid:ID`` references (``archive_id``): a
    series name is ambiguous."""
    return [*base(borg, "diff", lock_wait, repository, version), "--json-lines",
            *(["--content-only"] if content_only else []), *_located(repository, old, version), new,
            *(paths or [])]


def list_archives(borg: str, repository: str, lock_wait: int, glob: str | None = None,
                  last: int | None = None, checkpoints: bool = False, *,
                  version: BorgVersion | None = None) -> list[str]:
    command = "repo-list" if available(Feature.REPO_COMMANDS, version) else "list"
    argv = [*base(borg, command, lock_wait, repository, version), "--json"]
    if glob:
        argv += _select(glob, version)
    if last:
        argv += ["--last", str(last)]
    if checkpoints and available(Feature.CHECKPOINTS, version):  # NAME.checkpoint[.N] of an interrupted create
        argv.append("--consider-checkpoints")
    return [*argv, *_trailing_repo(repository, version)]


def list_items(borg: str, repository: str, archive: str, lock_wait: int, *,
               version: BorgVersion | None = None) -> list[str]:
    return [*base(borg, "list", lock_wait, repository, version), "--json-lines",
            *_located(repository, archive, version)]


def info_repository(borg: str, repository: str, lock_wait: int, *, version: BorgVersion | None = None) -> list[str]:
    command = "repo-info" if available(Feature.REPO_COMMANDS, version) else "info"
    return [*base(borg, command, lock_wait, repository, version), "--json", *_trailing_repo(repository, version)]


def init_repository(borg: str, repository: str, encryption: str = "repokey", *,
                    version: BorgVersion | None = None) -> list[str]:
    """A new encrypted repository (demo and tests): ``init -e repokey`` (1.x), ``repo-create -e aes256-ocb``
    (2.0 has no key-mode/cipher pairs, the key always lives in the repository)."""
    if available(Feature.REPO_COMMANDS, version):
        cipher = {"repokey": "aes256-ocb", "keyfile": "aes256-ocb", "none": "none-sha256"}.get(encryption, encryption)
        return [borg, "repo-create", "--repo", repository, "--encryption", cipher]
    return [borg, "init", "--encryption", encryption, repository]


# borg's common options that take a value (1.2, 1.4 and 2.0b23): they may stand before the command
_VALUE_OPTIONS = {"-r", "--repo", "--lock-wait", "--umask", "--debug-topic", "--debug-profile", "--remote-path",
                  "--rsh", "--remote-ratelimit", "--upload-ratelimit", "--remote-buffer", "--upload-buffer"}


def command_of(argv: list[str]) -> str:
    """The borg command of a user's command line (``borg -r REPO create …`` -> ``create``; borg 2's
    ``repo-list`` stays itself), or '' when there is none."""
    args = iter(argv[1:])
    for arg in args:
        if arg in _VALUE_OPTIONS:
            next(args, None)
        elif not arg.startswith("-"):
            return arg
    return ""
