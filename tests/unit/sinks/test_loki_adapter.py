"""python-logging-loki stays inside its adapter: the Loki sink ships without importing it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from helpers.workspace import ROOT


def test_only_the_adapter_imports_python_logging_loki() -> None:
    importers = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "borgwatch").rglob("*.py")
                       if "logging_loki" in p.read_text(encoding="utf-8"))
    assert importers == ["borgwatch/sinks/loki_logging.py"]


def test_a_loki_push_loads_no_logging_loki(tmp_path: Path) -> None:
    code = f"""
import sys
sys.path.insert(0, {str(ROOT / "tests")!r})
from pathlib import Path
from helpers.loki import make_config, run_once

from helpers.workspace import ROOT
_, report, _ = run_once(make_config(Path({str(tmp_path)!r}), "http://127.0.0.1:9", retries=0))
assert report is not None and report.spooled == 5, report
print("logging_loki" in sys.modules, "requests" in sys.modules)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "True"]  # the transport ran, the library was never loaded
