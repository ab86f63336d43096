"""The undecided pairs of a snapshot diff, decided without borg where the snapshots prove the answer.

A pair is undecided when one side has no chunk digest: borg read the file but did not memorize it (the run's
newest-cmtime file, which ``Cache.commit`` drops; a special file). Three rules decide such pairs, in order;
what none of them proves stays undecided and goes to borg (one restricted ``borg diff``). They run only when
the files cache compares ctime (borg's default): an mtime can be put back (``touch -d``), a ctime cannot.

Why none can publish a wrong count. borg prints a file's status once it has opened and fstat'ed the file,
before reading it, and compares the ctime again after the read (``C`` when it moved); each side's lstat is
taken when borgwatch reads that line: after borg's stat, and before, during or after its read. Every write
moves the ctime to the time of the write, which is after the run started (less a clock tick: ``clock.py``
says how much older than the run's start a ctime must be). So a side whose ctime is older than its run's
bound and that borg did not flag ``C`` is *proven*: nothing wrote the file from the run's start to the lstat,
nor until borg's read ended (that would be ``C``), so the lstat's size (and the content until the ctime
moves) is what borg archived. A write between borg's stat and the lstat leaves a ctime after the run's start
(never proven); a ``touch -d`` moves the ctime too.

* *Same stat* (``unchanged``): both sides not ``C``, the same inode, size and ctime, and the previous side
  proven: nothing wrote the file from the previous run's start to this run's lstat, nor during this run's
  read (not ``C``), so borg archived the same bytes twice.
* *Size* (``modified``): both sides' sizes are what borg read — proven, or bridged to borg's files cache
  (borg's memorized size is the size it read) — and differ: the archived contents differ in length.
* *Own digest*: after the create, borgwatch hashes each proven regular file borg did not memorize (up to
  ``OWN_LIMIT``) and keeps the digest in the snapshot; the next run hashes the pair's current side the same
  way and compares. The hash is kept only when the file's fstat before and after the read equals the listed
  lstat (inode, size, ctime): the bytes read are the bytes borg archived. A guard that fails, an unreadable
  file or one over the limit leaves no digest, and borg decides.

An unpaired file borg did not memorize counts added, but borg must confirm it is new while the diff counts
a previous name removed: that name may be this file's, under a key only borg can compute. ``decide_new``
confirms it instead when every name counted removed is a previous record whose key borg's files cache still
holds as an *older* entry after the create. borg resets the age of every entry whose path it visits (read,
or trusted unchanged) and drops the ones it memorized as newest, so an older entry names a path this run did
not visit: not this file, which borg read. A visit that leaves the old entry aged (a file changed while read,
``C``; a hard-link follower, ``h``) is not decided this way, nor a run whose older keys were too many to
keep (``aged`` is None then). A file paired by inode with a previous record (rewritten in place, or a new
file on a reused inode) is the latter when that record's key is an older entry, under the same proof. None
of this depends on ctime: it holds in mtime mode too.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import NamedTuple

from borgwatch.dataset import records
from borgwatch.dataset.clock import FINE_UNIT_NS, Before
from borgwatch.dataset.snapshot import Snapshot, SnapshotDiff

# the re-read must stay within the page cache borg just filled and cost less than the borg diff it saves
OWN_LIMIT = 64 << 20
OWN_FILES = 2000  # more unmemorized files than this: borg's cache is off or lost, and the fallback runs anyway
OWN_BYTES = 256 << 20  # a run's re-read in all: well under a second from the page cache
BLOCK = 1 << 20
_OPEN = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


def own_digest(path: bytes, inode: int, size: int, ctime_ns: int) -> bytes | None:
    """The content digest of the regular file at ``path`` while it is the listed one (inode, size, ctime,
    before and after the read) and no larger than ``OWN_LIMIT``; None otherwise (the file is not read)."""
    if size > OWN_LIMIT:
        return None
    try:
        try:
            fd = os.open(path, _OPEN | getattr(os, "O_NOATIME", 0))
        except PermissionError:  # O_NOATIME is for the file's owner only
            fd = os.open(path, _OPEN)
    except OSError:
        return None
    try:
        if not _listed(os.fstat(fd), inode, size, ctime_ns):
            return None
        digest = hashlib.blake2b(digest_size=16)
        left = size
        while left:
            block = os.read(fd, min(BLOCK, left))
            if not block:
                return None
            digest.update(block)
            left -= len(block)
        return digest.digest() if _listed(os.fstat(fd), inode, size, ctime_ns) else None
    except OSError:
        return None
    finally:
        os.close(fd)


def _listed(st: os.stat_result, inode: int, size: int, ctime_ns: int) -> bool:
    return stat.S_ISREG(st.st_mode) and (st.st_ino, st.st_size, st.st_ctime_ns) == (inode, size, ctime_ns)


def own_digests(snap: Snapshot, before: Before) -> int:
    """After a committed create: the own digest of each proven listed regular file borg did not memorize;
    returns how many were kept."""
    rows = snap.db.execute(
        "SELECT rowid, path, inode, size, cmtime FROM listed WHERE regular AND digest IS NULL AND status IN "
        "('A','M','h') AND (cmtime < ? OR (cmtime < ? AND cmtime % ? != 0)) AND size <= ? LIMIT ?",
        (before.coarse, before.fine, FINE_UNIT_NS, OWN_LIMIT, OWN_FILES + 1)).fetchall()
    if len(rows) > OWN_FILES:
        return 0
    kept: list[tuple[bytes, int]] = []
    budget = OWN_BYTES
    for rowid, path, inode, size, cmtime in rows:
        budget -= size
        if budget < 0:
            break
        if (digest := own_digest(path, inode, size, cmtime)) is not None:
            kept.append((digest, rowid))
    snap.db.executemany("UPDATE listed SET own = ? WHERE rowid = ?", kept)
    return len(kept)


class Side(NamedTuple):
    """One side of a pair as its run listed it."""

    status: str
    inode: int
    size: int
    cmtime: int
    digest: bytes | None  # borg's (bridged to its files cache)
    own: bytes | None

    def proven(self, before: Before) -> bool:
        return self.status != "C" and before.proves(self.cmtime)


_SIDE = "{0}.status, {0}.inode, {0}.size, {0}.cmtime, {0}.digest, {0}.own"


def decide(prev_path: Path, cur: Snapshot, found: SnapshotDiff, prev_before: Before, cur_before: Before) -> None:
    """Decide the undecided pairs of the last ``diff`` that the rules above prove, in their order; they leave
    the undecided set and count unchanged or modified. ``*_before``: each run's bounds (``clock.py``)."""
    db = cur.db
    db.execute("ATTACH DATABASE ? AS prev", (str(prev_path),))
    try:
        rows = db.execute(
            f"SELECT u.path, c.rowid, {_SIDE.format('c')}, {_SIDE.format('p')} FROM temp.undecided u "
            "JOIN main.listed c ON c.path = u.path JOIN prev.listed p ON p.pkey = c.pkey "
            "WHERE u.kind = 'content' AND c.regular AND p.regular").fetchall()
        decided: list[tuple[bytes]] = []
        for path, rowid, *sides in rows:
            now, then = Side(*sides[:6]), Side(*sides[6:])
            verdict = _verdict(now, then, prev_before, cur_before)
            if verdict is None and then.own is not None and now.proven(cur_before):
                own = now.own or own_digest(path, now.inode, now.size, now.cmtime)
                if own is not None:
                    db.execute("UPDATE main.listed SET own = ? WHERE rowid = ?", (own, rowid))
                    verdict = own == then.own
            if verdict is None:
                continue
            decided.append((path,))
            found.undecided -= 1
            if verdict:
                found.unchanged += 1
            else:
                found.modified += 1
        db.executemany("DELETE FROM temp.undecided WHERE path = ?", decided)
    finally:
        db.execute("DETACH DATABASE prev")


def _verdict(now: Side, then: Side, prev_before: Before, cur_before: Before) -> bool | None:
    """By the lstat alone: True unchanged (same stat), False modified (size), None not proven."""
    if then.proven(prev_before) and now.status != "C" and now[1:4] == then[1:4]:
        return True
    sized = (now.proven(cur_before) or now.digest is not None) and (then.proven(prev_before)
                                                                    or then.digest is not None)
    if sized and now.size != then.size:
        return False
    return None


def decide_new(prev: Snapshot, cur: Snapshot, found: SnapshotDiff, aged: list[bytes] | None) -> None:
    """Confirm the unpaired files of the last ``diff`` as new (they count added already), and its inode
    pairings as a new file beside a removed one, when every name then counted removed is a previous record
    borg's cache holds as an older entry (``aged``: their keys)."""
    db = cur.db
    rows = db.execute("SELECT u.kind, u.target, l.status FROM temp.undecided u JOIN listed l ON l.path = u.path "
                      "WHERE u.kind IN ('new', 'inode')").fetchall()
    if aged is None or not rows or any(status not in ("A", "M") for _, _, status in rows):
        return
    older = set(aged)
    reused = [target for kind, target, _ in rows if kind == "inode"]  # the removed file's inode, reused
    if not older.issuperset(reused) or _held(prev, aged) != found.removed + len(reused):
        return
    db.execute("DELETE FROM temp.undecided WHERE kind IN ('new', 'inode')")
    found.added += len(reused)
    found.removed += len(reused)
    found.undecided -= len(reused)


def _held(prev: Snapshot, keys: list[bytes]) -> int:
    """How many of ``keys`` the previous snapshot has records of (one pass over its buckets)."""
    by_bucket: dict[int, list[bytes]] = {}
    for key in keys:
        by_bucket.setdefault(key[0], []).append(key)
    return sum(records.contains(data, key) for bucket, data in enumerate(records.buckets(prev.db))
               for key in by_bucket.get(bucket, ()))
