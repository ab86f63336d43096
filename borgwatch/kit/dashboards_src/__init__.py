"""The kit's Grafana dashboards (``kit/dashboards/*.json``), built with grafana-foundation-sdk.

Development time only: the SDK comes with the ``dashboards`` extra (the ``test`` extra pulls it in), and
borgwatch itself serves the checked-in JSON without importing this package. After editing a dashboard
module, regenerate with ``python -m borgwatch.kit.dashboards_src`` (a test fails when the JSON files and
the modules disagree).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from grafana_foundation_sdk.builders.dashboard import Dashboard

from borgwatch.fileio import atomic_write
from borgwatch.kit.dashboards_src import backup_assurance, golden_signals, hardware_health
from borgwatch.kit.dashboards_src.common import render as render_dashboard

DASHBOARD_DIR = Path(__file__).resolve().parent.parent / "dashboards"
DASHBOARDS: dict[str, Callable[[], Dashboard]] = {
    "backup-assurance.json": backup_assurance.build,
    "hardware-health.json": hardware_health.build,
    "golden-signals.json": golden_signals.build,
}


def render(name: str) -> str:
    """The JSON text of one dashboard file, e.g. ``render("golden-signals.json")``."""
    return render_dashboard(DASHBOARDS[name]())


def main(out_dir: Path = DASHBOARD_DIR) -> None:
    for name in DASHBOARDS:
        atomic_write(out_dir / name, render(name).encode("utf-8"), mode=0o644)  # never through a symlink
        print(f"wrote {out_dir / name}")
