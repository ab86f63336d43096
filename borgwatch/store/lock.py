"""Per-job run lock: a second run of the same job is refused at once (fcntl lock, freed on any exit)."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from borgwatch.errors import JobLocked, UserError
from borgwatch.store.files import NOFOLLOW, open_nofollow


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
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
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
