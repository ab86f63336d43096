"""FilesCacheRun's diff: which rules it lets decide, by the time the previous snapshot's cmtime is."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from borgwatch.dataset.snapshot import Snapshot, SnapshotDiff
from borgwatch.run.filesdiff import CMTIME_KEY, STARTED_KEY, FilesCacheRun


@pytest.mark.parametrize(("previous_mode", "expected"), [("ctime", SnapshotDiff(unchanged=1)),
                                                         ("mtime", SnapshotDiff(undecided=1))])
def test_the_ctime_rules_need_ctime_on_both_sides(tmp_path: Path, previous_mode: str,
                                                  expected: SnapshotDiff) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"content\n")
    st = os.lstat(f)
    baseline = tmp_path / "job.snapshot.db"
    prev = Snapshot.create(baseline)  # f was the newest file: listed, not memorized
    prev.add_listed("A", os.fsencode(f), st, st.st_ctime_ns)
    prev.add_cached([])
    prev.set_meta(STARTED_KEY, str(st.st_ctime_ns + 2_000_000_000))
    prev.set_meta(CMTIME_KEY, previous_mode)
    prev.seal()
    prev.close()
    rec = FilesCacheRun(baseline)  # this run memorizes f, unchanged
    rec.record("A", str(f))
    rec.snapshot.add_cached([(b"k" * 16, hashlib.blake2b(b"content\n", digest_size=16).digest(), st.st_ino,
                              st.st_size, st.st_ctime_ns)])
    rec.snapshot.seal()
    found = rec.diff()
    rec.abandon()
    assert found == expected
