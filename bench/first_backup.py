"""First backup of the bench tree measured alone, per dataset-diff mode, optionally from a cold page cache.

    .venv/bin/python bench/first_backup.py [--files 100000] [--cold] [--rounds 2]

Each round makes a fresh job (repository, borg cache, borgwatch state) per mode and runs one
``borgwatch run``; ``--cold`` drops the page cache before each run (root only). Prints wall time,
borgwatch's own peak RSS.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.tree import generate  # noqa: E402
from bench.variants import Variant  # noqa: E402

WORK = ROOT / "bench" / ".work"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--files", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=20240611)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--cold", action="store_true")
    args = p.parse_args()
    source = WORK / f"first{args.files}" / "src"
    if not source.exists():
        generate(source, args.files, args.seed)
    for r in range(args.rounds):
        for mode in ("exact", "off"):
            v = Variant(f"bw-{mode}", "borgwatch", WORK / f"first{args.files}", source,
                        str(ROOT / ".venv" / "bin" / "borg"), mode=mode)
            v.reset()
            if args.cold:
                subprocess.run(["sh", "-c", "sync; echo 1 > /proc/sys/vm/drop_caches"], check=True)
            sample = v.backup()
            print(f"round {r + 1} {mode:5} wall {sample.seconds:6.2f} s  borgwatch RSS "
                  f"{(sample.rss_kib or 0) / 1024:5.1f} MB", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
