"""Cost of the files-cache snapshot at N files, from borg's files cache to the counts.

Two consecutive incremental runs are simulated as borg leaves them: a files cache per run (msgpack, borg
1.4's entry shape, 4 % older entries borg keeps until their TTL, empty and multi-chunk files) and the
``--list`` lines of the files borg read (1 % modified, 0.1 % added, the newest file unmemorized); 0.1 % of
the files are removed. Per size: read + build of one snapshot (reading the cache alone beside it), the diff
with its settle, a first run's build (every file listed ``A``), and the peak RSS of the whole process.

Run: ``.venv/bin/python -m bench.snapshot_scale 10000 100000 1000000`` (one process per size, so each
peak RSS is its own). The synthetic caches are written before the clock starts; times are wall clock with
the process's CPU time beside them (on a shared machine the CPU time is the steadier figure).
"""

from __future__ import annotations

import hashlib
import os
import resource
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import msgpack

from borgwatch.borg.filescache import read_entries
from borgwatch.dataset.snapshot import Snapshot, diff, settle, undecided_paths

CMTIME = 1_700_000_000_000_000_000


def _path(i: int) -> bytes:
    return f"/src/d{i % 997}/file-{i}.dat".encode()


def _files(n: int, generation: int) -> Iterator[int]:
    """The file numbers of a generation (streamed): generation 1 lost every 1000th file and gained n/1000."""
    if not generation:
        yield from range(n)
    else:
        yield from (i for i in range(n + n // 1000) if i % 1000 != 1)


def _number(path: bytes) -> int:
    return int(path.rsplit(b"-", 1)[1].split(b".")[0])


def _newest(n: int, generation: int) -> int:
    return n + n // 1000 - 1 if generation else n - 1


def _changed(i: int, generation: int) -> bool:
    return generation == 1 and i % 100 == 0


def _entry(i: int, generation: int) -> tuple[bytes, tuple[int, int, int, int, list[bytes]]]:
    content = i + (1 << 40 if _changed(i, generation) else 0)
    chunks = 0 if i % 50 == 7 else (3 if i % 20 == 3 else 1)
    ids = [hashlib.sha256(f"{content}:{c}".encode()).digest() for c in range(chunks)]
    return hashlib.blake2b(_path(i), digest_size=32).digest(), (0, 1000 + i, 4096 + i, _cmtime(i, generation), ids)


def _cmtime(i: int, generation: int) -> int:
    return CMTIME + i + (10**12 if _changed(i, generation) else 0)


def write_cache(path: Path, n: int, generation: int) -> None:
    """borg's files cache after the run: this run's files (less the newest one) and 4 % older entries."""
    packer = msgpack.Packer()
    newest = _newest(n, generation)
    with open(path, "wb") as fd:
        for i in _files(n, generation):
            if i != newest:
                fd.write(packer.pack(_entry(i, generation)))
        for i in range(n // 25):
            fd.write(packer.pack((hashlib.blake2b(b"old %d" % i, digest_size=32).digest(),
                                  (1 + i % 3, 10**9 + i, 1, CMTIME, [hashlib.sha256(b"%d" % i).digest()]))))


def _listed(n: int, generation: int, first: bool) -> Iterator[tuple[str, bytes, os.stat_result, int]]:
    """The ``--list`` lines of a run: every file on a first run, else the ones not in borg's cache (added,
    the previous run's newest) and the modified ones."""
    unknown = {_newest(n, generation), _newest(n, 0)}
    if first:
        numbers: Iterable[int] = _files(n, generation)
    elif generation:
        numbers = sorted({*range(0, n, 100), *(i for i in range(n, n + n // 1000) if i % 1000 != 1), *unknown})
    else:
        numbers = sorted(unknown)
    for i in numbers:
        status = "A" if first or i >= n or i in unknown else "M"
        ino, size, cmtime = 1000 + i, 4096 + i, _cmtime(i, generation)
        st = os.stat_result((stat.S_IFREG | 0o644, ino, 1, 1, 0, 0, size, 0, 0, 0, 0, 0, cmtime, cmtime))
        yield status, _path(i), st, cmtime


def build(snap_path: Path, cache: Path, listed: Iterable[tuple[str, bytes, os.stat_result, int]]) -> Snapshot:
    snap = Snapshot.create(snap_path)
    for status, path, st, cmtime in listed:
        snap.add_listed(status, path, st, cmtime)
    snap.add_cached(read_entries(cache))
    snap.seal()
    return snap


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _took(start: tuple[float, float], end: tuple[float, float], per: int = 1) -> str:
    return f"{(end[0] - start[0]) / per:.3f} s ({(end[1] - start[1]) / per:.3f} s CPU)"


def measure(n: int) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for generation in (0, 1):
            write_cache(work / f"files{generation}", n, generation)
        t0 = _clock()
        read = sum(1 for _ in read_entries(work / "files1"))
        t1 = _clock()
        build(work / "s0", work / "files0", _listed(n, 0, False)).close()
        cur = build(work / "s1", work / "files1", _listed(n, 1, False))
        t2 = _clock()
        prev = Snapshot.open(work / "s0")
        assert prev is not None
        found = diff(prev, cur)
        settle(cur, found, {path: "added" for path in undecided_paths(cur) if _number(path) >= n})  # borg's verdicts
        t3 = _clock()
        prev.close()
        cur.close()
        t4 = _clock()
        build(work / "first", work / "files0", _listed(n, 0, True)).close()
        t5 = _clock()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return (f"{n} files: read+build {_took(t1, t2, 2)} per snapshot (reading {read} entries alone "
            f"{_took(t0, t1)}), diff+settle {_took(t2, t3)}, first-run build {_took(t4, t5)}, peak RSS {rss:.1f} MB "
            f"(added {found.added}, removed {found.removed}, modified {found.modified}, "
            f"unchanged {found.unchanged}{', doubt: ' + found.doubt if found.doubt else ''})")


if __name__ == "__main__":
    if len(sys.argv) == 2:
        print(measure(int(sys.argv[1])), flush=True)
    else:
        for size in sys.argv[1:] or ["10000", "100000"]:
            subprocess.run([sys.executable, "-m", "bench.snapshot_scale", size], check=True)
