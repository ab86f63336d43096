"""``python -m bench.drill [--files N] [--drill-mb M]``: restore-drill figures.

1. Choosing the sample: N synthetic ``borg list --json-lines`` lines parsed, loaded into the coverage
   database, a sample chosen, marked verified and the coverage computed (wall time per step, peak RSS
   growth of the process: the listing streams into SQLite, so memory must not grow with N).
2. Drill throughput: a tree of M MiB backed up by real borg (``borgwatch run``), then ``borgwatch drill``
   restoring all of it (sample_percent = 100): restore rate and the drill's wall time.

Defaults are the issue's size (100k files); pass smaller numbers on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from borgwatch.borg.extract import parse_files
from borgwatch.drill.config import DrillConfig, plan
from borgwatch.drill.sample import Coverage

VENV_BIN = Path(sys.executable).parent


def listing_lines(n: int, seed: int = 1) -> Iterator[bytes]:
    """Lines shaped like borg 1.4's ``list --json-lines --format {type}{path}{size}{mtime}{ctime}``."""
    rng = random.Random(seed)
    for i in range(n):
        size = min(1 << 20, int(rng.lognormvariate(7, 1.5)))
        yield json.dumps({"type": "-", "mode": "-rw-r--r--", "user": "root", "group": "root", "uid": 0,
                          "gid": 0, "path": f"srv/data/d{i // 100:04}/f{i:07}.bin", "healthy": True,
                          "source": "", "linktarget": "", "flags": 0, "size": size,
                          "mtime": "2026-11-30T10:00:00.000000", "ctime": "2026-11-30T10:00:00.000000"}
                         ).encode()


def max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_choice(files: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        lines = Path(tmp) / "listing.jsonl"  # as the drill does: borg's stdout goes to a file first
        with open(lines, "wb") as fh:
            fh.writelines(line + b"\n" for line in listing_lines(files))
        rss0 = max_rss_mib()
        coverage = Coverage(Path(tmp) / "c.sqlite")
        t0, c0 = time.perf_counter(), time.process_time()
        with open(lines, "rb") as fh:
            listing = coverage.load_listing(parse_files(fh))
        t1, c1 = time.perf_counter(), time.process_time()
        sample = coverage.choose(plan(DrillConfig()), listing, 42, changed_after_us=None)
        t2, c2 = time.perf_counter(), time.process_time()
        coverage.mark_verified([f.path for f in sample], time.time())
        ratio = coverage.coverage(time.time())
        t3, c3 = time.perf_counter(), time.process_time()
        coverage.close()
        # CPU seconds beside wall seconds: on a shared machine the wall time says more about the neighbours
        return {"files": files, "sample": len(sample), "parse_and_load_s": t1 - t0, "parse_and_load_cpu_s": c1 - c0,
                "choose_s": t2 - t1, "choose_cpu_s": c2 - c1, "mark_and_coverage_s": t3 - t2,
                "mark_and_coverage_cpu_s": c3 - c2, "coverage": ratio, "rss_growth_mib": max_rss_mib() - rss0}


def bench_throughput(mib: int, borg: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        src, tf, state = root / "src", root / "tf", root / "state"
        for d in (src, tf, state):
            d.mkdir()
        for i in range(mib):
            (src / f"f{i:04}.bin").write_bytes(os.urandom(1 << 20))
        (root / "pass").write_text("bench-pass\n")
        env = {**os.environ, "BORG_PASSPHRASE": "bench-pass", "BORG_BASE_DIR": str(root / "base")}
        subprocess.run([borg, "init", "-e", "repokey", str(root / "repo")], env=env, check=True,
                       capture_output=True)
        base = (f'textfile_dir = "{tf}"\nstate_dir = "{state}"\nborg = "{borg}"\nborg_base_dir = "{root}/base"\n'
                f'[jobs.bench]\nrepository = "{root}/repo"\npaths = ["{src}"]\npassphrase_file = "{root}/pass"\n')
        (root / "run.toml").write_text(base)
        (root / "drill.toml").write_text(base + f"[jobs.bench.drill]\nsample_percent = 100\nmax_files = 100000\n"
                                                f"max_bytes = {(mib + 1) << 20}\n")
        subprocess.run([VENV_BIN / "borgwatch", "run", "bench", "-c", root / "run.toml"], check=True,
                       capture_output=True)
        t0 = time.perf_counter()
        proc = subprocess.run([VENV_BIN / "borgwatch", "drill", "bench", "-c", root / "drill.toml", "--json"],
                              capture_output=True, text=True)
        wall = time.perf_counter() - t0
        result = json.loads(proc.stdout)[0]
        return {"mib": mib, "status": result["status"], "files_verified": result["files_verified"],
                "restore_mib_per_s": (result["throughput_bytes_per_second"] or 0) / (1 << 20),
                "drill_wall_s": wall, "restore_s": result["restore_seconds"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--drill-mb", type=int, default=200)
    parser.add_argument("--borg", default=str(VENV_BIN / "borg"))
    args = parser.parse_args()
    for n in args.files:
        print(json.dumps(bench_choice(n)))
    print(json.dumps(bench_throughput(args.drill_mb, args.borg)))


if __name__ == "__main__":
    main()
