"""A job backed up by real borg the way the files-cache diff reads it, and borg diff's ground truth beside it."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from borgwatch.borg.argv import FILES_CACHE_FILTER
from borgwatch.borg.paths import archive_path
from borgwatch.borg.results import diff_verdicts
from borgwatch.dataset.snapshot import SnapshotDiff, settle, undecided_paths
from borgwatch.run.filesdiff import FilesCacheRun
from helpers.borg import Repo


@dataclass
class Counts:
    added: int = 0
    removed: int = 0
    modified: int = 0
    unchanged: int = 0


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
        snap_path, prev_path = self.state / "snapshot.next", self.state / "snapshot"
        rec = FilesCacheRun(snap_path)
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
        found = None if doubt else rec.diff(prev_path)
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
        rec.snapshot.close()
        if doubt:  # counts that do not reconcile: no baseline (borg 2's rebuilt cache holds removed files)
            snap_path.unlink()
            prev_path.unlink(missing_ok=True)
        else:
            snap_path.replace(prev_path)
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
            verdicts = {paths[p]: v for p, v in diff_verdicts(out) if p in paths}
        settle(rec.snapshot, found, verdicts)

    def truth(self, old: str, new: str) -> Counts:
        """borg diff between the archives (not --content-only: it is blind to a directory replaced by a file)."""
        out = self._borg("diff", "--json-lines", *self._pair(old, new)).stdout
        counts = Counts()
        for _, verdict in diff_verdicts(out):
            setattr(counts, verdict, getattr(counts, verdict) + 1)
        listing = self._borg("list", "--json-lines", *self._one(new)).stdout
        files = sum(1 for line in listing.splitlines() if json.loads(line).get("type") in ("-", "h"))
        counts.unchanged = files - counts.added - counts.modified
        return counts


@dataclass
class CacheJob2(CacheJob):
    """The job with borg 2: one archive series (``series``), archives told apart by ``aid:``, and the
    series' files cache read by ``filescache_v2`` (the create stage is not wired to it yet)."""

    series: str = "nas-home"

    def _one(self, archive: str) -> list[str]:
        return ["-r", str(self.repo.path), archive if archive.startswith("aid:") else self.series]

    def _pair(self, old: str, new: str) -> list[str]:
        return ["-r", str(self.repo.path), old, new]

    def _archive(self, name: str, create_stdout: bytes) -> str:
        return "aid:" + json.loads(create_stdout)["archive"]["id"]

    def _seal(self, rec: FilesCacheRun, create_stdout: bytes, nfiles: int) -> str:
        """``FilesCacheRun.seal`` with borg 2's reader and its nfiles, which counts every hard-link name."""
        from borgwatch.borg import filescache_v2
        from borgwatch.borg.version import BORG2_TESTED, BorgVersion

        version = BorgVersion(2, 0, 0, BORG2_TESTED)
        try:
            path = filescache_v2.locate(create_stdout, {**self.repo.env(), **self.env}, version)
            rec.snapshot.add_cached(filescache_v2.read_entries(path, mtime_mode=rec.mtime_mode))
        except filescache_v2.FilesCacheError as exc:
            rec.snapshot.seal()
            return str(exc)
        rec.snapshot.seal()
        accounted = rec.snapshot.files()
        if accounted != nfiles:
            return f"borg's files cache and listing account for {accounted} files, borg archived {nfiles}"
        return ""
