"""Faults for the files-cache diff, from outside: `borgwatch run` killed with SIGKILL at a named moment of the
diff's life, and the checks every fault must pass (no borg left, no temp file, the next run borg diff's).

``kill_at`` runs the real CLI in a Python that SIGKILLs itself at one moment (``python -m helpers.faults
MOMENT run JOB …``): a poll from outside cannot hit a window of a few milliseconds (between the rename of the
snapshot and the state write) on a loaded machine, a hook inside borgwatch's own functions can, every time.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from helpers.filescache_job import Jobs, Step, step

# moment -> (module, class, method, when): the process kills itself before or after that call
MOMENTS: dict[str, tuple[str, str, str, str]] = {
    "listing": ("borgwatch.run.filesdiff", "FilesCacheRun", "record", "before"),  # borg create is reading
    "before-seal": ("borgwatch.run.filesdiff", "FilesCacheRun", "seal", "before"),  # the archive is committed
    "sealing": ("borgwatch.dataset.snapshot", "Snapshot", "set_meta", "sealed"),  # records written, uncommitted
    "borg-diff": ("borgwatch.run.stages", "StageRunner", "spawn", "diff"),  # the restricted borg diff runs
    # no baseline: borg list (in a thread) while the snapshot is sealed; then the fallback's borg diff runs
    "listing-archives": ("borgwatch.run.stages", "StageRunner", "spawn", "list"),
    "full-borg-diff": ("borgwatch.run.stages", "StageRunner", "spawn", "diff"),
    "promoted": ("borgwatch.run.filesdiff", "FilesCacheRun", "promote", "after"),  # renamed, state not written
}


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _arm(moment: str) -> None:
    import importlib

    module, cls_name, method, when = MOMENTS[moment]
    cls = getattr(importlib.import_module(module), cls_name)
    original: Callable[..., Any] = getattr(cls, method)

    def hooked(self: Any, *args: Any, **kw: Any) -> Any:
        if when == "before":
            _die()
        if when == "sealed" and args and args[0] == "sealed":
            _die()
        if when in ("diff", "list") and when in args[0][1:5]:  # borg [-r REPO] diff|list …
            # borg is starting: its start-up alone takes longer than this (0.3 s let Debian's borg 1.2
            # finish a small restricted diff first, and the kill then landed after the promote)
            threading.Timer(0.05, _die).start()
        out = original(self, *args, **kw)
        if when == "after":
            _die()
        return out

    setattr(cls, method, hooked)


def kill_at(jobs: Jobs, moment: str, name: str = "job") -> int:
    """`borgwatch run NAME` that SIGKILLs itself at ``moment``; its exit code (−9 when the moment came)."""
    jobs.write()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BORG_")}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, "-m", "helpers.faults", moment, "run", name, "-c", str(jobs.config),
                           "--json"], env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600)
    return proc.returncode


def borgs_of(repo: Path) -> list[psutil.Process]:
    """borg processes working on ``repo``, whoever their parent is now."""
    found = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = p.info["cmdline"] or []
        if any(str(repo) in part for part in cmd) and any("borg" in part for part in cmd[:2]):
            found.append(p)
    return found


def no_borg_left(repo: Path, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while (left := borgs_of(repo)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert left == [], f"borg outlived borgwatch: {[p.pid for p in left]}"


def leftovers(state_dir: Path, jobs: tuple[str, ...] = ("job",)) -> set[str]:
    """Files in state_dir that are neither a job's state, lock, snapshot nor the version cache."""
    known = {"borg-version.json"} | {f"{j}{s}" for j in jobs for s in (".json", ".lock", ".snapshot.db")}
    return {p.name for p in state_dir.iterdir()} - known


def run_json(jobs: Jobs, name: str = "job", env: dict[str, str] | None = None,
             preexec: Callable[[], None] | None = None) -> tuple[Step, subprocess.CompletedProcess[str]]:
    """`borgwatch run NAME --json` as the tests' jobs run it, with extra environment or limits."""
    jobs.write()
    run_env = {k: v for k, v in os.environ.items() if not k.startswith("BORG_")} | (env or {})
    proc = subprocess.run([str(Path(sys.executable).with_name("borgwatch")), "run", name, "-c", str(jobs.config),
                           "--json"], env=run_env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=600, preexec_fn=preexec)
    return step(proc.returncode, proc.stdout, proc.stderr, jobs.borg2), proc


def run_during(jobs: Jobs, work: Callable[[], None], name: str = "job") -> Step:
    """`borgwatch run NAME` while ``work`` is called again and again in a thread (files changing under borg)."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            work()

    writer = threading.Thread(target=loop)
    writer.start()
    try:
        return jobs.run(name)
    finally:
        stop.set()
        writer.join()


def after_create(jobs: Jobs, tmp: Path, mutation: str) -> None:
    """The job's borg becomes a wrapper that, once a create ended, runs ``mutation`` (Python, with ``caches``:
    the files caches in the job's borg base dir) on borg's files cache, before borgwatch reads it."""
    script = tmp / "mutate.py"
    script.write_text("import os, sys, msgpack\nfrom pathlib import Path\n"
                      f"caches = sorted(Path({str(jobs.repo.base_dir)!r}).glob('.cache/borg/*/files*'))\n{mutation}\n")
    wrapper = tmp / "borg-then"
    wrapper.write_text(f'#!/bin/sh\n{jobs.repo.borg} "$@"\nrc=$?\n'
                       f'[ "$1" = create ] && {sys.executable} {script}\nexit $rc\n')
    wrapper.chmod(0o755)
    jobs.repo.borg = str(wrapper)


@contextlib.contextmanager
def tiny_tmpfs(path: Path, size: str) -> Any:
    """``path`` becomes a tmpfs of ``size`` (root only; the caller skips when it cannot mount)."""
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise PermissionError(done.stderr.strip())
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


if __name__ == "__main__":
    _arm(sys.argv[1])
    from borgwatch.cli import main

    sys.argv = ["borgwatch", *sys.argv[2:]]
    main()
