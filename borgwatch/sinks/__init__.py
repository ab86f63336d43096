"""Sinks, in the order they run. Delivery sinks come first so that their reports reach the textfile
and the state; adding a sink = one module + one line here. Modules are imported lazily."""

from __future__ import annotations

import importlib

from borgwatch.sinks.base import Sink

SINKS: tuple[str, ...] = (
    "borgwatch.sinks.loki:LokiSink",
    "borgwatch.sinks.pushgateway:PushgatewaySink",
    "borgwatch.sinks.ping:PingSink",
    "borgwatch.sinks.textfile:TextfileSink",
    "borgwatch.sinks.state:StateSink",
)


def load(spec: str) -> type[Sink]:
    module, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module), attr)
