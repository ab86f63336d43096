"""Healthchecks-style pings: a start URL when a run begins, a success or fail URL (POST, run summary
as JSON body) when it ends. Works with healthchecks.io, Uptime Kuma push monitors and Cronitor
telemetry URLs, which all take plain GET/POST requests.

A restore drill pings only its own check (``[jobs.NAME.drill.ping]``), never the backup's: a check
expects one schedule, and a weekly drill's success must not hide a missed daily backup, nor its failure
page as a failed backup. `borgwatch drill` pings the drill check's start and its success or fail; a run
whose drill stage ran pings it success or fail (POST, the drill's result as JSON body). Without that table
a drill pings nothing.

A ping never delays a backup by more than its timeout and never fails it: errors are counted in the
SinkReport and logged as one redacted line.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

from borgwatch.config.agent import PingConfig
from borgwatch.model import RunResult, SinkReport, Stage, Status
from borgwatch.redact import Redactor, strip_url_credentials
from borgwatch.sinks.base import BaseSink, is_drill
from borgwatch.sinks.delivery import USER_AGENT, DeliveryError, bounded_call

if TYPE_CHECKING:
    from borgwatch.config.schema import Config

log = logging.getLogger("borgwatch.sinks.ping")


def ping_failed(result: RunResult, warnings_policy: str = "warning") -> bool:
    """Which URL a finished run pings: errors and interruptions fail, warnings fail only when the job
    counts warnings as errors (``warnings = "error"``)."""
    if result.status in ("error", "interrupted"):
        return True
    return result.status == "warning" and warnings_policy == "error"


def send(url: str, timeout: float, body: bytes | None = None) -> int:
    """GET (no body) or POST (JSON body) ``url``; returns the HTTP status; raises on trouble."""
    headers = {"User-Agent": USER_AGENT}
    if body is not None:
        headers["Content-Type"] = "application/json"

    import urllib.request

    def call() -> int:
        request = urllib.request.Request(url, data=body, headers=headers, method="POST" if body else "GET")
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - configured URL
            response.read(65536)
            return int(response.status)

    return bounded_call(call, timeout, f"ping {strip_url_credentials(_short(url))}")


def _short(url: str) -> str:
    """The URL without its query (Uptime Kuma and Cronitor put tokens and messages there)."""
    return url.split("?", 1)[0]


class PingSink(BaseSink):
    name = "ping"

    def __init__(self, config: Config, job: str, redact: Redactor | None = None) -> None:
        super().__init__(config, job, redact)
        job_cfg = config.jobs[job]
        self.ping: PingConfig = job_cfg.ping or PingConfig()
        self.drill_ping: PingConfig = (job_cfg.drill.ping if job_cfg.drill else None) or PingConfig()
        self.warnings_policy: str = getattr(job_cfg, "warnings", "warning")
        self.failures = 0
        self.delivered = 0

    @classmethod
    def enabled(cls, config: Config, job: str) -> bool:
        job_cfg = config.jobs.get(job)
        checks = (job_cfg.ping, job_cfg.drill.ping if job_cfg.drill else None) if job_cfg else ()
        return any(c is not None and any((c.start, c.success, c.fail)) for c in checks)

    def _deliver(self, url: str | None, body: bytes | None, timeout: float) -> None:
        if not url:
            return
        try:
            send(url, timeout, body)
        except DeliveryError as exc:
            self.failures += 1
            log.warning("job %s: %s (not fatal; counted in borgwatch_sink_failures_total)", self.job, exc)
        else:
            self.delivered += 1

    def on_start(self, result: RunResult) -> None:
        check = self.drill_ping if is_drill(result) else self.ping
        self._deliver(check.start, None, check.timeout)

    def on_finish(self, result: RunResult) -> SinkReport | None:
        if not is_drill(result):
            body = json.dumps(result.to_dict(with_events=False), sort_keys=True).encode()
            url = self.ping.fail if ping_failed(result, self.warnings_policy) else self.ping.success
            self._deliver(url, body, self.ping.timeout)
        stage = result.stage(Stage.DRILL)
        drilled = is_drill(result) or (stage is not None and stage.status != Status.SKIPPED)
        if drilled and result.drill is not None:
            body = json.dumps(result.drill.as_dict(), sort_keys=True).encode()
            check = self.drill_ping
            self._deliver(check.success if result.drill.status == "success" else check.fail, body, check.timeout)
        return SinkReport(sink=self.name, failures=self.failures, delivered=self.delivered)
