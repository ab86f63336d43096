"""Jobs backed up by `borgwatch run` into one real borg repository, and borg diff's ground truth beside them."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from borgwatch.borg.results import diff_verdicts
from helpers.borg import Repo
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
    archive: str
    previous: str  # the archive the run compared with
    method: str  # files_cache | borg_diff | first_backup | none
    exact: bool
    counts: Counts
    stderr: str


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
        return step(proc.returncode, stdout, stderr)

    def truth(self, old: str, new: str) -> Counts:
        """borg diff between the archives (not --content-only: it is blind to a directory replaced by a file);
        the archive's regular file names (hard links included) from borg list."""
        out = self.repo.borg_run("diff", "--json-lines", f"{self.repo.path}::{old}", new).stdout.encode()
        counts = Counts()
        for _, verdict in diff_verdicts(out.splitlines()):
            setattr(counts, verdict, getattr(counts, verdict) + 1)
        listing = self.repo.borg_run("list", "--json-lines", f"{self.repo.path}::{new}").stdout
        files = sum(1 for line in listing.splitlines() if json.loads(line).get("type") in ("-", "h"))
        counts.unchanged = files - counts.added - counts.modified
        return counts


def step(rc: int, stdout: str, stderr: str) -> Step:
    result = json.loads(stdout) if stdout.strip() else {}
    dataset = result.get("dataset") or {}
    counts = Counts(**{k: dataset.get(k, 0) for k in ("added", "removed", "modified", "unchanged")})
    return Step(rc, result.get("archive_name", ""), result.get("previous_archive", ""), dataset.get("method", ""),
                bool(dataset.get("exact")), counts, stderr)
