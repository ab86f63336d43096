"""Small statistics helpers: medians of interleaved samples and ratios of medians."""

from __future__ import annotations

import statistics


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def ratio(a: list[float], b: list[float]) -> float:
    """median(a) / median(b)."""
    mb = median(b)
    return median(a) / mb if mb else float("nan")


def paired_ratio(a: list[float], b: list[float]) -> float:
    """Median of the per-round ratios a[i]/b[i]: robust against drifting machine load between rounds."""
    pairs = [x / y for x, y in zip(a, b, strict=False) if y]
    return statistics.median(pairs) if pairs else float("nan")
