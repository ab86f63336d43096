"""The rules that decide undecided pairs without borg, on real files: same stat, size, own digest, and the
unpaired file confirmed new by borg's older cache entries; each rule's guard leaves the pair to borg."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from borgwatch.dataset import decide as decide_module
from borgwatch.dataset.clock import Before
from borgwatch.dataset.decide import OWN_LIMIT, decide, decide_new, own_digest, own_digests
from borgwatch.dataset.snapshot import Snapshot, SnapshotDiff, diff, undecided_paths

LATER = 1 << 62  # a "run start less the margin" after every ctime here: each side proven


def _key(path: Path) -> bytes:
    return hashlib.blake2b(str(path).encode(), digest_size=16).digest()


def _run(tmp: Path, name: str, listed: dict[Path, str], memorized: list[Path], others: int = 3,
         own_before: int | None = None) -> Snapshot:
    """A run's snapshot as borg would leave it: ``listed`` files with their lstat now, ``memorized`` ones in the
    files cache (a content digest of what is on disk), plus ``others`` unchanged files borg memorized."""
    snap = Snapshot.create(tmp / name)
    for path, status in listed.items():
        st = os.lstat(path)
        snap.add_listed(status, os.fsencode(path), st, st.st_ctime_ns)
    entries = [(n.to_bytes(16, "big"), b"o" * 16, 900 + n, 1, 1) for n in range(others)]
    for path in memorized:
        st = os.lstat(path)
        entries.append((_key(path), hashlib.blake2b(path.read_bytes(), digest_size=16).digest(), st.st_ino,
                        st.st_size, st.st_ctime_ns))
    snap.add_cached(entries)
    snap.seal()
    if own_before is not None:
        own_digests(snap, Before(own_before, own_before))
    return snap


def _decided(tmp: Path, prev: Snapshot, cur: Snapshot, prev_before: int = LATER,
             cur_before: int = LATER) -> SnapshotDiff:
    found = diff(prev, cur)
    prev.close()
    decide(tmp / "1", cur, found, Before(prev_before, prev_before), Before(cur_before, cur_before))
    return found


def _file(tmp: Path, data: bytes = b"content\n") -> Path:
    path = tmp / "f"
    path.write_bytes(data)
    return path


def _rewrite_same_size(path: Path) -> None:
    path.write_bytes(path.read_bytes().upper())


def test_same_inode_size_and_ctime_is_unchanged_only_when_older_than_the_previous_run(tmp_path: Path) -> None:
    f = _file(tmp_path)
    ctime = os.lstat(f).st_ctime_ns
    # run 1: f is the newest file (listed, not memorized); run 2: borg memorizes it
    for prev_before, expected in ((ctime + 1, SnapshotDiff(unchanged=4)), (ctime, SnapshotDiff(unchanged=3,
                                                                                               undecided=1))):
        prev = _run(tmp_path, "1", {f: "A"}, [])
        cur = _run(tmp_path, "2", {f: "A"}, [f])
        assert _decided(tmp_path, prev, cur, prev_before=prev_before) == expected
        cur.close()


def test_another_size_is_modified_when_both_sizes_are_what_borg_read(tmp_path: Path) -> None:
    f = _file(tmp_path)
    prev = _run(tmp_path, "1", {f: "A"}, [])
    f.write_bytes(b"longer content\n")
    cur = _run(tmp_path, "2", {f: "M"}, [f])  # bridged: its size is the one borg memorized
    assert _decided(tmp_path, prev, cur) == SnapshotDiff(modified=1, unchanged=3)
    cur.close()
    # the previous lstat may postdate a write during that run: not proven, borg decides
    prev = _run(tmp_path, "1", {f: "A"}, [])
    f.write_bytes(b"short\n")
    cur = _run(tmp_path, "2", {f: "M"}, [f])
    assert _decided(tmp_path, prev, cur, prev_before=0) == SnapshotDiff(unchanged=3, undecided=1)
    cur.close()


def test_changed_while_read_is_never_proven(tmp_path: Path) -> None:
    f = _file(tmp_path)
    prev = _run(tmp_path, "1", {f: "C"}, [])
    f.write_bytes(b"grew while read\n")
    cur = _run(tmp_path, "2", {f: "C"}, [])
    assert _decided(tmp_path, prev, cur) == SnapshotDiff(unchanged=3, undecided=1)
    assert list(undecided_paths(cur)) == [os.fsencode(f)]


def test_own_digests_decide_a_same_size_rewrite_and_a_chmod(tmp_path: Path) -> None:
    f = _file(tmp_path)
    prev = _run(tmp_path, "1", {f: "A"}, [], own_before=LATER)
    _rewrite_same_size(f)  # the newest file again: never memorized, same size, new ctime
    cur = _run(tmp_path, "2", {f: "M"}, [])
    assert _decided(tmp_path, prev, cur) == SnapshotDiff(modified=1, unchanged=3)
    cur.close()
    prev = _run(tmp_path, "1", {f: "M"}, [], own_before=LATER)
    f.chmod(0o600)  # ctime moves, the content does not
    cur = _run(tmp_path, "2", {f: "M"}, [])
    assert _decided(tmp_path, prev, cur) == SnapshotDiff(unchanged=4)
    assert cur.count("SELECT count(*) FROM listed WHERE own IS NOT NULL") == 1  # kept for the next run


def test_no_own_digest_when_the_guard_fails_and_borg_decides(tmp_path: Path) -> None:
    f = _file(tmp_path)
    ctime = os.lstat(f).st_ctime_ns
    prev = _run(tmp_path, "1", {f: "A"}, [], own_before=ctime)  # written during the run: no own digest
    assert prev.count("SELECT count(*) FROM listed WHERE own IS NOT NULL") == 0
    prev.close()
    prev = _run(tmp_path, "1", {f: "A"}, [], own_before=LATER)
    _rewrite_same_size(f)
    cur = _run(tmp_path, "2", {f: "M"}, [])
    # this run's side written less than the margin before the run: not read, borg decides
    assert _decided(tmp_path, prev, cur, cur_before=os.lstat(f).st_ctime_ns) == SnapshotDiff(unchanged=3,
                                                                                            undecided=1)
    assert cur.count("SELECT count(*) FROM listed WHERE own IS NOT NULL") == 0


def test_own_digest_guards_the_listed_file(tmp_path: Path) -> None:
    f = _file(tmp_path)
    st = os.lstat(f)
    assert own_digest(os.fsencode(f), st.st_ino, st.st_size, st.st_ctime_ns) == hashlib.blake2b(
        b"content\n", digest_size=16).digest()
    _rewrite_same_size(f)  # written after the listing's lstat: no digest
    assert own_digest(os.fsencode(f), st.st_ino, st.st_size, st.st_ctime_ns) is None
    st = os.lstat(f)
    assert own_digest(os.fsencode(f), st.st_ino, st.st_size + 1, st.st_ctime_ns) is None
    assert own_digest(os.fsencode(f), st.st_ino, OWN_LIMIT + 1, st.st_ctime_ns) is None
    link = tmp_path / "link"
    link.symlink_to(f)  # planted where the file was: never followed
    assert own_digest(os.fsencode(link), st.st_ino, st.st_size, st.st_ctime_ns) is None
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # opening it must not block
    fst = os.lstat(fifo)
    assert own_digest(os.fsencode(fifo), fst.st_ino, 0, fst.st_ctime_ns) is None
    f.chmod(0)
    st = os.lstat(f)
    if os.geteuid() != 0:
        assert own_digest(os.fsencode(f), st.st_ino, st.st_size, st.st_ctime_ns) is None


def _removed_and_new(tmp_path: Path, status: str = "A") -> tuple[Snapshot, Snapshot, bytes, SnapshotDiff]:
    gone, new = tmp_path / "gone", tmp_path / "new"
    gone.write_bytes(b"gone\n")
    prev = _run(tmp_path, "1", {}, [gone])
    new.write_bytes(b"new\n")  # before the unlink: another inode than the removed file's
    gone.unlink()
    cur = _run(tmp_path, "2", {new: status}, [])  # the newest file: unpaired, not memorized
    found = diff(prev, cur)
    assert found == SnapshotDiff(added=1, removed=1, unchanged=3) and list(undecided_paths(cur)) == [bytes(new)]
    return prev, cur, _key(gone), found


def test_a_new_unmemorized_file_is_confirmed_when_every_removed_name_is_an_older_cache_entry(tmp_path: Path
                                                                                           ) -> None:
    prev, cur, gone, found = _removed_and_new(tmp_path)
    decide_new(prev, cur, found, [b"x" * 16])  # the removed name is not among them: borg decides
    decide_new(prev, cur, found, None)  # too many older keys to keep
    assert len(list(undecided_paths(cur))) == 1
    decide_new(prev, cur, found, [b"x" * 16, gone])
    assert list(undecided_paths(cur)) == [] and found == SnapshotDiff(added=1, removed=1, unchanged=3)


def test_a_follower_or_changed_while_read_file_is_never_confirmed_new(tmp_path: Path) -> None:
    for status in ("h", "C"):
        prev, cur, gone, found = _removed_and_new(tmp_path, status)
        decide_new(prev, cur, found, [gone])  # borg visited its path without renewing the entry
        assert len(list(undecided_paths(cur))) == 1
        prev.close()
        cur.close()


def test_a_new_file_on_the_removed_files_inode_is_new_when_that_key_is_an_older_entry(tmp_path: Path) -> None:
    gone = tmp_path / "gone"
    gone.write_bytes(b"gone\n")
    ino = os.lstat(gone).st_ino
    prev = _run(tmp_path, "1", {}, [gone])
    cur = Snapshot.create(tmp_path / "2")  # gone removed; "new" got its inode, as ext4 hands it out again
    st = os.stat_result((os.lstat(gone).st_mode, ino, 1, 1, 0, 0, 4, 0, 0, 0, 0, 0, 5, 5))
    cur.add_listed("A", b"/new", st, 5)
    cur.add_cached((n.to_bytes(16, "big"), b"o" * 16, 900 + n, 1, 1) for n in range(3))
    cur.seal()
    found = diff(prev, cur)
    assert found == SnapshotDiff(unchanged=3, undecided=1)  # paired by inode: rewritten in place, or new?
    decide_new(prev, cur, found, [b"x" * 16])
    assert found.undecided == 1
    decide_new(prev, cur, found, [_key(gone)])  # its path was not visited: another file
    assert found == SnapshotDiff(added=1, removed=1, unchanged=3) and list(undecided_paths(cur)) == []


def test_own_digests_stop_at_the_run_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = []
    for n in range(3):
        files.append(tmp_path / f"f{n}")
        files[-1].write_bytes(b"x" * 10)
    monkeypatch.setattr(decide_module, "OWN_BYTES", 25)  # two files of 10 bytes fit, the third does not
    snap = _run(tmp_path, "1", {f: "A" for f in files}, [])
    assert own_digests(snap, Before(LATER, LATER)) == 2
    assert snap.count("SELECT count(*) FROM listed WHERE own IS NOT NULL") == 2
