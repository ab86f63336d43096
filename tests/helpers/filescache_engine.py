"""A job backed up by real borg straight through the files-cache engine (FilesCacheRun, no borgwatch run),
with borg diff's ground truth beside it: each kind of change, with borg 1.x and borg 2's per-series cache."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

from borgwatch.borg.argv import FILES_CACHE_FILTER
from borgwatch.borg.filescache import Entry
from borgwatch.borg.paths import archive_path
from borgwatch.borg.results import diff_verdicts
from borgwatch.borg.version import BORG2_TESTED, BorgVersion
from borgwatch.dataset.snapshot import SnapshotDiff, settle, undecided_paths
from borgwatch.run.filesdiff import FilesCacheRun
from helpers.borg import Repo
from helpers.filescache_job import Counts, change_one_of_each_kind

BORG2 = BorgVersion(2, 0, 0, BORG2_TESTED)


@dataclass
class Step:
    archive: str
    method: str  # "files-cache" | "fallback: <why>" | "first"
    counts: Counts
    truth: Counts | None
    undecided: int = 0


@dataclass
class CacheJob:
    repo: Repo
    state: Path
    paths: list[Path]
    env: dict[str, str] = field(default_factory=dict)
    extra: list[str] = field(default_factory=list)
    runs: int = 0
    previous: str = ""

    def _borg(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        done = subprocess.run([self.repo.borg, *args], env={**self.repo.env(), **self.env}, capture_output=True,
                              stdin=subprocess.DEVNULL, timeout=300)
        if check and done.returncode not in (0, 1):
            raise AssertionError(f"borg {args[0]} rc {done.returncode}: {done.stderr.decode()}")
        return done

    def run(self) -> Step:
        self.runs += 1
        archive = f"{self.state.name}-{self.runs}"
        self.state.mkdir(parents=True, exist_ok=True)
        rec = FilesCacheRun(self.state / "snapshot")  # this run's is snapshot.new until promoted
        proc = subprocess.Popen([self.repo.borg, "create", "--json", "--list", "--filter", FILES_CACHE_FILTER,
                                 "--log-json", *self.extra, *self._one(archive), *map(str, self.paths)],
                                env={**self.repo.env(), **self.env}, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stderr is not None and proc.stdout is not None
        for line in proc.stderr:  # lstat when borg announces the file, as the stage does
            obj = json.loads(line) if line.startswith(b"{") else {}
            if obj.get("type") == "file_status":
                rec.record(obj["status"], obj["path"])
        stdout = proc.stdout.read()
        assert proc.wait() in (0, 1), stdout
        nfiles = json.loads(stdout)["archive"]["stats"]["nfiles"]
        archive = self._archive(archive, stdout)
        doubt = self._seal(rec, stdout, nfiles)
        found = None if doubt else rec.diff()
        truth = self.truth(self.previous, archive) if self.previous else None
        undecided = found.undecided if found else 0
        if found is not None and not found.doubt:
            self._settle(archive, rec, found)
        if found is not None and not found.doubt:
            counts = Counts(found.added, found.removed, found.modified, found.unchanged)
            step = Step(archive, "files-cache", counts, truth, undecided)
        elif not self.previous:
            step = Step(archive, "first", Counts(added=rec.snapshot.files()), None)
        else:
            why = doubt or (found.doubt if found else "no previous snapshot")
            step = Step(archive, f"fallback: {why}", truth or Counts(), truth)
        if doubt:  # counts that do not reconcile: no baseline (borg 2's rebuilt cache holds removed files)
            rec.abandon(drop_baseline=True)
        else:
            rec.promote()
        self.previous = archive
        return step

    # the borg 1.x dialect: REPO::ARCHIVE, borg's files cache read by the run's own FilesCacheRun.seal
    def _one(self, archive: str) -> list[str]:
        return [f"{self.repo.path}::{archive}"]

    def _pair(self, old: str, new: str) -> list[str]:
        return [f"{self.repo.path}::{old}", new]

    def _archive(self, name: str, create_stdout: bytes) -> str:
        return name

    def _seal(self, rec: FilesCacheRun, create_stdout: bytes, nfiles: int) -> str:
        return rec.seal(create_stdout, {**self.repo.env(), **self.env}, None, nfiles)

    def _settle(self, archive: str, rec: FilesCacheRun, found: SnapshotDiff) -> None:
        """The undecided paths: one restricted borg diff judges them (as the stage does)."""
        paths = {archive_path(os.fsdecode(p)): p for p in undecided_paths(rec.snapshot)}
        verdicts: dict[bytes, str] = {}
        if paths:
            out = self._borg("diff", "--json-lines", *self._pair(self.previous, archive),
                             *(f"pf:{p}" for p in paths)).stdout
            verdicts = {paths[p]: v for p, v in diff_verdicts(out.splitlines()) if p in paths}
        settle(rec.snapshot, found, verdicts)

    def truth(self, old: str, new: str) -> Counts:
        """borg diff between the archives (not --content-only: it is blind to a directory replaced by a file)."""
        out = self._borg("diff", "--json-lines", *self._pair(old, new)).stdout
        counts = Counts()
        for _, verdict in diff_verdicts(out.splitlines()):
            setattr(counts, verdict, getattr(counts, verdict) + 1)
        listing = self._borg("list", "--json-lines", *self._one(new)).stdout
        files = sum(1 for line in listing.splitlines() if json.loads(line).get("type") in ("-", "h"))
        counts.unchanged = files - counts.added - counts.modified
        return counts


@dataclass
class CacheJob2(CacheJob):
    """The job with borg 2: one archive series (``series``), archives told apart by ``aid:``, and the
    series' files cache read by ``FilesCacheRun.seal`` in borg 2's dialect."""

    series: str = "nas-home"

    def _one(self, archive: str) -> list[str]:
        return ["-r", str(self.repo.path), archive if archive.startswith("aid:") else self.series]

    def _pair(self, old: str, new: str) -> list[str]:
        return ["-r", str(self.repo.path), old, new]

    def _archive(self, name: str, create_stdout: bytes) -> str:
        return "aid:" + json.loads(create_stdout)["archive"]["id"]

    def _seal(self, rec: FilesCacheRun, create_stdout: bytes, nfiles: int) -> str:
        return rec.seal(create_stdout, {**self.repo.env(), **self.env}, BORG2, nfiles)


def check(step: Step, truth: Counts) -> None:
    """A files-cache step (a fallback's counts are borg diff's own, so only its method is asserted)."""
    assert step.method == "files-cache", step.method
    assert step.truth == truth, step.truth  # the sequence does what the test says
    assert asdict(step.counts) == asdict(truth), (step.counts, step.undecided)


def every_kind_of_change(job: CacheJob) -> None:
    """Runs of a job over ``tree``: each kind of change, each checked against borg diff."""
    src = job.paths[0]
    first = job.run()
    assert first.method == "first" and first.counts.added == 30
    # nothing changed: the newest file of run 1 is read again (not in borg's cache) and still unchanged
    check(job.run(), Counts(unchanged=30))
    change_one_of_each_kind(src)
    check(job.run(), Counts(added=1, removed=1, modified=2, unchanged=27))
    # the newest file of the last run changes again, and a file is removed and re-added under its name
    (src / "d2" / "new").write_bytes(b"new content!\n")
    (src / "d1" / "f2").unlink()
    check(job.run(), Counts(removed=1, modified=1, unchanged=28))
    # re-added while borg's cache still knows the name (M), as the newest file: nothing to pair it with, and
    # no previous name unmatched that it could be
    (src / "d1" / "f2").write_bytes(b"back again\n")
    check(job.run(), Counts(added=1, unchanged=29))
    check(job.run(), Counts(unchanged=30))


def hard_links_and_a_renamed_directory(job: CacheJob) -> None:
    src = job.paths[0]
    os.link(src / "d0" / "f0", src / "d0" / "link")
    assert job.run().counts.added == 31
    check(job.run(), Counts(unchanged=31))
    (src / "d1").rename(src / "moved")
    check(job.run(), Counts(added=10, removed=10, unchanged=21))


def make_newest(path: Path, others: list[Path]) -> None:
    """Give ``path`` a ctime later than every other file's (borg never memorizes the newest one)."""
    while os.lstat(path).st_ctime_ns <= max(os.lstat(p).st_ctime_ns for p in others):
        path.chmod(0o640 if path.stat().st_mode & 0o7 else 0o644)


def abc_tree(tmp: Path) -> tuple[Path, dict[str, Path]]:
    """``a`` and ``b`` of the same content, ``c`` of another, and ``newest``, which borg will not memorize."""
    src = tmp / "src"
    src.mkdir()
    files = {n: src / n for n in ("a", "b", "c", "newest")}
    files["a"].write_bytes(b"same content\n" * 100)
    files["b"].write_bytes(b"same content\n" * 100)
    files["c"].write_bytes(b"other content\n" * 7)
    files["newest"].write_bytes(b"x")
    make_newest(files["newest"], [files[n] for n in "abc"])
    return src, files


def assert_abc_entries(entries: list[Entry], files: dict[str, Path]) -> None:
    """The age-0 entries of a create of ``abc_tree``: a, b and c as on disk, not ``newest``."""
    by_inode = {inode: (key, digest, size, cmtime) for key, digest, inode, size, cmtime in entries}
    assert len(entries) == 3 and len({e[0] for e in entries}) == 3
    assert set(by_inode) == {os.lstat(files[n]).st_ino for n in "abc"}  # "newest" is not memorized
    for n in "abc":
        st = os.lstat(files[n])
        assert by_inode[st.st_ino][2:] == (st.st_size, st.st_ctime_ns)
    digest = {n: by_inode[os.lstat(files[n]).st_ino][1] for n in "abc"}
    assert digest["a"] == digest["b"] != digest["c"]  # the chunk ids are the content's identity
