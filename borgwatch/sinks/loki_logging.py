"""python-logging-loki adapter: its ``LokiHandler`` in front of borgwatch's ``Shipper``.

Why an adapter: python-logging-loki is the project's chosen Loki client, but it posts one record per
``emit`` with send-time timestamps and no timeout, retry or spool; this keeps its handler shape and label
building and hands the entries to the Shipper. This is the only module that imports it; the Loki sink
makes its entries directly (its events already carry time, level and line).
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from logging_loki import LokiHandler
from logging_loki.emitter import LokiEmitterV1

from borgwatch.sinks.loki_transport import Entry, Shipper, to_ns


class EventTimeEmitter(LokiEmitterV1):
    """python-logging-loki's v1 emitter with record-time timestamps and string-only labels.

    Labels are the handler's static tags plus ``level``; the library's ``logger`` tag is removed (the
    logger name is not a useful stream dimension here). It never posts by itself: the handler buffers
    records and the Shipper pushes batches.
    """

    level_tag = "level"

    def build_tags(self, record: logging.LogRecord) -> dict[str, Any]:
        tags = super().build_tags(record)
        tags.pop(self.logger_tag, None)
        return {str(k): str(v) for k, v in tags.items()}

    def __call__(self, record: logging.LogRecord, line: str) -> None:
        raise RuntimeError("EventTimeEmitter does not post single records; use LokiBatchHandler")


class LokiBatchHandler(LokiHandler):
    """A ``logging`` handler that buffers records and pushes them in batches through a Shipper on
    ``flush()``/``close()``. Records keep their ``created`` time."""

    def __init__(self, shipper: Shipper, tags: dict[str, str], auth: tuple[str, str] | None = None,
                 level: int = logging.INFO) -> None:
        super().__init__(url=shipper.url, tags=tags, auth=auth, version="1")
        self.emitter = EventTimeEmitter(shipper.url, tags, auth)
        shipper.session = self.emitter.session  # the library's session, basic auth set on it
        self.shipper = shipper
        self.errors = 0
        self.setLevel(level)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            labels = self.emitter.build_tags(record)
            self.shipper.pending.append(Entry(labels, str(to_ns(record.created)), self.format(record)))
        except Exception:  # noqa: BLE001 - logging's contract: handleError, never raise
            self.handleError(record)

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging API
        self.errors += 1  # counted, never a traceback on stderr

    def flush(self) -> None:
        with self.lock or contextlib.nullcontext():
            self.shipper.flush()

    def close(self) -> None:
        self.flush()
        logging.Handler.close(self)
