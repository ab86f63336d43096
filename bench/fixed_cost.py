"""``python -m bench.fixed_cost [ROUNDS] [NAME=CODE_DIR …]``: the fixed cost of ``borgwatch run`` around borg.

Bare ``borg create`` against ``borgwatch run`` with ``dataset_diff = "off"`` on one 10k-file tree
(``bench/tree.py``, one change step per round), interleaved with a rotating order; each variant has its own
repository. ``NAME=CODE_DIR`` adds a borgwatch variant importing borgwatch from CODE_DIR (e.g. a ``git
archive`` of another commit, compiled with compileall); ``this`` is the checkout's own. Prints medians, the
median of per-round ratios and deltas, and the wall time outside borg (wall minus the create stage)."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.tree import change, generate
from bench.variants import ENCRYPTION, PASSPHRASE

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / ".work" / "fixed_cost"
BORG = str(Path(sys.executable).with_name("borg"))
FILES = 10_000


def setup(name: str, src: Path) -> Path:
    root = WORK / name
    shutil.rmtree(root, ignore_errors=True)
    for sub in ("base", "state", "tf"):
        (root / sub).mkdir(parents=True)
    (root / "pass").write_text(PASSPHRASE)
    subprocess.run([BORG, "init", "-e", ENCRYPTION, str(root / "repo")],
                   env={**env(root, None), "BORG_PASSPHRASE": PASSPHRASE}, check=True, capture_output=True)
    (root / "bw.toml").write_text(
        f'textfile_dir = "{root}/tf"\nstate_dir = "{root}/state"\nborg_base_dir = "{root}/base"\nborg = "{BORG}"\n'
        f'[jobs.bench]\nrepository = "{root}/repo"\npaths = ["{src}"]\npassphrase_file = "{root}/pass"\n'
        'dataset_diff = "off"\narchive_name = "{job}-{now:%Y-%m-%dT%H:%M:%S.%f}"\n')
    return root


def env(root: Path, code: Path | None) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith("BORG_")}
    out.update(BORG_BASE_DIR=str(root / "base"), LANG="C.UTF-8")
    if code is not None and code != ROOT:
        out["PYTHONPATH"] = str(code)
    return out


def once(root: Path, code: Path | None, src: Path, n: int) -> tuple[float, float | None]:
    if code is None:
        argv, extra = [BORG, "create", f"{root}/repo::a{n:04d}", str(src)], {"BORG_PASSPHRASE": PASSPHRASE}
    else:
        argv, extra = [sys.executable, "-m", "borgwatch", "run", "bench", "-c", str(root / "bw.toml"), "--json"], {}
    t0 = time.perf_counter()
    proc = subprocess.run(argv, env={**env(root, code), **extra}, stdin=subprocess.DEVNULL, capture_output=True)
    wall = time.perf_counter() - t0
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{argv[:4]} failed ({proc.returncode}): {proc.stderr[-500:]!r}")
    if code is None:
        return wall, None
    return wall, next(s["duration_seconds"] for s in json.loads(proc.stdout)["stages"] if s["name"] == "create")


def main(argv: list[str]) -> None:
    rounds = int(argv[0]) if argv else 15
    codes: dict[str, Path | None] = {"create": None, "this": ROOT}
    codes.update({k: Path(v).resolve() for k, v in (a.split("=", 1) for a in argv[1:])})
    src = WORK / "src"
    WORK.mkdir(parents=True, exist_ok=True)
    if not src.exists():
        generate(src, FILES, 1)
    roots = {name: setup(name, src) for name in codes}
    for code in filter(None, codes.values()):  # as a wheel install has it, whatever PYTHONDONTWRITEBYTECODE says
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(code / "borgwatch")], check=True)
    for name, code in codes.items():
        once(roots[name], code, src, 0)  # first backups, not timed
    names = list(codes)
    walls: dict[str, list[float]] = {n: [] for n in names}
    outside: dict[str, list[float]] = {n: [] for n in names}
    loads = []
    for r in range(rounds):
        change(src, FILES, r + 1, 1)
        for name in names[r % len(names):] + names[:r % len(names)]:
            wall, borg = once(roots[name], codes[name], src, r + 1)
            walls[name].append(wall)
            if borg is not None:
                outside[name].append(wall - borg)
        loads.append(os.getloadavg()[0])
    print(f"{rounds} rounds, {FILES} files; load average (1 min) median {statistics.median(loads):.2f} "
          f"(min {min(loads):.2f}, max {max(loads):.2f}), {os.cpu_count()} CPUs")
    base = walls["create"]
    for name in names:
        line = f"{name:14s} median {statistics.median(walls[name]):.3f} s"
        if outside[name]:
            ratio = statistics.median(a / b for a, b in zip(walls[name], base, strict=True))
            delta = statistics.median(a - b for a, b in zip(walls[name], base, strict=True))
            line += (f"  ratio {ratio:.3f}  delta {delta * 1000:+.0f} ms  outside borg "
                     f"{statistics.median(outside[name]) * 1000:.0f} ms")
        print(line)


if __name__ == "__main__":
    main(sys.argv[1:])
