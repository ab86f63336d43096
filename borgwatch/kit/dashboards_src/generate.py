"""Renders the three dashboards and writes them next to the kit's other assets."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from grafana_foundation_sdk.builders.dashboard import Dashboard

from borgwatch.kit.dashboards_src import backup_assurance, golden_signals, hardware_health
from borgwatch.kit.dashboards_src.common import render as render_dashboard
from borgwatch.store.files import atomic_write

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
