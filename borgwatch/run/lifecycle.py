"""What surrounds one run: the in-progress marker a killed run leaves behind, the start-of-run sink
thread, and the problem lines for the console."""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from borgwatch.model import SinkReport, Status
from borgwatch.sinks.base import Phase

if TYPE_CHECKING:
    from collections.abc import Callable

    from borgwatch.borg.process import BorgProcess
    from borgwatch.model import RunResult
    from borgwatch.sinks.base import Sink

RECORD_WAIT = 60.0  # most seconds the end of a run waits for the start-of-run textfile/state writes


class Problems(list[str]):
    """One-line messages for stderr; the same line twice (a sink failing at start and at the end) is
    printed once."""

    def append(self, text: str) -> None:
        if text and text not in self:
            super().append(text)

    @property
    def items(self) -> list[str]:
        return list(self)


class RunMarker:
    """``state_dir/JOB.running`` exists while a run is in progress. A run that finds one (the job lock is
    held, so no other run is alive) knows its predecessor died without recording itself."""

    def __init__(self, state_dir: Path, job: str) -> None:
        self.path = state_dir / f"{job}.running"

    def replace(self, result: RunResult) -> str | None:
        """Write this run's marker; returns a description of a dead predecessor, if one left a marker."""
        lost = None
        try:
            raw = self.path.read_bytes() if self.path.is_file() and not self.path.is_symlink() else None
        except OSError:
            raw = None
        if raw is not None:
            lost = "a run"
            with contextlib.suppress(ValueError, TypeError, AttributeError):
                data = json.loads(raw)
                started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(data["started_at"])))
                lost = f"run {str(data['run_id'])[:16]} started {started}"
        body = json.dumps({"run_id": result.run_id, "started_at": result.started_at, "pid": os.getpid()})
        with contextlib.suppress(OSError):  # best effort: a full state_dir must not stop the backup
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)  # never write through a planted symlink
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            try:
                os.write(fd, body.encode())
            finally:
                os.close(fd)
        return lost

    def clear(self) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self.path)


class SinkStarter:
    """Makes the sinks (``make``) once borg runs and runs their ``on_start`` in a thread: never on the path
    that reads borg's stream (a Loki answering one byte a second stalled borg itself). The record sinks go
    first, so ``in_progress 1`` is written at once whatever the network does."""

    def __init__(self, make: Callable[[], list[Sink]], result: RunResult, problems: list[str]) -> None:
        self._make = make
        self.sinks: list[Sink] = []  # in run order, once started
        self.result = result
        self.problems = problems
        self.done: set[str] = set()  # sinks whose on_start returned
        self.recorded = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Idempotent: called each time a borg starts, and once more when none did."""
        if self._thread is None:
            self.sinks = self._make()
            self._thread = threading.Thread(target=self._run, name="borgwatch-sink-start", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        for sink in sorted(self.sinks, key=lambda s: s.phase != Phase.RECORD):
            if sink.phase != Phase.RECORD:
                self.recorded.set()
            notify([sink], "on_start", self.result, self.problems)
            self.done.add(sink.name)
        self.recorded.set()

    def wait_recorded(self, timeout: float = RECORD_WAIT) -> None:
        """The start-of-run textfile write must not land after the end-of-run one."""
        self.recorded.wait(timeout)

    def join(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout)


def notify(sinks: list[Sink], method: str, result: RunResult, problems: list[str]) -> None:
    for sink in sinks:
        try:
            getattr(sink, method)(result)
        except Exception as exc:  # noqa: BLE001 - a sink must never break the backup
            problems.append(sink.describe_failure(exc))
            count(result.sink_failures_total, sink.name, 1)


def deliver(sinks: list[Sink], result: RunResult, problems: list[str]) -> list[Sink]:
    """Hand the final result to every sink; returns the sinks that raised."""
    failed = []
    for sink in sinks:
        try:
            report = sink.on_finish(result)
        except Exception as exc:  # noqa: BLE001 - a sink must never break the backup
            problems.append(sink.describe_failure(exc))
            count(result.sink_failures_total, sink.name, 1)
            failed.append(sink)
            continue
        if isinstance(report, SinkReport):
            result.sink_reports.append(report)
            if report.failures:
                count(result.sink_failures_total, sink.name, report.failures)
            if report.dropped:
                count(result.sink_dropped_total, sink.name, report.dropped)
    return failed


def count(totals: dict[str, int], name: str, n: int) -> None:
    totals[name] = totals.get(name, 0) + n


def why_line(result: RunResult) -> str:
    if result.error:
        return result.error
    if result.status == Status.INTERRUPTED:
        return f"interrupted (exit {result.exit_code}); no new archive was recorded" if result.archive is None \
            else f"interrupted (exit {result.exit_code}) after the archive {result.archive_name} was created"
    return f"{result.status} (exit {result.exit_code}); see `borgwatch status` and the log"


class Stopped(BaseException):
    """A signal during the end-of-run delivery: leaves the sink that waits (not an Exception, which a
    sink would swallow)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class StopForwarder:
    """Signal handler installed for the whole run, delivery included: remembers the first signal and
    forwards every signal to the borg that is running; ends the delivery phase when ``raising``."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.current: BorgProcess | None = None  # the borg running now
        self.raising = False

    def __call__(self, signum: int, _frame: object) -> None:
        self.signum = self.signum or signum
        if self.raising:
            self.raising = False
            raise Stopped(signum)
        if self.current is not None:
            self.current.signal(signum)


class Output:
    """Where a run's live output goes: progress and one-line messages for the console; counts the lines
    a person already saw."""

    def __init__(self, on_progress: Callable[[dict], None] | None = None,
                 on_message: Callable[[str, str], None] | None = None) -> None:
        self.on_progress = on_progress
        self._on_message = on_message
        self.lines = 0

    def on_message(self, level: str, text: str) -> None:
        self.lines += 1
        if self._on_message is not None:
            self._on_message(level, text)
