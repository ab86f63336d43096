"""Interleaved wall-time rounds: every variant backs up the same tree state once per round, in an order that
rotates from round to round (A B C …, B C … A, …), so machine noise hits all variants alike."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.tree import ChangeStats, change, generate
from bench.variants import Sample, Variant


@dataclass
class SizeResult:
    files: int
    total_bytes: int
    first: dict[str, list[Sample]] = field(default_factory=dict)
    incremental: dict[str, list[Sample]] = field(default_factory=dict)
    changes: list[ChangeStats] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _rotated(variants: list[Variant], r: int) -> list[Variant]:
    k = r % len(variants)
    return variants[k:] + variants[:k]


def run_size(files: int, seed: int, source: Path, variants: list[Variant], first_reps: int, steps: int,
             log: Callable[[str], None]) -> SizeResult:
    t0 = time.monotonic()
    total = generate(source, files, seed)
    result = SizeResult(files, total)
    log(f"{files} files, {total / 1e6:.0f} MB generated (seed {seed})")
    for rep in range(first_reps):
        order = _rotated(variants, rep)
        for v in order:
            v.reset()
        for v in order:
            sample = v.backup()
            result.first.setdefault(v.name, []).append(sample)
            _check_first(v, sample, files, result)
        log(f"  first backup round {rep + 1}/{first_reps}: " + _line(result.first, order))
    expected_files = files
    for step in range(1, steps + 1):
        stats = change(source, files, step, seed)
        result.changes.append(stats)
        order = _rotated(variants, step)
        for v in order:
            sample = v.backup()
            result.incremental.setdefault(v.name, []).append(sample)
            _check_incremental(v, sample, stats, expected_files, result)
        expected_files += stats.added - stats.removed
        log(f"  incremental step {step}/{steps} ({stats.total()} changes): "
            + _line(result.incremental, order))
    result.seconds = time.monotonic() - t0
    return result


def _line(samples: dict[str, list[Sample]], order: list[Variant]) -> str:
    return " ".join(f"{v.name}={samples[v.name][-1].seconds:.2f}s" for v in order)


def _check_first(v: Variant, sample: Sample, files: int, result: SizeResult) -> None:
    if sample.dataset is not None and sample.dataset.get("added") != files:
        got = sample.dataset.get("added")
        result.mismatches.append(f"{v.name} first backup: added={got}, expected {files}")


def _check_incremental(v: Variant, sample: Sample, stats: ChangeStats, before: int,
                       result: SizeResult) -> None:
    """borgwatch's dataset diff must match what the tree generator changed."""
    if sample.dataset is None:
        return
    modified = stats.modified_resized + stats.modified_same_size
    expected = {"added": stats.added, "removed": stats.removed, "modified": modified,
                "unchanged": before - stats.removed - modified}
    got = {k: sample.dataset.get(k) for k in expected}
    if got != expected:
        result.mismatches.append(f"{v.name} step {len(result.changes)}: got {got}, expected {expected}")


def size_result_from_dict(d: dict) -> SizeResult:
    """Inverse of ``dataclasses.asdict`` for results.json."""
    def samples(m: dict) -> dict[str, list[Sample]]:
        return {k: [Sample(**s) for s in v] for k, v in m.items()}
    return SizeResult(d["files"], d["total_bytes"], samples(d["first"]), samples(d["incremental"]),
                      [ChangeStats(**c) for c in d["changes"]], list(d["mismatches"]), d["seconds"])
