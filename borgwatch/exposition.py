"""All output formats in one place: samples -> prometheus_client registry -> textfile / text.

HELP and TYPE come from ``borgwatch.metrics.SPECS`` so every file borgwatch writes carries identical
metadata (node_exporter silently drops series whose HELP differs between files).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from borgwatch.metrics import SPECS
from borgwatch.state import fsync_dir

FullSample = tuple[str, dict[str, str], float]  # (exposed metric name, all labels, value)


class SnapshotCollector(Collector):
    """Exposes a fixed list of samples, grouped into families in SPECS order."""

    def __init__(self, samples: Iterable[FullSample]) -> None:
        self._by_name: dict[str, list[tuple[dict[str, str], float]]] = {}
        for name, labels, value in samples:
            if name not in SPECS:
                raise KeyError(f"metric {name} is not in borgwatch.metrics.SPECS")
            self._by_name.setdefault(name, []).append((labels, value))

    def collect(self) -> Iterable[Metric]:
        for name, spec in SPECS.items():
            rows = self._by_name.get(name)
            if not rows:
                continue
            label_names = list(spec.labels)
            if spec.kind == "counter":
                family: Metric = CounterMetricFamily(name.removesuffix("_total"), spec.help,
                                                     labels=label_names)
            else:
                family = GaugeMetricFamily(name, spec.help, labels=label_names)
            for labels, value in rows:
                family.add_metric([labels.get(n, "") for n in label_names], value)
            yield family


def build_registry(samples: Iterable[FullSample]) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(samples))
    return registry


def with_labels(samples: Iterable[tuple[str, dict[str, str], float]], **extra: str) -> list[FullSample]:
    return [(name, {**extra, **labels}, value) for name, labels, value in samples]


def render_text(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)


def write_textfile(path: Path, registry: CollectorRegistry) -> None:
    """Atomically replace ``path``: temp file (not ending in .prom) in the same dir, fsync, 0644, rename."""
    data = render_text(registry)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fchmod(fh.fileno(), 0o644)
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
