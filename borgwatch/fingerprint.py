"""Content fingerprints of the files borg reads, taken in a background thread while borg reads them.

borg prints a file's status just before it reads the file and drops the file's pages afterwards
(posix_fadvise DONTNEED), so the cheap moment to read a file a second time is right then. The stream
reader offers each A/M file; a worker thread hashes it (blake2b, 16 bytes). Nothing here ever blocks
the stream: a full queue or an exhausted byte budget means "no fingerprint" (the dataset diff then asks
borg diff about that file if it ever needs a verdict). A fingerprint is only kept when the file's size,
mtime and ctime were the same when borg announced it, before and after hashing, and after the backup
(checked by the index) — i.e. when borg and borgwatch read the same bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import queue
import threading

Key = tuple[int, int, int]  # size, mtime_ns, ctime_ns

MAX_FILE = 64 << 20  # bigger files (VM images…) are left to borg diff
BUDGET = 4 << 30  # bytes hashed per run at most
QUEUE = 256  # files waiting at most (a slow disk makes the worker skip, never the stream wait)
DRAIN_SECONDS = 10.0  # how long the end of the stream waits for the worker's backlog


class Fingerprinter:
    def __init__(self, max_file: int = MAX_FILE, budget: int = BUDGET) -> None:
        self.max_file = max_file
        self.budget = budget
        self.reserved = 0
        self.skipped = 0
        self._queue: queue.Queue[tuple[int, str, Key] | None] = queue.Queue(maxsize=QUEUE)
        self._results: list[tuple[int, bytes, str, int, int, int]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, name="borgwatch-fingerprint", daemon=True)
        self._thread.start()

    def offer(self, h: int, path: str, key: Key) -> None:
        size = key[0]
        if size > self.max_file or self.reserved + size > self.budget:
            self.skipped += 1
            return
        try:
            self._queue.put_nowait((h, path, key))
        except queue.Full:
            self.skipped += 1
            return
        self.reserved += size

    def take(self) -> list[tuple[int, bytes, str, int, int, int]]:
        """Fingerprints finished so far: (hash, digest, path, size, mtime, ctime)."""
        with self._lock:
            out, self._results = self._results, []
        return out

    def close(self, wait: float = DRAIN_SECONDS) -> None:
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=wait)
        self._thread.join(wait)
        self._stop.set()  # whatever is still queued is dropped
        self._thread.join(5)

    def _work(self) -> None:
        while not self._stop.is_set():
            item = self._queue.get()
            if item is None:
                return
            h, path, key = item
            digest = content_digest(path, key)
            if digest is not None:
                with self._lock:
                    self._results.append((h, digest, path, *key))


def content_digest(path: str, expected: Key) -> bytes | None:
    """blake2b of the file, or None when it is not the file that was announced (or moved while read)."""
    noatime = getattr(os, "O_NOATIME", 0)
    flags = os.O_RDONLY | os.O_NOFOLLOW | noatime
    try:
        try:
            fd = os.open(path, flags)
        except PermissionError:  # O_NOATIME needs ownership or CAP_FOWNER
            fd = os.open(path, flags & ~noatime)
    except OSError:
        return None
    try:
        if stat_key(os.fstat(fd)) != expected:
            return None
        h = hashlib.blake2b(digest_size=16)
        left = expected[0]
        # reads sized to the file: a fixed 1 MiB read would allocate (mmap) 1 MiB per small file
        while chunk := os.read(fd, min(left + 1, 1 << 20)):
            h.update(chunk)
            left = max(0, left - len(chunk))
        return h.digest() if stat_key(os.fstat(fd)) == expected else None
    except OSError:
        return None
    finally:
        os.close(fd)


def stat_key(st: os.stat_result) -> Key:
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns
