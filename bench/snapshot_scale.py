"""Cost of the files-cache snapshot at N files: build two snapshots of synthetic records, diff them.

Run: ``.venv/bin/python -m bench.snapshot_scale 10000 100000 1000000`` (one process per size, so each
peak RSS is its own).
"""

from __future__ import annotations

import hashlib
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from borgwatch.dataset.snapshot import Snapshot, diff


def _entries(n: int, generation: int) -> Iterator[tuple[bytes, bytes, int, int, int]]:
    for i in range(n):
        key = hashlib.blake2b(i.to_bytes(8, "little"), digest_size=16).digest()
        content = -i if generation and i % 100 == 0 else i  # 1 % modified in the second generation
        yield key, hashlib.blake2b(content.to_bytes(9, "little", signed=True), digest_size=16).digest(), i, 100, i


def measure(n: int) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.monotonic()
        for generation in (0, 1):
            snap = Snapshot.create(Path(tmp) / f"s{generation}")
            snap.add_cached(_entries(n, generation))
            snap.seal()
        t1 = time.monotonic()
        prev = Snapshot.open(Path(tmp) / "s0")
        assert prev is not None
        found = diff(prev, snap)
        t2 = time.monotonic()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return (f"{n} files: build {(t1 - t0) / 2:.2f} s per snapshot, diff {t2 - t1:.2f} s, peak RSS {rss:.1f} MB "
            f"(modified {found.modified}, unchanged {found.unchanged})")


if __name__ == "__main__":
    if len(sys.argv) == 2:
        print(measure(int(sys.argv[1])))
    else:
        for size in sys.argv[1:] or ["10000", "100000"]:
            subprocess.run([sys.executable, "-m", "bench.snapshot_scale", size], check=True)
