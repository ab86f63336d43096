"""One restore drill: restore a sample of the job's newest (or a named) archive with real `borg extract`
into a private temporary directory and verify it. The caller holds the job's lock and handles signals
(a RunSession: `borgwatch drill`, or the run's drill stage; see ``run/drill_stage.py``)."""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol

from borgwatch.borg import argv as borg_argv
from borgwatch.borg import extract as bx
from borgwatch.borg.env import BorgEnv, build_env
from borgwatch.borg.events import Event, LogMessage, Text
from borgwatch.borg.exitcodes import completed
from borgwatch.borg.process import BorgProcess, BorgRun
from borgwatch.borg.version import BorgVersion, detect_version, find_borg
from borgwatch.config.schema import Config, JobConfig
from borgwatch.drill.config import DrillPlan
from borgwatch.drill.result import DrillResult
from borgwatch.drill.sample import Coverage, coverage_path
from borgwatch.drill.verify import verify_against_archive, verify_restored
from borgwatch.errors import EXIT_ERROR, UserError
from borgwatch.redact import Redactor
from borgwatch.units import human_age, human_bytes

MAX_RESTORE_ATTEMPTS = 8  # each failed extract names one damaged file; the next skips it
SHOWN_PROBLEMS = 10
TEMP_PREFIX = "borgwatch-drill-"


class Interrupted(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class Stopper(Protocol):
    """What a drill needs of a signal handler: the first signal, and the borg to forward it to (the run
    session's StopForwarder, for `borgwatch drill` and for the drill stage of a run)."""

    signum: int | None
    current: BorgProcess | None


def check_stop(stop: Stopper) -> None:
    if stop.signum is not None:
        raise Interrupted(stop.signum)


@dataclass
class Borg:
    """The borg of one drill: binary and its version (the dialect of every argv), environment, repository,
    lock wait, the archive (as borg commands name it), and what borg said."""

    path: str
    version: BorgVersion
    env: BorgEnv
    repository: str
    lock_wait: int
    redact: Redactor
    stop: Stopper
    archive: str = ""
    errors: list[str] = field(default_factory=list)

    def run(self, argv: list[str], cwd: str | None = None, on_event: Callable[[Event], None] | None = None,
            stdout_file: BinaryIO | None = None) -> BorgRun:
        check_stop(self.stop)
        self.errors = []
        process = BorgProcess(argv, self.env, cwd=cwd)
        self.stop.current = process

        def event(ev: Event) -> None:
            if isinstance(ev, LogMessage) and ev.level in ("ERROR", "CRITICAL"):
                self.errors.append(self.redact(ev.message.strip()))
            elif isinstance(ev, Text) and ev.text.strip():
                self.errors.append(self.redact(ev.text.strip()))
            if on_event is not None:
                on_event(ev)
        try:
            run = process.run(event, stdout_file=stdout_file)
        finally:
            self.stop.current = None
        check_stop(self.stop)
        return run

    def why(self, run: BorgRun) -> str:
        said = self.errors[0] if self.errors else "no message"
        return f"borg exited {run.returncode}: {said[:300]}"


def ok(run: BorgRun) -> bool:
    """Success or a warning: borg finished its work."""
    return completed(run.returncode)


def drill(config: Config, name: str, job: JobConfig, drill_plan: DrillPlan, archive: str | None,
          result: DrillResult, previous: DrillResult | None, stop: Stopper, redact: Redactor) -> int:
    """Restore and verify into ``result``; returns the exit status. ``redact`` learns the job's secrets."""
    workdir: Path | None = None
    env: BorgEnv | None = None
    try:
        env = build_env(passcommand=job.passcommand, passphrase_file=job.passphrase_file,
                        passphrase_env=job.passphrase_env, extra=job.environment, base_dir=config.borg_base_dir,
                        where=f"jobs.{name}")
        for secret in env.secrets:
            redact.add(secret)
        path = find_borg(config.borg)
        version = detect_version(path, env.env, Path(config.state_dir))
        borg = Borg(path, version, env, job.repository, job.lock_wait or config.lock_wait, redact, stop)
        _choose_archive(borg, config, name, job, archive, result)
        workdir = make_workdir(drill_plan.temp_dir, job.paths)
        _restore_and_verify(borg, Path(config.state_dir), name, drill_plan, result, previous, workdir)
        if drill_plan.dry_run_archive:
            run = borg.run(bx.extract_dry_run(borg.path, borg.repository, borg.archive, borg.lock_wait,
                                              version=borg.version))
            result.dry_run_ok = ok(run)
            if not result.dry_run_ok:
                result.problems.append(f"archive {result.archive}: borg extract --dry-run failed: {borg.why(run)}")
        if not result.files_verified and not result.problems:
            result.problems.append(f"archive {result.archive}: no file could be verified (all larger than "
                                   "drill.max_bytes?); raise max_bytes")
        failed = bool(result.files_mismatched or result.files_unreadable or result.dry_run_ok is False
                      or not result.files_verified)
        result.status = "failed" if failed else "success"
        return EXIT_ERROR if failed else 0
    except Interrupted as exc:
        result.status = "interrupted"
        result.problems.append(f"interrupted by signal {exc.signum}; the temporary directory was removed")
        return 128 + exc.signum
    except UserError as exc:
        result.status = "error"
        result.problems.append(str(exc))
        return exc.exit_code
    finally:
        if workdir is not None:
            remove_tree(workdir)
        if env is not None:
            env.close()


def _choose_archive(borg: Borg, config: Config, name: str, job: JobConfig, archive: str | None,
                    result: DrillResult) -> None:
    host = config.hostname or socket.gethostname()
    glob = None if archive else borg_argv.archive_match(job, name, host, borg.version)
    run = borg.run(borg_argv.list_archives(borg.path, borg.repository, borg.lock_wait, glob=glob,
                                           version=borg.version))
    if not ok(run):
        raise UserError(f"cannot list the archives of {borg.redact(borg.repository)}: {borg.why(run)}; "
                        "check the repository, its passphrase and the lock_wait")
    found = bx.find_archive(run.stdout, archive, borg.version)
    if found is None:
        raise UserError(f"archive {archive!r} not found in the repository; list them with `borg list`"
                        if archive else f"job {name} has no archive yet; run `borgwatch run {name}` first")
    borg.archive, result.archive_time = found.ref, found.time
    result.archive = found.name if found.ref == found.name else f"{found.name} ({found.ref[:12]})"


def _restore_and_verify(borg: Borg, state_dir: Path, name: str, drill_plan: DrillPlan, result: DrillResult,
                        previous: DrillResult | None, workdir: Path) -> None:
    archive = borg.archive
    coverage = Coverage(coverage_path(state_dir, name))
    try:
        listing_file = workdir / "listing.jsonl"
        with open(listing_file, "w+b") as fh:
            run = borg.run(bx.list_files(borg.path, borg.repository, archive, borg.lock_wait, version=borg.version),
                           stdout_file=fh)
            if not ok(run):
                raise UserError(f"cannot list archive {archive}: {borg.why(run)}")
            fh.seek(0)
            listing = coverage.load_listing(bx.parse_files(fh))
        listing_file.unlink()
        result.archive_files, result.archive_bytes = listing.files, listing.bytes
        if not listing.files:
            raise UserError(f"archive {archive} holds no regular file to restore; check the job's paths")
        since = previous.archive_time if previous and previous.archive_time else (
            (result.archive_time or 0) - drill_plan.every_seconds)
        sample = coverage.choose(drill_plan, listing, result.seed, int(since * 1_000_000))
        result.files_sampled = len(sample)
        restore_dir = workdir / "restore"
        restore_dir.mkdir(mode=0o700)
        failed = _extract(borg, archive, [f.path for f in sample], restore_dir, result)
        verdicts = verify_restored(sample, restore_dir, failed)
        check_stop(borg.stop)
        if verdicts.changed:
            run = borg.run(bx.list_hashes(borg.path, borg.repository, archive, borg.lock_wait,
                                          [f.path for f, _ in verdicts.changed], version=borg.version))
            verify_against_archive(verdicts, bx.parse_hashes(run.stdout))
        result.files_verified = len(verdicts.verified)
        result.bytes_verified = sum(f.size for f in verdicts.verified)
        result.files_mismatched = len(verdicts.mismatched)
        result.bytes_mismatched = sum(f.size for f, _ in verdicts.mismatched)
        result.files_unreadable = len(verdicts.unreadable)
        result.bytes_unreadable = sum(f.size for f, _ in verdicts.unreadable)
        problems = verdicts.problems()
        result.problems.extend(problems)
        result.problem_paths.update(problems)
        result.verified_paths = [f.path for f in verdicts.verified]
        now = time.time()
        coverage.mark_verified(result.verified_paths, now)
        result.coverage_ratio = coverage.coverage(now)
        remove_tree(restore_dir)
        _restore_paths(borg, archive, drill_plan, coverage, workdir, result)
    finally:
        coverage.close()


def _extract(borg: Borg, archive: str, paths: list[str], restore_dir: Path, result: DrillResult) -> dict[str, str]:
    """Restore ``paths``; a failed extract names the file borg was reading, the next attempt goes on
    without it. Returns {archive path: cause} of the files borg could not restore."""
    failed: dict[str, str] = {}
    remaining = paths
    for _ in range(MAX_RESTORE_ATTEMPTS):
        if not remaining:
            break
        listed: list[str] = []
        run = borg.run(bx.extract(borg.path, borg.repository, archive, borg.lock_wait, remaining,
                                  version=borg.version),
                       cwd=str(restore_dir), on_event=functools.partial(_note_listed, listed, borg.version))
        result.restore_seconds += run.duration_seconds
        if ok(run):
            break
        if not listed or listed[-1] in failed:
            failed.update({p: f"not restored: {borg.why(run)}" for p in remaining})
            break
        failed[listed[-1]] = f"borg extract failed on it: {borg.why(run)}"
        done = set(listed)
        remaining = [p for p in remaining if p not in done]
    else:
        failed.update({p: f"not restored: gave up after {MAX_RESTORE_ATTEMPTS} failed extracts"
                       for p in remaining if p not in failed})
    result.restored_bytes += tree_bytes(restore_dir)
    return failed


def _note_listed(listed: list[str], version: BorgVersion, event: Event) -> None:
    path = bx.listed_path(event, version)
    if path is not None:
        listed.append(path)


def _restore_paths(borg: Borg, archive: str, drill_plan: DrillPlan, coverage: Coverage, workdir: Path,
                   result: DrillResult) -> None:
    """A full restore of the named source paths, timed: the restore rate behind the RTO estimate."""
    if not drill_plan.paths:
        return
    prefixes = [bx.archive_path(p) for p in drill_plan.paths]
    size = sum(coverage.bytes_under(p) for p in prefixes)
    if size > drill_plan.max_bytes:
        result.problems.append(f"drill.paths: {size} bytes exceed drill.max_bytes ({drill_plan.max_bytes}); "
                               "not restored in full — name a smaller path or raise max_bytes")
        return
    target = workdir / "paths"
    target.mkdir(mode=0o700)
    run = borg.run(bx.extract(borg.path, borg.repository, archive, borg.lock_wait, prefixes, prefixes=True,
                              version=borg.version), cwd=str(target))
    result.restore_seconds += run.duration_seconds
    result.restored_bytes += tree_bytes(target)
    if not ok(run):
        result.files_unreadable += 1
        result.problems.append(f"drill.paths {', '.join(drill_plan.paths)}: full restore failed: {borg.why(run)}")
    remove_tree(target)


def make_workdir(temp_dir: str | None, sources: list[str]) -> Path:
    """A private (0700) directory for the restore, never inside the job's source paths."""
    root = Path(temp_dir or tempfile.gettempdir()).resolve()
    for source in sources:
        src = Path(source).resolve()
        if root == src or src in root.parents:
            raise UserError(f"the drill's temporary directory {root} is inside the job's source path {source}; "
                            "set drill.temp_dir to a directory outside the backed-up paths")
    try:
        return Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=root))
    except OSError as exc:
        raise UserError(f"cannot create the drill's temporary directory in {root}: {exc.strerror}; set "
                        "drill.temp_dir to a writable directory") from None


def tree_bytes(path: Path) -> int:
    return sum(f.lstat().st_size for f in path.rglob("*") if not f.is_symlink() and f.is_file())


def remove_tree(path: Path) -> None:
    """Remove a restored tree, including read-only directories borg restored with their modes."""
    for directory, dirnames, _ in os.walk(path):
        for d in dirnames:
            with contextlib.suppress(OSError):
                full = os.path.join(directory, d)
                if not os.path.islink(full):
                    os.chmod(full, 0o700)
    shutil.rmtree(path, ignore_errors=True)


def summary(result: DrillResult) -> str:
    rate = result.throughput_bytes_per_second
    cov = f"{result.coverage_ratio * 100:.0f} %" if result.coverage_ratio is not None else "unknown"
    return (f"drill {result.job}: {result.status} — {result.files_verified} files "
            f"({human_bytes(result.bytes_verified)}) verified, {result.files_mismatched} mismatched, "
            f"{result.files_unreadable} unreadable, archive {result.archive or '-'} "
            f"(age {human_age(result.archive_age_seconds)}), coverage {cov}, "
            f"restore {human_bytes(rate) + '/s' if rate else '-'}, seed {result.seed}")
