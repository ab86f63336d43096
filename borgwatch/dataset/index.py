"""Exact dataset diff of a run against the job's previous archive.

Borg's status letters describe its files cache, not the previous archive, and create never reports
removals. So every ``file_status`` of the run is recorded (8-byte path hash, status, and for A/M/C/h files
size and mtime from lstat) in an on-disk SQLite index next to the previous archive's index, and the
counts come from set operations there — memory stays flat whatever the file count:

* not in the previous archive                                -> added
* in it, status U (files-cache hit)                           -> unchanged
* in it, status A/M/C/h and the size differs                  -> modified
* in it, status A/M/C/h, same size, mtime, ctime and inode    -> unchanged (e.g. the newest file of the
  last run, which borg never caches; content cannot change without moving ctime)
* in it, status A/M/C/h, same size, other metadata moved (touch, chmod, same-size rewrite): ``exact``
  compares content fingerprints (``borgwatch.dataset.fingerprint``: taken of these files only, while borg reads
  them, and kept in the index while borg's files cache vouches for the file); a missing previous
  fingerprint comes from ``borg list --format {blake2b}`` on the previous archive (one archive's
  metadata), and only what is still undecided goes to ``borg diff --content-only`` (both archives);
  ``fast`` decides by mtime
* previous files that the run did not see                    -> removed
* status E                                                    -> error
(h: another name of a hard-linked file; borg 1.x never caches hard-linked files, so they show A or h.)
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import stat
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from borgwatch.dataset.fingerprint import Fingerprinter, stat_key
from borgwatch.model import DatasetDiff, DiffMode

CHANGED = ("A", "M", "C", "h")  # h: another name of a hard-linked file borg has just read
REGULAR = (*CHANGED, "U")
FINGERPRINTED = ("A", "M", "h")  # not C: the file changed while borg read it
BATCH = 5000
PREV_COLUMNS = ("h", "size", "mtime", "ctime", "ino", "digest")
SCHEMA = "3"  # 3: fingerprints are blake2b-512 cut to 16 bytes (comparable with borg list's {blake2b})


def path_hash(path: str) -> int:
    return int.from_bytes(hashlib.blake2b(path.encode("utf-8", "surrogateescape"), digest_size=8).digest(),
                          "little", signed=True)


class DatasetIndex:
    """Per-job index: table ``prev`` (the previous archive's files) and ``cur`` (this run's)."""

    def __init__(self, path: Path, archive_key: Callable[[str], str] = str) -> None:
        """``archive_key``: how a source path is named in the archive (the caller knows borg's syntax), so
        this run's files meet the previous archive's listing under one key."""
        self.path = path
        self.archive_key = archive_key
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT)")
        prev_columns = [row[1] for row in self.db.execute("PRAGMA table_info(prev)")]
        if self._meta("schema") != SCHEMA or prev_columns not in ([], list(PREV_COLUMNS)):
            # an index of an older (or foreign) layout: start a fresh baseline
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
            "DROP TABLE IF EXISTS cur_digest;"
            "CREATE TABLE cur_digest(h INTEGER PRIMARY KEY, digest BLOB, path TEXT, size INTEGER, mtime INTEGER, "
            "ctime INTEGER);"
        )
        self._rows: list[tuple[int, str, int | None, int | None, int | None, int | None, str | None]] = []
        self.fingerprints: Fingerprinter | None = None
        self._has_prev = False
        self.db.execute("BEGIN")

    def start_fingerprints(self, fingerprinter: Fingerprinter | None = None) -> None:
        """Fingerprint same-size candidates while borg reads them (exact mode)."""
        self.fingerprints = fingerprinter or Fingerprinter()
        self._has_prev = self.has_previous_files()

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
        h = path_hash(self.archive_key(path))
        self._rows.append((h, status, size, mtime, ctime, ino, stored_path))
        if (self.fingerprints is not None and self._has_prev and status in FINGERPRINTED and size is not None
                and self._is_candidate(h, size, mtime, ctime, ino)):
            self.fingerprints.offer(h, path, (size, mtime, ctime))  # type: ignore[arg-type]
        if len(self._rows) >= BATCH:
            self._flush()

    def _is_candidate(self, h: int, size: int, mtime: int | None, ctime: int | None, ino: int | None) -> bool:
        """Same size as in the previous archive, metadata moved: the diff needs this file's content."""
        row = self.db.execute(_IS_CANDIDATE, {"h": h, "size": size, "mtime": mtime, "ctime": ctime, "ino": ino})
        return row.fetchone() is not None

    def _flush(self) -> None:
        self.db.executemany("INSERT INTO cur_raw VALUES (?,?,?,?,?,?,?)", self._rows)
        self._rows.clear()
        if self.fingerprints is not None:
            self.db.executemany("INSERT OR REPLACE INTO cur_digest VALUES (?,?,?,?,?,?)", self.fingerprints.take())

    # -- evaluation ---------------------------------------------------------------------------------
    def _meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def previous_archive(self) -> str | None:
        return self._meta("archive")

    def count(self, sql: str) -> int:
        return int(self.db.execute(sql).fetchone()[0])

    def has_previous_files(self) -> bool:
        """Whether the baseline lists any file (an empty previous archive makes every file new)."""
        return self.db.execute("SELECT 1 FROM prev LIMIT 1").fetchone() is not None

    def finish_recording(self) -> None:
        if self.fingerprints is not None:
            self.fingerprints.close()
        self._flush()
        # a path listed twice (A, then C after it changed while read): the later line wins
        self.db.execute("INSERT OR REPLACE INTO cur SELECT *, NULL FROM cur_raw ORDER BY h, rowid")
        self.db.execute("DELETE FROM cur_raw")
        self._keep_unmoved_fingerprints()

    def _keep_unmoved_fingerprints(self) -> None:
        """A fingerprint counts only if the file has not moved since borg announced it: then borg and
        borgwatch read the same bytes (and a C or E status drops it)."""
        self.db.execute("CREATE TEMP TABLE IF NOT EXISTS digest_ok(h INTEGER PRIMARY KEY)")
        rows = self.db.execute("SELECT d.h, d.path, d.size, d.mtime, d.ctime FROM cur_digest d JOIN cur USING(h) "
                               f"WHERE cur.status IN {_sql_in(FINGERPRINTED)}")
        self.db.executemany("INSERT OR IGNORE INTO digest_ok VALUES (?)",  # streamed: no per-file list
                            ((h,) for h, path, *key in rows if _unmoved(path, tuple(key))))
        self.db.execute("UPDATE cur SET digest = (SELECT digest FROM cur_digest d WHERE d.h = cur.h) "
                        "WHERE h IN (SELECT h FROM digest_ok)")
        self.db.execute("DELETE FROM digest_ok")
        self.db.execute("DELETE FROM cur_digest")

    def evaluate(self, has_previous: bool) -> DatasetDiff:
        """Counts before same-size candidates are resolved (they are left in ``verified``). One pass over
        this run's files joined with the previous archive's, one count of the previous archive."""
        regular = f"cur.status IN {_sql_in(REGULAR)}"
        if not has_previous:
            added, error = self.db.execute(f"SELECT count(*) FILTER (WHERE {regular}), "
                                           "count(*) FILTER (WHERE status='E') FROM cur").fetchone()
            return DatasetDiff(added=added, error=error, method=DiffMode.FIRST, exact=True)
        changed = f"prev.h IS NOT NULL AND cur.status IN {_sql_in(CHANGED)}"
        resized = _RESIZED.format(c="cur.")
        candidate = f"{changed} AND {_SAME_SIZE_MOVED.format(c='cur.')}"
        both = f"{candidate} AND cur.digest IS NOT NULL AND prev.digest IS NOT NULL"
        row = self.db.execute(
            f"SELECT count(*) FILTER (WHERE prev.h IS NULL AND {regular}), "
            "count(*) FILTER (WHERE prev.h IS NOT NULL AND cur.status = 'U'), "
            f"count(*) FILTER (WHERE {changed} AND {resized}), count(*) FILTER (WHERE {changed}), "
            f"count(*) FILTER (WHERE {candidate}), count(*) FILTER (WHERE {both} AND cur.digest != prev.digest), "
            f"count(*) FILTER (WHERE {both} AND cur.digest = prev.digest), count(*) FILTER (WHERE cur.status='E'), "
            "count(prev.h) FROM cur LEFT JOIN prev USING(h)").fetchone()
        added, unchanged, modified, changed_status, candidates, digest_changed, digest_same, error, seen = row
        removed = self.count("SELECT count(*) FROM prev") - seen
        identical = changed_status - modified - candidates  # borg re-read them, but nothing moved
        return DatasetDiff(added=added, modified=modified + digest_changed,
                           unchanged=unchanged + identical + digest_same, removed=removed, error=error,
                           verified=candidates - digest_changed - digest_same)

    def prev_digests_wanted(self, max_bytes: int, max_files: int) -> list[str]:
        """Candidates fingerprinted in this run whose previous fingerprint is missing (at most
        ``max_files`` files, ``max_bytes`` of file data for borg to read back from the repository)."""
        rows = self.db.execute(_CANDIDATES.format(cols="cur.path, cur.size") + " AND cur.digest IS NOT NULL "
                               "AND prev.digest IS NULL ORDER BY cur.size LIMIT ?", (max_files,))
        paths, total = [], 0
        for path, size in rows:
            total += size or 0
            if total > max_bytes:
                break
            paths.append(path)
        return paths

    def store_prev_digests(self, digests: Iterable[tuple[str, bytes]]) -> None:
        """Fingerprints of the previous archive's files (archive path, digest) as borg computed them."""
        self.db.executemany("UPDATE prev SET digest=? WHERE h=?",
                            ((digest, path_hash(path)) for path, digest in digests))

    def hard_link_undecided(self) -> bool:
        """A file still undecided has other names: borg diff cannot be restricted to paths then (borg 1.x
        keeps a hard link's data on one of its names, which a path pattern may leave out)."""
        sql = _NEEDS_BORG.format(cols="count(*)") + (" AND (cur.status = 'h' OR cur.ino IN "
                                                      "(SELECT ino FROM cur WHERE status = 'h'))")
        return self.count(sql) > 0

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
        diff.method, diff.exact, diff.verified = DiffMode.FAST, False, 0

    def resolve_by_content(self, diff: DatasetDiff, changed_paths: Iterable[str]) -> None:
        """exact mode: ``changed_paths`` are the archive paths borg diff reported as content changes."""
        self.db.executemany("INSERT OR IGNORE INTO content_changed VALUES (?)",
                            ((path_hash(p),) for p in changed_paths))
        changed = self.count(_NEEDS_BORG.format(cols="count(*)") + " AND cur.h IN (SELECT h FROM content_changed)")
        diff.modified += changed
        diff.unchanged += diff.verified - changed

    def promote(self, archive: str) -> None:
        """This run's archive becomes the previous one (only after create committed an archive)."""
        self.db.execute(f"DELETE FROM prev WHERE h NOT IN (SELECT h FROM cur WHERE status IN {_sql_in(REGULAR)})")
        # a fingerprint survives only while borg's files cache vouches for the content (status U)
        self.db.execute("INSERT OR REPLACE INTO prev SELECT cur.h, coalesce(cur.size, prev.size), "
                        "coalesce(cur.mtime, prev.mtime), coalesce(cur.ctime, prev.ctime), "
                        "coalesce(cur.ino, prev.ino), CASE WHEN cur.status = 'U' THEN prev.digest "
                        "ELSE cur.digest END FROM cur LEFT JOIN prev USING(h) "
                        f"WHERE cur.status IN {_sql_in(REGULAR)}")
        self.db.execute("INSERT OR REPLACE INTO meta VALUES ('archive', ?)", (archive,))
        self.db.execute("DELETE FROM cur")
        self.db.execute("COMMIT")

    def abandon(self) -> None:
        """The run made no archive: keep the previous index as it was."""
        self._rows.clear()
        self.db.execute("ROLLBACK")

    def bootstrap(self, archive: str, files: Iterable[tuple[str, int | None]]) -> None:
        """Fill ``prev`` from a listing of the previous archive (state lost or first borgwatch run)."""
        self.db.execute("DELETE FROM prev")
        self.db.executemany("INSERT OR REPLACE INTO prev VALUES (?,?,NULL,NULL,NULL,NULL)",
                            ((path_hash(p), size) for p, size in files))
        self.db.execute("INSERT OR REPLACE INTO meta VALUES ('archive', ?)", (archive,))

    def close(self) -> None:
        if self.db.in_transaction:
            self.db.execute("ROLLBACK")
        if self.fingerprints is not None:
            self.fingerprints.close(wait=0)
        for table in ("cur", "cur_raw", "content_changed", "cur_digest"):
            self.db.execute(f"DROP TABLE IF EXISTS {table}")
        self.db.close()


def open_index(path: Path, archive_key: Callable[[str], str] = str) -> tuple[DatasetIndex | None, str]:
    """-> (index, note). A damaged index (garbage, truncated, a zeroed page, another program's database)
    is removed and started afresh (the run then rebuilds the baseline from the repository); the note
    says so. None when no index can be had (state_dir full, a directory or an immutable file there)."""
    if path.is_symlink():  # SQLite would write through it
        first = "a symbolic link"
    else:
        try:
            return DatasetIndex(path, archive_key), ""
        except sqlite3.Error as exc:
            first = str(exc)
    removed = remove_index(path)
    if removed:
        return None, f"dataset index {path} is unusable ({first}) and {removed}; no dataset diff until then"
    try:
        return DatasetIndex(path, archive_key), f"dataset index {path} was unusable ({first}); started afresh"
    except sqlite3.Error as exc:
        return None, (f"dataset index {path} is unusable ({exc}); no dataset diff this run — check free "
                      "space in state_dir")


def remove_index(path: Path) -> str:
    """Remove the index and SQLite's side files (a symlink is removed, never followed); returns why
    that failed, or ""."""
    for victim in (path, *(path.with_name(path.name + s) for s in ("-journal", "-wal", "-shm"))):
        try:
            if stat.S_ISDIR(os.lstat(victim).st_mode):
                return f"cannot be removed ({victim} is a directory): remove it"
            os.unlink(victim)
        except FileNotFoundError:
            continue
        except OSError as exc:
            return f"cannot be removed ({exc.strerror}): remove it or make it writable"
    return ""


def close_quietly(index: DatasetIndex) -> None:
    with contextlib.suppress(sqlite3.Error):
        index.close()
    with contextlib.suppress(sqlite3.Error):
        index.db.close()


def _sql_in(statuses: tuple[str, ...]) -> str:
    return "(" + ",".join(f"'{s}'" for s in statuses) + ")"


# The rule for "needs a content verdict", once; {c} is this run's side: "cur." (the table) or ":" (the
# named parameters of one file being recorded).
_RESIZED = "{c}size IS NOT NULL AND prev.size IS NOT NULL AND {c}size != prev.size"
# same size (or unknown), and not provably untouched
_SAME_SIZE_MOVED = (f"NOT ({_RESIZED}) AND NOT coalesce({{c}}mtime = prev.mtime AND {{c}}ctime = prev.ctime "
                    "AND {c}ino = prev.ino, 0)")
_IS_CANDIDATE = "SELECT 1 FROM prev WHERE h = :h AND " + _SAME_SIZE_MOVED.format(c=":")
_CANDIDATES = (f"SELECT {{cols}} FROM cur JOIN prev USING(h) WHERE cur.status IN {_sql_in(CHANGED)} AND "
               + _SAME_SIZE_MOVED.format(c="cur."))


_NEEDS_BORG = _CANDIDATES + " AND (cur.digest IS NULL OR prev.digest IS NULL)"


def _unmoved(path: str, key: tuple[int, ...]) -> bool:
    try:
        return stat_key(os.lstat(path)) == key
    except OSError:
        return False

