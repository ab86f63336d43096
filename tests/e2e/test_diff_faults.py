"""The files-cache diff broken from outside, the way the real world will: kill -9 at each moment of its life,
a full state_dir, files planted where the snapshot lives, a damaged borg files cache, and hostile trees.
Each fault: one line at most, no traceback, nothing wrong published as exact, no borg and no temp file left,
and the next run right again (counts equal to borg diff's, or honestly not exact). Real borg 1.4 and 1.2."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from helpers.borg import borg_binaries, make_repo
from helpers.faults import (
    MOMENTS,
    after_create,
    kill_at,
    leftovers,
    no_borg_left,
    run_during,
    run_json,
    tiny_tmpfs,
)
from helpers.filescache_job import Counts, Job, Jobs, Step, check, grow, rewrite_same_size_keep_mtime, tree

pytestmark = pytest.mark.slow


def _job(tmp_path: Path, borg: str, n: int = 30, extra_args: tuple[str, ...] = (), **environment: str
         ) -> tuple[Path, Jobs]:
    src = tmp_path / "src"
    tree(src, n)
    return src, Jobs(make_repo(tmp_path, borg), tmp_path / "bw", {"job": Job([src], list(extra_args), environment)})


def _baseline(jobs: Jobs) -> Step:
    """A first backup, then an incremental one: the job has a snapshot that vouches for its archive."""
    first = jobs.run("job")
    assert (first.rc, first.method) == (0, "first_backup"), first
    time.sleep(1.1)
    second = jobs.run("job")
    assert (second.rc, second.method) == (0, "files_cache"), second
    return second


def _newest(src: Path) -> Path:
    return max((p for p in src.rglob("*") if p.is_file()), key=lambda p: p.stat().st_ctime_ns)


def _either(step: Step) -> str:
    """Either exact method: borg memorized a file since the baseline that it did not then, so borg diff may judge."""
    return step.method if step.method == "borg_diff" else "files_cache"


def _truthful(jobs: Jobs, step: Step) -> None:
    """Exact counts equal borg diff's against the archive the run names as its previous one; otherwise the
    run said why in one line. Never a traceback."""
    assert step.rc == 0, step.stderr
    assert "Traceback" not in step.stderr, step.stderr
    if step.exact:
        assert step.method in ("files_cache", "borg_diff"), step
        assert step.counts == jobs.truth(step.previous, step.archive), step
    else:
        assert step.method == "none" and "not exact" in step.stderr, step


@pytest.mark.parametrize("borg", borg_binaries())
@pytest.mark.parametrize("moment", list(MOMENTS))
def test_kill_9_at_each_moment_of_the_diff_then_the_next_runs_are_right(tmp_path: Path, borg: str,
                                                                        moment: str) -> None:
    src, jobs = _job(tmp_path, borg)
    good = _baseline(jobs)
    time.sleep(1.1)
    if moment == "borg-diff":  # the last run's newest file rewritten: only a restricted borg diff can judge it
        rewrite_same_size_keep_mtime(_newest(src))
    if moment in ("listing-archives", "full-borg-diff"):  # a lost snapshot: borg list finds the job's newest
        # archive while the snapshot is sealed, then one full borg diff against it
        (jobs.state_dir / "job.snapshot.db").unlink()
    rewrite_same_size_keep_mtime(src / "d0" / "f2")
    grow(src / "d1" / "f1")
    (src / "d2" / "f0").unlink()
    assert kill_at(jobs, moment) == -9, f"the run ended before {moment}"
    no_borg_left(jobs.repo.path)
    time.sleep(1.1)
    (src / "d2" / "added").write_bytes(b"after the kill\n")
    after = jobs.run("job")
    _truthful(jobs, after)
    # the job's own record names the archive it compares with: the killed run's once its snapshot was promoted,
    # or the newest one the repository has when the job kept no snapshot
    assert after.previous == good.archive or moment in ("promoted", "listing-archives", "full-borg-diff"), after
    assert leftovers(jobs.state_dir) == set()
    time.sleep(1.1)
    grow(src / "d0" / "f3")
    check(jobs, jobs.run("job"), Counts(modified=1, unchanged=29), previous=after.archive)


def _fill(directory: Path, leave: int) -> None:
    """Fill ``directory``'s filesystem, then give back ``leave`` bytes."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.ftruncate(fd, max(0, os.fstat(fd).st_size - leave))
        os.close(fd)


LEFTOVER_ROOM = 24 << 10


@pytest.mark.parametrize("borg", borg_binaries())
@pytest.mark.parametrize("room", [pytest.param(LEFTOVER_ROOM, id="no-room-for-the-schema"),
                                  pytest.param(48 << 10, id="no-room-to-seal")])
def test_a_full_state_dir_while_the_snapshot_is_written_costs_one_line_and_drops_the_stale_baseline(
        tmp_path: Path, borg: str, room: int) -> None:
    src, jobs = _job(tmp_path, borg, n=600)
    good = _baseline(jobs)
    saved = {p.name: p.read_bytes() for p in jobs.state_dir.iterdir()}
    time.sleep(1.1)
    for i in range(40):
        grow(src / "d1" / f"f{i}")
    try:
        with tiny_tmpfs(jobs.state_dir, "256k"):
            for name, data in saved.items():
                (jobs.state_dir / name).write_bytes(data)
            _fill(jobs.state_dir, room)  # room for the state file, not for this run's snapshot
            full, proc = run_json(jobs)
            snapshot = jobs.state_dir / "job.snapshot.db"
            kept = snapshot.read_bytes() if snapshot.exists() else None
            saved = {p.name: p.read_bytes() for p in jobs.state_dir.iterdir() if p.name != "filler"}
    except PermissionError as exc:
        pytest.skip(f"cannot mount a tmpfs here: {exc}")
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and "free space" in lines[0] and "state_dir" in lines[0], proc.stderr
    assert full.archive and full.archive in jobs.repo.borg_run("list", "--short", str(jobs.repo.path)).stdout
    assert full.rc == 0, full  # the backup succeeded
    if room > LEFTOVER_ROOM:  # the snapshot could not be sealed: one full borg diff counted the run
        assert (full.method, full.exact, full.previous) == ("borg_diff", True, good.archive), full
        assert full.counts == jobs.truth(full.previous, full.archive) == Counts(modified=40, unchanged=560), full
    # the old baseline went with this run's snapshot: it describes an archive older than the job's last one
    assert kept is None, "the old baseline went"
    for p in jobs.state_dir.iterdir():
        p.unlink()
    for name, data in saved.items():
        (jobs.state_dir / name).write_bytes(data)
    time.sleep(1.1)
    grow(src / "d0" / "f0")
    after = jobs.run("job")
    _truthful(jobs, after)
    assert after.previous == full.archive  # against the job's last archive, not the one the old baseline names
    assert leftovers(jobs.state_dir) == set()


def _symlink(at: Path, victim: Path) -> None:
    at.symlink_to(victim)


def _directory(at: Path, victim: Path) -> None:
    at.mkdir()
    (at / "inside").write_bytes(b"x")


def _fifo(at: Path, victim: Path) -> None:
    os.mkfifo(at)


@pytest.mark.parametrize("name", ["job.snapshot.db", "job.snapshot.db.new", "job.snapshot.db.new-journal",
                                  "job.snapshot.db-journal"])
@pytest.mark.parametrize("plant", [_symlink, _directory, _fifo], ids=lambda f: f.__name__.strip("_"))
def test_a_planted_file_where_the_snapshot_lives_is_never_followed_nor_believed(
        tmp_path: Path, borg: str, name: str, plant) -> None:  # noqa: ANN001 - borgwatch's files: one borg is enough
    src, jobs = _job(tmp_path, borg)
    good = _baseline(jobs)
    victim = tmp_path / "victim"
    victim.write_bytes(b"root's file\n")
    at = jobs.state_dir / name
    if at.exists():
        at.unlink()
    plant(at, victim)
    time.sleep(1.1)
    grow(src / "d0" / "f1")
    planted, proc = run_json(jobs)
    assert victim.read_bytes() == b"root's file\n" and victim.stat().st_nlink == 1
    assert planted.rc == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert len(proc.stderr.splitlines()) <= 1, proc.stderr
    if proc.stderr:  # a directory borgwatch cannot replace: the line names it and what to do
        assert plant is _directory and str(at) in proc.stderr and "state_dir" in proc.stderr, proc.stderr
    if planted.exact:
        assert planted.counts == jobs.truth(planted.previous, planted.archive), planted
        assert planted.previous == good.archive, planted
    if plant is _directory:
        shutil.rmtree(at)
    assert leftovers(jobs.state_dir) == set()
    time.sleep(1.1)
    grow(src / "d0" / "f2")
    after = jobs.run("job")
    if not planted.method:  # no snapshot this run (a directory where it is made): the old baseline went with it
        check(jobs, after, Counts(modified=1, unchanged=29), previous=planted.archive, method="borg_diff")
    else:  # the planted run's snapshot replaced the baseline, unless its line said it could not
        check(jobs, after, Counts(modified=1, unchanged=29), previous=planted.archive,
              method="borg_diff" if proc.stderr else "files_cache")


def _two_jobs(tmp_path: Path, borg: str) -> tuple[Path, Jobs]:
    src, other = tmp_path / "src", tmp_path / "other"
    tree(src)
    tree(other, 12)
    return src, Jobs(make_repo(tmp_path, borg), tmp_path / "bw", {"job": Job([src]), "other": Job([other])})


@pytest.mark.parametrize("borg", borg_binaries())
def test_a_snapshot_of_another_job_copied_over_the_jobs_own_is_not_its_baseline(tmp_path: Path, borg: str) -> None:
    src, jobs = _two_jobs(tmp_path, borg)
    good = _baseline(jobs)
    assert jobs.run("other").rc == 0 and jobs.run("other").method == "files_cache"
    shutil.copy(jobs.state_dir / "other.snapshot.db", jobs.state_dir / "job.snapshot.db")
    time.sleep(1.1)
    grow(src / "d2" / "f2")
    # compared with the job's own previous archive, not the other job's (whose 12 files would count removed)
    step = jobs.run("job")
    check(jobs, step, Counts(modified=1, unchanged=29), method="borg_diff", previous=good.archive)
    time.sleep(1.1)
    grow(src / "d2" / "f3")
    check(jobs, jobs.run("job"), Counts(modified=1, unchanged=29), previous=step.archive)


@pytest.mark.parametrize("borg", borg_binaries())
def test_a_snapshot_owned_by_another_user_or_writable_by_others_is_not_believed(tmp_path: Path, borg: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("only root can give a file to another user")
    src, jobs = _job(tmp_path, borg)
    good = _baseline(jobs)
    snapshot = jobs.state_dir / "job.snapshot.db"
    os.chown(snapshot, 65534, 65534)  # nobody: who may have rewritten it
    snapshot.chmod(0o666)
    time.sleep(1.1)
    grow(src / "d1" / "f1")
    step = jobs.run("job")
    check(jobs, step, Counts(modified=1, unchanged=29), method="borg_diff", previous=good.archive)
    st = snapshot.stat()
    assert (st.st_uid, st.st_mode & 0o777) == (0, 0o600)  # this run's own replaced it
    time.sleep(1.1)
    grow(src / "d1" / "f2")
    check(jobs, jobs.run("job"), Counts(modified=1, unchanged=29), previous=step.archive)


def _scramble(db: Path, rot_one: bool) -> None:
    """Valid header and meta; every record random bytes, or (``rot_one``) one record's digest only."""
    import sqlite3

    with sqlite3.connect(db) as con:
        for bucket, data in con.execute("SELECT bucket, data FROM cached").fetchall():
            mangled = data[:16] + os.urandom(16) + data[32:] if rot_one else os.urandom(len(data))
            con.execute("UPDATE cached SET data = ? WHERE bucket = ?", (mangled, bucket))
            if rot_one:
                break
    con.close()




@pytest.mark.parametrize("borg", borg_binaries())
@pytest.mark.parametrize("rot_one", [False, True], ids=["all-garbage", "one-rotten-digest"])
def test_a_snapshot_with_a_valid_header_and_garbage_records_is_never_counted_as_exact(tmp_path: Path, borg: str,
                                                                                      rot_one: bool) -> None:
    src, jobs = _job(tmp_path, borg)
    _baseline(jobs)
    _scramble(jobs.state_dir / "job.snapshot.db", rot_one)
    time.sleep(1.1)
    grow(src / "d0" / "f0")
    step = jobs.run("job")
    _truthful(jobs, step)
    time.sleep(1.1)
    grow(src / "d0" / "f1")
    check(jobs, jobs.run("job"), Counts(modified=1, unchanged=29), previous=step.archive)


CACHE_FAULTS = {
    "truncated": "for c in caches: c.write_bytes(c.read_bytes()[:-7])",
    "garbage": "for c in caches: c.write_bytes(os.urandom(c.stat().st_size))",
    "huge-cmtime": "for c in caches:\n    with open(c, 'ab') as f: f.write(msgpack.packb((os.urandom(32), "
                   "(0, 1, 1, 2**64 - 1, [os.urandom(32)]))))",
    "negative-size": "for c in caches:\n    with open(c, 'ab') as f: f.write(msgpack.packb((os.urandom(32), "
                     "(0, 1, -1, 1, [os.urandom(32)]))))",
    "forged-entry": "for c in caches:\n    with open(c, 'ab') as f: f.write(msgpack.packb((os.urandom(32), "
                    "(0, 12345, 3, 1, [os.urandom(32)]))))",
    "other-repository": "for c in caches: c.write_bytes(Path(os.environ['OTHER_CACHE']).read_bytes())",
    "symlink-to-a-fifo": "for c in caches:\n    c.unlink(); os.mkfifo(f'{c}.fifo'); c.symlink_to(f'{c}.fifo')",
    "a-directory": "for c in caches:\n    c.unlink(); c.mkdir()",
}


@pytest.mark.parametrize("borg", borg_binaries())
@pytest.mark.parametrize("fault", list(CACHE_FAULTS))
def test_a_damaged_borg_files_cache_costs_the_files_cache_method_never_the_truth(tmp_path: Path, borg: str,
                                                                                 fault: str) -> None:
    src, jobs = _job(tmp_path, borg)
    good = _baseline(jobs)
    if fault == "other-repository":  # another repository's cache, made by a real create there
        other = make_repo(tmp_path / "elsewhere", borg)
        other.create("x", src)
        os.environ["OTHER_CACHE"] = str(next(other.base_dir.glob(".cache/borg/*/files")))
    real = jobs.repo.borg
    after_create(jobs, tmp_path, CACHE_FAULTS[fault])
    time.sleep(1.1)
    rewrite_same_size_keep_mtime(src / "d1" / "f2")
    try:
        step, proc = run_json(jobs)
    finally:
        jobs.repo.borg = real
        os.environ.pop("OTHER_CACHE", None)
    assert "Traceback" not in proc.stderr and proc.stderr == "", proc.stderr
    # the cache cannot vouch: one full borg diff counts the run, exactly
    check(jobs, step, Counts(modified=1, unchanged=29), method="borg_diff", previous=good.archive)
    for c in jobs.repo.base_dir.glob(".cache/borg/*/files*"):  # borg repairs its own cache: a clean slate
        shutil.rmtree(c) if c.is_dir() and not c.is_symlink() else c.unlink()
    time.sleep(1.1)
    grow(src / "d1" / "f3")
    after = jobs.run("job")
    check(jobs, after, Counts(modified=1, unchanged=29), previous=step.archive, method=_either(after))


def _odd_names(src: Path) -> list[Path]:
    tree(src)
    for name in (b"new\nline", b"back\\slash", b"latin1-\xe9t\xe9", b"bad-\xff\xfe", b"tab\there"):
        with open(os.path.join(os.fsencode(src / "d0"), name), "wb") as f:
            f.write(b"odd " + name + b"\n")
    return [src]


def _odd_names_change(src: Path) -> Counts:
    d0 = os.fsencode(src / "d0")
    for name in (b"new\nline", b"bad-\xff\xfe"):
        rewrite_same_size_keep_mtime(Path(os.fsdecode(os.path.join(d0, name))))
    os.unlink(os.path.join(d0, b"latin1-\xe9t\xe9"))
    with open(os.path.join(d0, b"bad-\xff\xfd"), "wb") as f:  # one byte from a name already there
        f.write(b"another\n")
    return Counts(added=1, removed=1, modified=2, unchanged=32)


def _long_path(src: Path) -> list[Path]:
    tree(src)
    deep = os.fsencode(src)
    while len(deep) + 201 < 4000:  # near PATH_MAX (4096) with the file's name, whatever the tmp dir
        deep = os.path.join(deep, b"d" * 200)
    os.makedirs(deep)
    for i in range(3):
        with open(os.path.join(deep, b"f%d" % i), "wb") as f:
            f.write(b"deep %d\n" % i)
    return [src]


def _long_path_change(src: Path) -> Counts:
    deep = next(p for p in src.rglob("f1") if len(bytes(p)) > 3700)
    rewrite_same_size_keep_mtime(deep)
    return Counts(modified=1, unchanged=32)


def _many(src: Path) -> list[Path]:
    tree(src)
    (src / "many").mkdir()
    for i in range(2100):
        (src / "many" / f"m{i}").write_bytes(b"%08d\n" % i)
    return [src]


def _many_change(src: Path) -> Counts:
    for p in (src / "many").iterdir():  # same size, mtime put back: only content identities tell
        rewrite_same_size_keep_mtime(p)
    return Counts(modified=2100, unchanged=30)


def _sparse(src: Path) -> list[Path]:
    tree(src)
    with open(src / "sparse.img", "wb") as f:
        f.truncate(16 << 20)
        f.seek(12 << 20)
        f.write(b"data in the middle of a hole")
    return [src]


def _sparse_change(src: Path) -> Counts:
    st = (src / "sparse.img").stat()
    with open(src / "sparse.img", "r+b") as f:  # a block moved inside the hole, same size
        f.seek(12 << 20)
        f.write(b"\0" * 28)
        f.seek(3 << 20)
        f.write(b"data in the middle of a hole")
    os.utime(src / "sparse.img", ns=(st.st_atime_ns, st.st_mtime_ns))
    return Counts(modified=1, unchanged=30)


def _replaced_by_directory(src: Path) -> list[Path]:
    tree(src)
    return [src]


def _replaced_by_directory_change(src: Path) -> Counts:
    (src / "d1" / "f1").unlink()
    (src / "d1" / "f1").mkdir()
    for i in range(3):
        (src / "d1" / "f1" / f"inner{i}").write_bytes(b"inner\n")
    return Counts(added=3, removed=1, unchanged=29)


def _relative_and_dot(src: Path) -> list[Path]:
    tree(src)
    # borg archives these under other names than their absolute paths: `..` resolved by borg 1.4, `/./` cut
    return [Path(f"{src.parent}/bw/../{src.name}/d0"), Path(f"{src.parent}/./{src.name}/d1")]


def _relative_and_dot_change(src: Path) -> Counts:
    rewrite_same_size_keep_mtime(src / "d0" / "f4")
    rewrite_same_size_keep_mtime(src / "d1" / "f4")
    return Counts(modified=2, unchanged=18)


def _symlinked_source(src: Path) -> list[Path]:
    tree(src)
    (src.parent / "link").symlink_to(src)
    return [src.parent / "link", src / "d2"]


def _symlinked_source_change(src: Path) -> Counts:
    grow(src / "d0" / "f0")  # behind the symlink: borg archives the link itself, not what it points to
    rewrite_same_size_keep_mtime(src / "d2" / "f1")
    return Counts(modified=1, unchanged=9)


TREES = {f.__name__.strip("_"): (f, globals()[f.__name__ + "_change"]) for f in (
    _odd_names, _long_path, _many, _sparse, _replaced_by_directory, _relative_and_dot, _symlinked_source)}


@pytest.mark.parametrize("borg", borg_binaries())
@pytest.mark.parametrize("kind", list(TREES))
def test_real_world_trees_are_counted_as_borg_diff_counts_them(tmp_path: Path, borg: str, kind: str) -> None:
    make, change = TREES[kind]
    src = tmp_path / "src"
    jobs = Jobs(make_repo(tmp_path, borg), tmp_path / "bw", {"job": Job(make(src))})
    (tmp_path / "bw").mkdir(exist_ok=True)
    first = jobs.run("job")
    assert (first.rc, first.method) == (0, "first_backup"), first
    time.sleep(1.1)
    second = jobs.run("job")
    _truthful(jobs, second)
    expected = change(src)
    time.sleep(1.1)
    third = jobs.run("job")
    _truthful(jobs, third)
    assert third.counts == expected or not third.exact, third
    time.sleep(1.1)
    fourth = jobs.run("job")
    _truthful(jobs, fourth)
    assert fourth.counts == Counts(unchanged=expected.added + expected.modified + expected.unchanged), fourth


@pytest.mark.parametrize("borg", borg_binaries())
def test_one_tree_bound_under_two_source_paths(tmp_path: Path, borg: str) -> None:
    src, bound = tmp_path / "src", tmp_path / "bound"
    tree(src)
    bound.mkdir()
    if subprocess.run(["mount", "--bind", str(src), str(bound)], capture_output=True).returncode != 0:
        pytest.skip("cannot bind-mount here")
    try:
        jobs = Jobs(make_repo(tmp_path, borg), tmp_path / "bw", {"job": Job([src, bound])})
        first = jobs.run("job")
        twice = first.counts.added // 30  # borg 1.4 skips a source directory it already saw (same device, inode)
        assert first.counts == Counts(added=30 * twice) and twice in (1, 2), first
        time.sleep(1.1)
        step = jobs.run("job")
        check(jobs, step, Counts(unchanged=30 * twice), method=_either(step))
        rewrite_same_size_keep_mtime(src / "d0" / "f1")
        (bound / "d2" / "f2").unlink()
        time.sleep(1.1)
        step = jobs.run("job")
        check(jobs, step, Counts(modified=twice, removed=twice, unchanged=28 * twice), method=_either(step))
    finally:
        subprocess.run(["umount", str(bound)], capture_output=True)


@pytest.mark.parametrize("borg", borg_binaries())
def test_a_file_that_shrinks_and_grows_while_borg_reads_it(tmp_path: Path, borg: str) -> None:
    src, jobs = _job(tmp_path, borg, extra_args=("--compression", "lzma,6"))
    big = src / "big.log"
    big.write_bytes(os.urandom(12 << 20))
    _baseline(jobs)

    def churn() -> None:  # truncated and rewritten while borg reads it, like a rotated log
        with open(big, "r+b") as f:
            f.truncate(1 << 20)
            f.seek(0, os.SEEK_END)
            f.write(os.urandom(8 << 20))
        time.sleep(0.05)

    step = run_during(jobs, churn)
    assert "Traceback" not in step.stderr, step.stderr
    check(jobs, step, None, method=_either(step), warned=True)
    time.sleep(1.1)
    after = jobs.run("job")
    check(jobs, after, None, method=_either(after))
