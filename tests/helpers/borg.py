"""Which borg the tests run, and real borg repositories (borg 1.4 from the venv, Debian's 1.2 when present)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

VENV_BORG = str(Path(sys.executable).with_name("borg"))
SYSTEM_BORG = "/usr/bin/borg"
PASSPHRASE = "correct-horse-battery-staple-7f3a"  # unique: tests grep every output for it


def borg_binary() -> str:
    """The borg under test: the venv's 1.4.x unless BORGWATCH_TEST_BORG names another binary."""
    chosen = os.environ.get("BORGWATCH_TEST_BORG") or VENV_BORG
    if not Path(chosen).exists():
        chosen = shutil.which("borg") or ""
    return chosen


def borg2_binary() -> str:
    """borg 2.0.0b23: BORGWATCH_TEST_BORG2, else the .venv-borg2 that scripts/dev builds; "" when absent."""
    chosen = os.environ.get("BORGWATCH_TEST_BORG2") or str(Path(__file__).resolve().parents[2] / ".venv-borg2"
                                                           / "bin" / "borg")
    return chosen if os.access(chosen, os.X_OK) else ""


BORG2_MISSING = "borg 2 not installed (set BORGWATCH_TEST_BORG2; scripts/dev setup makes .venv-borg2)"


def needs_borg2() -> pytest.MarkDecorator:
    return pytest.mark.skipif(not borg2_binary(), reason=BORG2_MISSING)


def borg_binaries() -> list[object]:
    out: list[object] = []
    for path, name in ((VENV_BORG, "borg-venv"), (SYSTEM_BORG, "borg-debian")):
        marks = [] if os.access(path, os.X_OK) else [pytest.mark.skip(reason=f"{path} not installed")]
        out.append(pytest.param(path, id=name, marks=marks))
    return out


@dataclass
class Repo:
    borg: str
    path: Path
    base_dir: Path  # BORG_BASE_DIR of the backup clients; the collector has its own (server side)
    passfile: Path

    @property
    def collector_base_dir(self) -> Path:
        return self.base_dir.parent / "collector-borgbase"

    def env(self) -> dict[str, str]:
        return {**{k: v for k, v in os.environ.items() if not k.startswith("BORG_")},
                "BORG_PASSPHRASE": PASSPHRASE, "BORG_BASE_DIR": str(self.base_dir), "LANG": "C.UTF-8"}

    def borg_run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([self.borg, *args], env=self.env(), capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=300)
        if check and done.returncode != 0:
            raise AssertionError(f"borg {args[0]} rc {done.returncode}: {done.stderr}")
        return done

    def create(self, name: str, source: Path, timestamp: str | None = None, *extra: str) -> None:
        args = ["create", *extra]
        if timestamp:
            args += ["--timestamp", timestamp]
        self.borg_run(*args, f"{self.path}::{name}", str(source))

    def popen_create(self, name: str, source: Path, *extra: str) -> subprocess.Popen[str]:
        return subprocess.Popen([self.borg, "create", *extra, f"{self.path}::{name}", str(source)],
                                env=self.env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)


def make_repo(tmp: Path, borg: str) -> Repo:
    base = tmp / "borgbase"
    base.mkdir(parents=True, exist_ok=True)
    passfile = tmp / "passphrase"
    passfile.write_text(PASSPHRASE + "\n")
    passfile.chmod(0o600)
    repo = Repo(borg, tmp / "repo", base, passfile)
    repo.borg_run("init", "--encryption=repokey-blake2", str(repo.path))
    return repo


class Repo2(Repo):
    """A borg 2 repository (``-r REPO``; archives are series names, told apart by ``aid:`` ids)."""

    def run(self, args: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(args, env=self.env(), capture_output=True, text=True, stdin=subprocess.DEVNULL,
                              timeout=300)
        if check and done.returncode != 0:
            raise AssertionError(f"{args[1]} rc {done.returncode}: {done.stderr}")
        return done


def make_repo2(tmp: Path) -> Repo2:
    """A repository made with borgwatch's own repo-create argv for the borg 2 under test."""
    from borgwatch.borg import argv
    from borgwatch.borg.version import BORG2_TESTED, BorgVersion

    borg = borg2_binary()
    (tmp / "borgbase").mkdir(parents=True, exist_ok=True)
    passfile = tmp / "passphrase"
    passfile.write_text(PASSPHRASE + "\n")
    passfile.chmod(0o600)
    repo = Repo2(borg, tmp / "repo", tmp / "borgbase", passfile)
    repo.run(argv.init_repository(borg, str(repo.path), version=BorgVersion(2, 0, 0, BORG2_TESTED)))
    return repo


def small_tree(tmp: Path) -> Path:
    src = tmp / "src"
    (src / "docs").mkdir(parents=True, exist_ok=True)
    for i in range(5):
        (src / "docs" / f"f{i}.txt").write_text(f"file {i}\n" * 200)
    return src


def random_tree(tmp: Path, megabytes: int) -> Path:
    """Incompressible data: with -C lzma,9 borg needs seconds for it, long enough to overlap."""
    src = tmp / "big"
    src.mkdir(parents=True, exist_ok=True)
    for i in range(megabytes):
        (src / f"r{i}.bin").write_bytes(os.urandom(1 << 20))
    return src


def config_text(tmp: Path, repo: Repo, name: str = "nas", extra: str = "") -> str:
    (tmp / "textfile").mkdir(exist_ok=True)
    return (f'textfile_dir = "{tmp / "textfile"}"\nstate_dir = "{tmp / "state"}"\nborg = "{repo.borg}"\n'
            f'borg_base_dir = "{repo.collector_base_dir}"\n[repositories.{name}]\n'
            f'repository = "{repo.path}"\npassphrase_file = "{repo.passfile}"\n{extra}')


def clean(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
