"""First backup of the bench tree measured alone: where exact mode's first-backup cost goes.

    .venv/bin/python bench/first_backup.py [--files 10000] [--cold] [--rounds 4]

Each round makes a fresh repository, borg cache and borgwatch state per variant, in a rotating order, and
times one first backup: bare ``borg create``; the same with exact mode's listing (``--list --filter=AMEhC
--log-json``, stderr to a file: borg's own cost of printing every file); ``borgwatch run`` in off mode on a
state dir that has never seen this borg (it asks ``borg --version``), and again with the version cache an
existing install has; exact mode with that cache. ``--cold`` drops the page cache before each run (root
only). Prints each run, then medians and the median of per-round ratios to bare create.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.tree import generate  # noqa: E402
from bench.variants import PASSPHRASE, Variant  # noqa: E402

WORK = ROOT / "bench" / ".work"
BORG = str(ROOT / ".venv" / "bin" / "borg")
LISTING = ["--list", "--filter=AMEhC", "--log-json"]
VARIANTS = ("create", "create+listing", "off", "off, version cached", "exact, version cached")


def _once(name: str, work: Path, source: Path, cold: bool) -> float:
    mode = "exact" if name.startswith("exact") else "off"
    v = Variant(name.split(",")[0].replace("+", "-"), "create" if name.startswith("create") else "borgwatch",
                work, source, BORG, mode=mode)
    v.reset()
    if "version cached" in name:  # what `borgwatch run` of any job of this state dir left before
        code = "import sys; from pathlib import Path; from borgwatch.borg.version import detect_version; " \
               "detect_version(sys.argv[1], {}, Path(sys.argv[2]))"
        subprocess.run([sys.executable, "-c", code, BORG, str(work / v.name / "state")], check=True, env=v.env())
    if cold:
        subprocess.run(["sh", "-c", "sync; echo 1 > /proc/sys/vm/drop_caches"], check=True)
    if not name.startswith("create"):
        return v.backup().seconds
    argv = [BORG, "create", *(LISTING if "listing" in name else []), f"{v.repo}::first", str(source)]
    with open(work / v.name / "stderr", "wb") as err:
        t0 = time.perf_counter()
        subprocess.run(argv, env={**v.env(), "BORG_PASSPHRASE": PASSPHRASE}, stderr=err, check=True)
        return time.perf_counter() - t0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--files", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=20240611)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--cold", action="store_true")
    args = p.parse_args()
    work = WORK / f"first{args.files}"
    source = work / "src"
    if not source.exists():
        generate(source, args.files, args.seed)
    walls: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for r in range(args.rounds):
        for name in VARIANTS[r % len(VARIANTS):] + VARIANTS[:r % len(VARIANTS)]:
            walls[name].append(_once(name, work, source, args.cold))
            print(f"round {r + 1} {name:22} {walls[name][-1]:6.2f} s", flush=True)
    print(f"{args.files} files, {args.rounds} rounds, load {os.getloadavg()[0]:.2f}")
    for name, values in walls.items():
        ratio = statistics.median(a / b for a, b in zip(values, walls["create"], strict=True))
        print(f"{name:22} median {statistics.median(values):6.2f} s  / bare create {ratio:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
