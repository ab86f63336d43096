"""The files-cache snapshot and its diff, borg-free: records as borg's files cache and ``--list`` give them."""

from __future__ import annotations

import os
import stat
from pathlib import Path

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


def test_hard_link_followers_and_changed_while_read_are_undecided_by_path(tmp_path: Path) -> None:
    prev = _snap(tmp_path, "1", [(1, "a", 11)], [("A", "/a", 11), ("h", "/a2", 11), ("C", "/log", 15)])
    cur = _snap(tmp_path, "2", [(1, "a", 11)], [("h", "/a2", 11), ("C", "/log", 16)])
    assert diff(prev, cur) == SnapshotDiff(unchanged=1, undecided=2)
    assert sorted(undecided_paths(cur)) == [b"/a2", b"/log"]


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
