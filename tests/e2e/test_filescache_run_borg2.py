"""`borgwatch run`'s dataset diff with the real borg 2.0.0b23 against ``borg2 diff --json-lines``' ground truth,
over multi-run sequences: the counts, and which method made them (files_cache from the series' own files cache,
or the borg_diff fallback between ``aid:`` archives, never a guess)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from helpers.borg import make_repo2, needs_borg2
from helpers.filescache_job import (
    Counts,
    Job,
    Jobs,
    check,
    every_kind_of_change,
    grow,
    rewrite_same_size_keep_mtime,
    tree,
)

pytestmark = [pytest.mark.slow, needs_borg2()]


def _job(tmp_path: Path, **environment: str) -> tuple[Path, Jobs]:
    """One job ("job") backing up a fresh 30-file tree into a borg 2 repository."""
    src = tmp_path / "src"
    tree(src)
    return src, Jobs(make_repo2(tmp_path), tmp_path / "bw", {"job": Job([src], environment=environment)})


def test_changes_of_every_kind_match_borg2_diff_run_after_run(tmp_path: Path) -> None:
    src, jobs = _job(tmp_path)
    every_kind_of_change(jobs, src)
    assert jobs.run("job").archive.startswith("aid:")  # archives of the series are told apart by id


def test_hard_links_and_a_renamed_directory(tmp_path: Path) -> None:
    src, jobs = _job(tmp_path)
    os.link(src / "d0" / "f0", src / "d0" / "link")
    first = jobs.run("job")  # borg 2's nfiles counts both names, as the snapshot does
    assert (first.method, first.counts) == ("first_backup", Counts(added=31)), first
    time.sleep(1.1)
    check(jobs, jobs.run("job"), Counts(unchanged=31))
    (src / "d1").rename(src / "moved")
    check(jobs, jobs.run("job"), Counts(added=10, removed=10, unchanged=21))
    grow(src / "d0" / "link")  # one inode, two names: both modified
    check(jobs, jobs.run("job"), Counts(modified=2, unchanged=29))


def test_a_deleted_files_cache_falls_back_to_borg2_diff_then_recovers(tmp_path: Path) -> None:
    src, jobs = _job(tmp_path, BORG_FILES_CACHE_SUFFIX="job")
    jobs.run("job")
    time.sleep(1.1)
    rewrite_same_size_keep_mtime(src / "d2" / "f5")
    check(jobs, jobs.run("job"), Counts(modified=1, unchanged=29))
    caches = list((jobs.repo.base_dir / ".cache" / "borg").glob("*/files.job"))
    assert len(caches) == 1, "the suffix names the series' files cache"
    caches[0].unlink()
    (src / "d0" / "f1").unlink()
    # borg 2 rebuilds the cache from the series' last archive: the removed file stays at age 0, the count
    # against nfiles cannot vouch, and one full borg diff between the two aid: archives counts instead
    fallback = jobs.run("job")
    check(jobs, fallback, Counts(removed=1, unchanged=29), method="borg_diff")
    # no snapshot now: the previous archive is found with repo-list (by id: the series shares one name)
    listed = jobs.run("job")
    check(jobs, listed, Counts(unchanged=29), method="borg_diff", previous=fallback.archive)
    grow(src / "d1" / "f3")
    check(jobs, jobs.run("job"), Counts(modified=1, unchanged=28), previous=listed.archive)


def test_a_lost_state_and_another_series_in_the_repository(tmp_path: Path) -> None:
    src, other = tmp_path / "src", tmp_path / "other"
    tree(src)
    tree(other, 6)
    jobs = Jobs(make_repo2(tmp_path), tmp_path / "bw", {"job": Job([src]), "db": Job([other])})
    first = jobs.run("job")
    assert jobs.run("db").method == "first_backup"  # another series: not the job's previous archive
    time.sleep(1.1)
    (src / "d2" / "added").write_bytes(b"added\n")
    (jobs.state_dir / "job.snapshot.db").unlink()
    check(jobs, jobs.run("job"), Counts(added=1, unchanged=30), method="borg_diff", previous=first.archive)
