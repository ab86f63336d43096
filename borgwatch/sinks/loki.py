"""Loki sink: one JSON line per run event, shipped to Loki, or to the journal when Loki is not set up.
A run ends with its ``run_summary`` line, a drill (`borgwatch drill`) with its ``drill_summary`` event.

Streams carry few, bounded labels: app="borgwatch", host, backup_job, level (+ static labels from
[loki].labels); run ids, archive names, exit codes and paths are fields of the JSON line. Timestamps
are the events' own times. Delivery (batches, timeouts, retries, spool) is in ``loki_transport``; the
backup result and the exit status never depend on it: nothing here raises or prints a traceback.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import shlex
import socket
import subprocess
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import urlsplit

from borgwatch.config.loki import LEVELS, LokiConfig
from borgwatch.model import EventName, RunEvent, RunResult, SinkReport
from borgwatch.redact import Redactor
from borgwatch.sinks.base import BaseSink, is_drill

if TYPE_CHECKING:
    from borgwatch.config.schema import Config
    from borgwatch.sinks.loki_transport import Entry, Shipper, Spool

log = logging.getLogger("borgwatch.sinks.loki")

PY_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
             "error": logging.ERROR}
SYSLOG_PRIORITY = {"debug": 7, "info": 6, "warning": 4, "error": 3}  # journald's <N> stderr prefix
MAX_LINE = 200_000  # Loki rejects lines > 256 KB by default
BASE_KEYS = ("time", "level", "event", "msg", "job", "run_id")


def normalize_level(level: str) -> str:
    level = (level or "info").lower()
    level = {"warn": "warning", "critical": "error", "fatal": "error"}.get(level, level)
    return level if level in LEVELS else "info"


def _scrub(value: Any, redact: Redactor) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {str(k): _scrub(v, redact) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v, redact) for v in value]
    return value


def event_line(event: RunEvent, result: RunResult, redact: Redactor) -> str:
    """The JSON log line of one event: base keys first, then the event's fields (renamed on clash)."""
    level = normalize_level(event.level)
    data: dict[str, Any] = {
        "time": datetime.fromtimestamp(event.time, UTC).isoformat(timespec="milliseconds"),
        "level": level, "event": event.event, "msg": event.message,
        "job": result.job, "run_id": result.run_id,
    }
    for key, value in event.fields.items():
        if key in BASE_KEYS:
            if data[key] == value:
                continue
            key = f"field_{key}"
        data[key] = value
    line = redact(_dumps(_scrub(data, redact)))
    if len(line.encode()) > MAX_LINE:
        data = {k: data[k] for k in BASE_KEYS}
        data["msg"] = str(data["msg"])[:4096]
        data["truncated"] = True
        line = redact(_dumps(_scrub(data, redact)))
    return line


def _dumps(data: dict[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str)


def summary_event(result: RunResult) -> RunEvent:
    """The run summary: the same numbers as the textfile metrics, in one line."""
    f: dict[str, Any] = {
        "status": result.status, "exit_code": result.exit_code,
        "duration_seconds": round(result.duration_seconds, 3),
        "started_at": result.started_at, "ended_at": result.ended_at,
        "repository": result.repository, "archive": result.archive_name,
        "borg_version": result.borg_version, "command": result.command,
        "warnings": result.warnings, "errors": result.errors,
    }
    if result.error:
        f["error"] = result.error
    if result.archive:
        a = result.archive
        f.update(archive=a.name or result.archive_name, archive_id=a.id,
                 archive_original_bytes=a.original_bytes, archive_compressed_bytes=a.compressed_bytes,
                 archive_deduplicated_bytes=a.deduplicated_bytes, archive_files=a.files,
                 archive_duration_seconds=a.duration_seconds)
    if result.dataset:
        for change, count in result.dataset.as_counts().items():
            f[f"dataset_{change}"] = count
        f.update(dataset_method=result.dataset.method, dataset_exact=result.dataset.exact)
    r = result.resources
    f.update(cpu_user_seconds=r.cpu_user_seconds, cpu_system_seconds=r.cpu_system_seconds,
             max_rss_bytes=r.max_rss_bytes, read_bytes=r.read_bytes, write_bytes=r.write_bytes)
    if result.repository_stats:
        for key, value in vars(result.repository_stats).items():
            f[f"repository_{key}"] = value
    if result.prune:
        f.update(prune_kept=result.prune.kept, prune_pruned=result.prune.pruned)
    f["stages"] = [{"stage": s.name, "status": s.status, "exit_code": s.exit_code,
                    "duration_seconds": round(s.duration_seconds, 3)} for s in result.stages]
    for s in result.stages:
        if s.status != "skipped":
            f[f"stage_{s.name}_exit_code"] = s.exit_code
            f[f"stage_{s.name}_duration_seconds"] = round(s.duration_seconds, 3)
    if result.events_dropped:
        f["events_dropped"] = result.events_dropped
    level = {"success": "info", "warning": "warning"}.get(result.status, "error")
    size = result.archive.original_bytes if result.archive else 0
    files = result.archive.files if result.archive else 0
    msg = (f"backup {result.status}: job {result.job}, exit code {result.exit_code}, "
           f"{result.duration_seconds:.1f}s, {files} files, {size} bytes")
    return RunEvent(time=result.ended_at or result.started_at, level=level, event="run_summary",
                    message=msg, fields=f)


def read_secret(path: str | None, command: str | None, timeout: float) -> str | None:
    """A secret from a file or a command's stdout (trailing newline removed); raises OSError."""
    if path:
        return Path(path).expanduser().read_text(encoding="utf-8").rstrip("\r\n")
    if command:
        try:
            proc = subprocess.run(shlex.split(command), capture_output=True, text=True, timeout=timeout,
                                  check=False, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            raise OSError(f"command timed out after {timeout:.0f}s") from exc
        if proc.returncode != 0:
            raise OSError(f"command exited with status {proc.returncode}")
        return proc.stdout.rstrip("\r\n")
    return None


def disk_problem(path: Path, exc: OSError) -> str:
    """An OSError on ``path`` in words that name the filesystem (and its free space) when it is full."""
    why = exc.strerror or str(exc)
    if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
        return why
    mount = path.parent
    while not os.path.ismount(mount) and mount != mount.parent:
        mount = mount.parent
    try:
        st = os.statvfs(mount)
        free = f", {st.f_bavail * st.f_frsize} bytes free"
    except OSError:
        free = ""
    return f"{why} on the filesystem mounted at {mount}{free}; free space there"


def journal_stream_active(stream: TextIO, environ: Mapping[str, str]) -> bool:
    """True when ``stream`` is the journal: systemd sets JOURNAL_STREAM=<dev>:<inode> for it."""
    value = environ.get("JOURNAL_STREAM", "")
    m = re.fullmatch(r"(\d+):(\d+)", value)
    if not m:
        return False
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return (st.st_dev, st.st_ino) == (int(m.group(1)), int(m.group(2)))


class LokiSink(BaseSink):
    name = "loki"
    # Where the journal fallback writes, and the environment it checks (None: sys.stderr, os.environ).
    stream: TextIO | None = None
    environ: Mapping[str, str] | None = None

    @classmethod
    def enabled(cls, config: Config, job: str) -> bool:
        if config.loki is not None:
            return True
        return journal_stream_active(cls.stream or sys.stderr, os.environ if cls.environ is None
                                     else cls.environ)

    def __init__(self, config: Config, job: str, redact: Redactor | None = None) -> None:
        super().__init__(config, job, redact)
        self.loki: LokiConfig | None = config.loki
        job_cfg = config.jobs.get(job)
        self.log_files = bool(job_cfg and job_cfg.log_files)
        self.min_level = PY_LEVELS.get(self.loki.min_level if self.loki else "info", logging.INFO)
        self._next = 0  # index of the first event of result.events not yet handled
        self._shipper: Shipper | None = None
        self._tags: dict[str, str] = {}
        self._spool: Spool | None = None
        self._spool_loaded = False
        self._warned_spool_drop = False
        self._on_disk: set[int] = set()  # ids of the pending entries the spool file holds right now
        self._setup_error = ""

    # -- hooks ---------------------------------------------------------------------------------

    def on_start(self, result: RunResult) -> None:
        try:
            self._ship(result, final=False)
        except Exception as exc:  # never into the run
            log.debug("loki sink: on_start failed: %s", self.redact(repr(exc)))

    def on_finish(self, result: RunResult) -> SinkReport | None:
        try:
            return self._ship(result, final=True)
        except Exception as exc:
            log.warning("Loki sink failed: %s", self.redact(f"{type(exc).__name__}: {exc}"))
            return SinkReport(sink=self.name, failures=1) if self.loki else None

    # -- events --------------------------------------------------------------------------------

    def _new_events(self, result: RunResult, final: bool) -> list[RunEvent]:
        events = result.events[self._next:]
        self._next = len(result.events)
        out = [e for e in events if e.event == EventName.DRILL_SUMMARY  # shipped whatever min_level says
               or (PY_LEVELS.get(normalize_level(e.level), logging.INFO) >= self.min_level
                   and (e.event != EventName.FILE_STATUS or self.log_files))]
        if final and not is_drill(result):  # a drill's summary is its drill_summary event
            out.append(summary_event(result))  # shipped whatever min_level says
        return out

    def _ship(self, result: RunResult, final: bool) -> SinkReport | None:
        events = self._new_events(result, final)
        if self.loki is None:
            self._to_journal(events, result)
            return None
        shipper = self._shipper or self._make_shipper(result)
        spool = self._spool
        assert spool is not None
        if not self._spool_loaded:
            self._spool_loaded = True
            try:
                old, bad = spool.load()
            except OSError as exc:
                old, bad = [], 0
                log.warning("Loki spool %s unreadable: %s", spool.path, exc)
            shipper.pending[:0] = old  # spooled lines go first, in their order
            self._on_disk = {id(e) for e in old}
            shipper.stats.dropped += bad
        shipper.pending += [self._entry(event, result) for event in events]
        if self._setup_error:
            shipper.disabled = shipper.disabled or self._setup_error
        shipper.flush()
        return self._persist(shipper, spool, final)

    def _persist(self, shipper: Shipper, spool: Spool, final: bool) -> SinkReport:
        stats = shipper.stats
        spooled = 0
        try:
            spooled, dropped = spool.save(shipper.pending)
        except OSError as exc:
            # the previous spool file is intact: only lines it does not hold are lost, and only once the
            # run ends (a later save in this run may still succeed)
            lost = [e for e in shipper.pending if id(e) not in self._on_disk]
            spooled = len(shipper.pending) - len(lost)
            if final:
                stats.dropped += len(lost)
                shipper.pending[:] = [e for e in shipper.pending if id(e) in self._on_disk]
                log.warning("Loki spool %s not writable: %s; %d new line(s) lost, %d spooled earlier kept",
                            spool.path, disk_problem(spool.path, exc), len(lost), spooled)
            return SinkReport(sink=self.name, failures=stats.failures, spooled=spooled,
                              dropped=stats.dropped, delivered=stats.delivered)
        if dropped:
            stats.dropped += dropped
            shipper.pending[:dropped] = []
            if not self._warned_spool_drop:
                self._warned_spool_drop = True
                log.warning("Loki spool full (spool_max_bytes = %d): dropped the %d oldest line(s)",
                            spool.max_bytes, dropped)
        self._on_disk = {id(e) for e in shipper.pending}
        if final and spooled:  # nothing lost yet: the spool gauge and failure counter tell
            log.info("Loki unavailable (%s): %d line(s) spooled to %s for the next run",
                     stats.unavailable_reason or shipper.disabled, spooled, spool.path)
        return SinkReport(sink=self.name, failures=stats.failures, spooled=spooled,
                          dropped=stats.dropped, delivered=stats.delivered)

    def _entry(self, event: RunEvent, result: RunResult) -> Entry:
        from borgwatch.sinks.loki_transport import Entry, to_ns

        return Entry({**self._tags, "level": normalize_level(event.level)}, str(to_ns(event.time)),
                     event_line(event, result, self.redact))

    def _make_shipper(self, result: RunResult) -> Shipper:
        # imported here: requests (+ urllib3, ssl) raised max RSS from 15 to 29 MB, only worth it with a Loki URL
        from borgwatch.sinks.loki_transport import Budget, Shipper, Spool, push_url
        cfg = self.loki
        assert cfg is not None
        with contextlib.suppress(ValueError):
            self.redact.add(urlsplit(cfg.url).password)
        headers: dict[str, str] = {}
        if cfg.tenant:
            headers["X-Scope-OrgID"] = cfg.tenant
        auth: tuple[str, str] | None = None
        secret_timeout = max(1.0, min(10.0, cfg.max_delay))
        try:
            token = read_secret(cfg.token_file, cfg.token_command, secret_timeout)
            password = read_secret(cfg.password_file, cfg.password_command, secret_timeout)
        except OSError as exc:
            token = password = None
            self._setup_error = f"could not read the Loki password/token: {exc}"
            log.warning("%s; lines are spooled", self.redact(self._setup_error))
        self.redact.add(token)
        self.redact.add(password)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        elif cfg.username:
            auth = (cfg.username, password or "")
        host = result.host or self.config.hostname or socket.gethostname()
        self._tags = {"app": "borgwatch", "host": self.redact(host), "backup_job": self.job,
                      **{k: self.redact(v) for k, v in cfg.static_labels().items()}}
        shipper = Shipper(url=push_url(cfg.url), budget=Budget(cfg.max_delay), headers=headers,
                          verify=cfg.ca_file or None,
                          use_gzip=cfg.gzip, connect_timeout=cfg.connect_timeout,
                          read_timeout=cfg.read_timeout, retries=cfg.retries,
                          batch_max_bytes=cfg.batch_max_bytes, redact=self.redact)
        shipper.session.auth = auth
        if cfg.cert_file:
            shipper.session.cert = (cfg.cert_file, cfg.key_file) if cfg.key_file else cfg.cert_file
        safe_job = re.sub(r"[^A-Za-z0-9_.-]", "_", self.job)
        self._spool = Spool(Path(self.config.state_dir) / "spool" / f"loki-{safe_job}.jsonl",
                            cfg.spool_max_bytes)
        self._shipper = shipper
        return shipper

    # -- journal fallback ------------------------------------------------------------------------

    def _to_journal(self, events: list[RunEvent], result: RunResult) -> None:
        stream = self.stream or sys.stderr
        environ = os.environ if self.environ is None else self.environ
        if not journal_stream_active(stream, environ):
            return
        for event in events:
            prio = SYSLOG_PRIORITY.get(normalize_level(event.level), 6)
            stream.write(f"<{prio}>{event_line(event, result, self.redact)}\n")
        stream.flush()
