"""Content fingerprints of the files whose content the dataset diff must judge, taken in a background
thread while borg reads them.

Only *candidates* are offered: files that were in the previous archive with the same size and whose
metadata moved (touch, chmod, same-size rewrite) — usually a handful. Fingerprinting every file borg
reads would read the data a second time: borg drops each file's pages right after reading it
(posix_fadvise DONTNEED, small files included), and even a page-cache-only read (``RWF_NOWAIT``) starts
readahead for the pages it misses. Measured on 100k files: a first backup took 21 s instead of 9.5 s.

A fingerprint is the first 16 bytes of blake2b-512, the digest ``borg list --format {blake2b}`` prints,
so the previous archive can supply the other side when the index has none. Nothing here ever blocks
the stream: a full queue or an exhausted byte budget means "no fingerprint" (borg then decides). A
fingerprint is only kept when the file's size, mtime and ctime were the same when borg announced it,
before and after hashing, and after the backup (checked by the index) — i.e. when borg and borgwatch
read the same bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import queue
import threading

Key = tuple[int, int, int]  # size, mtime_ns, ctime_ns

MAX_FILE = 64 << 20  # bigger files (VM images…) are left to borg diff
BUDGET = 1 << 30  # bytes hashed per run at most
QUEUE = 1024  # files waiting at most (a slow disk makes the worker skip, never the stream wait)
READ_SIZE = 256 << 10
DIGEST_BYTES = 16
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
        buffer: memoryview | None = None
        while not self._stop.is_set():
            item = self._queue.get()
            if item is None:
                return
            h, path, key = item
            buffer = buffer or memoryview(bytearray(READ_SIZE))
            digest = content_digest(path, key, buffer)
            if digest is not None:
                with self._lock:
                    self._results.append((h, digest, path, *key))


def content_digest(path: str, expected: Key, buffer: memoryview | None = None) -> bytes | None:
    """The file's fingerprint, or None when it is not the file that was announced (or moved while read)."""
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
        view = buffer if buffer is not None else memoryview(bytearray(min(expected[0] + 1, READ_SIZE)))
        h = hashlib.blake2b()
        offset = 0
        while n := os.preadv(fd, [view], offset):
            h.update(view[:n])
            offset += n
        return h.digest()[:DIGEST_BYTES] if stat_key(os.fstat(fd)) == expected else None
    except OSError:
        return None
    finally:
        os.close(fd)


def stat_key(st: os.stat_result) -> Key:
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns
