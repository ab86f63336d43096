"""The dataset index on its own (no borg): set operations and the content-verdict candidates."""

from __future__ import annotations

import os
from pathlib import Path

from borgwatch.borg.paths import archive_path
from borgwatch.dataset.fingerprint import Fingerprinter, content_digest
from borgwatch.dataset.index import DatasetIndex


def run(index_path: Path, statuses: dict[Path, str], previous: str | None, changed: tuple[str, ...] = ()):  # noqa: ANN201
    index = DatasetIndex(index_path, archive_path)
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
    index = DatasetIndex(db, archive_path)
    index.record("A", str(tmp_path / "other"))
    index.abandon()
    index.close()
    index = DatasetIndex(db, archive_path)
    assert index.previous_archive() == "a1" and index.count("SELECT count(*) FROM prev") == 1
    index.close()


def test_archive_path() -> None:
    assert archive_path("/home/x") == "home/x" and archive_path("./rel/y") == "rel/y"


def test_a_path_listed_twice_counts_once_with_its_last_status(tmp_path: Path) -> None:
    f = tmp_path / "grows"
    f.write_bytes(b"1")
    db = tmp_path / "idx.db"
    index = DatasetIndex(db, archive_path)
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

    def one_run(statuses: dict[Path, str], previous: str | None, max_file: int = 1 << 20,
                from_borg_list: dict[Path, bytes] | None = None):  # noqa: ANN202
        index = DatasetIndex(db, archive_path)
        fingerprints = Fingerprinter(max_file=max_file)
        index.start_fingerprints(fingerprints)
        for path, status in statuses.items():
            index.record(status, str(path))
        index.finish_recording()
        diff = index.evaluate(has_previous=previous is not None)
        wanted = index.prev_digests_wanted(1 << 20, 100)
        if from_borg_list:  # what borg list --format {blake2b} says of the previous archive
            index.store_prev_digests((str(p).lstrip("/"), blake(c)) for p, c in from_borg_list.items())
            diff = index.evaluate(has_previous=True)
        paths = sorted(index.candidate_paths())
        index.resolve_by_content(diff, [])
        index.promote("a2" if previous else "a1")
        index.close()
        return diff, wanted, paths, fingerprints.reserved

    # a first backup reads nothing a second time
    _, _, _, spent = one_run({touched: "A", rewritten: "A", big: "A"}, None)
    assert spent == 0
    os.utime(touched, ns=(5, 5))
    rewritten.write_bytes(b"b" * 100)
    big.write_bytes(b"c" * 200)
    # same size, metadata moved: these are read; the previous side comes from borg list, except 'big'
    # (over the size limit here: no fingerprint, left for borg diff)
    diff, wanted, paths, spent = one_run({touched: "M", rewritten: "M", big: "M"}, "a1", max_file=150,
                                         from_borg_list={touched: b"a" * 100, rewritten: b"a" * 100})
    assert spent == 200 and sorted(wanted) == sorted([str(touched), str(rewritten)])
    assert paths == [str(big)]
    assert (diff.modified, diff.unchanged, diff.verified) == (1, 2, 1)  # borg (here: none) judged big
    # next time both sides are in the index: no borg at all
    os.utime(touched, ns=(7, 7))
    rewritten.write_bytes(b"b" * 100)  # same content again: only metadata moved
    diff, wanted, paths, _ = one_run({touched: "M", rewritten: "M", big: "U"}, "a2")
    assert wanted == [] and paths == [] and (diff.modified, diff.unchanged, diff.verified) == (0, 3, 0)
    rewritten.write_bytes(b"d" * 100)
    diff, wanted, paths, _ = one_run({touched: "U", rewritten: "M", big: "U"}, "a2")
    assert wanted == [] and paths == [] and (diff.modified, diff.unchanged) == (1, 2)


def blake(content: bytes) -> bytes:
    """As borg list's {blake2b}, cut like borgwatch's fingerprints."""
    import hashlib

    return hashlib.blake2b(content).digest()[:16]


def test_a_file_that_moves_after_it_was_announced_gets_no_fingerprint(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"old")
    db = tmp_path / "idx.db"
    run(db, {f: "A"}, None)
    for moves in (False, True):
        os.utime(f, ns=(9, 9 + moves))  # same size, metadata moved: a candidate
        index = DatasetIndex(db, archive_path)
        fingerprints = Fingerprinter()
        index.start_fingerprints(fingerprints)
        index.record("M", str(f))
        fingerprints.close()  # hashed
        if moves:
            f.write_bytes(b"new")  # changed after borg announced (and maybe read) it
        index.finish_recording()
        assert index.count("SELECT count(*) FROM cur WHERE digest IS NOT NULL") == (0 if moves else 1)
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


def test_a_damaged_index_is_started_afresh_and_one_that_cannot_be_says_why(tmp_path: Path) -> None:
    from borgwatch.dataset.index import open_index
    db = tmp_path / "home.files.db"
    db.write_bytes(os.urandom(5000))
    index, note = open_index(db)
    assert index is not None and index.previous_archive() is None and "started afresh" in note
    index.close()
    victim = tmp_path / "victim"
    victim.write_text("keep")
    db.unlink()
    db.symlink_to(victim)  # planted: SQLite must not write through it
    index, note = open_index(db)
    assert index is not None and "symbolic link" in note and victim.read_text() == "keep"
    index.close()
    db.unlink()
    db.mkdir()
    index, note = open_index(db)
    assert index is None and "is a directory" in note and str(db) in note
