"""``borgwatch demo``: the embedded default job. A throwaway repository, a sample tree, two real runs
(the second after changing the tree), then the metrics file node_exporter would read."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from borgwatch.borg import argv as borg_argv
from borgwatch.borg.version import detect_version, find_borg
from borgwatch.commands.run import run_command
from borgwatch.errors import UserError

DEMO_PASSPHRASE_NOTE = "demo passphrase, stored in a throwaway file"


def find_demo_borg(borg: str | None = None) -> str:
    if borg:
        return find_borg(borg)
    beside = Path(sys.executable).with_name("borg")
    found = str(beside) if beside.exists() else shutil.which("borg")
    if not found:
        raise UserError("borg not found: install borgbackup (apt install borgbackup) or "
                        "pip install 'borgwatch[borg]'")
    return found


def make_tree(root: Path, files: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    for i in range(files):
        d = root / f"dir{i % 10}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"file{i}.txt").write_bytes(rng.randbytes(rng.randint(100, 20000)))


def demo_command(workdir: str | None, borg_binary: str | None = None) -> int:
    """``borg_binary``: the borg to demonstrate (default: the one beside borgwatch, else on PATH)."""
    borg = find_demo_borg(borg_binary)
    version = detect_version(borg, {**os.environ, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"})  # refuses untested
    base = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="borgwatch-demo-"))
    base.mkdir(parents=True, exist_ok=True)
    src, repo, tf = base / "src", base / "repo", base / "textfile"
    tf.mkdir(exist_ok=True)
    passfile = base / "passphrase"
    passfile.write_text(os.urandom(12).hex() + "\n")
    passfile.chmod(0o600)
    make_tree(src, 200)
    env = {**os.environ, "BORG_BASE_DIR": str(base / "borg-base"), "BORG_PASSCOMMAND": f"cat {passfile}"}
    if not repo.exists():
        subprocess.run(borg_argv.init_repository(borg, str(repo), version=version), env=env, check=True,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    config = base / "config.toml"
    config.write_text(f'''# borgwatch demo configuration ({DEMO_PASSPHRASE_NOTE})
textfile_dir = "{tf}"
state_dir = "{base / 'state'}"
borg = "{borg}"
borg_base_dir = "{base / 'borg-base'}"

[jobs.demo]
repository = "{repo}"
paths = ["{src}"]
exclude = ["*.tmp"]
passphrase_file = "{passfile}"
max_age = "26h"

[jobs.demo.prune]
keep_daily = 7
keep_weekly = 4

[jobs.demo.compact]

[jobs.demo.check]
every = "7d"
''')
    print(f"== borgwatch demo in {base} with borg {version.text}\n== first run (everything is new)", flush=True)
    rc = run_command(str(config), ["demo"], False, False)
    time.sleep(1.1)
    files = sorted(src.rglob("*.txt"))
    files[0].write_bytes(files[0].read_bytes() + b"changed")
    files[1].unlink()
    (src / "dir0" / "added.txt").write_text("new file\n")
    files[2].touch()
    print("== second run (1 modified, 1 removed, 1 added, 1 only touched)", flush=True)
    rc = run_command(str(config), ["demo"], False, False) or rc
    prom = tf / "borgwatch-demo.prom"
    print(f"== {prom} (what node_exporter's textfile collector reads)")
    sys.stdout.write(prom.read_text())
    print(f"== state: {base / 'state'}; config: {config}; try: borgwatch status -c {config}")
    return rc
