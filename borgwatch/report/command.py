"""``borgwatch report``: one period of backup SLOs from Prometheus into HTML + PNG (+ PDF) and JSON."""

from __future__ import annotations

import json
import re
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from borgwatch.errors import UserError
from borgwatch.report.prom import PromAuth

_DURATION = re.compile(r"^(\d+)([mhdw])$")
_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


@dataclass
class ReportOptions:
    prometheus: str
    since: str = "30d"
    until: str = "now"
    jobs: tuple[str, ...] = ()
    output: str | None = None
    pdf: bool = False
    as_json: bool = False
    auth: PromAuth | None = None
    timeout: float = 30.0


def parse_time(text: str, now: float, flag: str) -> float:
    """'now', an ISO date/time (UTC unless it names a zone) or a Unix time."""
    if text == "now":
        return now
    try:
        return float(text)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise UserError(f"{flag} {text!r}: expected now, a date like 2026-11-30, a time like "
                        "2026-11-30T06:00 or a Unix time") from None
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()


def period(since: str, until: str, now: float) -> tuple[float, float]:
    end = parse_time(until, now, "--until")
    if m := _DURATION.match(since):
        start = end - int(m.group(1)) * _UNITS[m.group(2)]
    else:
        start = parse_time(since, now, "--since")
    if start >= end:
        raise UserError(f"--since ({since}) must be before --until ({until}); the period is empty")
    if end > now + 60:
        raise UserError(f"--until {until} is in the future; use now or an earlier time")
    return start, end


def report_command(opts: ReportOptions) -> int:
    if opts.output is None and not opts.as_json:
        raise UserError("say where to write the report (--output DIR) or ask for --json")
    if opts.pdf and opts.output is None:
        raise UserError("--pdf needs --output DIR")
    for job in opts.jobs:
        if not re.fullmatch(r"[\w.@:-]+", job):
            raise UserError(f"--job {job!r}: not a backup job name (letters, digits, . _ - @ :)")
    now = time.time()
    since, until = period(opts.since, opts.until, now)
    # requests costs ~0.1 s of import, matplotlib + jinja2 ~0.5 s (measured): only this command loads them,
    # and the chart libraries only once the data is in
    from borgwatch.report.collect import collect
    from borgwatch.report.prom import PromClient
    from borgwatch.report.render import as_json

    client = PromClient(opts.prometheus, opts.auth or PromAuth(), timeout=opts.timeout)
    report = collect(client, since, until, list(opts.jobs), now)
    json_text = json.dumps(as_json(report), indent=2) + "\n" if opts.as_json else None
    if opts.output is not None:
        from borgwatch.report.charts import all_charts
        from borgwatch.report.render import write
        out = write(report, all_charts(report), Path(opts.output), opts.pdf, json_text)
        if not opts.as_json:
            print(f"report written to {out}/report.html", file=sys.stderr)
    if json_text is not None:
        sys.stdout.write(json_text)
    return 0
