"""Fixtures only (helpers live in the importable ``helpers`` package).

The borg under test is the venv's borg 1.4.x unless BORGWATCH_TEST_BORG names another binary
(.ci/run also runs the borg suite against Debian's /usr/bin/borg 1.2.4 that way).
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from helpers.borg import borg2_binary
from helpers.workspace import PASSPHRASE, NodeExporter, Workspace, borg_binary, make_tree, start_node_exporter


@pytest.fixture
def borg() -> str:
    path = borg_binary()
    if not path:
        pytest.skip("no borg binary available")
    return path


@pytest.fixture
def workspace(tmp_path: Path, borg: str) -> Workspace:
    """A source tree, an initialised repokey repository, a passphrase file and a config."""
    ws = Workspace(tmp_path, borg)
    make_tree(ws.src)
    ws.textfile_dir.mkdir()
    (tmp_path / "pass").write_text(PASSPHRASE + "\n")
    init = ws.borg_cmd("init", "--encryption", "repokey", str(ws.repo))
    assert init.returncode == 0, init.stderr
    ws.write_config()
    time.sleep(1.05)  # files newer than the run start are never cached by borg: keep tests deterministic
    return ws


@pytest.fixture
def workspace2(tmp_path: Path) -> Workspace:
    """The workspace with borg 2.0.0b23 (skips when it is not installed): a repo-create'd repository."""
    borg = borg2_binary()
    if not borg:
        pytest.skip("borg 2 not installed (set BORGWATCH_TEST_BORG2; scripts/dev setup makes .venv-borg2)")
    ws = Workspace(tmp_path, borg)
    make_tree(ws.src)
    ws.textfile_dir.mkdir()
    (tmp_path / "pass").write_text(PASSPHRASE + "\n")
    init = ws.borg_cmd("repo-create", "-r", str(ws.repo), "--encryption", "aes256-ocb")
    assert init.returncode == 0, init.stderr
    ws.write_config()
    time.sleep(3.1)  # borg 2 caches no file changed within 3 s before the backup started
    return ws


@pytest.fixture
def node_exporter(tmp_path_factory: pytest.TempPathFactory):
    """Factory: start the real node_exporter (as user prometheus when root) on a textfile dir."""
    started: list[subprocess.Popen[bytes]] = []

    def start(textfile_dir: Path) -> NodeExporter:
        log = tmp_path_factory.mktemp("node-exporter") / "stderr.log"
        proc, url = start_node_exporter(textfile_dir, log)
        started.append(proc)
        return NodeExporter(url, log)

    yield start
    for proc in started:
        proc.terminate()
        proc.wait(timeout=10)
