"""The one small interface every sink implements (``Sink``), and ``BaseSink``, its usual defaults.

A sink receives RunResults only: once when a run starts (``in_progress=True``) and once when it ends.
Sinks never call borg, and the run code names no sink: what it needs to know it reads here. A result of
``borgwatch drill`` (``command == "drill"``) carries a drill, not a backup: a sink publishes the drill
and its own counters, and leaves the backup's record as it is (``published_samples``).
- ``phase``: ``record`` sinks write local files (textfile, state) and run first, so a finished backup is
  on record before any ``delivery`` sink (network) can hang;
- ``fatal``: the run cannot be seen without this sink, so its failure turns a successful run's exit status
  into 2 (metrics not writable);
- ``describe_failure``: the one line (cause and remedy) printed when the sink raised.

A delivery sink must not raise for delivery trouble: it reports it in the returned SinkReport (the runner
turns reports into persisted counters and metrics). An exception that escapes
anyway is caught by the runner and counted as one failure of that sink.

Secrets: the RunResult a sink receives is already redacted by the runner. A sink that writes text of its
own (Loki) takes the runner's ``Redactor`` as ``redact``: the runner adds each secret to it as it learns
it (passphrase, environment values), so the sink needs no second copy of the secrets and reads no
secret file of the job's.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, ClassVar, Protocol

from borgwatch.model import Command
from borgwatch.redact import Redactor

if TYPE_CHECKING:
    from borgwatch.config.schema import Config
    from borgwatch.metrics.specs import Sample
    from borgwatch.model import RunResult, SinkReport

SINK_PREFIX = "borgwatch_sink_"  # the sinks' own counters and gauges


class Phase(StrEnum):
    """In the order the phases run."""

    RECORD = "record"  # local files: before anything that can wait on a network
    DELIVERY = "delivery"


class Sink(Protocol):
    name: ClassVar[str]
    phase: ClassVar[Phase]
    fatal: ClassVar[bool]

    @classmethod
    def enabled(cls, config: Config, job: str) -> bool:
        """Whether this sink takes part for this job under this configuration."""
        ...

    def on_start(self, result: RunResult) -> None:
        """Called after the run was set up, before borg starts."""
        ...

    def on_finish(self, result: RunResult) -> SinkReport | None:
        """Called once with the final RunResult."""
        ...

    def describe_failure(self, exc: BaseException) -> str:
        """One line for stderr when this sink raised (cause and remedy; no secrets)."""
        ...


class SinkClass(Protocol):
    """What the registry hands out: a sink's class (its ClassVars, ``enabled`` and its constructor)."""

    name: str
    phase: Phase
    fatal: bool

    def enabled(self, config: Config, job: str) -> bool: ...

    def __call__(self, config: Config, job: str, redact: Redactor | None = None) -> Sink: ...


class BaseSink:
    """Defaults for a ``Sink``: a delivery sink, not fatal, taking part in every run, nothing to do at start."""

    name: ClassVar[str] = "sink"
    phase: ClassVar[Phase] = Phase.DELIVERY
    fatal: ClassVar[bool] = False

    def __init__(self, config: Config, job: str, redact: Redactor | None = None) -> None:
        self.config = config
        self.job = job
        self.redact = redact if redact is not None else Redactor()

    @classmethod
    def enabled(cls, config: Config, job: str) -> bool:
        return True

    def on_start(self, result: RunResult) -> None:
        return None

    def on_finish(self, result: RunResult) -> SinkReport | None:
        raise NotImplementedError

    def describe_failure(self, exc: BaseException) -> str:
        return f"{self.name} sink failed: {type(exc).__name__}: {exc}"


def is_drill(result: RunResult) -> bool:
    """A result of `borgwatch drill`: the job's backup record is not in it and must not be replaced."""
    return result.command == Command.DRILL


def published_samples(result: RunResult) -> list[Sample]:
    """The samples a metrics sink publishes for ``result``: all of the job's for a run; for a drill only
    ``borgwatch_drill_*`` and the sinks' own series (the backup's series stay as the last run left them)."""
    from borgwatch.metrics.specs import DRILL_PREFIX, job_samples

    samples = job_samples(result)
    if not is_drill(result):
        return samples
    return [s for s in samples if s[0].startswith((DRILL_PREFIX, SINK_PREFIX))]
