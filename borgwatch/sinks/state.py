"""State sink: persists the result (last success, counters, diff baseline) for the next run."""

from __future__ import annotations

from pathlib import Path

from borgwatch.model import RunResult, SinkReport
from borgwatch.sinks.base import Sink
from borgwatch.state import save_state, state_from_result


class StateSink(Sink):
    name = "state"

    def on_finish(self, result: RunResult) -> SinkReport | None:
        committed = result.archive.name if result.archive and result.archive.name else None
        save_state(Path(self.config.state_dir), self.job,
                   state_from_result(result, committed or result.previous_archive or None))
        return None
