"""State sink: persists the result (last success, counters, diff baseline) for the next run. A drill
changes only the sinks' counters (its own record is ``JOB.drill.json``)."""

from __future__ import annotations

import errno
from pathlib import Path

from borgwatch.model import RunResult, SinkReport
from borgwatch.sinks.base import BaseSink, Phase, is_drill
from borgwatch.store.state import load_state, save_state, state_from_result


class StateSink(BaseSink):
    name = "state"
    phase = Phase.RECORD
    fatal = True  # without it the next run has no baseline, counters or last success

    def describe_failure(self, exc: BaseException) -> str:
        if isinstance(exc, OSError):
            remedy = "free space there" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "make it writable"
            return f"cannot save state in {self.config.state_dir}: {exc.strerror or exc}; {remedy}"
        return super().describe_failure(exc)

    def on_finish(self, result: RunResult) -> SinkReport | None:
        state_dir = Path(self.config.state_dir)
        if is_drill(result):  # the backup's record stays; the drill's delivery trouble is counted
            state, _ = load_state(state_dir, self.job)
            state.sink_failures_total = dict(result.sink_failures_total)
            state.sink_dropped_total = dict(result.sink_dropped_total)
            save_state(state_dir, self.job, state)
            return None
        committed = result.archive.name if result.archive and result.archive.name else None
        save_state(state_dir, self.job,
                   state_from_result(result, committed or result.previous_archive or None))
        return None
