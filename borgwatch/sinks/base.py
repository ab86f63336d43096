"""The one small interface every sink implements.

A sink receives RunResults only: once when a run starts (``in_progress=True``) and once when it ends.
Sinks never call borg. A delivery sink must not raise for delivery trouble: it reports it in the
returned SinkReport (the runner turns reports into persisted counters and metrics). An exception that
escapes anyway is caught by the runner and counted as one failure of that sink.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from borgwatch.config.schema import Config
    from borgwatch.model import RunResult, SinkReport


class Sink:
    name: ClassVar[str] = "sink"

    def __init__(self, config: Config, job: str) -> None:
        self.config = config
        self.job = job

    @classmethod
    def enabled(cls, config: Config, job: str) -> bool:
        """Whether this sink takes part for this job under this configuration."""
        return True

    def on_start(self, result: RunResult) -> None:  # noqa: B027 - optional hook
        """Called after the run was set up, before borg starts."""

    def on_finish(self, result: RunResult) -> SinkReport | None:
        """Called once with the final RunResult."""
        raise NotImplementedError
