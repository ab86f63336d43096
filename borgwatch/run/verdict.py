"""The verdict of a run, decided once: its status, its exit code, and the warning policy.

- the run's status is the worst status of the stages that ran (diff, bookkeeping, never counts); a
  borgwatch-level error is not downgraded by earlier stages; a stop by a signal makes it ``interrupted``;
- the exit code is borg's, except: ``interrupted`` -> 128+N; a warning -> 0 under ``warnings = "success"``
  and 2 under ``warnings = "error"``; a successful run a fatal sink could not record -> 2; a signal
  during the delivery (after the run was recorded) -> 128+N.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from borgwatch.borg.exitcodes import SEVERITY, classify, worst
from borgwatch.errors import EXIT_ERROR
from borgwatch.model import Stage, Status, WarningPolicy

if TYPE_CHECKING:
    from borgwatch.model import RunResult

BOOKKEEPING_STAGES = (Stage.DIFF, Stage.DRILL)


def counts_as_success(status: str, warnings: str) -> bool:
    """Whether a run with this status makes the job's data fresh (``last_success_at``)."""
    return status == Status.SUCCESS or (status == Status.WARNING and warnings != WarningPolicy.ERROR)


def finish(result: RunResult, warnings: str, interrupted: int | None) -> None:
    """Status, exit code, last success, run counter and error line of the finished run.
    ``interrupted``: the signal that stopped the run, if one did."""
    result.ended_at = time.time()
    result.in_progress = False
    ran = [s for s in result.stages if s.status != Status.SKIPPED and s.name not in BOOKKEEPING_STAGES]
    if ran:
        status = worst(*(s.status for s in ran))
        result.exit_code = next(s.exit_code for s in ran if s.status == status)
        if result.status != Status.ERROR or SEVERITY[status] > SEVERITY[Status.ERROR]:
            result.status = Status(status)
    elif result.status == Status.RUNNING:
        result.status = Status.ERROR
    if interrupted is not None:
        result.status = Status.INTERRUPTED
        if result.exit_code < 128:
            result.exit_code = 128 + interrupted
    if counts_as_success(result.status, warnings):
        result.last_success_at = result.ended_at
    result.runs_total[result.status] = result.runs_total.get(result.status, 0) + 1
    if result.archive is None and result.status in (Status.ERROR, Status.INTERRUPTED):
        result.archive_name = ""
    failed = next((s for s in ran if s.status in (Status.ERROR, Status.INTERRUPTED)), None)
    if failed and not result.error:
        result.error = f"borg {failed.name} failed (rc {failed.exit_code}): {failed.message}"


def exit_status(result: RunResult, warnings: str, record_failed: bool = False,
                stopped_in_delivery: int | None = None) -> int:
    """``record_failed``: a fatal sink (the run's record) raised; ``stopped_in_delivery``: a signal that
    arrived after the run itself had ended."""
    if result.status == Status.INTERRUPTED:
        return result.exit_code  # 128+N
    if stopped_in_delivery is not None:
        return 128 + stopped_in_delivery
    code = result.exit_code
    if result.status == Status.WARNING:
        if warnings == WarningPolicy.SUCCESS:
            code = 0
        elif warnings == WarningPolicy.ERROR and classify(code) != Status.ERROR:
            code = EXIT_ERROR
    if code == 0 and record_failed:  # the backup worked, but it could not be recorded
        code = EXIT_ERROR
    return code
