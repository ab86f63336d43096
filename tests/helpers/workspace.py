"""The test workspace: a real borg repository, a source tree and a config in a tmp dir, the real borgwatch
CLI as a subprocess, and the real node_exporter.

The borg under test is the venv's borg 1.4.x unless BORGWATCH_TEST_BORG names another binary
(.ci/run also runs the borg suite against Debian's /usr/bin/borg 1.2.4 that way).
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from helpers.borg import PASSPHRASE, borg_binary  # noqa: F401 - also part of this module's API
from helpers.servers import free_port  # noqa: F401 - also part of this module's API

ROOT = Path(__file__).resolve().parents[2]  # the repository
VENV_BIN = Path(sys.executable).parent
BORGWATCH = str(VENV_BIN / "borgwatch")


def wait_http(url: str, deadline: float = 10.0) -> None:
    import urllib.request
    end = time.monotonic() + deadline
    while True:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.05)


def make_tree(root: Path, files: int = 60, seed: int = 1) -> None:
    rng = random.Random(seed)
    for i in range(files):
        d = root / f"d{i % 6}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i}.bin").write_bytes(rng.randbytes(rng.randint(10, 5000)))


def parse_metrics(text: str) -> dict[tuple[str, frozenset], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


@dataclass
class Workspace:
    root: Path
    borg: str
    job: str = "home"
    extra_job: str = ""
    extra_global: str = ""
    env: dict[str, str] = field(default_factory=dict)

    @property
    def src(self) -> Path:
        return self.root / "src"

    @property
    def repo(self) -> Path:
        return self.root / "repo"

    @property
    def textfile_dir(self) -> Path:
        return self.root / "textfile"

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    @property
    def config(self) -> Path:
        return self.root / "config.toml"

    @property
    def prom(self) -> Path:
        return self.textfile_dir / f"borgwatch-{self.job}.prom"

    def write_config(self, job_extra: str = "", global_extra: str = "", repository: str | None = None) -> Path:
        self.config.write_text(
            f'textfile_dir = "{self.textfile_dir}"\nstate_dir = "{self.state_dir}"\n'
            f'borg = "{self.borg}"\nborg_base_dir = "{self.root / "base"}"\n{global_extra}\n'
            f'[jobs.{self.job}]\nrepository = "{repository or self.repo}"\npaths = ["{self.src}"]\n'
            f'passphrase_file = "{self.root / "pass"}"\nmax_age = "26h"\n{job_extra}\n'
        )
        return self.config

    def borgwatch(self, *args: str, timeout: float = 300, env: dict[str, str] | None = None,
                  check: bool = False) -> subprocess.CompletedProcess[str]:
        run_env = {**os.environ, **self.env, **(env or {})}
        proc = subprocess.run([BORGWATCH, *args], capture_output=True, text=True, timeout=timeout,
                              env=run_env, stdin=subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise AssertionError(f"borgwatch {args} rc={proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc

    def run(self, *extra: str, **kw) -> subprocess.CompletedProcess[str]:  # noqa: ANN003
        return self.borgwatch("run", self.job, "-c", str(self.config), *extra, **kw)

    def make_slow(self, big_files: int, job_extra: str = "") -> None:
        """Incompressible data + lzma,9: a backup that runs for seconds, to act on it mid-run."""
        big = self.src / "big"
        big.mkdir()
        for i in range(big_files):
            (big / f"r{i}").write_bytes(os.urandom(8_000_000))
        self.write_config('compression = "lzma,9"\n' + job_extra)

    def metrics(self) -> dict[tuple[str, frozenset], float]:
        return parse_metrics(self.prom.read_text())

    def value(self, name: str, **labels: str) -> float | None:
        return self.metrics().get((name, frozenset({"backup_job": self.job, **labels}.items())))

    def borg_cmd(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "BORG_PASSPHRASE": PASSPHRASE, "BORG_BASE_DIR": str(self.root / "base"),
               "BORG_RELOCATED_REPO_ACCESS_IS_OK": "yes"}
        return subprocess.run([self.borg, *args], capture_output=True, text=True, env=env,
                              stdin=subprocess.DEVNULL, timeout=300)


def start_node_exporter(textfile_dir: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")
    if binary is None:
        pytest.skip("prometheus-node-exporter is not installed (.ci/run installs it)")
    port = free_port()
    argv = [binary, f"--web.listen-address=127.0.0.1:{port}", "--collector.disable-defaults",
            "--collector.textfile", f"--collector.textfile.directory={textfile_dir}"]
    if os.geteuid() == 0 and shutil.which("runuser"):
        argv = ["runuser", "-u", "prometheus", "--", *argv]
    with log.open("wb") as log_file:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=log_file)
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        wait_http(url)
    except OSError:
        proc.kill()
        raise
    return proc, url


@dataclass
class NodeExporter:
    url: str
    log: Path

    def logs(self) -> str:
        return self.log.read_text(errors="replace")
