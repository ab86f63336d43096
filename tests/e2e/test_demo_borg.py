"""`borgwatch demo --borg`: the demo with a chosen borg binary (Debian's borg 1.2 here)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

BORGWATCH = str(Path(sys.executable).with_name("borgwatch"))
SYSTEM_BORG = "/usr/bin/borg"


@pytest.mark.slow
@pytest.mark.skipif(not os.access(SYSTEM_BORG, os.X_OK), reason=f"{SYSTEM_BORG} not installed")
def test_demo_runs_the_borg_it_is_given(tmp_path: Path) -> None:
    proc = subprocess.run([BORGWATCH, "demo", "--workdir", str(tmp_path), "--borg", SYSTEM_BORG],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    version = subprocess.run([SYSTEM_BORG, "--version"], capture_output=True, text=True).stdout.split()[-1]
    assert f"with borg {version}" in proc.stdout
    text = (tmp_path / "textfile" / "borgwatch-demo.prom").read_text()
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(text) for s in f.samples}
    assert samples[("borgwatch_run_status", (("backup_job", "demo"), ("status", "success")))] == 1
    assert any(n == "borgwatch_build_info" and ("borg_version", version) in labels for n, labels in samples)
    assert f'borg = "{SYSTEM_BORG}"' in (tmp_path / "config.toml").read_text()


def test_demo_with_a_missing_borg_names_cause_and_remedy(tmp_path: Path) -> None:
    proc = subprocess.run([BORGWATCH, "demo", "--workdir", str(tmp_path / "w"), "--borg", str(tmp_path / "nope")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and "not found" in proc.stderr and "install borgbackup" in proc.stderr
    assert not (tmp_path / "w").exists()  # nothing made before the borg was found
