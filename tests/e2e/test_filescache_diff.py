"""The files-cache diff against borg diff's ground truth, with real borg 1.4 and 1.2, over multi-run sequences."""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

import pytest
from helpers.borg import borg_binaries, make_repo
from helpers.filescache_job import CacheJob, Counts, Step

pytestmark = pytest.mark.slow


def _tree(src: Path, n: int = 30) -> None:
    for d in range(3):
        (src / f"d{d}").mkdir(parents=True, exist_ok=True)
        for i in range(n // 3):
            (src / f"d{d}" / f"f{i}").write_bytes(f"file {d}/{i}\n".encode() * (i + 1))


def _rewrite_same_size_keep_mtime(path: Path) -> None:
    st = path.stat()
    data = path.read_bytes()
    path.write_bytes(data[::-1] if data[::-1] != data else data.upper())
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def _check(step: Step, truth: Counts) -> None:
    """A files-cache step (a fallback's counts are borg diff's own, so only its method is asserted)."""
    assert step.method == "files-cache", step.method
    assert step.truth == truth, step.truth  # the sequence does what the test says
    assert asdict(step.counts) == asdict(truth), (step.counts, step.undecided)


@pytest.mark.parametrize("borg", borg_binaries())
def test_changes_of_every_kind_match_borg_diff_run_after_run(tmp_path: Path, borg: str) -> None:
    repo = make_repo(tmp_path, borg)
    src = tmp_path / "src"
    _tree(src)
    job = CacheJob(repo, tmp_path / "state" / "job", [src])
    first = job.run()
    assert first.method == "first" and first.counts.added == 30
    # nothing changed: the newest file of run 1 is read again (not in borg's cache) and still unchanged
    _check(job.run(), Counts(unchanged=30))
    # same-size rewrite with the mtime put back, touch only, chmod only, grown, removed, added
    _rewrite_same_size_keep_mtime(src / "d0" / "f3")
    os.utime(src / "d0" / "f4")
    (src / "d0" / "f5").chmod(0o600)
    with open(src / "d1" / "f0", "ab") as f:
        f.write(b"more\n")
    (src / "d1" / "f1").unlink()
    (src / "d2" / "new").write_bytes(b"new file\n")
    _check(job.run(), Counts(added=1, removed=1, modified=2, unchanged=27))
    # the newest file of the last run changes again, and a file is removed and re-added under its name
    (src / "d2" / "new").write_bytes(b"new content!\n")
    (src / "d1" / "f2").unlink()
    _check(job.run(), Counts(removed=1, modified=1, unchanged=28))
    # re-added while borg's cache still knows the name (M), as the newest file: nothing to pair it with, and
    # no previous name unmatched that it could be
    (src / "d1" / "f2").write_bytes(b"back again\n")
    _check(job.run(), Counts(added=1, unchanged=29))
    _check(job.run(), Counts(unchanged=30))


@pytest.mark.parametrize("borg", borg_binaries())
def test_hard_links_and_a_renamed_directory(tmp_path: Path, borg: str) -> None:
    repo = make_repo(tmp_path, borg)
    src = tmp_path / "src"
    _tree(src)
    os.link(src / "d0" / "f0", src / "d0" / "link")
    job = CacheJob(repo, tmp_path / "state" / "job", [src])
    assert job.run().counts.added == 31
    _check(job.run(), Counts(unchanged=31))
    (src / "d1").rename(src / "moved")
    _check(job.run(), Counts(added=10, removed=10, unchanged=21))


@pytest.mark.parametrize("borg", borg_binaries())
def test_two_jobs_sharing_the_repository_and_its_cache(tmp_path: Path, borg: str) -> None:
    repo = make_repo(tmp_path, borg)
    src = tmp_path / "src"
    _tree(src)
    a = CacheJob(repo, tmp_path / "state" / "a", [src])
    b = CacheJob(repo, tmp_path / "state" / "b", [src / "d0"])  # overlapping paths
    a.run()
    b.run()
    a.run()
    with open(src / "d0" / "f0", "ab") as f:
        f.write(b"grown\n")
    b.run()  # b backs the change up first: borg's cache then says U to job a
    _check(a.run(), Counts(modified=1, unchanged=29))


@pytest.mark.parametrize("borg", borg_binaries())
def test_a_deleted_borg_cache_and_a_suffix_fall_back_or_stay_exact(tmp_path: Path, borg: str) -> None:
    repo = make_repo(tmp_path, borg)
    src = tmp_path / "src"
    _tree(src)
    job = CacheJob(repo, tmp_path / "state" / "job", [src], env={"BORG_FILES_CACHE_SUFFIX": "job"})
    job.run()
    _rewrite_same_size_keep_mtime(src / "d2" / "f5")
    _check(job.run(), Counts(modified=1, unchanged=29))
    for cache in (repo.base_dir / ".cache" / "borg").glob("*/files*"):
        cache.unlink()
    _check(job.run(), Counts(unchanged=30))


@pytest.mark.parametrize("borg", borg_binaries())
def test_paths_excludes_a_directory_replaced_by_a_file_and_a_lost_state(tmp_path: Path, borg: str) -> None:
    import shutil

    repo = make_repo(tmp_path, borg)
    src, more = tmp_path / "src", tmp_path / "more"
    _tree(src)
    more.mkdir()
    (more / "m").write_bytes(b"m\n")
    job = CacheJob(repo, tmp_path / "state" / "job", [src])
    job.run()
    job.paths.append(more)  # a source path added
    job.extra += ["--exclude", str(src / "d2" / "f0")]  # and an exclude
    _check(job.run(), Counts(added=1, removed=1, unchanged=29))
    shutil.rmtree(src / "d0")
    (src / "d0").write_bytes(b"a file now\n")
    _check(job.run(), Counts(added=1, removed=10, unchanged=20))
    shutil.rmtree(job.state)
    step = job.run()
    assert step.method == "fallback: no previous snapshot" and step.truth == Counts(unchanged=21)
    _check(job.run(), Counts(unchanged=21))
