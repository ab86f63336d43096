"""A run's dataset snapshot from borg's files cache, and its diff against the previous run's (borg-free).

A snapshot is one SQLite file of sorted fixed-width records (B-trees ``WITHOUT ROWID``): memory stays flat
whatever the file count, and the diff is a merge of two sorted tables, never a Python object per file.

* ``cached``: the files borg memorized in the run (files cache, age 0): borg's path key and the digest of the
  file's ordered chunk ids — its content identity, which borg computed anyway.
* ``listed``: the files borg printed (``--list --filter=AMEhC``): this module's key of the archive path, the
  path, the status and the file's lstat. A listed regular file that borg memorized is bridged to its
  ``cached`` record by (inode, size, cmtime); one it did not memorize stays unbridged: the newest-cmtime
  file(s) of the run (``Cache.commit`` drops them), a file changed while read (``C``), another name of a
  hard-linked file (``h``), a special file read with ``--read-special``.

Names are matched between runs by borg's key where both sides have one, else by the path key, else (an
unbridged file, rewritten in place) by inode. A match whose content identity is missing on one side is
*undecided*, and so is an unpaired unbridged file while some previous name went unmatched (it may hide
under a key only borg can compute): the caller has borg judge those few paths (``undecided_paths``,
``settle``). Anything borg's verdict contradicts is a *doubt*: the caller falls back for the run.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import stat
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

SCHEMA = "1"
BATCH = 5000
REGULAR = ("A", "M", "C", "h")  # statuses of regular files (special files read as files show A or M too)


def path_key(path: bytes) -> bytes:
    return hashlib.blake2b(path, digest_size=16).digest()


@dataclass
class SnapshotDiff:
    added: int = 0
    removed: int = 0
    modified: int = 0
    unchanged: int = 0
    undecided: int = 0  # matched names whose content only borg can judge (``undecided_paths``, ``settle``)
    doubt: str = ""  # why the counts cannot be trusted ("" when they can)


class Snapshot:
    """One run's snapshot, written once (``add_*``, then ``seal``), then read by the next run's diff."""

    def __init__(self, path: Path, db: sqlite3.Connection | None = None) -> None:
        self.path = path
        self.db = db or sqlite3.connect(path, isolation_level=None)
        if db is not None:
            return
        self.db.executescript(
            "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;"
            "CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v TEXT);"
            "CREATE TABLE IF NOT EXISTS cached(key BLOB PRIMARY KEY, digest BLOB NOT NULL, inode INTEGER, "
            "size INTEGER, cmtime INTEGER) WITHOUT ROWID;"
            "CREATE TABLE IF NOT EXISTS listed(pkey BLOB PRIMARY KEY, path BLOB NOT NULL, status TEXT, "
            "regular INTEGER, inode INTEGER, size INTEGER, cmtime INTEGER, key BLOB) WITHOUT ROWID;"
        )
        self._listed: list[tuple[bytes, bytes, str, int, int | None, int | None, int | None]] = []

    @classmethod
    def create(cls, path: Path) -> Snapshot:
        """A new, empty snapshot at ``path`` (a stale file or a planted symlink there is removed, not followed)."""
        for victim in (path, path.with_name(path.name + "-journal")):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(victim)
        snap = cls(path)
        snap.db.execute("INSERT INTO meta VALUES ('schema', ?)", (SCHEMA,))
        snap.db.execute("BEGIN")
        return snap

    @classmethod
    def open(cls, path: Path) -> Snapshot | None:
        """The previous run's snapshot, or None when there is none usable (missing, symlink, other schema)."""
        if path.is_symlink() or not path.is_file():
            return None
        try:
            snap = cls(path, sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None))
            if snap.meta("schema") != SCHEMA or snap.meta("sealed") != "1":
                snap.close()
                return None
        except sqlite3.Error:
            return None
        return snap

    def meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT v FROM meta WHERE k=?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # -- writing -----------------------------------------------------------------------------------
    def add_cached(self, entries: Iterable[tuple[bytes, bytes, int, int, int]]) -> None:
        """borg's age-0 files-cache entries (key, digest, inode, size, cmtime); a repeated key is an error."""
        self.db.executemany("INSERT INTO cached VALUES (?,?,?,?,?)", entries)

    def add_listed(self, status: str, path: bytes, st: os.stat_result | None, cmtime_ns: int | None) -> None:
        """One ``--list`` line with the file's lstat (None: it vanished). ``cmtime_ns``: ctime or mtime, as
        borg's ``--files-cache`` mode compares them. A path listed twice (A, then C): the later line wins."""
        regular = int(status in REGULAR and st is not None and stat.S_ISREG(st.st_mode))
        self._listed.append((path_key(path), path, status, regular, st.st_ino if st else None,
                             st.st_size if st else None, cmtime_ns))
        if len(self._listed) >= BATCH:
            self._flush()

    def _flush(self) -> None:
        self.db.executemany("INSERT OR REPLACE INTO listed VALUES (?,?,?,?,?,?,?,NULL)", self._listed)
        self._listed.clear()

    def seal(self) -> None:
        """Bridge the listed files borg memorized to their files-cache records, and commit."""
        self._flush()
        # only A/M name a file borg memorized under its own path (h is another name of the same inode)
        self.db.execute("UPDATE listed SET key = (SELECT c.key FROM cached c WHERE c.inode = listed.inode AND "
                        "c.size = listed.size AND c.cmtime = listed.cmtime) WHERE status IN ('A','M') AND regular")
        self.set_meta("sealed", "1")
        self.db.execute("COMMIT")

    # -- reading -----------------------------------------------------------------------------------
    def count(self, sql: str, *args: object) -> int:
        return int(self.db.execute(sql, args).fetchone()[0])

    def files(self) -> int:
        """Regular file names in the archive, as far as this snapshot accounts for them."""
        return (self.count("SELECT count(*) FROM cached WHERE key NOT IN (SELECT key FROM listed WHERE key "
                           "IS NOT NULL)") + self.count("SELECT count(*) FROM listed WHERE regular"))

    def unmemorized(self) -> int:
        """Listed regular files borg read but did not memorize (newest cmtime, C, h, special)."""
        return self.count("SELECT count(*) FROM listed WHERE regular AND key IS NULL")

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
        self.db.close()


# The names of a snapshot: every listed regular file, and every cached record no listed file bridges to
# (a U file, known by borg's key only). ``k``: borg's key (NULL when unbridged), ``p``: the path key.
_NAMES = ("SELECT l.key AS k, l.pkey AS p, l.status AS status, c.digest AS digest, l.inode AS inode, "
          "l.path AS path FROM {s}.listed l LEFT JOIN {s}.cached c ON c.key = l.key WHERE l.regular "
          "UNION ALL SELECT c.key, NULL, 'U', c.digest, c.inode, NULL FROM {s}.cached c "
          "WHERE c.key NOT IN (SELECT key FROM {s}.listed WHERE key IS NOT NULL)")


def diff(prev: Snapshot, cur: Snapshot) -> SnapshotDiff:
    """The previous archive's regular files against this one's, by name. One pass of sorted joins in SQLite."""
    db = cur.db
    db.execute("ATTACH DATABASE ? AS prev", (str(prev.path),))
    try:
        db.executescript(
            f"CREATE TEMP TABLE cn AS {_NAMES.format(s='main')};"
            f"CREATE TEMP TABLE pn AS {_NAMES.format(s='prev')};"
            "CREATE INDEX temp.cn_k ON cn(k); CREATE INDEX temp.cn_p ON cn(p);"
            "CREATE INDEX temp.pn_k ON pn(k); CREATE INDEX temp.pn_p ON pn(p);"
            # each current name's previous one: by borg's key, else by path key, else (a file borg did not
            # memorize, so its key is unknown: rewritten in place) the one previous U name of the same inode
            "CREATE TEMP TABLE pairs AS SELECT c, coalesce(pk, pp, pi) AS p, "
            "(pk IS NULL AND pp IS NULL AND pi IS NOT NULL) AS via_inode FROM (SELECT cn.rowid AS c, "
            "(SELECT pn.rowid FROM pn WHERE cn.k IS NOT NULL AND pn.k = cn.k) AS pk, "
            "(SELECT pn.rowid FROM pn WHERE cn.p IS NOT NULL AND pn.p = cn.p) AS pp, "
            "(SELECT min(pn.rowid) FROM pn WHERE cn.k IS NULL AND pn.p IS NULL AND pn.inode = cn.inode "
            "HAVING count(*) = 1) AS pi FROM cn);"
            "DROP TABLE IF EXISTS temp.undecided;"
            "CREATE TEMP TABLE undecided AS SELECT cn.path AS path, "
            "CASE WHEN via_inode THEN 'inode' ELSE 'content' END AS kind FROM pairs "
            "JOIN cn ON cn.rowid = pairs.c JOIN pn ON pn.rowid = pairs.p WHERE cn.digest IS NULL OR pn.digest IS NULL;"
        )
        out = SnapshotDiff()
        row = db.execute(
            "SELECT count(*) FILTER (WHERE pairs.p IS NULL), "
            "count(*) FILTER (WHERE pairs.p IS NOT NULL AND cn.digest IS NOT NULL AND pn.digest IS NOT NULL "
            "AND cn.digest != pn.digest), "
            "count(*) FILTER (WHERE cn.digest IS NOT NULL AND cn.digest = pn.digest), "
            "count(*) FILTER (WHERE pairs.p IS NOT NULL AND (cn.digest IS NULL OR pn.digest IS NULL)), "
            "count(DISTINCT pairs.p), count(pairs.p) "
            "FROM pairs JOIN cn ON cn.rowid = pairs.c LEFT JOIN pn ON pn.rowid = pairs.p").fetchone()
        out.added, out.modified, out.unchanged, out.undecided, distinct, paired = row
        out.removed = db.execute("SELECT count(*) FROM pn").fetchone()[0] - distinct
        if distinct != paired:
            out.doubt = "two names of this run match one name of the previous run"
        elif out.removed and db.execute(
                "SELECT 1 FROM prev.listed p WHERE p.regular AND p.key IS NULL AND NOT EXISTS "
                "(SELECT 1 FROM main.listed c WHERE c.pkey = p.pkey) LIMIT 1").fetchone():
            # borg re-reads (lists) every file it did not memorize, unless another borg memorized it since:
            # then it is here under a key only borg can compute, and its previous name would count removed
            out.doubt = "a file the previous run did not memorize was not read again (another borg memorized it)"
        elif out.removed or db.execute("SELECT 1 FROM pairs WHERE via_inode LIMIT 1").fetchone():
            # an unpaired file borg did not memorize may be a removed name under a key only borg can compute
            # (another borg dropped it from the shared cache): borg must confirm it is new
            db.execute("INSERT INTO temp.undecided SELECT cn.path, 'new' FROM pairs JOIN cn ON cn.rowid = pairs.c "
                       "WHERE pairs.p IS NULL AND cn.k IS NULL")
        return out
    finally:
        db.executescript("DROP TABLE IF EXISTS temp.pairs; DROP TABLE IF EXISTS temp.cn; "
                         "DROP TABLE IF EXISTS temp.pn;")
        db.execute("DETACH DATABASE prev")


def undecided_paths(cur: Snapshot) -> Iterator[bytes]:
    """Paths (as borg listed them this run) the last ``diff`` left for borg to judge: the content of a pair
    whose one side has no chunk digest, and whether an unpaired unmemorized file is really new."""
    for (path,) in cur.db.execute("SELECT path FROM temp.undecided ORDER BY path"):
        yield path


def settle(cur: Snapshot, found: SnapshotDiff, verdicts: Mapping[bytes, str]) -> None:
    """Apply borg diff's verdicts (listed path -> "added" | "removed" | "modified"; absent: unchanged) on
    the undecided paths of the last ``diff``. A verdict that contradicts the pairing is a doubt."""
    for path, kind in cur.db.execute("SELECT path, kind FROM temp.undecided"):
        verdict = verdicts.get(path, "")
        if kind == "new":
            if verdict != "added":
                found.doubt = found.doubt or f"borg does not confirm {os.fsdecode(path)!r} as a new file"
        elif kind == "inode" and verdict == "added":  # a reused inode: a new file, and its partner was removed
            found.added += 1
            found.removed += 1
        elif verdict in ("added", "removed"):
            found.doubt = found.doubt or f"borg diff contradicts the pairing of {os.fsdecode(path)!r}"
        elif verdict == "modified":
            found.modified += 1
        else:
            found.unchanged += 1
    found.undecided = 0


def settle_unchanged(prev_path: Path, cur: Snapshot, found: SnapshotDiff, settled_before_ns: int) -> None:
    """Decide, without borg, the undecided pairs of the last ``diff`` whose file kept its inode, size and
    cmtime from the previous run's lstat to this one's (borg's own files-cache test), neither read while it
    changed (``C``), and whose cmtime was older than ``settled_before_ns`` when the previous run looked: a
    write after that look would have moved the cmtime. Mostly the newest file of each run, which borg's
    cache leaves out; they count unchanged and leave the undecided set."""
    db = cur.db
    db.execute("ATTACH DATABASE ? AS prev", (str(prev_path),))
    try:
        db.execute("CREATE TEMP TABLE same AS SELECT u.path FROM temp.undecided u JOIN main.listed c "
                   "ON c.path = u.path JOIN prev.listed p ON p.pkey = c.pkey WHERE u.kind = 'content' "
                   "AND c.regular AND p.regular AND c.status != 'C' AND p.status != 'C' AND c.inode = p.inode "
                   "AND c.size = p.size AND c.cmtime = p.cmtime AND p.cmtime < ?", (settled_before_ns,))
        n = db.execute("SELECT count(*) FROM temp.same").fetchone()[0]
        db.execute("DELETE FROM temp.undecided WHERE path IN (SELECT path FROM temp.same)")
        found.unchanged += n
        found.undecided -= n
    finally:
        db.execute("DROP TABLE IF EXISTS temp.same")
        db.execute("DETACH DATABASE prev")
