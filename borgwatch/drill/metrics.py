"""The drill's metrics (``borgwatch_drill_*``) are rows of the one metric table (``metrics/specs.py``) and
reach the job's textfile through RunResult.drill like every other series."""

from __future__ import annotations

from borgwatch.metrics.specs import DRILL_METRICS, DRILL_PREFIX, drill_samples

PREFIX = DRILL_PREFIX
DRILL_SPECS = {m.name: m for m in DRILL_METRICS}
__all__ = ["DRILL_METRICS", "DRILL_SPECS", "PREFIX", "drill_samples"]
