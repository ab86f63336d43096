"""What the figures were measured on: cores, CPU, memory, kernel, borg, python, borgmatic."""

from __future__ import annotations

import os
import platform
import subprocess
import sys


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total() -> str:
    try:
        with open("/proc/meminfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def _version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return "not available"
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr).strip() else "?"


def describe(borg: str, borgmatic: str | None) -> dict[str, str]:
    return {
        "nproc": str(os.cpu_count()),
        "CPU": _cpu_model(),
        "memory": _mem_total(),
        "kernel": f"{platform.system()} {platform.release()}",
        "python": sys.version.split()[0],
        "borg": _version([borg, "--version"]),
        "borgmatic": _version([borgmatic, "--version"]) if borgmatic else "not installed",
        "load average at start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }
