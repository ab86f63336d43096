"""Pushgateway sink, for hosts without node_exporter: the job's samples, pushed at start and end.

Grouping key ``{job=<[pushgateway] job>, instance=<host>, backup_job=<job>}``: one group per host and
backup job, so jobs and hosts never overwrite each other. The samples carry the same ``backup_job``
value as the grouping key (Pushgateway 1.5 silently replaces a pushed label that differs from the
grouping key, so a mismatch could never show; equal values keep the body valid on its own).

POST (``pushadd_to_gateway``) replaces only the metric names present in the push: a failed run that
has no archive statistics leaves the last successful run's archive series and its
``borgwatch_last_success_timestamp_seconds`` in place. So a drill (`borgwatch drill`) pushes its
``borgwatch_drill_*`` series (and the sink counters) into the same group at its end, and the run's series
stay. Push errors are counted, never raised.
Prometheus must scrape the gateway with ``honor_labels: true``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from borgwatch.model import RunResult, SinkReport
from borgwatch.redact import Redactor
from borgwatch.sinks.base import BaseSink, is_drill, published_samples
from borgwatch.sinks.delivery import DeliveryError, bounded_call, split_credentials

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from borgwatch.config.agent import PushgatewayConfig
    from borgwatch.config.schema import Config

log = logging.getLogger("borgwatch.sinks.pushgateway")


def grouping_key(host: str, job: str) -> dict[str, str]:
    return {"instance": host, "backup_job": job}


def job_registry(result: RunResult, job: str) -> CollectorRegistry:
    from borgwatch.metrics.exposition import build_registry, with_labels  # prometheus_client: only when pushing

    return build_registry(with_labels(published_samples(result), backup_job=job))


def push(cfg: PushgatewayConfig, host: str, job: str, registry: CollectorRegistry) -> None:
    """One POST to the gateway, bounded by ``cfg.timeout`` of wall time; raises DeliveryError."""
    from prometheus_client import pushadd_to_gateway
    from prometheus_client.exposition import basic_auth_handler, default_handler

    gateway, user, password = split_credentials(cfg.url)

    def handler(url: str, method: str, timeout: float | None, headers: list[tuple[str, str]],
                data: bytes) -> Callable[[], None]:
        if user is not None:
            return basic_auth_handler(url, method, timeout, headers, data, user, password)
        return default_handler(url, method, timeout, headers, data)

    def call() -> None:
        pushadd_to_gateway(gateway, job=cfg.job, registry=registry, grouping_key=grouping_key(host, job),
                           timeout=cfg.timeout, handler=handler)

    bounded_call(call, cfg.timeout, f"push to {gateway}")


class PushgatewaySink(BaseSink):
    name = "pushgateway"

    def __init__(self, config: Config, job: str, redact: Redactor | None = None) -> None:
        super().__init__(config, job, redact)
        assert config.pushgateway is not None
        self.cfg: PushgatewayConfig = config.pushgateway
        self.failures = 0
        self.delivered = 0

    @classmethod
    def enabled(cls, config: Config, job: str) -> bool:
        return config.pushgateway is not None and job in config.jobs and bool(config.jobs[job].pushgateway)

    def _host(self, result: RunResult) -> str:
        return self.config.hostname or result.host

    def _push(self, result: RunResult) -> None:
        try:
            push(self.cfg, self._host(result), self.job, job_registry(result, self.job))
        except DeliveryError as exc:
            self.failures += 1
            log.warning("job %s: %s (not fatal; counted in borgwatch_sink_failures_total)", self.job, exc)
        except Exception as exc:  # noqa: BLE001 - e.g. a sample the registry refuses: never fatal
            self.failures += 1
            log.warning("job %s: pushgateway: %s: %s", self.job, type(exc).__name__, exc)
        else:
            self.delivered += 1

    def on_start(self, result: RunResult) -> None:
        if not is_drill(result):  # a drill has nothing to push before it ends
            self._push(result)

    def on_finish(self, result: RunResult) -> SinkReport | None:
        self._push(result)
        return SinkReport(sink=self.name, failures=self.failures, delivered=self.delivered)

