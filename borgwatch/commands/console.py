"""What a person sees: quiet under cron/systemd (warnings and errors only), progress and a summary on a
terminal, JSON on request. Nothing here decides anything about the run."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from borgwatch.model import RunResult
from borgwatch.units import human_age, human_bytes


def is_tty() -> bool:
    return sys.stderr.isatty()


def problem(text: str) -> None:
    print(f"borgwatch: {text}", file=sys.stderr, flush=True)


class Console:
    def __init__(self, job: str, tty: bool) -> None:
        self.job = job
        self.tty = tty
        self._last = 0.0

    def message(self, level: str, text: str) -> None:
        self._clear()
        print(f"borgwatch: {self.job}: {level}: {text}", file=sys.stderr, flush=True)

    def progress(self, data: dict[str, Any]) -> None:
        now = time.monotonic()
        if data.get("finished") or now - self._last < 0.2:
            return
        self._last = now
        line = (f"{self.job}: {data.get('nfiles', 0)} files, {human_bytes(data.get('original_size'))} "
                f"{data.get('path', '')}")
        print(f"\r\x1b[K{line[:150]}", end="", file=sys.stderr, flush=True)

    def _clear(self) -> None:
        if self.tty and self._last:
            print("\r\x1b[K", end="", file=sys.stderr, flush=True)

    def summary(self, result: RunResult) -> None:
        self._clear()
        print(summary_text(result))


def summary_text(result: RunResult) -> str:
    lines = [f"{result.job}: {result.status} (exit {result.exit_code}) in {result.duration_seconds:.1f}s"
             + (f", archive {result.archive_name}" if result.archive_name else "")]
    if result.archive:
        a = result.archive
        lines.append(f"  files {a.files}, original {human_bytes(a.original_bytes)}, compressed "
                     f"{human_bytes(a.compressed_bytes)}, deduplicated {human_bytes(a.deduplicated_bytes)}")
    if result.dataset:
        d = result.dataset
        lines.append(f"  dataset ({d.method}): +{d.added} added, ~{d.modified} modified, -{d.removed} removed, "
                     f"{d.unchanged} unchanged, {d.error} errors")
    for s in result.stages:
        extra = f" — {s.message}" if s.message and s.status != "success" else ""
        lines.append(f"  {s.name:8} {s.status:11} rc={s.exit_code:<3} {s.duration_seconds:7.2f}s{extra}")
    return "\n".join(lines)


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True))


def drill_table(rows: list[dict[str, Any]]) -> str:
    """The restore drills of the jobs that had one (``status_rows``' ``drill`` entries)."""
    header = ("JOB", "LAST DRILL", "DRILL RESULT", "VERIFIED", "MISMATCHED", "UNREADABLE", "COVERAGE",
              "LAST DRILL SUCCESS")
    table = [header]
    now = time.time()
    for r in rows:
        d = r.get("drill")
        if not d:
            continue
        cov = d.get("coverage_ratio")
        table.append((
            r["job"], human_age(now - d["started_at"]) + " ago", d.get("status") or "-",
            str(d.get("files_verified", 0)), str(d.get("files_mismatched", 0)), str(d.get("files_unreadable", 0)),
            "-" if cov is None else f"{cov * 100:.0f} %",
            "never" if d.get("last_success_at") is None else human_age(now - d["last_success_at"]) + " ago",
        ))
    return _columns(table)


def _columns(table: list[tuple[str, ...]]) -> str:
    widths = [max(len(str(row[i])) for row in table) for i in range(len(table[0]))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                     for row in table)


def status_table(rows: list[dict[str, Any]]) -> str:
    header = ("JOB", "LAST RUN", "RESULT", "EXIT", "DURATION", "LAST SUCCESS", "MAX AGE", "DATASET +/~/-")
    table = [header]
    now = time.time()
    for r in rows:
        d = r.get("dataset") or {}
        if r.get("unknown"):  # its state file is unreadable: "never" would be a claim
            table.append((r["job"], "unknown", "running" if r.get("running") else "?", "-", "-", "unknown",
                          "-", "-"))
            continue
        table.append((
            r["job"],
            "never" if r.get("started_at") is None else human_age(now - r["started_at"]) + " ago",
            ("running" if r.get("running") else "killed" if r.get("killed") else r.get("status") or "-"),
            "-" if r.get("exit_code") is None else str(r["exit_code"]),
            "-" if r.get("duration_seconds") is None else f"{r['duration_seconds']:.1f}s",
            "never" if r.get("last_success_at") is None else human_age(now - r["last_success_at"]) + " ago",
            "-" if r.get("max_age_seconds") is None else human_age(r["max_age_seconds"]),
            f"+{d.get('added', 0)}/~{d.get('modified', 0)}/-{d.get('removed', 0)}" if d else "-",
        ))
    return _columns(table)
