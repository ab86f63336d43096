"""The metric table is what borgwatch writes: every job metric is emitted for a complete result, and the
file prometheus_client renders from it passes promtool's linter."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from borgwatch.metrics.exposition import build_registry, render_text, with_labels, write_textfile
from borgwatch.metrics.specs import JOB_METRICS, SPECS, job_samples
from borgwatch.model import (
    ArchiveStats,
    DatasetDiff,
    PruneStats,
    RepositoryStats,
    Resources,
    RunResult,
    SinkReport,
    StageResult,
)


def complete_result() -> RunResult:
    return RunResult(
        job="home", run_id="r", host="nas", started_at=100.0, ended_at=160.0, in_progress=False,
        status="warning", exit_code=107, borg_version="1.4.5", max_age_seconds=93600,
        last_success_at=160.0, check_last_success_at=150.0, runs_total={"success": 3, "warning": 1},
        stages=[StageResult(s, "success", 0, 100.0, 1.0) for s in ("create", "diff", "prune", "compact", "check")],
        archive=ArchiveStats("a", "id", 10, 8, 2, 5, 0.5), dataset=DatasetDiff(1, 2, 3, 4, 0),
        repository_stats=RepositoryStats(1, 2, 3, 4, 5, 6), resources=Resources(1.0, 0.5, 10, 20, 30),
        warnings=1, prune=PruneStats(7, 1), sink_reports=[SinkReport("loki", spooled=3)],
        sink_failures_total={"loki": 2}, sink_dropped_total={"loki": 0},
    )


def test_every_job_metric_is_emitted_and_nothing_else() -> None:
    names = {name for name, _, _ in job_samples(complete_result())}
    assert names == {m.name for m in JOB_METRICS}


def test_labels_match_the_table() -> None:
    for name, labels, _ in with_labels(job_samples(complete_result()), backup_job="home"):
        assert set(labels) == set(SPECS[name].labels), name
        assert "job" not in labels and "instance" not in labels


def test_running_result_keeps_only_start_series() -> None:
    running = RunResult(job="home", run_id="r", host="nas", started_at=100.0)
    names = {name for name, _, _ in job_samples(running)}
    assert "borgwatch_run_in_progress" in names and "borgwatch_run_exit_code" not in names


def test_exposition_is_promtool_clean_and_escaped(tmp_path: Path) -> None:
    samples = with_labels(job_samples(complete_result()), backup_job='we"ird\\job\n')
    path = tmp_path / "borgwatch-x.prom"
    write_textfile(path, build_registry(samples))
    text = path.read_text()
    assert text.endswith("\n")  # node_exporter skips a file without a trailing newline
    parsed = {s.labels.get("backup_job") for f in text_string_to_metric_families(text) for s in f.samples}
    assert parsed == {'we"ird\\job\n'}  # escaped on the way out, identical on the way back
    for family in text_string_to_metric_families(render_text(build_registry(samples)).decode()):
        assert all(s.timestamp is None for s in family.samples)  # node_exporter rejects timestamps
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (.ci/run installs it)")
    check = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
