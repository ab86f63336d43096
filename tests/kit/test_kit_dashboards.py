"""Grafana dashboards (PromQL parsed by real promtool, metric names exist), provisioning, Loki side."""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers.kit_files import needs_promtool, recorded_names
from helpers.kit_promql import expand_grafana, known_metric, metric_names, promtool_check_exprs

from borgwatch.kit import ASSETS, KIT_DIR, read_asset
from borgwatch.kit.dashboards_src.generate import DASHBOARDS, main, render

NAMES = {"backup-assurance": "dashboard-backup-assurance", "hardware-health": "dashboard-hardware-health",
         "golden-signals": "dashboard-golden-signals"}


def load(short: str) -> dict[str, Any]:
    return json.loads(read_asset(NAMES[short]))


def prom_exprs(short: str) -> dict[str, str]:
    out = {}
    for panel in load(short)["panels"]:
        for target in panel.get("targets", []):
            if target["datasource"]["type"] == "prometheus":
                out[f"{short}/{panel['title']}/{target['refId']}"] = target["expr"]
    return out


def all_prom_exprs() -> dict[str, str]:
    return {k: v for short in NAMES for k, v in prom_exprs(short).items()}


def test_json_files_match_the_generator() -> None:
    assert set(DASHBOARDS) == {Path(ASSETS[n]).name for n in NAMES.values()}
    for name in DASHBOARDS:
        assert (KIT_DIR / "dashboards" / name).read_text() == render(name), (
            f"{name} is stale: run python -m borgwatch.kit.dashboards_src")


def test_generator_replaces_a_planted_symlink_instead_of_writing_through_it(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    (tmp_path / "golden-signals.json").symlink_to(victim)
    main(tmp_path)
    assert victim.read_text() == "keep me"
    for name in DASHBOARDS:
        written = tmp_path / name
        assert not written.is_symlink() and written.read_text() == render(name)
        assert written.stat().st_mode & 0o777 == 0o644


@pytest.fixture
def without_sdk(tmp_path: Path) -> dict[str, str]:
    """An environment in which ``import grafana_foundation_sdk`` fails as if the extra were not installed."""
    blocker = tmp_path / "no-sdk" / "grafana_foundation_sdk"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'grafana_foundation_sdk'\", name='grafana_foundation_sdk')\n")
    path = [str(blocker.parent), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, path))}
    proc = subprocess.run([sys.executable, "-c", "import grafana_foundation_sdk"], capture_output=True, text=True,
                          env=env, timeout=60)
    assert "No module named 'grafana_foundation_sdk'" in proc.stderr  # the blocker shadows the installed SDK
    return env


@pytest.mark.slow
def test_borgwatch_serves_the_dashboards_without_the_sdk(without_sdk: dict[str, str]) -> None:
    """The SDK is a development extra: `borgwatch kit` prints the checked-in JSON without importing it."""
    for short, asset in NAMES.items():
        proc = subprocess.run([sys.executable, "-m", "borgwatch", "kit", asset], capture_output=True, text=True,
                              env=without_sdk, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["uid"] == f"borgwatch-{short}"
        assert proc.stdout == read_asset(asset)


@pytest.mark.slow
def test_generator_without_the_sdk_names_the_extra(without_sdk: dict[str, str]) -> None:
    before = {name: (KIT_DIR / "dashboards" / name).stat().st_mtime_ns for name in DASHBOARDS}
    proc = subprocess.run([sys.executable, "-m", "borgwatch.kit.dashboards_src"], capture_output=True, text=True,
                          env=without_sdk, timeout=60)
    assert proc.returncode == os.EX_UNAVAILABLE and proc.stdout == ""
    (line,) = proc.stderr.splitlines()
    assert "grafana-foundation-sdk is not installed" in line and "pip install -e '.[dashboards]'" in line
    assert before == {name: (KIT_DIR / "dashboards" / name).stat().st_mtime_ns for name in DASHBOARDS}


@pytest.mark.parametrize("short", sorted(NAMES))
def test_dashboard_structure(short: str) -> None:
    dash = load(short)
    assert dash["uid"] == f"borgwatch-{short}" and dash["title"]
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    cells: dict[tuple[int, int], str] = {}
    for panel in dash["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24
        if panel["type"] == "row":
            assert (grid["x"], grid["w"], grid["h"]) == (0, 24, 1), panel["title"]
        else:
            assert panel["targets"], panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[x, y]}"
                cells[x, y] = panel["title"]
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["query"] == "prometheus"


def test_backup_assurance_covers_the_issue() -> None:
    dash = load("backup-assurance")
    variables = {v["name"] for v in dash["templating"]["list"]}
    assert {"host", "backup_job", "loki_datasource"} <= variables
    used = set().union(*(metric_names(expand_grafana(e)) for e in prom_exprs("backup-assurance").values()))
    assert {
        "borgwatch_run_duration_seconds", "borgwatch_run_exit_code", "borgwatch_run_status",
        "borgwatch_archive_original_bytes", "borgwatch_archive_compressed_bytes",
        "borgwatch_archive_deduplicated_bytes", "borgwatch_dataset_files",
        "borgwatch_last_success_timestamp_seconds",
        "borgwatch_max_age_seconds", "borgwatch_borg_cpu_seconds", "borgwatch_borg_max_rss_bytes",
        "borgwatch_borg_io_bytes", "borgwatch_stage_exit_code",
        # restore drills (#13): result, staleness against drill.max_age, coverage, RTO, verdicts, throughput
        "borgwatch_drill_status", "borgwatch_drill_last_success_timestamp_seconds",
        "borgwatch_drill_max_age_seconds", "borgwatch_drill_coverage_ratio", "borgwatch_drill_rto_estimate_seconds",
        "borgwatch_drill_files", "borgwatch_drill_restore_throughput_bytes_per_second",
    } <= used
    logs = [p for p in dash["panels"] if p["type"] == "logs"]
    assert logs and all(p["datasource"]["type"] == "loki" for p in logs)
    for panel in logs:
        for target in panel["targets"]:
            selector = re.match(r"\{([^}]*)\}", target["expr"]).group(1)
            assert {m.split("=")[0].strip() for m in selector.split(",")} == {"app", "host", "backup_job"}
            assert 'backup_job=~"$backup_job"' in selector and "| json" in target["expr"]


def test_other_dashboards_cover_the_issue() -> None:
    def used(short: str) -> set[str]:
        return set().union(*(metric_names(expand_grafana(e)) for e in prom_exprs(short).values()))

    assert {"smartctl_device_smart_status", "smartctl_device_temperature", "node_zfs_zpool_state",
            "upsAdvOutputLoad"} <= used("hardware-health")
    assert {"traefik_service_request_duration_seconds_bucket", "traefik_service_requests_total",
            "container_cpu_usage_seconds_total", "kube_deployment_status_replicas_available",
            } <= used("golden-signals")


@pytest.mark.parametrize("key", sorted(all_prom_exprs()))
def test_dashboard_expr_uses_only_existing_metrics(key: str) -> None:
    names = metric_names(expand_grafana(all_prom_exprs()[key]))
    assert names
    assert not {n for n in names if not known_metric(n, recorded_names())}


def test_template_variable_queries_use_existing_metrics() -> None:
    for short in NAMES:
        for var in load(short)["templating"]["list"]:
            if var["type"] == "query":
                metric = re.match(r"label_values\((\w+)", var["query"]["query"]).group(1)
                assert known_metric(metric), (short, var["name"])


@needs_promtool
@pytest.mark.slow
def test_every_dashboard_expr_parses(tmp_path: Path) -> None:
    exprs = {k: expand_grafana(v) for k, v in all_prom_exprs().items()}
    proc = promtool_check_exprs(exprs, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in proc.stdout


@needs_promtool
@pytest.mark.slow
def test_expr_check_catches_bad_promql(tmp_path: Path) -> None:
    proc = promtool_check_exprs({"bad": "sum by (le (rate(x[5m]))"}, tmp_path)
    assert proc.returncode != 0


# ------------------------------------------------------------------ provisioning and catalog
def test_grafana_provisioning() -> None:
    dashboards = yaml.safe_load(read_asset("grafana-dashboards"))
    (provider,) = dashboards["providers"]
    assert provider["type"] == "file" and provider["options"]["path"].startswith("/")
    sources = yaml.safe_load(read_asset("grafana-datasources"))["datasources"]
    assert {s["type"] for s in sources} == {"prometheus", "loki"}
    assert all(s["url"].startswith("http://127.0.0.1:") for s in sources)


def test_catalog_lists_every_dashboard_with_an_owner() -> None:
    catalog = read_asset("dashboards-catalog")
    assert "## Ownership matrix" in catalog
    for short in NAMES:
        dash = load(short)
        assert f"`{dash['uid']}`" in catalog
        assert re.search(rf"^\| {re.escape(dash['title'])} \|", catalog, flags=re.M)


# ------------------------------------------------------------------ Loki side
def test_loki_config_keeps_30_days() -> None:
    config = yaml.safe_load(read_asset("loki-config"))
    assert config["limits_config"]["retention_period"] == "720h"
    assert config["compactor"]["retention_enabled"] is True
    assert config["compactor"]["delete_request_store"]
    assert config["server"]["http_listen_address"] == "127.0.0.1"


STUB_LOGCLI = """#!/bin/sh
printf '%s\\n' "$*" >> "$STUB_LOG"
printf '{"line":"a"}\\n{"line":"b"}\\n'
"""
STUB_AWS = """#!/bin/sh
printf 'aws %s\\n' "$*" >> "$STUB_LOG"
[ "$2" = ls ] && exit 1
while [ $# -gt 0 ]; do case "$1" in s3://*) dest="$1";; /*) src="$1";; esac; shift; done
mkdir -p "$STUB_BUCKET" && cp "$src" "$STUB_BUCKET/$(basename "$dest")"
"""


def _run_archive(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, text in (("logcli", STUB_LOGCLI), ("aws", STUB_AWS)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    full_env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "STUB_LOG": str(tmp_path / "calls"),
                "STUB_BUCKET": str(tmp_path / "bucket"), **env}
    return subprocess.run(["bash", str(KIT_DIR / ASSETS["loki-archive"]), *args], capture_output=True,
                          text=True, env=full_env, timeout=30)


@pytest.mark.slow
def test_archive_script_exports_one_day_with_logcli_to_s3(tmp_path: Path) -> None:
    proc = _run_archive(tmp_path, "2024-03-31", ARCHIVE_BUCKET="s3://logs/loki/",
                        S3_ENDPOINT="http://127.0.0.1:9000")
    assert proc.returncode == 0, proc.stderr
    calls = (tmp_path / "calls").read_text()
    assert '--from=2024-03-31T00:00:00Z --to=2024-04-01T00:00:00Z' in calls
    assert '--output=jsonl' in calls and calls.rstrip().splitlines()[1].endswith('{app="borgwatch"}')
    assert "--endpoint-url http://127.0.0.1:9000" in calls
    assert "s3://logs/loki/2024/03/borgwatch-2024-03-31.jsonl.gz" in calls
    archived = tmp_path / "bucket" / "borgwatch-2024-03-31.jsonl.gz"
    assert gzip.decompress(archived.read_bytes()).decode().splitlines() == ['{"line":"a"}', '{"line":"b"}']
    assert (tmp_path / "bucket" / "borgwatch-2024-03-31.jsonl.gz.sha256").is_file()


@pytest.mark.slow
@pytest.mark.parametrize(("args", "env", "message"), [
    ((), {}, "ARCHIVE_BUCKET"),
    (("2024-13-45",), {"ARCHIVE_BUCKET": "s3://x"}, "invalid day"),
    ((), {"ARCHIVE_BUCKET": "s3://x", "ARCHIVE_AGE_DAYS": "31"}, "30 days"),
])
def test_archive_script_refuses_bad_input(tmp_path: Path, args: tuple[str, ...], env: dict[str, str],
                                          message: str) -> None:
    proc = _run_archive(tmp_path, *args, **env)
    assert proc.returncode != 0 and message in proc.stderr
