"""The files-cache diff with borg 2.0.0b23's per-series cache (``filescache_v2``) against ``borg2 diff``'s
ground truth, over multi-run sequences, straight through the engine (``CacheJob2``); the same through
`borgwatch run` is tests/e2e/test_filescache_run_borg2.py."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from helpers.borg import VENV_BORG, make_repo, make_repo2, needs_borg2
from helpers.filescache_engine import (
    CacheJob,
    CacheJob2,
    Counts,
    check,
    every_kind_of_change,
    hard_links_and_a_renamed_directory,
)
from helpers.filescache_job import rewrite_same_size_keep_mtime, tree

pytestmark = [pytest.mark.slow, needs_borg2()]


def _job(tmp: Path, name: str = "job", **kw: object) -> CacheJob2:
    src = tmp / "src"
    if not src.exists():
        tree(src)
    return CacheJob2(make_repo2(tmp) if "repo" not in kw else kw.pop("repo"), tmp / "state" / name, [src],
                     **kw)  # type: ignore[arg-type]


def test_changes_of_every_kind_match_borg2_diff_run_after_run(tmp_path: Path) -> None:
    every_kind_of_change(_job(tmp_path))


def test_hard_links_and_a_renamed_directory(tmp_path: Path) -> None:
    hard_links_and_a_renamed_directory(_job(tmp_path))  # borg 2's nfiles counts both names, as the snapshot


def test_another_series_has_its_own_files_cache(tmp_path: Path) -> None:
    a = _job(tmp_path, "a")
    src = a.paths[0]
    b = CacheJob2(a.repo, tmp_path / "state" / "b", [src / "d0"], series="nas-db")  # overlapping paths
    a.run()
    b.run()
    a.run()
    with open(src / "d0" / "f0", "ab") as f:
        f.write(b"grown\n")
    b.run()  # another series has its own files cache: job a still sees the change itself
    check(a.run(), Counts(modified=1, unchanged=29))


@pytest.mark.parametrize("dialect", ["borg2", "borg-venv"])
def test_a_manual_create_in_the_jobs_own_series_memorizes_its_newest_file(tmp_path: Path, dialect: str) -> None:
    if dialect == "borg2":
        job: CacheJob = _job(tmp_path)
        manual = [job.repo.borg, "create", "-r", str(job.repo.path), job.series, str(job.paths[0])]
    else:
        tree(tmp_path / "src")
        job = CacheJob(make_repo(tmp_path, VENV_BORG), tmp_path / "state" / "job", [tmp_path / "src"])
        manual = [job.repo.borg, "create", f"{job.repo.path}::manual", str(job.paths[0])]
    src = job.paths[0]
    job.run()
    with open(src / "d0" / "f0", "ab") as f:
        f.write(b"grown\n")
    check(job.run(), Counts(modified=1, unchanged=29))  # d0/f0 is this run's newest: borg did not memorize it
    rewrite_same_size_keep_mtime(src / "d1" / "f4")
    subprocess.run(manual, env=job.repo.env(), check=True, capture_output=True)  # memorizes d0/f0 (not newest)
    # d0/f0 is a key-only U name now: the snapshot cannot pair it with its previous (listed) name, and says
    # so — the run falls back to borg diff instead of counting it added and removed
    step = job.run()
    assert step.method.startswith("fallback: a file the previous run did not memorize"), step.method
    assert step.truth == Counts(modified=1, unchanged=29), step.truth


def test_a_deleted_borg_cache_and_a_suffix_fall_back_or_stay_exact(tmp_path: Path) -> None:
    job = _job(tmp_path, env={"BORG_FILES_CACHE_SUFFIX": "job"})
    src = job.paths[0]
    job.run()
    rewrite_same_size_keep_mtime(src / "d2" / "f5")
    check(job.run(), Counts(modified=1, unchanged=29))
    caches = list((job.repo.base_dir / ".cache" / "borg").glob("*/files.job"))
    assert len(caches) == 1
    caches[0].unlink()  # borg 2 rebuilds the series' cache from its last archive
    check(job.run(), Counts(unchanged=30))
    caches[0].unlink()
    (src / "d0" / "f1").unlink()  # the rebuilt cache still holds it at age 0: the count must not vouch
    step = job.run()
    assert step.method.startswith("fallback: borg's files cache and listing account for 30 files, borg "
                                  "archived 29"), step.method
    assert step.truth == Counts(removed=1, unchanged=29)
    assert job.run().method == "fallback: no previous snapshot"  # the doubted snapshot is no baseline
    check(job.run(), Counts(unchanged=29))


def test_paths_excludes_a_directory_replaced_by_a_file_and_a_lost_state(tmp_path: Path) -> None:
    job = _job(tmp_path)
    src, more = job.paths[0], tmp_path / "more"
    more.mkdir()
    (more / "m").write_bytes(b"m\n")
    job.run()
    job.paths.append(more)  # a source path added
    job.extra += ["--exclude", str(src / "d2" / "f0")]  # and an exclude
    check(job.run(), Counts(added=1, removed=1, unchanged=29))
    shutil.rmtree(src / "d0")
    (src / "d0").write_bytes(b"a file now\n")  # borg2 diff says "changed type" d -> -
    check(job.run(), Counts(added=1, removed=10, unchanged=20))
    shutil.rmtree(job.state)
    step = job.run()
    assert step.method == "fallback: no previous snapshot" and step.truth == Counts(unchanged=21)
    check(job.run(), Counts(unchanged=21))
