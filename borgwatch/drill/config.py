"""A job's drill resolved from its ``[jobs.NAME.drill]`` table (``config/schema.py:DrillConfig``)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from borgwatch.config.load import parse_duration
from borgwatch.config.schema import DrillConfig

COVERAGE_WINDOW_SECONDS = 30 * 86400
__all__ = ["COVERAGE_WINDOW_SECONDS", "DrillConfig", "DrillPlan", "plan"]


@dataclass(frozen=True)
class DrillPlan:
    """A drill resolved once from the config: durations parsed, the sample's size known."""

    every_seconds: float
    max_age_seconds: float
    max_files: int
    max_bytes: int
    sample_percent: float
    seed: int | None
    dry_run_archive: bool
    paths: tuple[str, ...]
    temp_dir: str | None

    def sample_size(self, archive_files: int) -> int:
        return min(self.max_files, max(1, math.ceil(archive_files * self.sample_percent / 100)))


def plan(cfg: DrillConfig) -> DrillPlan:
    return DrillPlan(parse_duration(cfg.every), parse_duration(cfg.max_age), cfg.max_files, cfg.max_bytes,
                     cfg.sample_percent, cfg.seed, cfg.dry_run_archive, tuple(cfg.paths), cfg.temp_dir)
