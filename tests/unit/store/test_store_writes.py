"""What every file borgwatch replaces keeps, durable or not: no reader ever sees a torn file, a writer killed
before its rename leaves the old file whole (its temp is removed by the next write), a planted symlink is
replaced, never written through; and which writes are durable (the state: fsync before the rename and of
the dir after it) and which are not (the textfile, the version cache: the rename alone)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from borgwatch.store.files import atomic_write, remove_stale_temps
from borgwatch.store.lock import JobLock


def temps(path: Path) -> list[str]:
    return sorted(n for n in os.listdir(path.parent) if n.startswith(f".{path.name}."))


@pytest.mark.parametrize("durable", [True, False])
def test_a_writer_killed_before_its_rename_leaves_the_old_file_whole(tmp_path: Path, durable: bool) -> None:
    path = tmp_path / "borgwatch-home.prom"
    path.write_bytes(b"old 1\n")
    # kill -9 of the writer itself once the new content is in the temp file and before the rename
    script = textwrap.dedent(f"""
        import os, signal
        from pathlib import Path
        from borgwatch.store import files
        files.os.fchmod = lambda fd, mode: os.kill(os.getpid(), signal.SIGKILL)
        files.atomic_write(Path({str(path)!r}), b"new 2\\n" * 100_000, 0o644, durable={durable})
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True)
    assert proc.returncode == -9
    assert path.read_bytes() == b"old 1\n"
    (left,) = temps(path)
    assert not left.endswith(".prom")  # node_exporter never reads it
    assert remove_stale_temps(path) == 1 and temps(path) == []
    atomic_write(path, b"new 3\n", 0o644, durable=durable)
    assert path.read_bytes() == b"new 3\n" and temps(path) == []


@pytest.mark.parametrize("durable", [True, False])
def test_a_planted_symlink_is_replaced_never_written_through(tmp_path: Path, durable: bool) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious\n")
    path = tmp_path / "borgwatch-home.prom"
    path.symlink_to(victim)
    atomic_write(path, b"metrics\n", 0o644, durable=durable)
    assert victim.read_bytes() == b"precious\n"
    assert not path.is_symlink() and path.read_bytes() == b"metrics\n"
    assert path.stat().st_mode & 0o777 == 0o644


def syscalls(tmp_path: Path, code: str) -> list[str]:
    """The fsync/rename calls (strace) of a Python snippet writing into ``tmp_path``, oldest first."""
    log = tmp_path / "strace.log"
    script = f"import sys\nfrom pathlib import Path\nd = Path({str(tmp_path)!r})\n{code}"
    subprocess.run(["strace", "-f", "-qq", "-e", "trace=fsync,fdatasync,rename,renameat,renameat2", "-y",
                    "-o", str(log), sys.executable, "-c", script], check=True)
    lines = [line.split(None, 1)[1] for line in log.read_text().splitlines()]
    return [line for line in lines if str(tmp_path) in line]


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace (scripts/dev installs it) is missing")
def test_the_state_is_durable_and_the_textfile_only_atomic(tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    (tmp_path / "tf").mkdir()
    state = syscalls(tmp_path, "from borgwatch.store.state import JobState, save_state\n"
                               "save_state(d / 'state', 'home', JobState(last_archive='a1'))\n")
    assert [call.split("(")[0] for call in state] == ["fsync", "rename", "fsync"]
    assert f"<{tmp_path}/state/.home.json." in state[0] and ".tmp>)" in state[0]  # the data, before the rename
    assert f'"{tmp_path}/state/home.json"' in state[1]
    assert f"<{tmp_path}/state>)" in state[2]  # the dir, after it: the rename itself is durable
    textfile = syscalls(tmp_path, "from borgwatch.metrics.exposition import build_registry, write_textfile\n"
                                  "write_textfile(d / 'tf' / 'borgwatch-home.prom', build_registry([]))\n")
    assert [call.split("(")[0] for call in textfile] == ["rename"]


def test_the_lock_file_names_the_running_pid_whatever_it_held_before(tmp_path: Path) -> None:
    lock_path = tmp_path / "home.lock"
    for before in (b"4194304\n", b"1\n", b"x" * 4096):  # a longer pid, a shorter one, not ours at all
        lock_path.write_bytes(before)
        lock = JobLock(tmp_path, "home")
        lock.acquire()
        try:
            assert lock_path.read_bytes().strip() == str(os.getpid()).encode()
        finally:
            lock.release()
