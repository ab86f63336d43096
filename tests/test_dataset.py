"""The dataset index on its own (no borg): set operations and the content-verdict candidates."""

from __future__ import annotations

import os
from pathlib import Path

from borgwatch.dataset import DatasetIndex, archive_path
from borgwatch.fingerprint import Fingerprinter, content_digest, stat_key


def run(index_path: Path, statuses: dict[Path, str], previous: str | None, changed: tuple[str, ...] = ()):  # noqa: ANN201
    index = DatasetIndex(index_path)
    for path, status in statuses.items():
        index.record(status, str(path))
    index.finish_recording()
    diff = index.evaluate(has_previous=previous is not None)
    candidates = sorted(index.candidate_paths())
    index.resolve_by_content(diff, [archive_path(str(p)) for p in changed])
    index.promote("a2" if previous else "a1")
    index.close()
    return diff, candidates


def test_counts_follow_the_previous_archive_not_borgs_letters(tmp_path: Path) -> None:
    files = []
    for i in range(6):
        f = tmp_path / f"f{i}"
        f.write_bytes(b"x" * (10 + i))
        files.append(f)
    db = tmp_path / "idx.db"
    first, _ = run(db, {f: "A" for f in files}, None)
    assert (first.added, first.method) == (6, "first")
    files[0].write_bytes(b"grown" * 10)  # size change -> modified without asking borg
    os.utime(files[1], ns=(1, 1))  # touch: same size -> candidate, borg says unchanged
    files[5].unlink()  # removed: not seen in this run
    new = tmp_path / "new"
    new.write_bytes(b"n")
    statuses = {files[0]: "M", files[1]: "M", files[2]: "A", files[3]: "U", files[4]: "E", new: "A"}
    diff, candidates = run(db, statuses, "a1")
    # files[2] shows A (borg never cached it) but size, mtime, ctime and inode are untouched: unchanged
    assert candidates == [str(files[1])]
    assert diff.as_counts() == {"added": 1, "modified": 1, "unchanged": 3, "removed": 1, "error": 1}
    assert diff.exact


def test_a_content_change_at_same_size_is_modified_when_borg_says_so(tmp_path: Path) -> None:
    f = tmp_path / "same"
    f.write_bytes(b"aaaa")
    db = tmp_path / "idx.db"
    run(db, {f: "A"}, None)
    f.write_bytes(b"bbbb")
    diff, candidates = run(db, {f: "M"}, "a1", changed=(str(f),))
    assert candidates == [str(f)] and (diff.modified, diff.unchanged) == (1, 0)


def test_abandoned_run_keeps_the_previous_baseline(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"1")
    db = tmp_path / "idx.db"
    run(db, {f: "A"}, None)
    index = DatasetIndex(db)
    index.record("A", str(tmp_path / "other"))
    index.abandon()
    index.close()
    index = DatasetIndex(db)
    assert index.previous_archive() == "a1" and index.count("SELECT count(*) FROM prev") == 1
    index.close()


def test_archive_path() -> None:
    assert archive_path("/home/x") == "home/x" and archive_path("./rel/y") == "rel/y"


def test_a_path_listed_twice_counts_once_with_its_last_status(tmp_path: Path) -> None:
    f = tmp_path / "grows"
    f.write_bytes(b"1")
    db = tmp_path / "idx.db"
    index = DatasetIndex(db)
    index.record("A", str(f))
    index.record("E", str(f))  # borg prints the status before reading; a failure follows as a 2nd line
    index.finish_recording()
    diff = index.evaluate(has_previous=False)
    index.close()
    assert (diff.added, diff.error) == (0, 1)


def test_fingerprints_settle_same_size_changes_without_borg(tmp_path: Path) -> None:
    touched, rewritten, big = tmp_path / "touched", tmp_path / "rewritten", tmp_path / "big"
    for f in (touched, rewritten):
        f.write_bytes(b"a" * 100)
    big.write_bytes(b"a" * 200)
    db = tmp_path / "idx.db"

    def one_run(statuses: dict[Path, str], previous: str | None, max_file: int = 1 << 20):  # noqa: ANN202
        index = DatasetIndex(db)
        fingerprints = Fingerprinter(max_file=max_file)
        index.start_fingerprints(fingerprints)
        for path, status in statuses.items():
            index.record(status, str(path))
        index.finish_recording()
        diff = index.evaluate(has_previous=previous is not None)
        paths = sorted(index.candidate_paths())
        index.resolve_by_content(diff, [])
        index.promote("a2" if previous else "a1")
        index.close()
        return diff, paths, fingerprints.reserved

    _, _, spent = one_run({touched: "A", rewritten: "A", big: "A"}, None)
    assert spent == 400
    os.utime(touched, ns=(5, 5))
    rewritten.write_bytes(b"b" * 100)
    big.write_bytes(b"c" * 200)
    # 'big' has no fingerprint this time (over the size limit): only it is left for borg diff
    diff, paths, _ = one_run({touched: "M", rewritten: "M", big: "M"}, "a1", max_file=150)
    assert paths == [str(big)]
    assert (diff.modified, diff.unchanged, diff.verified) == (1, 2, 1)  # borg (here: none) judged big
    # a file borg's files cache vouches for (U) keeps its fingerprint into the next baseline
    rewritten.write_bytes(b"b" * 100)  # same content again: only metadata moved
    diff, paths, _ = one_run({touched: "U", rewritten: "M", big: "U"}, "a2")
    assert paths == [] and (diff.modified, diff.unchanged) == (0, 3)


def test_a_file_that_moves_after_it_was_announced_gets_no_fingerprint(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"old")
    index = DatasetIndex(tmp_path / "idx.db")
    index.start_fingerprints()
    index.record("A", str(f))
    f.write_bytes(b"new!")  # changed after borg announced (and maybe read) it
    index.finish_recording()
    assert index.count("SELECT count(*) FROM cur WHERE digest IS NOT NULL") == 0
    index.close()


def test_content_digest_checks_the_announced_file(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"abc")
    st = f.stat()
    key = (st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    assert content_digest(str(f), key) is not None
    assert content_digest(str(f), (4, key[1], key[2])) is None
    link = tmp_path / "link"
    link.symlink_to(f)
    assert content_digest(str(link), key) is None  # never follows a symlink


def test_fingerprints_come_from_the_page_cache_unless_needed(tmp_path: Path) -> None:
    import hashlib

    f = tmp_path / "f"
    f.write_bytes(b"z" * 20000)
    fd = os.open(f, os.O_RDONLY)
    try:
        os.fsync(fd)
        key = stat_key(os.fstat(fd))
        expected = hashlib.blake2b(b"z" * 20000).digest()[:16]  # what borg list --format {blake2b} gives
        os.read(fd, 30000)  # cached now
        assert content_digest(str(f), key, cached_only=True) == expected
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)  # what borg does after reading a file
        assert content_digest(str(f), key, cached_only=True) is None  # never reads the disk for it
        assert content_digest(str(f), key) == expected  # a file the diff needs is read anyway
    finally:
        os.close(fd)
