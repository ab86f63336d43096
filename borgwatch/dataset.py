"""Exact dataset diff of a run against the job's previous archive.

Borg's status letters describe its files cache, not the previous archive, and create never reports
removals. So every ``file_status`` of the run is recorded (8-byte path hash, status, and for A/M/C files
size and mtime from lstat) in an on-disk SQLite index next to the previous archive's index, and the
counts come from set operations there — memory stays flat whatever the file count:

* not in the previous archive                              -> added
* in it, status U (files-cache hit)                         -> unchanged
* in it, status A/M/C and the size differs                  -> modified
* in it, status A/M/C, same size, mtime, ctime and inode     -> unchanged (e.g. the newest file of the
  last run, which borg never caches; content cannot change without moving ctime)
* in it, status A/M/C, same size, other metadata moved (touch, chmod, same-size rewrite): ``exact``
  compares content fingerprints (blake2b of files borgwatch read right after borg did, kept in the
  index while borg's files cache says the file is unchanged) and asks ``borg diff --content-only`` only
  about the files that have no fingerprint on both sides; ``fast`` decides by mtime
* previous files that the run did not see                    -> removed
* status E                                                    -> error
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path

from borgwatch.model import DatasetDiff

REGULAR = ("A", "M", "U", "C")  # statuses of regular files borg stored (hardlink slaves 'h' excluded)
CHANGED = ("A", "M", "C")
BATCH = 5000
SCHEMA = "2"
FINGERPRINT_MAX_FILE = 64 << 20  # bigger files (VM images…) are left to borg diff
FINGERPRINT_BUDGET = 4 << 30  # bytes re-read per run at most (a first backup of a big tree stays cheap)


def path_hash(path: str) -> int:
    return int.from_bytes(hashlib.blake2b(path.encode("utf-8", "surrogateescape"), digest_size=8).digest(),
                          "little", signed=True)


class DatasetIndex:
    """Per-job index: table ``prev`` (the previous archive's files) and ``cur`` (this run's)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT)")
        if self._meta("schema") != SCHEMA:  # an index of an older layout: start a fresh baseline
            self.db.executescript("DROP TABLE IF EXISTS prev; DELETE FROM meta;")
            self.db.execute("INSERT INTO meta VALUES ('schema', ?)", (SCHEMA,))
        self.db.executescript(
            "CREATE TABLE IF NOT EXISTS prev(h INTEGER PRIMARY KEY, size INTEGER, mtime INTEGER, ctime INTEGER, "
            "ino INTEGER, digest BLOB);"
            "DROP TABLE IF EXISTS cur;"
            "CREATE TABLE cur(h INTEGER PRIMARY KEY, status TEXT, size INTEGER, mtime INTEGER, ctime INTEGER, "
            "ino INTEGER, path TEXT, digest BLOB);"
            # appended in stream order (cheap), keyed into ``cur`` once, sorted, when the stream ends
            "DROP TABLE IF EXISTS cur_raw;"
            "CREATE TABLE cur_raw(h INTEGER, status TEXT, size INTEGER, mtime INTEGER, ctime INTEGER, "
            "ino INTEGER, path TEXT);"
            "DROP TABLE IF EXISTS content_changed;"
            "CREATE TABLE content_changed(h INTEGER PRIMARY KEY);"
        )
        self._rows: list[tuple[int, str, int | None, int | None, int | None, int | None, str | None]] = []
        self.db.execute("BEGIN")

    # -- recording (hot path: one call per file_status event) --------------------------------------
    def record(self, status: str, path: str) -> None:
        size = mtime = ctime = ino = None
        stored_path = None
        if status in CHANGED:
            stored_path = path
            try:
                st = os.lstat(path)
                size, mtime, ctime, ino = st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino
            except OSError:
                pass
        self._rows.append((path_hash(archive_path(path)), status, size, mtime, ctime, ino, stored_path))
        if len(self._rows) >= BATCH:
            self._flush()

    def _flush(self) -> None:
        self.db.executemany("INSERT INTO cur_raw VALUES (?,?,?,?,?,?,?)", self._rows)
        self._rows.clear()

    # -- evaluation ---------------------------------------------------------------------------------
    def _meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def previous_archive(self) -> str | None:
        return self._meta("archive")

    def count(self, sql: str) -> int:
        return int(self.db.execute(sql).fetchone()[0])

    def finish_recording(self) -> None:
        self._flush()
        # a path listed twice (A, then C after it changed while read): the later line wins
        self.db.execute("INSERT OR REPLACE INTO cur SELECT *, NULL FROM cur_raw ORDER BY h, rowid")
        self.db.execute("DELETE FROM cur_raw")

    def fingerprint(self, budget: int = FINGERPRINT_BUDGET, max_file: int = FINGERPRINT_MAX_FILE) -> int:
        """Fingerprint the A/M files borg has just read (their pages are warm): blake2b of the content,
        kept only if size, mtime and ctime were the same at recording time, before and after reading.
        Returns the bytes read."""
        self.db.execute("DROP TABLE IF EXISTS cur_digest")
        self.db.execute("CREATE TABLE cur_digest(h INTEGER PRIMARY KEY, digest BLOB)")
        spent, batch = 0, []
        rows = self.db.execute("SELECT h, path, size, mtime, ctime FROM cur WHERE status IN ('A','M') AND "
                               "path IS NOT NULL AND size IS NOT NULL AND size <= ?", (max_file,))
        for h, path, size, mtime, ctime in rows:
            if spent + size > budget:
                break
            digest = _content_digest(path, (size, mtime, ctime))
            if digest is not None:
                spent += size
                batch.append((h, digest))
            if len(batch) >= BATCH:
                self.db.executemany("INSERT OR REPLACE INTO cur_digest VALUES (?,?)", batch)
                batch.clear()
        self.db.executemany("INSERT OR REPLACE INTO cur_digest VALUES (?,?)", batch)
        self.db.execute("UPDATE cur SET digest = (SELECT digest FROM cur_digest d WHERE d.h = cur.h) "
                        "WHERE h IN (SELECT h FROM cur_digest)")
        self.db.execute("DROP TABLE cur_digest")
        return spent

    def evaluate(self, has_previous: bool) -> DatasetDiff:
        """Counts before same-size candidates are resolved (they are left in ``verified``)."""
        regular = "cur.status IN ('A','M','U','C')"
        error = self.count("SELECT count(*) FROM cur WHERE status='E'")
        if not has_previous:
            added = self.count(f"SELECT count(*) FROM cur WHERE {regular}")
            return DatasetDiff(added=added, error=error, method="first", exact=True)
        added = self.count(f"SELECT count(*) FROM cur LEFT JOIN prev USING(h) WHERE {regular} "
                           "AND prev.h IS NULL")
        unchanged = self.count("SELECT count(*) FROM cur JOIN prev USING(h) WHERE cur.status='U'")
        modified = self.count("SELECT count(*) FROM cur JOIN prev USING(h) WHERE cur.status IN ('A','M','C') "
                              "AND cur.size IS NOT NULL AND prev.size IS NOT NULL AND cur.size != prev.size")
        removed = self.count("SELECT count(*) FROM prev LEFT JOIN cur USING(h) WHERE cur.h IS NULL")
        changed_status = self.count("SELECT count(*) FROM cur JOIN prev USING(h) WHERE cur.status IN "
                                    "('A','M','C')")
        candidates = self.count(_CANDIDATES.format(cols="count(*)"))
        identical = changed_status - modified - candidates  # borg re-read them, but nothing moved
        by_digest = _CANDIDATES.format(cols="count(*)") + " AND cur.digest IS NOT NULL AND prev.digest IS NOT NULL"
        digest_changed = self.count(by_digest + " AND cur.digest != prev.digest")
        digest_same = self.count(by_digest + " AND cur.digest = prev.digest")
        return DatasetDiff(added=added, modified=modified + digest_changed,
                           unchanged=unchanged + identical + digest_same, removed=removed, error=error,
                           verified=candidates - digest_changed - digest_same)

    def candidate_paths(self) -> Iterator[str]:
        """The candidates only borg can judge (no fingerprint on one side)."""
        for (path,) in self.db.execute(_NEEDS_BORG.format(cols="cur.path")):
            yield path

    def resolve_by_mtime(self, diff: DatasetDiff) -> None:
        """fast mode: a same-size candidate is modified when its mtime moved."""
        changed = self.count(_NEEDS_BORG.format(cols="count(*)") + " AND (cur.mtime IS NULL OR "
                             "prev.mtime IS NULL OR cur.mtime != prev.mtime)")
        diff.modified += changed
        diff.unchanged += diff.verified - changed
        diff.method, diff.exact, diff.verified = "fast", False, 0

    def resolve_by_content(self, diff: DatasetDiff, changed_paths: Iterable[str]) -> None:
        """exact mode: ``changed_paths`` are the archive paths borg diff reported as content changes."""
        self.db.executemany("INSERT OR IGNORE INTO content_changed VALUES (?)",
                            ((path_hash(p),) for p in changed_paths))
        changed = self.count(_NEEDS_BORG.format(cols="count(*)") + " AND cur.h IN (SELECT h FROM content_changed)")
        diff.modified += changed
        diff.unchanged += diff.verified - changed

    def promote(self, archive: str) -> None:
        """This run's archive becomes the previous one (only after create committed an archive)."""
        self.db.execute("DELETE FROM prev WHERE h NOT IN (SELECT h FROM cur WHERE status IN "
                        "('A','M','U','C'))")
        # a fingerprint survives only while borg's files cache vouches for the content (status U)
        self.db.execute("INSERT OR REPLACE INTO prev SELECT cur.h, coalesce(cur.size, prev.size), "
                        "coalesce(cur.mtime, prev.mtime), coalesce(cur.ctime, prev.ctime), "
                        "coalesce(cur.ino, prev.ino), CASE WHEN cur.status = 'U' THEN prev.digest "
                        "ELSE cur.digest END FROM cur LEFT JOIN prev USING(h) "
                        "WHERE cur.status IN ('A','M','U','C')")
        self.db.execute("INSERT OR REPLACE INTO meta VALUES ('archive', ?)", (archive,))
        self.db.execute("DELETE FROM cur")
        self.db.execute("COMMIT")

    def abandon(self) -> None:
        """The run made no archive: keep the previous index as it was."""
        self._rows.clear()
        self.db.execute("ROLLBACK")

    def bootstrap(self, archive: str, files: Iterable[tuple[str, int]]) -> None:
        """Fill ``prev`` from a listing of the previous archive (state lost or first borgwatch run)."""
        self.db.execute("DELETE FROM prev")
        self.db.executemany("INSERT OR REPLACE INTO prev VALUES (?,?,NULL,NULL,NULL,NULL)",
                            ((path_hash(p), size) for p, size in files))
        self.db.execute("INSERT OR REPLACE INTO meta VALUES ('archive', ?)", (archive,))

    def close(self) -> None:
        if self.db.in_transaction:
            self.db.execute("ROLLBACK")
        for table in ("cur", "cur_raw", "content_changed", "cur_digest"):
            self.db.execute(f"DROP TABLE IF EXISTS {table}")
        self.db.close()


# same size (or unknown), and not provably untouched: these need a content verdict
_CANDIDATES = ("SELECT {cols} FROM cur JOIN prev USING(h) WHERE cur.status IN ('A','M','C') "
               "AND NOT (cur.size IS NOT NULL AND prev.size IS NOT NULL AND cur.size != prev.size) "
               "AND NOT coalesce(cur.mtime = prev.mtime AND cur.ctime = prev.ctime AND cur.ino = prev.ino, 0)")


_NEEDS_BORG = _CANDIDATES + " AND (cur.digest IS NULL OR prev.digest IS NULL)"


def _content_digest(path: str, recorded: tuple[int, int, int]) -> bytes | None:
    flags = os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NOATIME", 0)
    try:
        try:
            fd = os.open(path, flags)
        except PermissionError:  # O_NOATIME needs ownership or CAP_FOWNER
            fd = os.open(path, flags & ~getattr(os, "O_NOATIME", 0))
    except OSError:
        return None
    try:
        if _stat_key(os.fstat(fd)) != recorded:
            return None
        h = hashlib.blake2b(digest_size=16)
        while chunk := os.read(fd, 1 << 20):
            h.update(chunk)
        return h.digest() if _stat_key(os.fstat(fd)) == recorded else None
    except OSError:
        return None
    finally:
        os.close(fd)


def _stat_key(st: os.stat_result) -> tuple[int, int, int]:
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns


def archive_path(path: str) -> str:
    """How borg 1.x names a source path inside the archive (absolute paths lose their leading '/')."""
    path = path.lstrip("/")
    while path.startswith("./"):
        path = path[2:]
    return path
