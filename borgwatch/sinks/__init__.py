"""The sink registry: sink name -> where its class lives (imported only when a run uses it).

Adding a sink = one module implementing ``borgwatch.sinks.base.Sink`` + one entry here. The registry only
names: the order sinks run in comes from their ``phase`` (record, then delivery), and within a phase the
sinks are independent of each other (sorted by name, for a stable order).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from borgwatch.sinks.base import Phase, Sink, SinkClass

if TYPE_CHECKING:
    from borgwatch.config.schema import Config
    from borgwatch.redact import Redactor

REGISTRY: dict[str, str] = {
    "loki": "borgwatch.sinks.loki:LokiSink",
    "ping": "borgwatch.sinks.ping:PingSink",
    "pushgateway": "borgwatch.sinks.pushgateway:PushgatewaySink",
    "state": "borgwatch.sinks.state:StateSink",
    "textfile": "borgwatch.sinks.textfile:TextfileSink",
}


_PHASE_RANK = {phase: rank for rank, phase in enumerate(Phase)}


def load(name: str) -> SinkClass:
    """The class of a registered sink, by its name (or by a ``module:Class`` spec)."""
    module, _, attr = REGISTRY.get(name, name).partition(":")
    return getattr(importlib.import_module(module), attr)


def run_order(sinks: list[Sink]) -> list[Sink]:
    """``sinks`` in the order they run: by phase, then by name."""
    return sorted(sinks, key=lambda s: (_PHASE_RANK[s.phase], s.name))


def enabled_sinks(config: Config, job: str, redact: Redactor | None = None) -> list[Sink]:
    """The sinks taking part in a run of ``job``, in run order. ``redact``: the runner's Redactor, which
    it fills with the job's secrets as it learns them (see ``borgwatch.sinks.base``)."""
    sinks = []
    for name in REGISTRY:
        cls = load(name)
        if cls.enabled(config, job):
            sinks.append(cls(config, job, redact))
    return run_order(sinks)


def in_phase(sinks: list[Sink], phase: Phase) -> list[Sink]:
    return [s for s in sinks if s.phase is phase]
