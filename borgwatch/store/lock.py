"""Per-job run lock: a second run of the same job is refused at once (fcntl lock, freed on any exit)."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from borgwatch.errors import JobLocked, UserError
from borgwatch.store.files import NOFOLLOW, open_nofollow

PID_WIDTH = 10  # a pid is at most 7 digits on Linux (pid_max ≤ 2^22)


class JobLock:
    def __init__(self, state_dir: Path, job: str) -> None:
        self.path = state_dir / f"{job}.lock"
        self.job = job
        self.fd: int | None = None

    def acquire(self) -> None:
        try:  # never through a symlink: the file is truncated below
            fd = open_nofollow(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise UserError(f"cannot create lock file {self.path}: {exc.strerror or exc}; make state_dir "
                            "writable for borgwatch's user and remove anything else by that name") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise JobLocked(f"job {self.job} is already running (pid {holder[:20]}); this run was refused — "
                            "wait for it to finish, or check `borgwatch status`") from None
        # The pid is written over the last one at a fixed width, never after a truncate: on ext4 a truncate
        # waits for the running journal commit to write the file's old data out (measured on a busy disk: up
        # to 650 ms before borg could start; an overwrite in place took 0.1 ms at most).
        os.pwrite(fd, f"{os.getpid():<{PID_WIDTH}}\n".encode(), 0)
        if os.fstat(fd).st_size > PID_WIDTH + 1:  # written by another program: cut, whatever it costs
            os.ftruncate(fd, PID_WIDTH + 1)
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def held(self) -> bool:
        """Whether a run of this job holds the lock right now (for `borgwatch status`)."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | NOFOLLOW)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return False
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
