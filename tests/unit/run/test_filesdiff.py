"""FilesCacheRun's diff: which rules it lets decide, by the time the previous snapshot's cmtime is."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from borgwatch.dataset import snapshot
from borgwatch.dataset.snapshot import Snapshot, SnapshotDiff
from borgwatch.run.filesdiff import CLOCK_KEY, CMTIME_KEY, STARTED_KEY, FilesCacheRun


@pytest.mark.parametrize(("previous_mode", "expected"), [("ctime", SnapshotDiff(unchanged=1)),
                                                         ("mtime", SnapshotDiff(undecided=1))])
def test_the_ctime_rules_need_ctime_on_both_sides(tmp_path: Path, previous_mode: str,
                                                  expected: SnapshotDiff) -> None:
    assert _newest_unchanged(tmp_path, previous_mode, 2_000_000_000, "") == expected


@pytest.mark.parametrize(("clock", "expected"), [("local", SnapshotDiff(unchanged=1)),
                                                 ("", SnapshotDiff(undecided=1))])
def test_a_file_written_a_tenth_of_a_second_before_the_run_is_proven_on_a_local_clock(
        tmp_path: Path, clock: str, expected: SnapshotDiff) -> None:
    # the previous run started 0.1 s after the write: past the fine margin, within the coarse one
    assert _newest_unchanged(tmp_path, "ctime", 100_000_000, clock) == expected


def _newest_unchanged(tmp_path: Path, previous_mode: str, started_after_ns: int, clock: str) -> SnapshotDiff | None:
    """The previous run's newest file (listed, not memorized), memorized unchanged by this run: its diff."""
    f = tmp_path / "f"
    f.write_bytes(b"content\n")
    st = os.lstat(f)
    baseline = tmp_path / "job.snapshot.db"
    prev = Snapshot.create(baseline)  # f was the newest file: listed, not memorized
    prev.add_listed("A", os.fsencode(f), st, st.st_ctime_ns)
    prev.add_cached([])
    prev.set_meta(STARTED_KEY, str(st.st_ctime_ns + started_after_ns))
    prev.set_meta(CMTIME_KEY, previous_mode)
    prev.set_meta(CLOCK_KEY, clock)
    prev.seal()
    prev.close()
    rec = FilesCacheRun(baseline)  # this run memorizes f, unchanged
    rec.record("A", str(f))
    rec.snapshot.add_cached([(b"k" * 16, hashlib.blake2b(b"content\n", digest_size=16).digest(), st.st_ino,
                              st.st_size, st.st_ctime_ns)])
    rec.snapshot.seal()
    found = rec.diff()
    rec.abandon()
    return found


@pytest.mark.parametrize("batch", [1, snapshot.BATCH])
def test_a_file_borg_announced_then_failed_to_read_is_no_name_of_the_archive(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, batch: int) -> None:
    # borg prints A/M/h once the file is open, before reading it; a read error is a later E line for the same
    # path, and the file is not archived (nor counted in nfiles): the snapshot must not account for it
    monkeypatch.setattr(snapshot, "BATCH", batch)  # 1: the listed rows are in the database when E comes
    kept, failed = tmp_path / "kept", tmp_path / "failed"
    kept.write_bytes(b"kept\n")
    failed.write_bytes(b"failed\n")
    os.link(kept, tmp_path / "link")
    st = os.lstat(kept)
    rec = FilesCacheRun(tmp_path / "job.snapshot.db")
    for status, path in (("A", kept), ("A", failed), ("h", tmp_path / "link"), ("E", failed),
                         ("E", tmp_path / "link"), ("E", tmp_path / "never-listed")):
        rec.record(status, str(path))
    rec.snapshot.add_cached([(b"k" * 16, b"d" * 16, st.st_ino, st.st_size, st.st_ctime_ns)])
    rec.snapshot.seal()
    assert (rec.snapshot.files(), rec.snapshot.followers(), rec.followers, rec.errors) == (1, 0, 0, 3)
    rec.abandon()
