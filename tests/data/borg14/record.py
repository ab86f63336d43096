"""Record what borg 1.4 prints, for the stand-in borg (tests/fakeborg.py) to replay.

Run once with the venv's borg: ``.venv/bin/python tests/data/borg14/record.py .venv/bin/borg``. Each
recording is NAME.stderr (the --log-json stream), NAME.stdout and NAME.rc; paths and times are borg's own."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
COMMON = ["--log-json", "--show-rc", "--lock-wait", "1"]


def record(name: str, argv: list[str], env: dict[str, str]) -> None:
    proc = subprocess.run(argv, capture_output=True, env=env, stdin=subprocess.DEVNULL)
    (HERE / f"{name}.stderr").write_bytes(proc.stderr)
    (HERE / f"{name}.stdout").write_bytes(proc.stdout)
    (HERE / f"{name}.rc").write_text(f"{proc.returncode}\n")


def main(borg: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        env = {**os.environ, "BORG_PASSPHRASE": "x", "BORG_BASE_DIR": str(root / "base")}
        src = root / "src"
        src.mkdir()
        for i in range(3):
            (src / f"f{i}").write_text(f"file {i}\n")
        repo = str(root / "repo")
        subprocess.run([borg, "init", "-e", "repokey", repo], check=True, env=env, capture_output=True)
        record("version", [borg, "--version"], env)
        record("create-ok", [borg, "create", *COMMON, "--json", "--list", f"{repo}::home-1", str(src)], env)
        # a source path that does not exist: a warning, rc 1, and an archive all the same
        record("create-warning", [borg, "create", *COMMON, "--json", "--list", f"{repo}::home-2", str(src),
                                  str(root / "gone")], env)
        record("create-error", [borg, "create", *COMMON, "--json", f"{root / 'norepo'}::home-3", str(src)], env)
        record("list-archives", [borg, "list", *COMMON, "--json", "--consider-checkpoints", repo], env)
        record("list-items", [borg, "list", *COMMON, "--json-lines", f"{repo}::home-1"], env)
        record("prune-ok", [borg, "prune", *COMMON, "--list", "--glob-archives", "home-*", "--keep-last", "1",
                            repo], env)
        record("compact-ok", [borg, "compact", *COMMON, repo], env)
        record("check-ok", [borg, "check", *COMMON, repo], env)


if __name__ == "__main__":
    main(sys.argv[1])
