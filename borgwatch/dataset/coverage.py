"""What restore drills covered, and the archive listing a drill chooses from: one SQLite file per job in
state_dir (``JOB.drill.sqlite``). Borg-free: a file is a plain ``(path, size, mtime_us, ctime_us)`` row.

The archive's listing streams into a temporary table, so memory stays flat whatever the archive's size
(the same reason the dataset index is SQLite); the sample policy (``drill/sample.py``) asks the queries
here.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from borgwatch.store.files import open_nofollow

FileRow = tuple[str, int, int, int]  # archive path, size, mtime and ctime in microseconds
ROTATION_MODULUS = 1 << 56
BATCH = 5000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS verified (path TEXT PRIMARY KEY, at REAL NOT NULL) WITHOUT ROWID;
CREATE TEMP TABLE listing (path TEXT PRIMARY KEY, size INTEGER, mtime INTEGER, ctime INTEGER,
                           rotation INTEGER) WITHOUT ROWID;
"""
_COLUMNS = "l.path, l.size, l.mtime, l.ctime"


@dataclass(frozen=True)
class Listing:
    files: int
    bytes: int


def coverage_path(state_dir: Path, job: str) -> Path:
    return state_dir / f"{job}.drill.sqlite"


def rotation_key(path: str) -> int:
    """A stable pseudo-random position of a path in the rotation (independent of any seed)."""
    return int.from_bytes(hashlib.blake2b(path.encode("utf-8", "surrogateescape"), digest_size=7).digest())


class CoverageDB:
    def __init__(self, path: Path) -> None:
        os.close(open_nofollow(path, os.O_RDWR | os.O_CREAT, 0o600))  # 0600, never through a planted symlink
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.executescript(_SCHEMA)

    def close(self) -> None:
        self.db.close()

    def load_listing(self, files: Iterable[FileRow]) -> Listing:
        count = total = 0
        self.db.execute("BEGIN")
        for batch in batches(files):
            self.db.executemany("INSERT OR REPLACE INTO listing VALUES (?, ?, ?, ?, ?)",
                                [(*row, rotation_key(row[0])) for row in batch])
            count += len(batch)
            total += sum(row[1] for row in batch)
        self.db.execute("COMMIT")
        return Listing(count, total)

    def changed_after(self, after_us: int, max_size: int, limit: int) -> list[FileRow]:
        """Files whose mtime or ctime is newer than ``after_us``, at most ``max_size`` bytes each (in
        rotation order: which ``limit`` of many changed files is stable)."""
        return self.db.execute(
            f"SELECT {_COLUMNS} FROM listing l WHERE max(l.mtime, l.ctime) > ? AND l.size <= ? "
            "ORDER BY l.rotation LIMIT ?", (after_us, max_size, limit)).fetchall()

    def largest(self, max_size: int) -> list[FileRow]:
        """The largest file of at most ``max_size`` bytes no drill verified yet (all verified: the largest)."""
        return self.db.execute(
            f"SELECT {_COLUMNS} FROM listing l LEFT JOIN verified v ON v.path = l.path "
            "WHERE l.size <= ? ORDER BY v.at IS NOT NULL, l.size DESC, l.path LIMIT 1", (max_size,)).fetchall()

    def rotation(self, offset: int) -> Iterator[list[FileRow]]:
        """Every file in batches: never verified first, then verified longest ago; within each, the
        rotation order shifted by ``offset``."""
        cursor = self.db.execute(
            f"SELECT {_COLUMNS} FROM listing l LEFT JOIN verified v ON v.path = l.path "
            "ORDER BY coalesce(v.at, 0), (l.rotation + ?) % ?", (offset, ROTATION_MODULUS))
        try:
            while rows := cursor.fetchmany(BATCH):
                yield rows
        finally:
            cursor.close()

    def mark_verified(self, paths: Iterable[str], now: float, window_seconds: float) -> None:
        self.db.execute("BEGIN")
        self.db.executemany("INSERT OR REPLACE INTO verified VALUES (?, ?)", ((p, now) for p in paths))
        self.db.execute("DELETE FROM verified WHERE at < ?", (now - window_seconds,))
        self.db.execute("COMMIT")

    def bytes_under(self, prefix: str) -> int:
        """Bytes of the listed files at or below an archive path."""
        (total,) = self.db.execute("SELECT coalesce(sum(size), 0) FROM listing WHERE path = ? OR "
                                   "(path > ? AND path < ?)", (prefix, prefix + "/", prefix + "0")).fetchone()
        return total

    def coverage(self, since: float) -> float:
        """Share of the listed files verified at or after ``since``."""
        (files,) = self.db.execute("SELECT count(*) FROM listing").fetchone()
        if not files:
            return 0.0
        (covered,) = self.db.execute("SELECT count(*) FROM listing JOIN verified USING (path) WHERE at >= ?",
                                     (since,)).fetchone()
        return covered / files


def batches(items: Iterable[FileRow]) -> Iterator[list[FileRow]]:
    batch: list[FileRow] = []
    for item in items:
        batch.append(item)
        if len(batch) >= BATCH:
            yield batch
            batch = []
    if batch:
        yield batch
