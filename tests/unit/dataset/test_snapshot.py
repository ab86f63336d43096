"""The files-cache snapshot and its diff, borg-free: records as borg's files cache and ``--list`` give them."""

from __future__ import annotations

import os
import random
import sqlite3
import stat
from pathlib import Path

import pytest

from borgwatch.dataset import records
from borgwatch.dataset.snapshot import Snapshot, SnapshotDiff, diff, settle, undecided_paths


def _st(ino: int, size: int, ctime: int) -> os.stat_result:
    return os.stat_result((stat.S_IFREG | 0o644, ino, 1, 1, 0, 0, size, 0, 0, 0, 0, 0, ctime, ctime))


def _k(n: int) -> bytes:
    return n.to_bytes(16, "big")


def _d(content: str) -> bytes:
    return content.encode().ljust(16, b".")


def _snap(tmp: Path, name: str, cached: list[tuple[int, str, int]], listed: list[tuple[str, str, int]]) -> Snapshot:
    """cached: (key number, content, inode) — size 1, cmtime = inode; listed: (status, path, inode)."""
    snap = Snapshot.create(tmp / name)
    for status, path, ino in listed:
        snap.add_listed(status, path.encode(), _st(ino, 1, ino), ino)
    snap.add_cached((_k(k), _d(c), ino, 1, ino) for k, c, ino in cached)
    snap.seal()
    return snap


def test_cached_files_diff_by_key_and_chunk_digest(tmp_path: Path) -> None:
    prev = _snap(tmp_path, "1", [(1, "a", 11), (2, "b", 12), (3, "c", 13)], [])
    cur = _snap(tmp_path, "2", [(1, "a", 11), (2, "B", 12), (4, "d", 14)], [("M", "/b", 12), ("A", "/d", 14)])
    assert diff(prev, cur) == SnapshotDiff(added=1, removed=1, modified=1, unchanged=1)
    assert cur.files() == 3 and cur.unmemorized() == 0


def test_the_newest_file_is_undecided_next_run_never_added_and_removed(tmp_path: Path) -> None:
    # run 1: /n is the newest file: listed, not memorized
    prev = _snap(tmp_path, "1", [(1, "a", 11)], [("A", "/a", 11), ("A", "/n", 19)])
    assert prev.files() == 2 and prev.unmemorized() == 1
    # run 2: borg re-reads /n (not in its cache: status A) and memorizes it now
    cur = _snap(tmp_path, "2", [(1, "a", 11), (9, "n", 19)], [("A", "/n", 19)])
    assert diff(prev, cur) == SnapshotDiff(unchanged=1, undecided=1)
    assert list(undecided_paths(cur)) == [b"/n"]


def test_a_modified_newest_file_pairs_by_inode_with_its_previous_record(tmp_path: Path) -> None:
    prev = _snap(tmp_path, "1", [(1, "a", 11), (2, "b", 12)], [])
    cur = _snap(tmp_path, "2", [(1, "a", 11)], [("M", "/b", 12)])  # rewritten in place, now the newest
    assert diff(prev, cur) == SnapshotDiff(unchanged=1, undecided=1)
    assert list(undecided_paths(cur)) == [b"/b"]


def test_an_unpaired_unmemorized_file_must_be_confirmed_new_by_borg(tmp_path: Path) -> None:
    prev = _snap(tmp_path, "1", [(1, "a", 11), (2, "b", 12)], [])
    cur = _snap(tmp_path, "2", [(1, "a", 11)], [("M", "/b", 77)])  # replaced by rename: another inode
    found = diff(prev, cur)
    assert found == SnapshotDiff(added=1, removed=1, unchanged=1) and list(undecided_paths(cur)) == [b"/b"]
    settle(cur, found, {b"/b": "modified"})  # borg: /b was there before, so it is no new file
    assert "does not confirm" in found.doubt
    confirmed = diff(prev, cur)
    settle(cur, confirmed, {b"/b": "added"})
    assert confirmed == SnapshotDiff(added=1, removed=1, unchanged=1)


def test_settle_applies_borgs_verdicts_and_refuses_a_contradiction(tmp_path: Path) -> None:
    prev = _snap(tmp_path, "1", [(1, "a", 11)], [("A", "/a", 11), ("A", "/n", 19), ("A", "/m", 18)])
    cur = _snap(tmp_path, "2", [(1, "a", 11), (9, "n", 19), (8, "m", 18)], [("A", "/n", 19), ("A", "/m", 18)])
    found = diff(prev, cur)
    settle(cur, found, {b"/n": "modified"})
    assert found == SnapshotDiff(modified=1, unchanged=2)
    found = diff(prev, cur)
    settle(cur, found, {b"/n": "added"})
    assert "contradicts" in found.doubt


def test_changed_while_read_is_undecided_by_path(tmp_path: Path) -> None:
    prev = _snap(tmp_path, "1", [(1, "a", 11)], [("A", "/a", 11), ("C", "/log", 15)])
    cur = _snap(tmp_path, "2", [(1, "a", 11)], [("C", "/log", 16)])
    assert diff(prev, cur) == SnapshotDiff(unchanged=1, undecided=1)
    assert sorted(undecided_paths(cur)) == [b"/log"]


def test_a_hard_link_follower_takes_the_digest_of_its_memorized_inode_not_its_key(tmp_path: Path) -> None:
    # the leader /a is unchanged (U: unlisted); its followers name inode 11, borg memorized it once
    prev = _snap(tmp_path, "1", [(1, "a", 11), (2, "b", 12)], [("h", "/a2", 11), ("h", "/a3", 11), ("h", "/b2", 12)])
    assert prev.files() == 5 and prev.followers() == 3 and prev.unmemorized() == 3
    assert {d for (d,) in prev.db.execute("SELECT digest FROM listed")} == {_d("a"), _d("b")}
    # inode 11's content changes in place; /b2's entry no longer matches its lstat: no digest, undecided
    cur = Snapshot.create(tmp_path / "2")
    for path, ino in (("/a2", 11), ("/a3", 11)):
        cur.add_listed("h", path.encode(), _st(ino, 1, ino), ino)
    cur.add_listed("h", b"/b2", _st(12, 1, 13), 13)
    cur.add_cached([(_k(1), _d("A"), 11, 1, 11), (_k(2), _d("b"), 12, 1, 12)])
    cur.seal()
    assert cur.files() == 5
    assert diff(prev, cur) == SnapshotDiff(modified=3, unchanged=1, undecided=1)
    assert list(undecided_paths(cur)) == [b"/b2"]


def test_vanished_and_special_files_are_not_names(tmp_path: Path) -> None:
    snap = Snapshot.create(tmp_path / "1")
    snap.add_listed("A", b"/gone", None, None)
    snap.add_listed("A", b"/fifo", os.stat_result((stat.S_IFIFO | 0o644, 5, 1, 1, 0, 0, 0, 0, 0, 0)), 0)
    snap.add_listed("E", b"/unreadable", _st(6, 1, 6), 6)
    snap.seal()
    assert snap.files() == 0


def test_open_refuses_a_symlink_an_unsealed_and_a_foreign_file(tmp_path: Path) -> None:
    sealed = _snap(tmp_path, "good", [(1, "a", 11)], [])
    sealed.close()
    assert Snapshot.open(tmp_path / "good") is not None
    (tmp_path / "link").symlink_to(tmp_path / "good")
    assert Snapshot.open(tmp_path / "link") is None
    unsealed = Snapshot.create(tmp_path / "half")
    unsealed.close()
    assert Snapshot.open(tmp_path / "half") is None
    (tmp_path / "junk").write_bytes(b"not sqlite" * 100)
    assert Snapshot.open(tmp_path / "junk") is None


def test_create_replaces_a_planted_symlink_without_following_it(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    (tmp_path / "snap").symlink_to(victim)
    Snapshot.create(tmp_path / "snap").seal()
    assert victim.read_text() == "keep me" and not (tmp_path / "snap").is_symlink()


def test_a_reused_inode_pairs_until_borg_says_the_file_is_new(tmp_path: Path) -> None:
    prev = _snap(tmp_path, "1", [(1, "a", 11), (2, "gone", 12)], [])
    cur = _snap(tmp_path, "2", [(1, "a", 11)], [("A", "/newest", 12)])  # /gone removed, its inode reused
    found = diff(prev, cur)
    assert found == SnapshotDiff(unchanged=1, undecided=1)
    settle(cur, found, {b"/newest": "added"})
    assert found == SnapshotDiff(added=1, removed=1, unchanged=1)


def _bucket_rows(snap: Snapshot) -> list[tuple[int, bytes]]:
    return list(snap.db.execute("SELECT bucket, data FROM cached ORDER BY bucket"))


def test_sort_runs_spilled_to_disk_give_the_same_sorted_snapshot(tmp_path: Path) -> None:
    rng = random.Random(7)
    cached = [(rng.getrandbits(128), f"c{n}", 100 + n) for n in range(600)]
    listed = [("M", f"/f{n}", 100 + n) for n in range(0, 600, 7)] + [("A", "/newest", 99)]
    whole = _snap(tmp_path, "whole", cached, listed)
    spilled = Snapshot.create(tmp_path / "spilled", run=5)  # ~120 spills of 5 records
    for status, path, ino in listed:
        spilled.add_listed(status, path.encode(), _st(ino, 1, ino), ino)
    spilled.add_cached((_k(k), _d(c), ino, 1, ino) for k, c, ino in cached)
    spilled.seal()
    rows = _bucket_rows(spilled)
    assert rows == _bucket_rows(whole) and len(rows) > 200
    keys = [data[i:i + records.KEY] for _, data in rows for i in range(0, len(data), records.SIZE)]
    assert keys == sorted(_k(k) for k, _, _ in cached)
    assert spilled.files() == whole.files() == 601 and spilled.unmemorized() == 1
    prev = _snap(tmp_path, "prev", cached[:-3] + [(1, "gone", 1)], [])
    assert diff(prev, spilled) == diff(prev, whole) == SnapshotDiff(added=4, removed=1, unchanged=597)
    assert list(undecided_paths(whole)) == [b"/newest"]  # unmemorized, unpaired: borg must confirm it is new


def test_the_galloping_merge_agrees_with_set_arithmetic() -> None:
    rng = random.Random(12)
    for _ in range(40):
        keys = {rng.getrandbits(128).to_bytes(16, "big") for _ in range(rng.randrange(0, 900))}
        prev = {k: rng.randbytes(16) for k in keys if rng.random() > 0.05}
        cur = {k: (rng.randbytes(16) if rng.random() < 0.02 else prev.get(k, rng.randbytes(16)))
               for k in keys if rng.random() > 0.05}
        inode = {k: rng.randrange(3) for k in keys}  # a changed inode alone is no change
        pack = [b"".join(records.RECORD.pack(k, d, inode[k] + (side and k[0] % 2)) for k, d in sorted(recs.items()))
                for side, recs in enumerate((prev, cur))]
        cur_only: list[bytes] = []
        same, other = records.merge(pack[0], pack[1], cur_only)
        both = prev.keys() & cur.keys()
        assert same == sum(prev[k] == cur[k] for k in both) and other == sum(prev[k] != cur[k] for k in both)
        assert cur_only == sorted(cur.keys() - prev.keys())


def test_inodes_are_found_at_their_offset_only() -> None:
    key = (7).to_bytes(8, "big") * 2  # the inode's bytes inside a key must not count
    data = b"".join(records.RECORD.pack(k, b"d" * 16, ino)
                    for k, ino in ((b"\x00" * 16, 5), (key, 6), (b"\xff" * 16, 7)))
    for wanted in ({7}, {7, 100, 101, 102, 103, 104, 105, 106, 107}):  # bytes.find, then the unpacking scan
        assert list(records.with_inodes(data, wanted)) == [(7, b"\xff" * 16)]


def test_an_old_schema_a_truncated_and_a_miscounted_snapshot_are_no_snapshot(tmp_path: Path) -> None:
    old = sqlite3.connect(tmp_path / "old")
    old.executescript("CREATE TABLE meta(k TEXT PRIMARY KEY, v TEXT); INSERT INTO meta VALUES ('schema', '1');"
                      "INSERT INTO meta VALUES ('sealed', '1'); CREATE TABLE cached(key BLOB PRIMARY KEY, "
                      "digest BLOB NOT NULL, inode INTEGER, size INTEGER, cmtime INTEGER) WITHOUT ROWID;")
    old.close()
    assert Snapshot.open(tmp_path / "old") is None
    _snap(tmp_path, "big", [(n, str(n), n) for n in range(20000)], []).close()
    assert Snapshot.open(tmp_path / "big") is not None
    data = (tmp_path / "big").read_bytes()
    (tmp_path / "cut").write_bytes(data[:len(data) // 2])
    assert Snapshot.open(tmp_path / "cut") is None
    db = sqlite3.connect(tmp_path / "big")
    db.execute("UPDATE cached SET data = substr(data, 1, length(data) - 40) WHERE bucket = 0")
    db.commit()
    db.close()
    assert Snapshot.open(tmp_path / "big") is None


def test_a_previous_snapshot_damaged_after_opening_is_a_doubt(tmp_path: Path) -> None:
    _snap(tmp_path, "1", [(n, str(n), n) for n in range(20000)], []).close()
    prev = Snapshot.open(tmp_path / "1")
    assert prev is not None
    with open(tmp_path / "1", "r+b") as f:
        f.seek(8192)
        f.write(b"\xff" * 200000)
    cur = _snap(tmp_path, "2", [(n, str(n), n) for n in range(20000)], [])
    assert "previous snapshot cannot be read" in diff(prev, cur).doubt


def test_the_listing_comes_before_the_files_cache(tmp_path: Path) -> None:
    snap = Snapshot.create(tmp_path / "1")
    snap.add_cached([])
    with pytest.raises(RuntimeError, match="listing"):
        snap.add_listed("A", b"/late", _st(1, 1, 1), 1)
