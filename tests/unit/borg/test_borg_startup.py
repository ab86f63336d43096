"""A run's fixed cost around borg: the cached `borg --version` (never believed from a file another user could
plant) and the end of a borg process (no batching pause after its exit, its last I/O counted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from borgwatch.borg.env import BorgEnv
from borgwatch.borg.process import BorgProcess, _descendants, _ExitWaiter
from borgwatch.borg.version import detect_version

CACHE = "borg-version.json"


def counting_borg(tmp_path: Path, version: str) -> tuple[Path, Path]:
    """A borg stand-in that answers --version and appends a line to a log each time it runs."""
    log = tmp_path / "runs.log"
    borg = tmp_path / "bin" / "borg"
    borg.parent.mkdir(parents=True, exist_ok=True)
    borg.write_text(f"#!/bin/sh\necho run >> {log}\necho 'borg {version}'\n")
    borg.chmod(0o755)
    return borg, log


def runs(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


def test_the_version_is_asked_once_per_binary(tmp_path: Path) -> None:
    borg, log = counting_borg(tmp_path, "1.4.5")
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    for _ in range(3):
        assert detect_version(str(borg), dict(os.environ), state).text == "1.4.5"
    assert runs(log) == 1
    assert json.loads((state / CACHE).read_text())["version"] == [1, 4, 5, "1.4.5"]


def test_the_cached_version_is_the_one_real_borg_prints(tmp_path: Path, borg: str) -> None:
    asked = detect_version(borg, dict(os.environ), tmp_path)
    cached = detect_version(borg, dict(os.environ), tmp_path)
    printed = subprocess.run([borg, "--version"], capture_output=True, text=True, check=True).stdout
    assert asked == cached
    assert cached.text in printed


def test_an_upgraded_binary_is_asked_again(tmp_path: Path) -> None:
    borg, log = counting_borg(tmp_path, "1.2.4")
    assert detect_version(str(borg), dict(os.environ), tmp_path).text == "1.2.4"
    new, _ = counting_borg(tmp_path / "new", "1.4.5")  # replaced by a package upgrade: a new file
    os.replace(new, borg)
    assert detect_version(str(borg), dict(os.environ), tmp_path).text == "1.4.5"
    same_size = borg.read_text().replace("1.4.5", "1.4.6")  # rewritten in place, same size, a later mtime
    borg.write_text(same_size)
    st = borg.stat()
    os.utime(borg, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert detect_version(str(borg), dict(os.environ), tmp_path).text == "1.4.6"
    assert runs(log) == 1 and runs(tmp_path / "new" / "runs.log") == 2


def plant(state: Path, borg: Path, claimed: str) -> dict:
    """What detect_version would write for ``borg``, with the version ``claimed``."""
    st = borg.stat()
    key = f"{os.path.realpath(borg)}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"
    major, minor, patch = (int(p) for p in claimed.split("."))
    return {"key": key, "version": [major, minor, patch, claimed]}


def test_a_cache_file_of_another_user_is_ignored_and_replaced(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("chown to another user needs root")
    borg, log = counting_borg(tmp_path, "1.4.5")
    cache = tmp_path / CACHE
    cache.write_text(json.dumps(plant(tmp_path, borg, "1.2.0")))
    os.chown(cache, 4242, 4242)
    assert detect_version(str(borg), dict(os.environ), tmp_path).text == "1.4.5"
    assert runs(log) == 1
    assert cache.stat().st_uid == os.geteuid()  # replaced by borgwatch's own answer, then believed
    assert detect_version(str(borg), dict(os.environ), tmp_path).text == "1.4.5"
    assert runs(log) == 1


@pytest.mark.parametrize("how", ["symlink", "hardlink", "fifo"])
def test_a_planted_cache_file_is_ignored(tmp_path: Path, how: str) -> None:
    borg, log = counting_borg(tmp_path, "1.4.5")
    cache = tmp_path / CACHE
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text(json.dumps(plant(tmp_path, borg, "1.2.0")))
    if how == "symlink":
        cache.symlink_to(elsewhere)
    elif how == "hardlink":
        os.link(elsewhere, cache)
    else:
        os.mkfifo(cache)  # would block a reader that opens it without O_NONBLOCK
    assert detect_version(str(borg), dict(os.environ), tmp_path).text == "1.4.5"
    assert runs(log) == 1
    assert json.loads(elsewhere.read_text())["version"][3] == "1.2.0"  # never written through


def test_the_exit_waiter_wakes_up_when_the_process_exits() -> None:
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        with _ExitWaiter(sleeper.pid) as exited:
            assert not exited.wait(0)
            sleeper.terminate()
            assert exited.wait(3600)  # returns at the exit, long before its timeout
    finally:
        sleeper.kill()
        sleeper.wait()


def test_io_of_a_borg_shorter_than_one_sample_is_counted(tmp_path: Path) -> None:
    """The sampler may never see a short process: its totals are read once it exited, before it is reaped."""
    script = "import sys; sys.stdin = open('/dev/zero', 'rb'); sys.stdin.read(3_000_000); print('{}')"
    run = BorgProcess([sys.executable, "-c", script], BorgEnv(dict(os.environ))).run(lambda _event: None)
    assert run.returncode == 0 and run.stdout.strip() == b"{}"
    assert run.resources.read_bytes >= 3_000_000
    assert run.resources.cpu_user_seconds + run.resources.cpu_system_seconds > 0


def test_the_family_of_borg_is_found_without_reading_every_process() -> None:
    """borg's descendants (an ssh, and its children) as psutil finds them by reading every process."""
    import psutil

    tree = subprocess.Popen(["sh", "-c", "sleep 60 & (sleep 61 & sleep 62; true) & wait"])
    try:
        deadline = time.monotonic() + 10
        while len(psutil.Process(tree.pid).children(recursive=True)) < 4 and time.monotonic() < deadline:
            time.sleep(0.02)
        expected = {p.pid for p in psutil.Process(tree.pid).children(recursive=True)}
        assert len(expected) == 4
        found = _descendants(tree.pid)
        assert found is not None and {p.pid for p in found} == expected
    finally:
        for p in psutil.Process(tree.pid).children(recursive=True):
            p.kill()
        tree.kill()
        tree.wait()


def test_the_memory_of_borgs_children_is_counted() -> None:
    """borg and its ssh at once: their sum, which only the sampler sees (the kernel keeps each one's peak)."""
    child = "x = bytearray(60 << 20); import time; time.sleep(1.5)"
    script = f"import subprocess, sys; x = bytearray(60 << 20); subprocess.run([sys.executable, '-c', {child!r}])"
    run = BorgProcess([sys.executable, "-c", script], BorgEnv(dict(os.environ))).run(lambda _event: None)
    assert run.returncode == 0
    assert run.resources.max_rss_bytes >= 120 << 20
