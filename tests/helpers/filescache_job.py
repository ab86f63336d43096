"""Jobs backed up by `borgwatch run` into one real borg repository (borg 1.x, or borg 2 with a ``Repo2``), and
borg diff's ground truth beside them."""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from borgwatch.borg.argv import archive_id
from borgwatch.borg.results import diff_verdicts
from helpers.borg import Repo, Repo2
from helpers.workspace import BORGWATCH

NAME = "{hostname}-{job}-{now:%Y-%m-%dT%H:%M:%S.%f}"


@dataclass
class Counts:
    added: int = 0
    removed: int = 0
    modified: int = 0
    unchanged: int = 0


@dataclass
class Step:
    rc: int
    archive: str  # the archive the run made (borg 2: aid:ID)
    previous: str  # the archive the run compared with
    method: str  # files_cache | borg_diff | first_backup | none
    exact: bool
    counts: Counts
    stderr: str
    diff_note: str = ""  # the diff stage's message: why the files-cache method was not used


@dataclass
class Job:
    paths: list[Path]
    extra_args: list[str] = field(default_factory=list)
    environment: dict[str, str] = field(default_factory=dict)


@dataclass
class Jobs:
    """Several jobs of one config sharing ``repo`` (and the borg cache of the backup client)."""

    repo: Repo
    root: Path
    jobs: dict[str, Job] = field(default_factory=dict)

    @property
    def borg2(self) -> bool:
        """The repository is borg 2's: ``-r REPO``, one series per job, archives told apart as ``aid:ID``."""
        return isinstance(self.repo, Repo2)

    @property
    def config(self) -> Path:
        return self.root / "borgwatch.toml"

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    def write(self) -> None:
        (self.root / "textfile").mkdir(parents=True, exist_ok=True)
        text = (f'textfile_dir = "{self.root / "textfile"}"\nstate_dir = "{self.state_dir}"\n'
                f'borg = "{self.repo.borg}"\nborg_base_dir = "{self.repo.base_dir}"\n')
        for name, job in self.jobs.items():
            text += (f'[jobs.{name}]\nrepository = "{self.repo.path}"\npassphrase_file = "{self.repo.passfile}"\n'
                     f'archive_name = "{NAME}"\npaths = {json.dumps([str(p) for p in job.paths])}\n'
                     f'extra_args = {json.dumps(job.extra_args)}\n')
            if job.environment:
                text += "environment = { " + ", ".join(f'{k} = "{v}"' for k, v in job.environment.items()) + " }\n"
        self.config.write_text(text)

    def popen(self, name: str) -> subprocess.Popen[str]:
        self.write()
        return subprocess.Popen([BORGWATCH, "run", name, "-c", str(self.config), "--json"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                                env={k: v for k, v in os.environ.items() if not k.startswith("BORG_")})

    def run(self, name: str) -> Step:
        proc = self.popen(name)
        stdout, stderr = proc.communicate(timeout=600)
        return step(proc.returncode, stdout, stderr, self.borg2)

    def truth(self, old: str, new: str) -> Counts:
        """borg diff between the archives (not --content-only: it is blind to a directory replaced by a file);
        the archive's regular file names (hard links included) from borg list."""
        pair, one = ([f"{self.repo.path}::{old}", new], [f"{self.repo.path}::{new}"]) if not self.borg2 else \
            (["-r", str(self.repo.path), old, new], ["-r", str(self.repo.path), new])
        out = self.repo.borg_run("diff", "--json-lines", *pair).stdout.encode()
        counts = Counts()
        for _, verdict in diff_verdicts(out.splitlines()):
            setattr(counts, verdict, getattr(counts, verdict) + 1)
        listing = self.repo.borg_run("list", "--json-lines", *one).stdout
        files = sum(1 for line in listing.splitlines() if json.loads(line).get("type") in ("-", "h"))
        counts.unchanged = files - counts.added - counts.modified
        return counts


@dataclass
class Watched:
    """A borg standing in for the job's that logs each command (``commands()``); with ``only_create`` any other
    command than create fails, so a run that needed one says so."""

    jobs: Jobs
    only_create: bool = True

    def __post_init__(self) -> None:
        self.real = self.jobs.repo.borg
        self.log = self.jobs.root.parent / "borg-commands.log"
        script = self.jobs.root.parent / "borg-watched"
        rest = 'echo "not on the normal path" >&2; exit 2' if self.only_create else f'exec {self.real} "$@"'
        script.write_text(f'#!/bin/sh\necho "$1" >> {self.log}\ncase "$1" in\n  create|--version) exec {self.real} '
                          f'"$@" ;;\nesac\n{rest}\n')
        script.chmod(0o755)
        self.borg = str(script)

    def run(self) -> tuple[Step, list[str]]:
        """One run of job "job" with this borg; the borg commands it ran beyond ``--version``."""
        self.log.write_text("")
        self.jobs.repo.borg = self.borg
        try:
            done = self.jobs.run("job")
        finally:
            self.jobs.repo.borg = self.real
        return done, [c for c in self.log.read_text().split() if c != "--version"]


def step(rc: int, stdout: str, stderr: str, borg2: bool = False) -> Step:
    result = json.loads(stdout) if stdout.strip() else {}
    dataset = result.get("dataset") or {}
    counts = Counts(**{k: dataset.get(k, 0) for k in ("added", "removed", "modified", "unchanged")})
    made = (result.get("archive") or {}).get("id", "")
    archive = (archive_id(made) if made else "") if borg2 else result.get("archive_name", "")
    note = next((s.get("message", "") for s in result.get("stages", []) if s.get("name") == "diff"), "")
    return Step(rc, archive, result.get("previous_archive", ""), dataset.get("method", ""),
                bool(dataset.get("exact")), counts, stderr, note)


def check(jobs: Jobs, step: Step, truth: Counts | None, method: str = "files_cache", previous: str = "",
          warned: bool = False, warning: str = "file changed while we backed it up") -> None:
    """The run's counts are borg diff's between the archive it names as previous and its own; ``truth``: what
    the sequence did (so the test cannot pass by borg and borgwatch agreeing on nonsense). ``warned``: borg
    may end with a warning, whose text is ``warning``."""
    assert step.rc == 0 or (warned and warning in step.stderr), step.stderr
    assert (step.method, step.exact) == (method, True), step
    if previous:
        assert step.previous == previous, step
    actual = jobs.truth(step.previous, step.archive)
    if truth is not None:
        assert actual == truth, actual
    assert step.counts == actual, (step.counts, actual)


def tree(src: Path, n: int = 30) -> None:
    """``n`` files in three directories, each of another size."""
    for d in range(3):
        (src / f"d{d}").mkdir(parents=True, exist_ok=True)
        for i in range(n // 3):
            (src / f"d{d}" / f"f{i}").write_bytes(f"file {d}/{i}\n".encode() * (i + 1))


def rewrite_same_size_keep_mtime(path: Path) -> None:
    st = path.stat()
    data = path.read_bytes()
    path.write_bytes(data[::-1] if data[::-1] != data else data.upper())
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def grow(path: Path, data: bytes = b"more\n") -> None:
    with open(path, "ab") as f:
        f.write(data)


def change_one_of_each_kind(src: Path) -> None:
    """In a ``tree``: a same-size rewrite with the mtime put back, a touch only, a chmod only, a grown file,
    a removed and an added one (borg diff: added 1, removed 1, modified 2)."""
    rewrite_same_size_keep_mtime(src / "d0" / "f3")
    os.utime(src / "d0" / "f4")
    (src / "d0" / "f5").chmod(0o600)
    grow(src / "d1" / "f0")
    (src / "d1" / "f1").unlink()
    (src / "d2" / "new").write_bytes(b"new file\n")


def every_kind_of_change(jobs: Jobs, src: Path) -> None:
    """Runs of job "job" over ``tree(src)`` through `borgwatch run`: each kind of change, each checked."""
    first = jobs.run("job")
    assert (first.method, first.exact, first.counts) == ("first_backup", True, Counts(added=30)), first
    time.sleep(1.1)  # the newest file of run 1 is older than the run by more than the cmtime margin
    # nothing changed: the newest file of run 1 is read again (not in borg's cache) and still unchanged
    second = jobs.run("job")
    check(jobs, second, Counts(unchanged=30), previous=first.archive)
    change_one_of_each_kind(src)
    check(jobs, jobs.run("job"), Counts(added=1, removed=1, modified=2, unchanged=27), previous=second.archive)
    # the newest file of the last run changes again, and a file is removed, then re-added under its name
    (src / "d2" / "new").write_bytes(b"new content!\n")
    (src / "d1" / "f2").unlink()
    check(jobs, jobs.run("job"), Counts(removed=1, modified=1, unchanged=28))
    (src / "d1" / "f2").write_bytes(b"back again\n")
    check(jobs, jobs.run("job"), Counts(added=1, unchanged=29))
    check(jobs, jobs.run("job"), Counts(unchanged=30))
