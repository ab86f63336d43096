"""Helpers for the unit tests: run `systemd-analyze verify` on a directory of units, parse unit files."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_systemd_analyze = pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze not installed")


def verify(unit_dir: Path, *units: str) -> subprocess.CompletedProcess[str]:
    """Verify units from ``unit_dir`` only (plus the built-in paths, for timers.target etc.).

    SYSTEMD_UNIT_PATH ending in ':' prepends the directory to the default search path, so drop-ins
    (``NAME.service.d/*.conf``) in it are loaded as they would be from /etc/systemd/system.
    """
    assert SYSTEMD_ANALYZE is not None
    env = {**os.environ, "SYSTEMD_UNIT_PATH": f"{unit_dir}:", "SYSTEMD_LOG_COLOR": "0"}
    return subprocess.run([SYSTEMD_ANALYZE, "verify", "--man=no", *units], cwd=unit_dir, env=env,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)


def fake_executable(path: Path) -> Path:
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return path


def unit_settings(text: str) -> dict[str, list[str]]:
    """'Section.Key' -> values in order; handles comments and backslash continuation lines."""
    out: dict[str, list[str]] = {}
    section, pending = "", ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line[0] in "#;"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.setdefault(f"{section}.{key.strip()}", []).append(" ".join(value.split()))
    return out
