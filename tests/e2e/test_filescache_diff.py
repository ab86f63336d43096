"""`borgwatch run`'s dataset diff against borg diff's ground truth, with real borg 1.4 and 1.2, over multi-run
sequences: the counts, and which method made them (files_cache, or the borg_diff fallback, never a guess)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers.borg import borg_binaries, make_repo
from helpers.filescache_job import (
    Counts,
    Job,
    Jobs,
    Watched,
    check,
    every_kind_of_change,
    grow,
    rewrite_same_size_keep_mtime,
    tree,
)
from helpers.workspace import BORGWATCH

from borgwatch.dataset.clock import before, local_clock
from borgwatch.dataset.snapshot import Snapshot
from borgwatch.run.filesdiff import CLOCK_KEY, STARTED_KEY

pytestmark = pytest.mark.slow


def _jobs(tmp_path: Path, borg: str, **jobs: Job) -> Jobs:
    return Jobs(make_repo(tmp_path, borg), tmp_path / "bw", dict(jobs))


def _job(tmp_path: Path, borg: str, extra_args: tuple[str, ...] = (), **environment: str) -> tuple[Path, Jobs]:
    """One job ("job") backing up a fresh 30-file tree."""
    src = tmp_path / "src"
    tree(src)
    return src, _jobs(tmp_path, borg, job=Job([src], list(extra_args), environment))


@pytest.mark.parametrize("borg", borg_binaries())
def test_changes_of_every_kind_match_borg_diff_run_after_run(tmp_path: Path, borg: str) -> None:
    src, jobs = _job(tmp_path, borg)
    every_kind_of_change(jobs, src)


@pytest.mark.parametrize("borg", borg_binaries())
def test_hard_links_and_a_renamed_directory(tmp_path: Path, borg: str) -> None:
    src = tmp_path / "src"
    tree(src)
    os.link(src / "d0" / "f0", src / "d0" / "link")
    jobs = _jobs(tmp_path, borg, job=Job([src]))
    assert jobs.run("job").counts.added == 31
    check(jobs, jobs.run("job"), Counts(unchanged=31))
    (src / "d1").rename(src / "moved")
    check(jobs, jobs.run("job"), Counts(added=10, removed=10, unchanged=21))
    grow(src / "d0" / "link")  # one inode, two names: both modified
    check(jobs, jobs.run("job"), Counts(modified=2, unchanged=29))


@pytest.mark.parametrize("borg", borg_binaries())
def test_two_jobs_sharing_the_repository_overlapping_and_disjoint(tmp_path: Path, borg: str) -> None:
    src, other = tmp_path / "src", tmp_path / "other"
    tree(src)
    tree(other, 6)
    jobs = _jobs(tmp_path, borg, a=Job([src]), b=Job([src / "d0"]), c=Job([other]))
    for name in ("a", "b", "c", "a", "c"):
        assert jobs.run(name).rc == 0
    time.sleep(1.1)
    grow(src / "d0" / "f0", b"grown\n")
    grow(other / "d1" / "f1")
    # b backs the change up first: borg's shared cache then says U to job a, whose snapshot still knows better
    check(jobs, jobs.run("b"), Counts(modified=1, unchanged=9), method="files_cache")
    check(jobs, jobs.run("c"), Counts(modified=1, unchanged=5))  # disjoint: a and b never touched its files
    step = jobs.run("a")
    # b's run memorized the file a's last run could not (its newest): then only borg diff can pair it
    check(jobs, step, Counts(modified=1, unchanged=29), method=step.method if step.method == "borg_diff"
           else "files_cache")


@pytest.mark.parametrize("borg", borg_binaries())
def test_another_borg_creating_into_the_repository_between_runs_cannot_fool_the_diff(tmp_path: Path,
                                                                                      borg: str) -> None:
    src, other = tmp_path / "src", tmp_path / "other"
    tree(src)
    tree(other, 6)
    jobs = _jobs(tmp_path, borg, job=Job([src]))
    first = jobs.run("job")
    time.sleep(1.1)
    jobs.run("job")
    # a manual create of other files into the same repository: the job's files keep their cache entries
    jobs.repo.create("manual-other", other)
    rewrite_same_size_keep_mtime(src / "d2" / "f4")
    check(jobs, jobs.run("job"), Counts(modified=1, unchanged=29), method="files_cache")
    # borgwatch exec of a create of the job's own files: borg's cache moves on to the new content
    time.sleep(1.1)
    grow(src / "d1" / "f3")
    jobs.write()
    done = subprocess.run([BORGWATCH, "exec", "manual", "-c", str(jobs.config), "--", jobs.repo.borg, "create",
                           f"{jobs.repo.path}::by-hand", str(src)], env=jobs.repo.env(), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    step = jobs.run("job")
    assert step.previous != "by-hand" and step.previous != first.archive
    # whichever method: the counts are borg diff's against the job's own previous run, where f3 was shorter
    check(jobs, step, Counts(modified=1, unchanged=29), method=step.method if step.method == "borg_diff"
           else "files_cache")


@pytest.mark.parametrize("borg", borg_binaries())
def test_a_deleted_borg_cache_and_a_suffix_stay_exact(tmp_path: Path, borg: str) -> None:
    src, jobs = _job(tmp_path, borg, BORG_FILES_CACHE_SUFFIX="sfx7q")
    jobs.run("job")
    time.sleep(1.1)
    rewrite_same_size_keep_mtime(src / "d2" / "f5")
    check(jobs, jobs.run("job"), Counts(modified=1, unchanged=29))
    caches = list((jobs.repo.base_dir / ".cache" / "borg").glob("*/files.sfx7q"))
    assert caches, "the suffix names borg's files cache"
    for cache in (jobs.repo.base_dir / ".cache" / "borg").glob("*/files*"):
        cache.unlink()
    check(jobs, jobs.run("job"), Counts(unchanged=30))


@pytest.mark.parametrize("borg", borg_binaries())
def test_paths_excludes_a_directory_replaced_by_a_file_and_a_lost_state(tmp_path: Path, borg: str) -> None:
    src, more = tmp_path / "src", tmp_path / "more"
    tree(src)
    more.mkdir()
    (more / "m").write_bytes(b"m\n")
    jobs = _jobs(tmp_path, borg, job=Job([src]))
    jobs.run("job")
    time.sleep(1.1)
    jobs.jobs["job"] = Job([src, more], ["--exclude", str(src / "d2" / "f0")])  # a source path and an exclude
    check(jobs, jobs.run("job"), Counts(added=1, removed=1, unchanged=29))
    shutil.rmtree(src / "d0")
    (src / "d0").write_bytes(b"a file now\n")
    check(jobs, jobs.run("job"), Counts(added=1, removed=10, unchanged=20))
    shutil.rmtree(jobs.state_dir)
    before = jobs.run("job")
    check(jobs, before, Counts(unchanged=21), method="borg_diff")  # no snapshot: one full borg diff
    check(jobs, jobs.run("job"), Counts(unchanged=21), previous=before.archive)


@pytest.mark.parametrize("borg", borg_binaries())
def test_files_cache_disabled_falls_back_to_borg_diff_every_run(tmp_path: Path, borg: str) -> None:
    src, jobs = _job(tmp_path, borg, ("--files-cache=disabled",))
    assert jobs.run("job").method == "first_backup"
    rewrite_same_size_keep_mtime(src / "d0" / "f1")
    check(jobs, jobs.run("job"), Counts(modified=1, unchanged=29), method="borg_diff")
    check(jobs, jobs.run("job"), Counts(unchanged=30), method="borg_diff")


@pytest.mark.parametrize("borg", borg_binaries())
def test_a_failed_create_then_a_good_one_compares_with_the_last_good_archive(tmp_path: Path, borg: str) -> None:
    src, jobs = _job(tmp_path, borg)
    good = jobs.run("job")
    time.sleep(1.1)
    grow(src / "d0" / "f2")
    moved = jobs.repo.path.with_name("repo-away")
    jobs.repo.path.rename(moved)  # the repository is unreachable: borg create fails
    failed = jobs.run("job")
    moved.rename(jobs.repo.path)
    assert failed.rc != 0 and failed.method == "" and not (jobs.state_dir / "job.snapshot.db.new").exists()
    (src / "d1" / "f1").unlink()
    check(jobs, jobs.run("job"), Counts(modified=1, removed=1, unchanged=28), previous=good.archive)


def _slowtree(src: Path, megabytes: int = 24) -> None:
    big = src / "big"
    big.mkdir(parents=True)
    for i in range(megabytes // 8):
        (big / f"r{i}.bin").write_bytes(os.urandom(8 << 20))


@pytest.mark.parametrize("borg", borg_binaries())
def test_an_interrupted_create_with_a_checkpoint_then_a_good_one(tmp_path: Path, borg: str) -> None:
    src, jobs = _job(tmp_path, borg)
    good = jobs.run("job")
    _slowtree(src)
    time.sleep(1.1)
    rewrite_same_size_keep_mtime(src / "d1" / "f4")
    jobs.jobs["job"] = Job([src], ["--checkpoint-interval", "1", "--compression", "lzma,9"])
    proc = jobs.popen("job")
    time.sleep(6)  # borg reads the big files (lzma,9: seconds each) and saves a checkpoint every second
    assert proc.poll() is None, "the backup ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=120)
    assert _checkpoints(jobs), "borg saved no checkpoint (nor its files cache)"
    jobs.jobs["job"] = Job([src])
    time.sleep(1.1)
    grow(src / "d2" / "f2")
    step = jobs.run("job")
    check(jobs, step, Counts(added=3, modified=2, unchanged=28), previous=good.archive,
           method=step.method if step.method == "borg_diff" else "files_cache")


def _checkpoints(jobs: Jobs) -> list[str]:
    out = jobs.repo.borg_run("list", "--consider-checkpoints", "--short", str(jobs.repo.path), check=False).stdout
    return [name for name in out.split() if ".checkpoint" in name]


@pytest.mark.parametrize("borg", borg_binaries())
def test_files_written_during_the_backup(tmp_path: Path, borg: str) -> None:
    src = tmp_path / "src"
    tree(src)
    _slowtree(src, 16)
    jobs = _jobs(tmp_path, borg, job=Job([src], ["--compression", "lzma,6"]))
    jobs.run("job")
    stop = threading.Event()

    def write() -> None:  # a log appended to while borg reads the tree, and files appearing
        i = 0
        while not stop.is_set():
            grow(src / "d0" / "live.log", b"x" * 4096)
            if i % 20 == 0:
                (src / "d1" / f"during-{i}").write_bytes(b"%d" % i)
            i += 1
            time.sleep(0.01)

    baseline = None
    for runs in range(1, 7):  # at least two runs while files change, until one leaves a baseline
        writer = threading.Thread(target=write)
        writer.start()
        try:
            step = jobs.run("job")
        finally:
            stop.set()
            writer.join()
        stop.clear()
        # the files changed while borg read them: whatever borg archived, the counts are borg diff's
        check(jobs, step, None, method=step.method if step.method == "borg_diff" else "files_cache", warned=True)
        baseline = Snapshot.open(jobs.state_dir / "job.snapshot.db")
        if baseline is None:
            # a file borg memorized and the writer changed before borgwatch's lstat of its line no longer
            # matches its cache entry: the snapshot does not reconcile, so it is no baseline (and says why)
            assert "account for" in step.diff_note, step
        elif runs >= 2:
            break
    assert baseline is not None, "no run while files changed left a snapshot that reconciles"
    status, digest, own = baseline.db.execute("SELECT status, digest, own FROM listed WHERE path = ?",
                                              (os.fsencode(src / "d0" / "live.log"),)).fetchone()
    baseline.close()
    time.sleep(1.1)
    step, commands = Watched(jobs, only_create=False).run()
    check(jobs, step, None)  # quiet again: the method itself, exact
    # the log written while borg read it (C), or after it did: no digest proves what borg archived, borg judges
    assert digest is not None or (own is None and "diff" in commands), (status, commands)


@pytest.mark.parametrize("borg", borg_binaries())
def test_a_file_borg_announces_then_cannot_read_is_not_counted(tmp_path: Path, borg: str) -> None:
    src = tmp_path / "src"
    tree(src)
    # a regular file that opens and whose first read fails (EIO): borg prints "A", then "E", and archives
    # neither it nor the count of it; borgwatch's snapshot must still reconcile (no fallback)
    jobs = _jobs(tmp_path, borg, job=Job([src, Path("/proc/self/mem")]))
    first = jobs.run("job")
    assert (first.method, first.counts.added) == ("first_backup", 30), first
    time.sleep(1.1)
    grow(src / "d0" / "f1")
    for truth in (Counts(modified=1, unchanged=29), Counts(unchanged=30)):
        step = jobs.run("job")
        check(jobs, step, truth, warned=True, warning="Input/output error")
        assert step.rc != 0 and not step.diff_note, step


@pytest.mark.parametrize("borg", borg_binaries())
def test_the_normal_path_runs_no_borg_beyond_create(tmp_path: Path, borg: str) -> None:
    src, jobs = _job(tmp_path, borg)
    time.sleep(1.1)
    jobs.run("job")
    watched = Watched(jobs)
    time.sleep(1.1)
    steps = [watched.run()]  # nothing changed
    rewrite_same_size_keep_mtime(src / "d0" / "f2")
    os.utime(src / "d0" / "f3")
    (src / "d1" / "f3").chmod(0o600)
    grow(src / "d2" / "f1")
    (src / "d2" / "added").write_bytes(b"added\n")
    time.sleep(1.1)
    steps.append(watched.run())
    time.sleep(1.1)
    steps.append(watched.run())
    for (step, commands), truth in zip(steps, (Counts(unchanged=30), Counts(added=1, modified=2, unchanged=28),
                                               Counts(unchanged=31)), strict=True):
        assert commands == ["create"], commands
        check(jobs, step, truth)


def _newest_last(src: Path, newest: Path, change: Callable[[Path], None], gap: float = 1.1) -> None:
    """Change ``newest`` after everything else, so that it is the file borg does not memorize; then wait out
    the cmtime margin (the coarse one by default), as a file written a while before the backup."""
    change(newest)
    time.sleep(gap)


@pytest.mark.parametrize("borg", borg_binaries())
def test_the_newest_file_changing_every_run_needs_no_borg_diff(tmp_path: Path, borg: str) -> None:
    """Written a fifth of a second before each run: past the fine margin of a local filesystem's clock (where
    the test's tmp dir is elsewhere, an overlay or NFS, the coarse margin is waited out instead)."""
    src, jobs = _job(tmp_path, borg)
    gap = 0.2 if local_clock([os.lstat(src).st_dev]) else 1.1
    newest = src / "d2" / "newest"
    _newest_last(src, newest, lambda p: p.write_bytes(b"newest, first\n"))
    first = jobs.run("job")  # asks borg list whether the job has archives
    assert (first.method, first.counts) == ("first_backup", Counts(added=31))
    watched = Watched(jobs)
    steps = []
    kinds: list[tuple[Callable[[Path], None], Counts]] = [
        (lambda p: None, Counts(unchanged=31)),  # the same stat as last run
        (lambda p: p.write_bytes(p.read_bytes().upper()), Counts(modified=1, unchanged=30)),  # same size
        (lambda p: grow(p), Counts(modified=1, unchanged=30)),  # another size
        (rewrite_same_size_keep_mtime, Counts(modified=1, unchanged=30)),  # same size, mtime put back
        (lambda p: p.chmod(0o600), Counts(unchanged=31)),  # ctime moved, the content did not
        (lambda p: None, Counts(unchanged=31)),
    ]
    for change, truth in kinds:
        if truth.modified:  # a memorized file changes too (before the newest one: it stays the newest)
            grow(src / "d0" / "f1", b"more\n")
        _newest_last(src, newest, change, gap)
        steps.append(watched.run())
    # a file removed, and the newest one added: borg's older cache entry proves the removed name is another
    (src / "d1" / "f5").unlink()
    _newest_last(src, src / "d1" / "added", lambda p: p.write_bytes(b"added last\n"), gap)
    kinds.append((lambda p: None, Counts(added=1, removed=1, unchanged=30)))
    steps.append(watched.run())
    for n, ((step, commands), (_, truth)) in enumerate(zip(steps, kinds, strict=True)):
        if truth.modified:
            truth = Counts(truth.added, truth.removed, truth.modified + 1, truth.unchanged - 1)  # d0/f1
        assert commands == ["create"], (n, commands, truth)
        check(jobs, step, truth)


@pytest.mark.parametrize("borg", borg_binaries())
def test_a_hard_link_farm_is_decided_without_borg_diff(tmp_path: Path, borg: str) -> None:
    src = tmp_path / "src"
    tree(src)
    farm = src / "farm"
    farm.mkdir()
    for i in range(600):  # 2400 names of 600 inodes: 1800 followers
        (farm / f"i{i}-0").write_bytes(b"inode %d\n" % i)
        for n in range(1, 4):
            os.link(farm / f"i{i}-0", farm / f"i{i}-{n}")
    time.sleep(1.1)
    jobs = _jobs(tmp_path, borg, job=Job([src]))
    assert jobs.run("job").counts == Counts(added=2430)
    watched = Watched(jobs)
    time.sleep(1.1)
    steps = [watched.run()]
    for i in range(0, 10, 2):
        grow(farm / f"i{i}-0")  # every name of the inode: another size
        (farm / f"i{i + 1}-2").write_bytes(b"INODE %d\n" % (i + 1))  # through a follower: the same size
    _newest_last(src, src / "d0" / "new", lambda p: p.write_bytes(b"new\n"))
    steps.append(watched.run())
    (src / "d1" / "f1").unlink()
    (farm / "i42-3").write_bytes(b"INODE 42\n")
    _newest_last(src, src / "d0" / "newer", lambda p: p.write_bytes(b"newer\n"))
    steps.append(watched.run())
    truths = (Counts(unchanged=2430), Counts(added=1, modified=40, unchanged=2390),
              Counts(added=1, removed=1, modified=4, unchanged=2426))
    for (step, commands), truth in zip(steps, truths, strict=True):
        assert commands == ["create"], (commands, truth)
        check(jobs, step, truth)


def _digests(jobs: Jobs, path: Path) -> tuple[bool, bool]:
    """(whether the job's last run proved ``path`` older than its start, whether it kept a digest of it)."""
    baseline = Snapshot.open(jobs.state_dir / "job.snapshot.db")
    assert baseline is not None
    try:
        cmtime, digest, own = baseline.db.execute("SELECT cmtime, digest, own FROM listed WHERE path = ?",
                                                  (os.fsencode(path),)).fetchone()
        bounds = before(int(baseline.meta(STARTED_KEY) or 0), baseline.meta(CLOCK_KEY) == "local")
        return bounds.proves(cmtime), (digest or own) is not None
    finally:
        baseline.close()


@pytest.mark.parametrize("borg", borg_binaries())
def test_when_a_guard_fails_borg_decides_and_the_counts_stay_exact(tmp_path: Path, borg: str) -> None:
    src, jobs = _job(tmp_path, borg)
    newest = src / "d2" / "newest"
    watched = Watched(jobs, only_create=False)
    for change, truth in ((lambda p: p.write_bytes(b"written just before the run\n"), None),
                          (lambda p: None, Counts(unchanged=31)),
                          (lambda p: p.write_bytes(p.read_bytes().upper()), Counts(modified=1, unchanged=30))):
        before = _digests(jobs, newest) if truth else (True, True)
        change(newest)  # the newest file, written right before the run: borg does not memorize it
        step, commands = watched.run()
        proven, digest = _digests(jobs, newest)
        assert digest == proven  # borgwatch hashed it only when nothing could have written it during the run
        if truth:
            # unchanged: decided when the last run proved its side; rewritten: when both runs hashed theirs.
            # Else borg judges it (on a loaded machine a run may start more than the margin after the write)
            decided = before[1] and (not truth.modified or digest)
            assert commands == (["create"] if decided else ["create", "diff"]), (before, digest, commands)
            check(jobs, step, truth)


@pytest.mark.parametrize("borg", borg_binaries())
def test_mtime_mode_leaves_the_newest_file_to_borg(tmp_path: Path, borg: str) -> None:
    src, jobs = _job(tmp_path, borg, ("--files-cache=mtime,size,inode",))
    newest = src / "d2" / "newest"
    _newest_last(src, newest, lambda p: p.write_bytes(b"newest\n"))
    watched = Watched(jobs, only_create=False)
    watched.run()
    for change, truth in ((rewrite_same_size_keep_mtime, Counts(modified=1, unchanged=30)),
                          (lambda p: None, Counts(unchanged=31))):
        _newest_last(src, newest, change)
        step, commands = watched.run()
        assert commands == ["create", "diff"], commands  # an mtime can be put back: no rule of ours applies
        check(jobs, step, truth)


@pytest.mark.parametrize("borg", borg_binaries())
def test_more_undecided_paths_than_one_borg_diff_may_take_fall_back_whole(tmp_path: Path, borg: str) -> None:
    src = tmp_path / "src"
    tree(src)
    many = src / ("long-directory-name-" * 8)
    many.mkdir()
    target = many / "target"
    target.write_bytes(b"one inode, many names\n")
    for i in range(2100):  # hard-link names of one inode: they take its memorized entry's digest, when it has one
        os.link(target, many / f"{'n' * 120}-{i}")
    # mtime mode: no rule decides by time (an mtime can be put back), so only borg can judge the newest file
    jobs = _jobs(tmp_path, borg, job=Job([src], ["--files-cache=mtime,size,inode"]))
    jobs.run("job")
    time.sleep(1.1)
    # every name's content changed in place, just before the run: the newest file, which borg does not memorize,
    # so every name is undecided
    target.write_bytes(b"one inode, new content\n")
    # 2101 paths of ~300 bytes: over the bound of one restricted borg diff (ARG_MAX), so one full borg diff
    check(jobs, jobs.run("job"), Counts(modified=2101, unchanged=30), method="borg_diff")

