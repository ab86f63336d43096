"""The contenders. Each has its own repository and BORG_BASE_DIR (cache, files cache), all back up the same
source tree with the same encryption, so every variant sees exactly the same state at every step."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

PASSPHRASE = "bench-passphrase"
ENCRYPTION = "repokey-blake2"
RSS_DRIVER = Path(__file__).with_name("rss_main.py")


@dataclass
class Sample:
    seconds: float
    rss_kib: int | None = None  # borgwatch's own peak RSS (children excluded)
    dataset: dict | None = None  # borgwatch --json dataset counts, for the correctness check


@dataclass
class Variant:
    name: str
    kind: str  # create | bare | borgwatch | borgmatic
    work: Path
    source: Path
    borg: str
    mode: str = "exact"  # borgwatch dataset_diff
    borgmatic: str | None = None
    step: int = field(default=-1)

    @property
    def repo(self) -> Path:
        return self.work / self.name / "repo"

    @property
    def base(self) -> Path:
        return self.work / self.name / "base"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BORG_")}
        env.update(BORG_BASE_DIR=str(self.base), LANG="C.UTF-8")
        if self.kind in ("create", "bare"):
            env["BORG_PASSPHRASE"] = PASSPHRASE
        return env

    def reset(self) -> None:
        """Fresh repository, cache and borgwatch state (before a first backup)."""
        root = self.work / self.name
        if root.exists():
            shutil.rmtree(root)
        for sub in ("base", "state", "tf"):
            (root / sub).mkdir(parents=True)
        (root / "pass").write_text(PASSPHRASE)
        env = self.env()
        env["BORG_PASSPHRASE"] = PASSPHRASE
        _check(subprocess.run([self.borg, "init", "-e", ENCRYPTION, str(self.repo)], env=env,
                              capture_output=True), "borg init")
        self._write_configs(root)
        self.step = -1

    def _write_configs(self, root: Path) -> None:
        (root / "borgwatch.toml").write_text(
            f'textfile_dir = "{root}/tf"\nstate_dir = "{root}/state"\nborg_base_dir = "{self.base}"\n'
            f'borg = "{self.borg}"\n[jobs.bench]\nrepository = "{self.repo}"\npaths = ["{self.source}"]\n'
            f'passphrase_file = "{root}/pass"\ndataset_diff = "{self.mode}"\n'
            'archive_name = "{job}-{now:%Y-%m-%dT%H:%M:%S.%f}"\n')
        (root / "borgmatic.yaml").write_text(
            f"source_directories:\n  - {self.source}\n"
            f"repositories:\n  - path: {self.repo}\n    label: bench\n"
            f'encryption_passphrase: "{PASSPHRASE}"\nlocal_path: {self.borg}\n'
            f"borg_base_directory: {self.base}\n"
            'archive_name_format: "bm-{now:%Y-%m-%dT%H:%M:%S.%f}"\n')

    def backup(self) -> Sample:
        """One backup of the source tree as it is now; returns the wall time of the whole job."""
        self.step += 1
        root = self.work / self.name
        name, prev = f"a{self.step:03d}", f"a{self.step - 1:03d}"
        repo = str(self.repo)
        rss_file = root / "rss"
        if self.kind == "create":
            cmds = [[self.borg, "create", f"{repo}::{name}", str(self.source)]]
        elif self.kind == "bare":
            cmds = [[self.borg, "create", "--json", f"{repo}::{name}", str(self.source)]]
            if self.step > 0:
                cmds.append([self.borg, "diff", "--json-lines", "--content-only", f"{repo}::{prev}", name])
        elif self.kind == "borgwatch":
            cmds = [[sys.executable, str(RSS_DRIVER), str(rss_file), "run", "bench", "-c",
                     str(root / "borgwatch.toml"), "--json"]]
        else:
            assert self.borgmatic
            cmds = [[self.borgmatic, "create", "-c", str(root / "borgmatic.yaml")]]
        env = self.env()
        outputs = []
        t0 = time.perf_counter()
        for argv in cmds:
            proc = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True)
            outputs.append(proc)
        seconds = time.perf_counter() - t0
        for argv, proc in zip(cmds, outputs, strict=True):
            _check(proc, f"{self.name}: {' '.join(argv[:3])}")
        sample = Sample(seconds)
        if self.kind == "borgwatch":
            sample.rss_kib = int(rss_file.read_text())
            sample.dataset = json.loads(outputs[0].stdout).get("dataset")
        return sample


def _check(proc: subprocess.CompletedProcess[bytes], what: str) -> None:
    if proc.returncode not in (0, 1):  # 1 = borg warning (e.g. a file changed while read)
        tail = (proc.stderr or b"").decode("utf-8", "replace")[-2000:]
        raise RuntimeError(f"{what} failed with rc {proc.returncode}:\n{tail}")


def make_variants(work: Path, source: Path, borg: str, borgmatic: str | None) -> list[Variant]:
    variants = [
        Variant("create", "create", work, source, borg),
        Variant("bare", "bare", work, source, borg),
        Variant("bw-exact", "borgwatch", work, source, borg, mode="exact"),
        Variant("bw-off", "borgwatch", work, source, borg, mode="off"),
    ]
    if borgmatic:
        variants.append(Variant("borgmatic", "borgmatic", work, source, borg, borgmatic=borgmatic))
    return variants
