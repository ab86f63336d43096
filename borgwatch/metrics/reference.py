"""Generate docs/metrics.md from the metric table (a test keeps the file equal to this output)."""

from __future__ import annotations

from borgwatch.metrics.specs import BORG2_ABSENT, DRILL_METRICS, INVENTORY_METRICS, JOB_METRICS, MetricSpec


def _rows(specs: tuple[MetricSpec, ...], borg2: bool = False) -> list[str]:
    """``borg2``: a column saying what a run with borg 2 leaves absent (the job metrics)."""
    rows = ["| metric | type | labels | meaning | source |" + (" borg 2 |" if borg2 else ""),
            "|---|---|---|---|---|" + ("---|" if borg2 else "")]
    for m in specs:
        labels = ", ".join(f"`{label}`" for label in m.labels)
        extra = f" {BORG2_ABSENT.get(m.name, 'present')} |" if borg2 else ""
        rows.append(f"| `{m.name}` | {m.kind} | {labels} | {m.help} | {m.source} |{extra}")
    return rows


def render_metrics_markdown() -> str:
    return "\n".join([
        "# Metrics reference", "",
        "Generated from `borgwatch/metrics/specs.py` by `borgwatch metrics-reference`; a test keeps this file in "
        "sync with the code and checks that every metric here is what borgwatch writes.", "",
        "Label values: `status` ∈ success, warning, error, interrupted; `stage` ∈ create, diff, prune, "
        "compact, check (`other` for `borgwatch exec` of other commands); `change` ∈ added, modified, "
        "unchanged, removed, error; `level` ∈ warning, error; `mode` ∈ user, system; `direction` ∈ read, "
        "write; `action` ∈ kept, pruned; `sink` ∈ loki, pushgateway, ping, textfile, state. There is never "
        "a `job` or `instance` label: Prometheus adds those at scrape time.", "",
        "## Per job: `borgwatch-<job>.prom` (written by `borgwatch run` and `borgwatch exec`)", "",
        *_rows(JOB_METRICS, borg2=True), "",
        "### The job's last restore drill (same file; written by `borgwatch drill` and the run's drill stage, "
        "kept by every run)", "", "`result` ∈ verified, mismatched, unreadable; `status` ∈ success, failed, "
        "error, interrupted.", "",
        *_rows(DRILL_METRICS), "",
        "## Repository inventory: `borgwatch-inventory-<name>.prom` (written by `borgwatch collect`)", "",
        *_rows(INVENTORY_METRICS), "",
    ])
