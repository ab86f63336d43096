"""One run of a job, end to end, for `run`, `exec` and `drill`: lock, state, the RunResult built from it,
signal handlers, sinks at start, (the caller's borg work), verdict, record, delivery, exit status."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from borgwatch.borg.exitcodes import signal_name
from borgwatch.config.schema import Config
from borgwatch.errors import EXIT_ERROR, UserError
from borgwatch.model import Command, EventName, Level, RunEvent, RunResult, Status
from borgwatch.redact import Redactor
from borgwatch.run import verdict
from borgwatch.run.lifecycle import (
    Output,
    Problems,
    RunMarker,
    SinkStarter,
    StopForwarder,
    Stopped,
    count,
    deliver,
    why_line,
)
from borgwatch.sinks.base import Phase, Sink
from borgwatch.store.lock import JobLock
from borgwatch.store.state import ensure_state_dir, load_state

if TYPE_CHECKING:
    from borgwatch.model import DrillResult

FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
START_WAIT = 30.0  # most seconds the end of a run waits for the start-of-run deliveries


@dataclass
class RunOptions:
    on_progress: Callable[[dict], None] | None = None
    on_message: Callable[[str, str], None] | None = None  # (level, one line) -> console


@dataclass
class RunOutcome:
    result: RunResult
    exit_code: int
    problems: list[str]  # one-line messages for stderr (cause and remedy)


def hostname(config: Config) -> str:
    return config.hostname or os.uname().nodename  # gethostname(2) itself, without importing socket (3 ms)


class RunSession:
    """``with RunSession(…) as session:`` holds the job lock and the signal handlers (the delivery
    included, so a signal then ends the delivery, not borgwatch); ``session.finish()`` decides the verdict,
    records the run and delivers it."""

    def __init__(self, config: Config, job_name: str, command: Command = Command.RUN,
                 options: RunOptions | None = None) -> None:
        self.config = config
        self.job_name = job_name
        self.job = config.jobs[job_name]
        self.command = command
        options = options or RunOptions()
        self.output = Output(options.on_progress, options.on_message)
        self.redact = Redactor()
        self.stop = StopForwarder()
        self.state_dir = ensure_state_dir(Path(config.state_dir))
        self.lock = JobLock(self.state_dir, job_name)
        self.problems = Problems()
        self._handlers: dict[int, object] = {}

    def __enter__(self) -> RunSession:
        self.lock.acquire()  # raises JobLocked before anything of the running job is touched
        try:
            self._begin()
        except BaseException:
            self.lock.release()
            raise
        self._handlers = {sig: signal.signal(sig, self.stop) for sig in FORWARDED_SIGNALS}
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        for sig, handler in self._handlers.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        self.lock.release()

    def _begin(self) -> None:
        state, state_warning = load_state(self.state_dir, self.job_name)
        self.problems.append(state_warning)
        self.state = state
        # run_id: 64 random bits in hex, as uuid4().hex[:16] was, without importing uuid (and platform: ~2 ms)
        self.result = result = RunResult(
            job=self.job_name, run_id=os.urandom(8).hex(), host=hostname(self.config), started_at=time.time(),
            command=self.command, previous_archive=state.last_archive or "",
            last_success_at=state.last_success_at, check_last_success_at=state.check_last_success_at,
            runs_total=dict(state.runs_total), sink_failures_total=dict(state.sink_failures_total),
            sink_dropped_total=dict(state.sink_dropped_total),
        )
        # exec wraps whatever borg command a user runs (often borg --version, borg list in a loop): a
        # killed exec is not a lost backup, so only `run` leaves a marker to be found
        self.marker = RunMarker(self.state_dir, self.job_name) if self.command == Command.RUN else None
        lost = self.marker.replace(result) if self.marker else None
        if lost:  # the previous run died before it could record itself (kill -9, OOM killer, power loss)
            result.runs_total[Status.INTERRUPTED] = result.runs_total.get(Status.INTERRUPTED, 0) + 1
            self.problems.append(f"the previous run ({lost}) ended without recording a result (borgwatch was "
                                 "killed); counted as interrupted")
        self.starter = SinkStarter(self._make_sinks, result, self.problems)

    @property
    def sinks(self) -> list[Sink]:
        return self.starter.sinks

    def _make_sinks(self) -> list[Sink]:
        """Once borg runs (nothing here is needed to start it: the sink modules alone are ~9 ms of imports)."""
        from borgwatch.drill.result import load_record
        from borgwatch.sinks import enabled_sinks

        result = self.result
        result.drill = load_record(self.state_dir, self.job_name)  # the last drill's series stay in the textfile
        sinks = enabled_sinks(self.config, self.job_name, self.redact)
        for sink in sinks:  # counters exist from the first run on, so increase() sees the first failure
            if sink.phase == Phase.DELIVERY:
                result.sink_failures_total.setdefault(sink.name, 0)
                result.sink_dropped_total.setdefault(sink.name, 0)
        return sinks

    def start_sinks(self) -> None:
        """The sinks are made and started once borg runs, their on_start in a thread: their imports, file
        writes and network calls overlap borg's own start-up and never sit on the path that reads borg's
        stream. Idempotent."""
        self.starter.start()

    def event(self, level: str, event: str, message: str, **fields: object) -> None:
        self.result.events.append(RunEvent(time.time(), level, event, message, dict(fields)))

    def fail(self, exc: UserError) -> None:
        """borgwatch itself refused or failed the run: one line, cause and remedy."""
        result = self.result
        result.error = self.redact(str(exc))
        result.status, result.exit_code = Status.ERROR, EXIT_ERROR
        self.problems.append(result.error)
        self.event(Level.ERROR, EventName.RUN_ERROR, result.error)

    def finish(self, warnings: str, makes_fresh: bool = True) -> RunOutcome:
        """``warnings``: the job's warning policy; ``makes_fresh``: whether a success of this run makes the
        job's data fresher (exec of anything but create does not)."""
        result = self.result
        self._sinks_settled()
        previous_success = result.last_success_at
        verdict.finish(result, warnings, self.stop.signum)
        if not makes_fresh:
            result.last_success_at = previous_success
        if verdict.exit_status(result, warnings) != 0 and not self.output.lines:
            self.problems.append(why_line(result))  # every non-zero exit says why, even when borg said nothing
        failed, stopped = self._record_and_deliver()
        code = verdict.exit_status(result, warnings, record_failed=any(s.fatal for s in failed),
                                   stopped_in_delivery=stopped)
        return RunOutcome(result, code, [self.redact(p) for p in self.problems.items])

    def finish_drill(self, drill: DrillResult, exit_code: int) -> RunOutcome:
        """`borgwatch drill`: the drill (``exit_code``: its own) recorded and delivered like a run's end;
        no verdict, the backup's status and counters stay as they are."""
        result = self.result
        self._sinks_settled()
        result.drill = drill
        result.ended_at, result.in_progress = time.time(), False
        result.status = {"success": Status.SUCCESS, "interrupted": Status.INTERRUPTED}.get(drill.status,
                                                                                          Status.ERROR)
        failed, stopped = self._record_and_deliver()
        code = exit_code
        if stopped is not None and code < 128:
            code = 128 + stopped
        elif code == 0 and any(s.fatal for s in failed):
            code = EXIT_ERROR
        return RunOutcome(result, code, [self.redact(p) for p in self.problems.items])

    def _sinks_settled(self) -> None:
        self.start_sinks()  # no borg ran: start the sinks all the same
        self.starter.wait_recorded()

    def _record_and_deliver(self) -> tuple[list[Sink], int | None]:
        """Record sinks, then delivery sinks (a signal now ends the delivery, not the record), then the
        record again with the delivery counters. -> (record sinks that raised, the signal that stopped the
        delivery)."""
        result = self.result
        record = [s for s in self.sinks if s.phase == Phase.RECORD]
        delivery = [s for s in self.sinks if s.phase == Phase.DELIVERY]
        failed = deliver(record, result, self.problems)
        if self.marker:
            self.marker.clear()
        stopped = self._deliver(delivery) if delivery else None
        if delivery:
            failed = deliver(record, result, self.problems)  # again, with the delivery sinks' counters
        if stopped is None and self.stop.signum is not None and result.status != Status.INTERRUPTED:
            stopped = self.stop.signum  # while the result was being written: it was written all the same
            self.problems.append(f"stopped by {signal_name(128 + stopped)} after the run was recorded")
        return failed, stopped

    def _deliver(self, delivery: list[Sink]) -> int | None:
        """The delivery sinks (network) after the record; a signal while they wait ends the delivery."""
        result = self.result
        self.stop.raising = True
        try:
            if self.stop.signum is not None and result.status != Status.INTERRUPTED:
                raise Stopped(self.stop.signum)
            self.starter.join(START_WAIT)
            late = [s for s in delivery if s.name not in self.starter.done]
            for sink in late:
                self.problems.append(f"{sink.name} sink: the start-of-run delivery still runs after "
                                     f"{START_WAIT:.0f}s; end-of-run delivery skipped")
                count(result.sink_failures_total, sink.name, 1)
            deliver([s for s in delivery if s not in late], result, self.problems)
        except Stopped as exc:
            self.problems.append(f"stopped by {signal_name(128 + exc.signum)} while delivering to "
                                 f"{', '.join(s.name for s in delivery)}; the run itself was recorded")
            return exc.signum
        finally:
            self.stop.raising = False
        return None



def run_job(config: Config, job_name: str, options: RunOptions | None = None) -> RunOutcome:
    from borgwatch.run.pipeline import run_pipeline

    with RunSession(config, job_name, Command.RUN, options) as session:
        run_pipeline(session)
        return session.finish(session.job.warnings)
