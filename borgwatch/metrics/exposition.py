"""All output formats in one place: samples -> prometheus_client registry -> textfile / text.

HELP and TYPE come from ``borgwatch.metrics.specs.SPECS`` so every file borgwatch writes carries identical
metadata (node_exporter silently drops series whose HELP differs between files).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from borgwatch.metrics.specs import SPECS
from borgwatch.store.files import atomic_write

FullSample = tuple[str, dict[str, str], float]  # (exposed metric name, all labels, value)


class SnapshotCollector(Collector):
    """Exposes a fixed list of samples, grouped into families in SPECS order."""

    def __init__(self, samples: Iterable[FullSample]) -> None:
        self._by_name: dict[str, list[tuple[dict[str, str], float]]] = {}
        for name, labels, value in samples:
            if name not in SPECS:
                raise KeyError(f"metric {name} is not in borgwatch.metrics.specs.SPECS")
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
    """Atomically replace ``path``: temp file (not ending in .prom) in the same dir, 0644, rename.

    No fsync: node_exporter only needs the rename to be atomic (it never reads a half-written file), and
    after a power loss the worst case is the previous run's file or an empty one (no series, until the next
    run rewrites it), never a torn one; the state file is what must survive (``store/state.py``)."""
    atomic_write(path, render_text(registry), mode=0o644, durable=False)
