"""FilesCacheRun's diff: which rules it lets decide, by the time the previous snapshot's cmtime is."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

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
