"""Run one borg command: no shell, stdin=/dev/null, own process group, stderr streamed line by line
(read in batches), stdout collected, resources measured (psutil samples + the kernel's rusage at reap time)."""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import functools
import os
import select
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO

from borgwatch.borg.env import BorgEnv
from borgwatch.borg.events import Event, parse_line
from borgwatch.model import Resources

if TYPE_CHECKING:
    import psutil

SAMPLE_INTERVAL = 0.2
PIPE_SIZE = 1 << 20  # the most an unprivileged process may ask for (fs.pipe-max-size)
READ_SIZE = 256 << 10
BATCH_WAIT = 0.01  # after a short read, let the pipe collect lines this long


@dataclass
class BorgRun:
    argv: list[str]
    returncode: int
    stdout: bytes
    started_at: float
    duration_seconds: float
    resources: Resources = field(default_factory=Resources)
    timed_out: bool = False


class BorgProcess:
    """One borg child. ``signal`` may be called from a signal handler to forward a signal to it."""

    def __init__(self, argv: list[str], env: BorgEnv, cwd: str | None = None) -> None:
        self.argv = argv
        self.env = env
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None
        self._peak_rss = 0
        self._io = (0, 0)
        self._done = threading.Event()
        self._pending: int | None = None

    def signal(self, signum: int) -> None:
        proc = self.proc
        if proc is None:  # not started yet: borg gets it as soon as it exists
            self._pending = self._pending or signum
        elif proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signum)

    def run(self, on_event: Callable[[Event], None], timeout: float | None = None,
            echo: BinaryIO | None = None, stdout_file: BinaryIO | None = None,
            on_spawn: Callable[[], None] | None = None) -> BorgRun:
        """``stdout_file``: large outputs (--json-lines listings) go to a file instead of memory.
        ``on_spawn`` runs once borg is running (its output waits in the pipe meanwhile)."""
        for fd in self.env.pass_fds:  # a passphrase fd is read by every borg: rewind it
            os.lseek(fd, 0, os.SEEK_SET)
        started_wall, started = time.time(), time.monotonic()
        self.proc = proc = subprocess.Popen(
            self.argv, stdin=subprocess.DEVNULL, stdout=stdout_file or subprocess.PIPE, stderr=subprocess.PIPE,
            env=self.env.env, cwd=self.cwd, pass_fds=self.env.pass_fds, start_new_session=True,
            preexec_fn=_die_with_parent(),
        )
        if self._pending is not None:  # a signal arrived while Popen was starting borg
            self.signal(self._pending)
        stdout_chunks: list[bytes] = []
        sampler = threading.Thread(target=self._sample, args=(proc.pid,), daemon=True)
        threads = [sampler]
        if stdout_file is None:
            threads.append(threading.Thread(target=self._drain_stdout, args=(proc, stdout_chunks), daemon=True))
        timed_out = threading.Event()
        if timeout:
            threads.append(threading.Thread(target=self._watchdog, args=(timeout, timed_out), daemon=True))
        for t in threads:
            t.start()
        if on_spawn is not None:
            on_spawn()
        assert proc.stderr is not None
        with _ExitWaiter(proc.pid) as exited:
            for raw in read_lines(proc.stderr.fileno(), echo, exited.wait):
                event = parse_line(raw)
                if event is not None:
                    on_event(event)
        final_io = _zombie_io(proc.pid)
        _, status, rusage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        self._done.set()
        for t in threads:
            if t is not sampler:  # a sample in flight is superseded by the figures read above
                t.join(timeout=5)
        rc = proc.returncode
        if rc < 0:  # killed by a signal without handling it: report like borg does
            rc = 128 - rc
        resources = Resources(
            cpu_user_seconds=rusage.ru_utime,
            cpu_system_seconds=rusage.ru_stime,
            max_rss_bytes=max(self._peak_rss, rusage.ru_maxrss * 1024),
            read_bytes=max(self._io[0], final_io[0]),
            write_bytes=max(self._io[1], final_io[1]),
        )
        return BorgRun(self.argv, rc, b"".join(stdout_chunks), started_wall, time.monotonic() - started,
                       resources, timed_out.is_set())

    @staticmethod
    def _drain_stdout(proc: subprocess.Popen[bytes], chunks: list[bytes]) -> None:
        assert proc.stdout is not None
        while chunk := proc.stdout.read(65536):
            chunks.append(chunk)

    def _sample(self, pid: int) -> None:
        import psutil  # here, not at the top: borg starts without waiting for it

        try:
            process = psutil.Process(pid)
            while not self._done.is_set():
                with process.oneshot():
                    kids = _descendants(pid)
                    procs = [process, *(process.children(recursive=True) if kids is None else kids)]
                    rss = sum(p.memory_info().rss for p in procs)
                    io = [p.io_counters() for p in procs]
                self._peak_rss = max(self._peak_rss, rss)
                self._io = (sum(c.read_chars for c in io), sum(c.write_chars for c in io))
                self._done.wait(SAMPLE_INTERVAL)
        except (psutil.Error, OSError):
            return  # the process ended between two samples

    def _watchdog(self, timeout: float, flag: threading.Event) -> None:
        if not self._done.wait(timeout):
            flag.set()
            self.signal(signal.SIGTERM)
            if not self._done.wait(10):
                self.signal(signal.SIGKILL)


def _descendants(pid: int) -> list[psutil.Process] | None:
    """borg's children and theirs (ssh), from ``/proc/PID/task/TID/children``; None where the kernel has no
    such file. psutil's ``children()`` reads the stat of every process on the machine instead: 2.2 ms of CPU
    per sample with 87 processes against 0.2 ms here, five times a second for the whole backup."""
    import psutil

    if not os.path.exists(f"/proc/{pid}/task/{pid}/children"):
        return None
    found: list[psutil.Process] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        with contextlib.suppress(OSError):  # a process or thread that ended meanwhile
            for tid in os.listdir(f"/proc/{parent}/task"):
                with contextlib.suppress(OSError), open(f"/proc/{parent}/task/{tid}/children", "rb") as fh:
                    todo += [int(kid) for kid in fh.read().split()]
        if parent != pid:
            with contextlib.suppress(psutil.Error):
                found.append(psutil.Process(parent))
    return found


class _ExitWaiter:
    """``wait(seconds)``: sleep, but wake up as soon as the process exits (a pidfd), so the reader's batching
    pause never delays the end of a run. Without pidfds (not Linux, kernel < 5.3) it is a plain sleep."""

    def __init__(self, pid: int) -> None:
        self._poll: select.poll | None = None
        try:
            self._fd: int | None = os.pidfd_open(pid)
        except (OSError, AttributeError):
            self._fd = None
            return
        self._poll = select.poll()
        self._poll.register(self._fd, select.POLLIN)

    def wait(self, seconds: float) -> bool:
        """True once the process has exited (unknown without a pidfd: False)."""
        if self._poll is None:
            time.sleep(seconds)
            return False
        return bool(self._poll.poll(seconds * 1000))

    def __enter__(self) -> _ExitWaiter:
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)


def _zombie_io(pid: int) -> tuple[int, int]:
    """(read, written) bytes of an exited, not yet reaped process: /proc still holds its totals then, its
    reaped children (ssh) included, where the sampler's last reading may be up to SAMPLE_INTERVAL old.
    (0, 0) when unknown."""
    with contextlib.suppress(OSError, KeyError, ValueError):
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)  # the stderr EOF may precede the exit itself
        with open(f"/proc/{pid}/io", "rb") as fh:
            fields = dict(line.split(b":", 1) for line in fh.read().splitlines() if b":" in line)
        return int(fields[b"rchar"]), int(fields[b"wchar"])
    return 0, 0


_PR_SET_PDEATHSIG = 1


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _die_with_parent() -> Callable[[], None] | None:
    """A preexec hook that makes the kernel send borg SIGTERM when borgwatch dies (kill -9, OOM killer).

    borg runs in its own session so that a terminal's Ctrl-C reaches it once, through borgwatch; without
    this, a killed borgwatch left borg running, committing an archive nobody recorded and holding the
    repository lock. SIGTERM, not SIGKILL: borg then rolls back and releases its lock. The hook checks the
    parent afterwards: borgwatch may have died between fork and prctl."""
    try:
        prctl = _libc().prctl
    except (OSError, AttributeError):  # not Linux: borg may outlive borgwatch there
        return None
    parent = os.getpid()

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(128 + signal.SIGTERM)

    return hook


def read_lines(fd: int, echo: BinaryIO | None = None,
               pause: Callable[[float], object] = time.sleep) -> Iterator[bytes]:
    """The lines written to a pipe (without their newline), read in batches.

    borg's stderr is line buffered: with ``--list`` it makes one write per file. A reader that wakes up
    for each of them costs borg more than writing them does (measured: +1.0 s on a 100k-file incremental
    ``borg create --list --log-json``, +25 %). So after a read that drained the pipe the reader pauses
    ``BATCH_WAIT`` and lets the lines pile up in a pipe made large enough for them. Reads stay small and
    lines are cut out one at a time, so memory does not grow with the batch. ``echo`` receives the raw
    bytes as they arrive (a prompt without a newline included). ``pause(seconds)`` may return early (the
    writer exited: nothing more will pile up).
    """
    with contextlib.suppress(OSError):  # best effort: a smaller pipe only means more wake-ups
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
    try:
        read_size = min(READ_SIZE, fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ))
    except OSError:
        read_size = 65536
    pending = b""
    while chunk := os.read(fd, read_size):
        if echo is not None:
            echo.write(chunk)
            echo.flush()
        start = 0
        end = chunk.find(b"\n")
        if pending and end >= 0:
            yield pending + chunk[:end]
            pending, start = b"", end + 1
            end = chunk.find(b"\n", start)
        while end >= 0:
            yield chunk[start:end]
            start = end + 1
            end = chunk.find(b"\n", start)
        if start < len(chunk):
            pending += chunk[start:]
        if len(chunk) < read_size // 2:  # the pipe was drained: let it fill a little
            pause(BATCH_WAIT)
    if pending:
        yield pending
