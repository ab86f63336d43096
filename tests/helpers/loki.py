"""Builders shared by the Loki tests: configs, synthetic RunResults and a whole simulated run."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from borgwatch.borg.env import build_env
from borgwatch.config.loki import LokiConfig
from borgwatch.config.schema import Config, JobConfig
from borgwatch.model import (
    ArchiveStats,
    DatasetDiff,
    PruneStats,
    RepositoryStats,
    Resources,
    RunEvent,
    RunResult,
    SinkReport,
    StageResult,
)
from borgwatch.redact import Redactor
from borgwatch.sinks.loki import LokiSink

REPO = "ssh://backup@nas.example:22/./home"


def make_config(tmp_path: Path, url: str | None, jobs: tuple[str, ...] = ("home",),
                job_kw: dict[str, Any] | None = None, **loki_kw: Any) -> Config:
    loki = LokiConfig(url=url, **loki_kw) if url is not None else None
    return Config(state_dir=str(tmp_path / "state"), textfile_dir=str(tmp_path / "textfile"),
                  hostname="nas1", loki=loki,
                  jobs={j: JobConfig(repository=REPO, paths=["/home"], **(job_kw or {})) for j in jobs})


def make_result(job: str = "home", run: int = 0, t0: float | None = None) -> RunResult:
    t0 = time.time() - 60 if t0 is None else t0
    return RunResult(job=job, run_id=f"run-{job}-{run:04d}", host="nas1", started_at=t0, repository=REPO,
                     archive_name=f"nas1-{job}-{run:04d}", borg_version="1.4.0",
                     events=[RunEvent(t0, "info", "run_started", f"run started: {job}",
                                      {"repository": REPO, "archive": f"nas1-{job}-{run:04d}",
                                       "borg_version": "1.4.0"})])


def finish_result(r: RunResult, warn_msg: str = "/home/x: stat: [Errno 13] Permission denied",
                  extra_events: list[RunEvent] | None = None) -> RunResult:
    """Stage events, one borg warning, final numbers (as the runner fills them)."""
    t = r.started_at
    r.events += [
        RunEvent(t + 1, "info", "stage_started", "stage create started", {"stage": "create"}),
        RunEvent(t + 2, "warning", "borg_message", warn_msg,
                 {"msgid": "BackupPermissionError", "path": "/home/x", "borg_level": "WARNING"}),
        RunEvent(t + 3, "debug", "borg_message", "cache sync", {"msgid": "", "borg_level": "DEBUG"}),
        RunEvent(t + 4, "info", "file_status", "A /home/new.txt", {"status": "A", "path": "/home/new.txt"}),
        RunEvent(t + 10, "warning", "stage_finished", "stage create finished with a warning",
                 {"stage": "create", "exit_code": 1, "duration_seconds": 9.0}),
        *(extra_events or []),
    ]
    r.in_progress = False
    r.ended_at = t + 12.5
    r.status, r.exit_code, r.warnings, r.errors = "warning", 1, 1, 0
    r.stages = [StageResult("create", "warning", 1, t + 1, 9.0, warn_msg),
                StageResult("prune", "success", 0, t + 10.5, 1.5),
                StageResult("check", "skipped", 0, t + 12, 0.0)]
    r.archive = ArchiveStats(name=r.archive_name, id="ab" * 32, original_bytes=123_456_789,
                             compressed_bytes=60_000_000, deduplicated_bytes=1_234_567, files=4321,
                             duration_seconds=8.75)
    r.repository_stats = RepositoryStats(unique_bytes=10**9, unique_compressed_bytes=5 * 10**8,
                                         total_bytes=5 * 10**9, total_compressed_bytes=2 * 10**9,
                                         total_chunks=99999, unique_chunks=55555)
    r.dataset = DatasetDiff(added=3, modified=2, unchanged=4310, removed=1, error=1, method="files_cache",
                            exact=True)
    r.resources = Resources(cpu_user_seconds=7.5, cpu_system_seconds=1.25, max_rss_bytes=150_000_000,
                            read_bytes=130_000_000, write_bytes=2_000_000)
    r.prune = PruneStats(kept=7, pruned=1)
    return r


def runner_redactor(config: Config, job: str) -> Redactor:
    """The Redactor the runner hands the sinks: it holds the job's secrets as borg's environment has them."""
    cfg = config.jobs[job]
    env = build_env(passcommand=cfg.passcommand, passphrase_file=cfg.passphrase_file,
                    passphrase_env=cfg.passphrase_env, extra=cfg.environment)
    env.close()
    return Redactor(env.secrets)


def run_once(config: Config, job: str = "home", run: int = 0,
             t0: float | None = None, **finish_kw: Any) -> tuple[RunResult, SinkReport | None, float]:
    """A simulated run through the sink as the runner drives it: (result, report, seconds in sink)."""
    sink = LokiSink(config, job, runner_redactor(config, job))
    result = make_result(job, run, t0)
    started = time.monotonic()
    sink.on_start(result)
    spent = time.monotonic() - started
    finish_result(result, **finish_kw)
    started = time.monotonic()
    report = sink.on_finish(result)
    spent += time.monotonic() - started
    return result, report, spent
