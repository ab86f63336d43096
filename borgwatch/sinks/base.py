"""The one small interface every sink implements.

A sink receives RunResults only: once when a run starts (``in_progress=True``) and once when it ends.
Sinks never call borg, and the run code names no sink: what it needs to know it reads here.
- ``phase``: ``record`` sinks write local files (textfile, state) and run first, so a finished backup is
  on record before any ``delivery`` sink (network) can hang;
- ``fatal``: the run cannot be seen without this sink, so its failure turns a successful run's exit status
  into 2 (metrics not writable);
- ``describe_failure``: the one line (cause and remedy) printed when the sink raised.

A delivery sink must not raise for delivery trouble: it reports it in the returned SinkReport (the runner
turns reports into persisted counters and metrics). An exception that escapes
anyway is caught by the runner and counted as one failure of that sink.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from borgwatch.config.schema import Config
    from borgwatch.model import RunResult, SinkReport


class Phase(StrEnum):
    RECORD = "record"  # local files: before anything that can wait on a network
    DELIVERY = "delivery"


class Sink:
    name: ClassVar[str] = "sink"
    phase: ClassVar[Phase] = Phase.DELIVERY
    fatal: ClassVar[bool] = False

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

    def describe_failure(self, exc: BaseException) -> str:
        """One line for stderr when this sink raised (cause and remedy; no secrets)."""
        return f"{self.name} sink failed: {type(exc).__name__}: {exc}"
