"""State sink: persists the result (last success, counters, diff baseline) for the next run."""

from __future__ import annotations

import errno
from pathlib import Path

from borgwatch.model import RunResult, SinkReport
from borgwatch.sinks.base import BaseSink, Phase
from borgwatch.store.state import save_state, state_from_result


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
        committed = result.archive.name if result.archive and result.archive.name else None
        save_state(Path(self.config.state_dir), self.job,
                   state_from_result(result, committed or result.previous_archive or None))
        return None
