"""Seeded synthetic source trees: a realistic size mix, and reproducible change steps.

Sizes follow a log-normal distribution (median 1 KiB, long tail capped at 1 MiB; ~3 KiB mean), the
shape file-system surveys report for home/source trees. Half of the files are incompressible (media,
archives), half are text-like (a seeded word salad). Everything depends on the seed only, so two
machines (or two variants of one run) back up byte-identical trees.
"""

from __future__ import annotations

import math
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

FILES_PER_DIR = 100
DIRS_PER_DIR = 20
MEDIAN = 1024
SIGMA = 1.5
MAX_SIZE = 1 << 20
_WORDS = [b"backup", b"borg", b"archive", b"chunk", b"repository", b"metric", b"prometheus", b"alert",
          b"the", b"a", b"of", b"and", b"to", b"in", b"is", b"file", b"data", b"config", b"value", b"line"]


@dataclass
class ChangeStats:
    modified_resized: int = 0
    modified_same_size: int = 0
    added: int = 0
    removed: int = 0

    def total(self) -> int:
        return self.modified_resized + self.modified_same_size + self.added + self.removed


def _size(rng: random.Random) -> int:
    return max(0, min(MAX_SIZE, int(rng.lognormvariate(math.log(MEDIAN), SIGMA))))


def _content(rng: random.Random, size: int) -> bytes:
    if rng.random() < 0.5:
        return rng.randbytes(size)
    out = bytearray()
    while len(out) < size:
        out += b" ".join(rng.choices(_WORDS, k=12)) + b"\n"
    return bytes(out[:size])


def rel_path(index: int) -> str:
    """File number -> a nested path; 100 files per directory, 20 directories per level."""
    leaf, name = divmod(index, FILES_PER_DIR)
    parts = []
    while True:
        leaf, part = divmod(leaf, DIRS_PER_DIR)
        parts.append(f"d{part:02d}")
        if leaf == 0:
            break
    return "/".join(reversed(parts)) + f"/f{index:07d}.dat"


def generate(root: Path, files: int, seed: int) -> int:
    """Create ``files`` files under ``root`` (wiped first); returns the total byte count."""
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    rng = random.Random(seed)
    total = 0
    made: set[str] = set()
    for i in range(files):
        rel = rel_path(i)
        parent = rel.rsplit("/", 1)[0]
        if parent not in made:
            (root / parent).mkdir(parents=True, exist_ok=True)
            made.add(parent)
        data = _content(rng, _size(rng))
        (root / rel).write_bytes(data)
        total += len(data)
    return total


def change(root: Path, files: int, step: int, seed: int, fraction: float = 0.03) -> ChangeStats:
    """One incremental step: ``fraction`` of the files modified (half of them keep their size), 1% added,
    0.5% removed. Deterministic in (seed, step); the tree keeps its file numbering."""
    rng = random.Random(seed * 1000 + step)
    stats = ChangeStats()
    existing = sorted(int(p.stem[1:]) for p in root.rglob("f*.dat"))
    n_mod = max(1, int(len(existing) * fraction))
    n_rm = max(1, int(len(existing) * 0.005))
    picked = rng.sample(existing, n_mod + n_rm)
    for idx in picked[:n_mod]:
        path = root / rel_path(idx)
        old = path.stat().st_size
        if rng.random() < 0.5 and old > 0:
            data = bytearray(path.read_bytes())
            pos = rng.randrange(old)
            data[pos] = (data[pos] + 1) % 256  # same-size rewrite: only content tells it apart
            path.write_bytes(bytes(data))
            stats.modified_same_size += 1
        else:
            path.write_bytes(_content(rng, _size(rng) + 1 + old))
            stats.modified_resized += 1
    for idx in picked[n_mod:]:
        (root / rel_path(idx)).unlink()
        stats.removed += 1
    start = files + step * files  # new numbers never collide with existing ones
    for i in range(max(1, files // 100)):
        path = root / rel_path(start + i)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_content(rng, _size(rng)))
        stats.added += 1
    return stats
