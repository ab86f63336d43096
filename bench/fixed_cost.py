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
import tempfile
import time
from dataclasses import dataclass
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


@dataclass
class Phases:
    before: float  # wall: borgwatch's exec to borg's start
    after: float  # wall: borg's exit to borgwatch's exit
    cpu: float  # borgwatch's own CPU (user + system), borg's excluded


def once(root: Path, code: Path | None, src: Path, n: int) -> tuple[float, Phases | None]:
    if code is None:
        argv, extra = [BORG, "create", f"{root}/repo::a{n:04d}", str(src)], {"BORG_PASSPHRASE": PASSPHRASE}
    else:
        argv, extra = [sys.executable, "-m", "borgwatch", "run", "bench", "-c", str(root / "bw.toml"), "--json"], {}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0, w0 = time.perf_counter(), time.time()
        # cwd: the variant's own dir, as a timer's is not the checkout: `python -m` puts the cwd first on
        # sys.path, so run from the checkout every variant imported the checkout's borgwatch
        proc = subprocess.Popen(argv, env={**env(root, code), **extra}, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=err, cwd=root)
        _, status, usage = os.wait4(proc.pid, 0)
        wall, w1 = time.perf_counter() - t0, time.time()
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{argv[:4]} failed ({proc.returncode}): {stderr[-500:]!r}")
    if code is None:
        return wall, None
    result = json.loads(stdout)
    create = next(s for s in result["stages"] if s["name"] == "create")
    borg_cpu = result["resources"]["cpu_user_seconds"] + result["resources"]["cpu_system_seconds"]
    return wall, Phases(create["started_at"] - w0, w1 - create["started_at"] - create["duration_seconds"],
                        usage.ru_utime + usage.ru_stime - borg_cpu)


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
    phases: dict[str, list[Phases]] = {n: [] for n in names}
    loads = []
    for r in range(rounds):
        change(src, FILES, r + 1, 1)
        for name in names[r % len(names):] + names[:r % len(names)]:
            wall, phase = once(roots[name], codes[name], src, r + 1)
            walls[name].append(wall)
            if phase is not None:
                phases[name].append(phase)
        loads.append(os.getloadavg()[0])
    print(f"{rounds} rounds, {FILES} files; load average (1 min) median {statistics.median(loads):.2f} "
          f"(min {min(loads):.2f}, max {max(loads):.2f}), {os.cpu_count()} CPUs")
    base = walls["create"]
    for name in names:
        line = f"{name:14s} median {statistics.median(walls[name]):.3f} s"
        if phases[name]:
            ratio = statistics.median(a / b for a, b in zip(walls[name], base, strict=True))
            delta = statistics.median(a - b for a, b in zip(walls[name], base, strict=True))

            def ms(values: list[float]) -> str:
                return f"{statistics.median(values) * 1000:.0f} ms"

            line += (f"  ratio {ratio:.3f}  delta {delta * 1000:+.0f} ms  outside borg "
                     f"{ms([p.before + p.after for p in phases[name]])} (before "
                     f"{ms([p.before for p in phases[name]])}, after {ms([p.after for p in phases[name]])}; "
                     f"own CPU {ms([p.cpu for p in phases[name]])})")
        print(line)


if __name__ == "__main__":
    main(sys.argv[1:])
