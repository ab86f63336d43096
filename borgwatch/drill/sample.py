"""Which files a drill restores: the sample policy over the coverage database (``dataset/coverage.py``,
which holds the listing and what past drills verified, and every query).

The choice is reproducible: the same listing, coverage and seed give the same sample.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from pathlib import Path

from borgwatch.borg.extract import ArchivedFile
from borgwatch.dataset.coverage import ROTATION_MODULUS, CoverageDB, FileRow, Listing, coverage_path
from borgwatch.drill.config import COVERAGE_WINDOW_SECONDS, DrillPlan

RECENT_SHARE = 0.5  # half of each sample goes to files the latest runs added or modified
LARGEST_CHANCE = 0.25  # about every fourth drill also restores the largest file that fits
RECENT_POOL = 20  # recent files considered per place in the sample (shuffled by the seed)
__all__ = ["Coverage", "Listing", "coverage_path"]


class Coverage:
    """The coverage database of one job, in ArchivedFiles."""

    def __init__(self, path: Path) -> None:
        self.db = CoverageDB(path)

    def close(self) -> None:
        self.db.close()

    def load_listing(self, files: Iterable[ArchivedFile]) -> Listing:
        return self.db.load_listing((f.path, f.size, f.mtime_us, f.ctime_us) for f in files)

    def choose(self, plan: DrillPlan, listing: Listing, seed: int,
               changed_after_us: int | None) -> list[ArchivedFile]:
        """Recently added/modified files (weighted), the largest file now and then, then a rotating slice
        of the rest: never-verified first, then the longest ago; within ``max_files`` and ``max_bytes``."""
        rng = random.Random(seed)
        want = plan.sample_size(listing.files)
        budget = plan.max_bytes
        chosen: dict[str, ArchivedFile] = {}

        def take(rows: Iterable[FileRow], limit: int) -> None:
            nonlocal budget
            for path, size, mtime, ctime in rows:
                if len(chosen) >= limit:
                    return
                if path not in chosen and size <= budget:
                    chosen[path] = ArchivedFile(path, size, mtime, ctime)
                    budget -= size

        if changed_after_us is not None:
            recent = self.db.changed_after(changed_after_us, budget, want * RECENT_POOL)
            rng.shuffle(recent)
            take(recent, max(1, round(want * RECENT_SHARE)))
        if rng.random() < LARGEST_CHANCE:
            take(self.db.largest(budget), want)
        batches = self.db.rotation(rng.randrange(ROTATION_MODULUS))
        for rows in batches:
            if len(chosen) >= want or budget <= 0:
                break
            take(rows, want)
        batches.close()
        return sorted(chosen.values(), key=lambda f: f.path)

    def mark_verified(self, paths: Iterable[str], now: float) -> None:
        self.db.mark_verified(paths, now, COVERAGE_WINDOW_SECONDS)

    def bytes_under(self, prefix: str) -> int:
        return self.db.bytes_under(prefix)

    def coverage(self, now: float) -> float:
        """Share of the archive's files verified by a drill within the coverage window."""
        return self.db.coverage(now - COVERAGE_WINDOW_SECONDS)
