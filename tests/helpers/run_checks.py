"""What the real-borg run tests check after a `borgwatch run`, whatever the borg: one clear stderr line,
no secret anywhere, the run seen in progress, and a textfile node_exporter scrapes and promtool accepts."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers.workspace import NodeExporter, Workspace, parse_metrics


def assert_one_clear_line(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert any(all(n in line for n in needles) for line in lines), proc.stderr


def all_output_and_files(ws: Workspace, proc: subprocess.CompletedProcess[str]) -> str:
    """The run's stdout and stderr and every text file it left (the SQLite indexes are binary)."""
    texts = [proc.stdout, proc.stderr]
    for d in (ws.textfile_dir, ws.state_dir):
        for p in d.rglob("*"):
            if p.is_file() and not p.name.endswith(".db"):
                texts.append(p.read_text(errors="replace"))
    return "\n".join(texts)


def wait_in_progress(ws: Workspace, timeout: float = 30) -> None:
    """Until the job's textfile says in_progress=1, then a moment for borg to get going."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ws.prom.exists():
            m = parse_metrics(ws.prom.read_text())
            if m.get(("borgwatch_run_in_progress", frozenset({("backup_job", ws.job)}))) == 1:
                time.sleep(0.5)
                return
        time.sleep(0.05)
    raise AssertionError("run never showed in_progress=1")


@dataclass
class Scrape:
    samples: dict[tuple[str, frozenset], float]
    text: str  # the textfile as borgwatch wrote it
    exporter: NodeExporter


def scrape_a_run(ws: Workspace, node_exporter: Callable[[Path], NodeExporter], umask: int | None = None) -> Scrape:
    """One successful run into a textfile dir node_exporter (user prometheus when root) may read, scraped.

    The dir lives outside pytest's private (0700) tmp tree, which a concurrent pytest session may lock down
    again at any time."""
    textfile_dir = Path(tempfile.mkdtemp(prefix="borgwatch-textfile-", dir="/tmp"))
    try:
        textfile_dir.chmod(0o755)
        ws.config.write_text(ws.config.read_text().replace(str(ws.textfile_dir), str(textfile_dir)))
        old = os.umask(umask) if umask is not None else None
        try:
            proc = ws.run()
        finally:
            if old is not None:
                os.umask(old)
        assert proc.returncode == 0, proc.stderr
        exporter = node_exporter(textfile_dir)
        body = urllib.request.urlopen(exporter.url, timeout=5).read().decode()
        text = (textfile_dir / ws.prom.name).read_text()
    finally:
        shutil.rmtree(textfile_dir, ignore_errors=True)
    scraped = parse_metrics(body)
    assert scraped[("node_textfile_scrape_error", frozenset())] == 0, exporter.logs()
    return Scrape(scraped, text, exporter)


def assert_promtool_accepts(text: str) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (.ci/run installs it)")
    check = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
