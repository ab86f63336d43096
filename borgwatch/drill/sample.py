"""Which files a drill restores, and what past drills covered: one SQLite file per job in state_dir.

The archive's listing streams into a temporary table and the choice is made in SQL, so memory stays flat
whatever the archive's size (the same reason the dataset index is SQLite). The choice is reproducible: the
same listing, coverage and seed give the same sample.
"""

from __future__ import annotations

import hashlib
import os
import random
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from borgwatch.borg.extract import ArchivedFile
from borgwatch.drill.config import COVERAGE_WINDOW_SECONDS, DrillPlan
from borgwatch.store.files import open_nofollow

RECENT_SHARE = 0.5  # half of each sample goes to files the latest runs added or modified
LARGEST_CHANCE = 0.25  # about every fourth drill also restores the largest file that fits
ROTATION_MODULUS = 1 << 56
_BATCH = 5000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS verified (path TEXT PRIMARY KEY, at REAL NOT NULL) WITHOUT ROWID;
CREATE TEMP TABLE listing (path TEXT PRIMARY KEY, size INTEGER, mtime INTEGER, ctime INTEGER,
                           rotation INTEGER) WITHOUT ROWID;
"""


@dataclass(frozen=True)
class Listing:
    files: int
    bytes: int


def coverage_path(state_dir: Path, job: str) -> Path:
    return state_dir / f"{job}.drill.sqlite"


def rotation_key(path: str) -> int:
    """A stable pseudo-random position of a path in the rotation (independent of the seed)."""
    return int.from_bytes(hashlib.blake2b(path.encode("utf-8", "surrogateescape"), digest_size=7).digest())


class Coverage:
    def __init__(self, path: Path) -> None:
        open_nofollow_close(path)  # created 0600, never through a planted symlink
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.executescript(_SCHEMA)

    def close(self) -> None:
        self.db.close()

    def load_listing(self, files: Iterable[ArchivedFile]) -> Listing:
        count = total = 0
        self.db.execute("BEGIN")
        for batch in _batches(files):
            self.db.executemany("INSERT OR REPLACE INTO listing VALUES (?, ?, ?, ?, ?)",
                                [(f.path, f.size, f.mtime_us, f.ctime_us, rotation_key(f.path)) for f in batch])
            count += len(batch)
            total += sum(f.size for f in batch)
        self.db.execute("COMMIT")
        return Listing(count, total)

    def choose(self, plan: DrillPlan, listing: Listing, seed: int,
               changed_after_us: int | None) -> list[ArchivedFile]:
        """Recently added/modified files (weighted), the largest file now and then, then a rotating slice
        of the rest: never-verified first, then the longest ago; within ``max_files`` and ``max_bytes``."""
        rng = random.Random(seed)
        want = plan.sample_size(listing.files)
        budget = plan.max_bytes
        chosen: dict[str, ArchivedFile] = {}

        def take(rows: Iterable[tuple[str, int, int, int]], limit: int) -> None:
            nonlocal budget
            for path, size, mtime, ctime in rows:
                if len(chosen) >= limit:
                    return
                if path not in chosen and size <= budget:
                    chosen[path] = ArchivedFile(path, size, mtime, ctime)
                    budget -= size

        if changed_after_us is not None:
            recent = self.db.execute(
                "SELECT path, size, mtime, ctime FROM listing WHERE max(mtime, ctime) > ? AND size <= ? "
                "ORDER BY rotation LIMIT ?", (changed_after_us, budget, want * 20)).fetchall()
            rng.shuffle(recent)
            take(recent, max(1, round(want * RECENT_SHARE)))
        if rng.random() < LARGEST_CHANCE:
            take(self.db.execute(  # the largest not yet covered (all covered: the largest)
                "SELECT l.path, l.size, l.mtime, l.ctime FROM listing l LEFT JOIN verified v ON v.path = l.path "
                "WHERE l.size <= ? ORDER BY v.at IS NOT NULL, l.size DESC, l.path LIMIT 1", (budget,)), want)
        offset = rng.randrange(ROTATION_MODULUS)
        cursor = self.db.execute(
            "SELECT l.path, l.size, l.mtime, l.ctime FROM listing l LEFT JOIN verified v ON v.path = l.path "
            "ORDER BY coalesce(v.at, 0), (l.rotation + ?) % ?", (offset, ROTATION_MODULUS))
        while len(chosen) < want and budget > 0 and (rows := cursor.fetchmany(_BATCH)):
            take(rows, want)
        cursor.close()
        return sorted(chosen.values(), key=lambda f: f.path)

    def mark_verified(self, paths: Iterable[str], now: float) -> None:
        self.db.execute("BEGIN")
        self.db.executemany("INSERT OR REPLACE INTO verified VALUES (?, ?)", ((p, now) for p in paths))
        self.db.execute("DELETE FROM verified WHERE at < ?", (now - COVERAGE_WINDOW_SECONDS,))
        self.db.execute("COMMIT")

    def bytes_under(self, prefix: str) -> int:
        """Bytes of the listed files at or below an archive path."""
        (total,) = self.db.execute("SELECT coalesce(sum(size), 0) FROM listing WHERE path = ? OR "
                                   "(path > ? AND path < ?)", (prefix, prefix + "/", prefix + "0")).fetchone()
        return total

    def coverage(self, now: float) -> float:
        """Share of the archive's files verified by a drill within the coverage window."""
        (files,) = self.db.execute("SELECT count(*) FROM listing").fetchone()
        if not files:
            return 0.0
        (covered,) = self.db.execute("SELECT count(*) FROM listing JOIN verified USING (path) WHERE at >= ?",
                                     (now - COVERAGE_WINDOW_SECONDS,)).fetchone()
        return covered / files


def open_nofollow_close(path: Path) -> None:
    os.close(open_nofollow(path, os.O_RDWR | os.O_CREAT, 0o600))


def _batches(items: Iterable[ArchivedFile]) -> Iterator[list[ArchivedFile]]:
    batch: list[ArchivedFile] = []
    for item in items:
        batch.append(item)
        if len(batch) >= _BATCH:
            yield batch
            batch = []
    if batch:
        yield batch
