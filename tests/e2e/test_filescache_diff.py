"""The files-cache diff against borg diff's ground truth, with real borg 1.4 and 1.2, over multi-run sequences."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.borg import borg_binaries, make_repo
from helpers.filescache_job import (
    CacheJob,
    Counts,
    check,
    every_kind_of_change,
    hard_links_and_a_renamed_directory,
    rewrite_same_size_keep_mtime,
    tree,
)

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("borg", borg_binaries())
def test_changes_of_every_kind_match_borg_diff_run_after_run(tmp_path: Path, borg: str) -> None:
    repo = make_repo(tmp_path, borg)
    src = tmp_path / "src"
    tree(src)
    every_kind_of_change(CacheJob(repo, tmp_path / "state" / "job", [src]))


@pytest.mark.parametrize("borg", borg_binaries())
def test_hard_links_and_a_renamed_directory(tmp_path: Path, borg: str) -> None:
    repo = make_repo(tmp_path, borg)
    src = tmp_path / "src"
    tree(src)
    hard_links_and_a_renamed_directory(CacheJob(repo, tmp_path / "state" / "job", [src]))


@pytest.mark.parametrize("borg", borg_binaries())
def test_two_jobs_sharing_the_repository_and_its_cache(tmp_path: Path, borg: str) -> None:
    repo = make_repo(tmp_path, borg)
    src = tmp_path / "src"
    tree(src)
    a = CacheJob(repo, tmp_path / "state" / "a", [src])
    b = CacheJob(repo, tmp_path / "state" / "b", [src / "d0"])  # overlapping paths
    a.run()
    b.run()
    a.run()
    with open(src / "d0" / "f0", "ab") as f:
        f.write(b"grown\n")
    b.run()  # b backs the change up first: borg's cache then says U to job a
    check(a.run(), Counts(modified=1, unchanged=29))


@pytest.mark.parametrize("borg", borg_binaries())
def test_a_deleted_borg_cache_and_a_suffix_fall_back_or_stay_exact(tmp_path: Path, borg: str) -> None:
    repo = make_repo(tmp_path, borg)
    src = tmp_path / "src"
    tree(src)
    job = CacheJob(repo, tmp_path / "state" / "job", [src], env={"BORG_FILES_CACHE_SUFFIX": "job"})
    job.run()
    rewrite_same_size_keep_mtime(src / "d2" / "f5")
    check(job.run(), Counts(modified=1, unchanged=29))
    for cache in (repo.base_dir / ".cache" / "borg").glob("*/files*"):
        cache.unlink()
    check(job.run(), Counts(unchanged=30))


@pytest.mark.parametrize("borg", borg_binaries())
def test_paths_excludes_a_directory_replaced_by_a_file_and_a_lost_state(tmp_path: Path, borg: str) -> None:
    import shutil

    repo = make_repo(tmp_path, borg)
    src, more = tmp_path / "src", tmp_path / "more"
    tree(src)
    more.mkdir()
    (more / "m").write_bytes(b"m\n")
    job = CacheJob(repo, tmp_path / "state" / "job", [src])
    job.run()
    job.paths.append(more)  # a source path added
    job.extra += ["--exclude", str(src / "d2" / "f0")]  # and an exclude
    check(job.run(), Counts(added=1, removed=1, unchanged=29))
    shutil.rmtree(src / "d0")
    (src / "d0").write_bytes(b"a file now\n")
    check(job.run(), Counts(added=1, removed=10, unchanged=20))
    shutil.rmtree(job.state)
    step = job.run()
    assert step.method == "fallback: no previous snapshot" and step.truth == Counts(unchanged=21)
    check(job.run(), Counts(unchanged=21))
