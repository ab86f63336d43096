"""A job's run, resolved once from the configuration before anything runs: names, globs, durations, the
stages to run. Frozen: the stages read it, nothing changes it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from borgwatch.borg import argv as borg_argv
from borgwatch.borg.feature import Feature, available
from borgwatch.borg.version import BORG2_TESTED, BorgVersion
from borgwatch.config.load import parse_duration
from borgwatch.config.schema import Config, JobConfig
from borgwatch.model import DiffMode, Stage


@dataclass(frozen=True)
class JobPlan:
    job_name: str
    job: JobConfig
    host: str
    version: BorgVersion  # the borg this run calls: every argv builder and parser speaks its dialect
    archive: str  # the archive this run creates (borg 2: its series name)
    glob: str  # matches exactly the archives of this job (prune, baseline listing; borg 2: the series)
    lock_wait: int
    warnings: str  # the warning policy: warning | success | error
    max_age_seconds: float | None
    check_every_seconds: float | None
    drill_every_seconds: float | None
    snapshot_path: Path  # the job's dataset snapshot (the diff's baseline); used unless dataset_diff is off
    overlap: str | None  # another job whose archives the glob matches: prune must not run
    stages: tuple[Stage, ...]  # the stages configured, in order
    diff_off_why: str = ""  # the dataset diff is configured but cannot be trusted with this borg


def plan_job(config: Config, job_name: str, host: str, state_dir: Path, version: BorgVersion) -> JobPlan:
    job = config.jobs[job_name]
    glob = borg_argv.archive_match(job, job_name, host, version)
    stages = [Stage.CREATE]
    diff_off_why = ""
    if (job.dataset_diff != DiffMode.OFF and available(Feature.ARCHIVE_SERIES, version)
            and not available(Feature.FILES_CACHE_V2, version)):
        # the diff reads borg's files cache, whose borg 2 entry shape changed during the betas: b23's is read
        diff_off_why = (f"jobs.{job_name}.dataset_diff is off with borg {version.text}: borgwatch reads the files "
                        f"cache of borg {BORG2_TESTED} only; install it, or set dataset_diff = \"off\" to silence "
                        "this")
    elif job.dataset_diff != DiffMode.OFF:
        stages.append(Stage.DIFF)
    stages += [stage for stage, on in ((Stage.PRUNE, job.prune), (Stage.COMPACT, job.compact),
                                       (Stage.CHECK, job.check), (Stage.DRILL, job.drill)) if on]
    return JobPlan(
        job_name=job_name, job=job, host=host, version=version,
        archive=borg_argv.archive_name(job, job_name, host, version),
        glob=glob, lock_wait=job.lock_wait or config.lock_wait, warnings=job.warnings,
        max_age_seconds=parse_duration(job.max_age) if job.max_age else None,
        check_every_seconds=parse_duration(job.check.every) if job.check and job.check.every else None,
        drill_every_seconds=parse_duration(job.drill.every) if job.drill else None,
        snapshot_path=state_dir / f"{job_name}.snapshot.db",
        overlap=borg_argv.overlapping_job(glob, config.jobs, job_name, host) if job.prune else None,
        stages=tuple(stages), diff_off_why=diff_off_why,
    )
