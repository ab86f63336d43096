"""Generates the kit's Grafana dashboards (``dashboards/*.json``) from one small description.

The JSON files are what ships and what Grafana provisions; this module is how they are kept
consistent. After editing, regenerate with ``python -m borgwatch.kit.build_dashboards`` (a test fails
when the JSON files and this module disagree).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DASHBOARD_DIR = Path(__file__).with_name("dashboards")
PROM = {"type": "prometheus", "uid": "${datasource}"}
LOKI = {"type": "loki", "uid": "${loki_datasource}"}
# instance is "host:port" in Prometheus but plain "host" in Loki: the host variable holds the bare name.
HOST = 'instance=~"$host(:[0-9]+)?"'
JOB = f'{HOST}, backup_job=~"$backup_job"'


@dataclass
class Panel:
    title: str
    kind: str  # timeseries | stat | state-timeline | bargauge | table | logs | row
    targets: list[tuple[str, str]] = field(default_factory=list)  # (expr, legend)
    unit: str = ""
    width: int = 12
    height: int = 8
    description: str = ""
    mappings: list[dict[str, Any]] = field(default_factory=list)
    thresholds: list[tuple[str, float | None]] = field(default_factory=list)


def _variable_datasource(name: str, kind: str, label: str) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "type": "datasource",
        "query": kind,
        "current": {},
        "hide": 0,
        "refresh": 1,
    }


def _variable_query(name: str, label: str, query: str, regex: str = "", multi: bool = True) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": PROM,
        "query": {"query": query, "refId": f"{name}-var"},
        "definition": query,
        "regex": regex,
        "refresh": 2,
        "multi": multi,
        "includeAll": True,
        "allValue": ".*",
        "current": {},
        "sort": 1,
        "hide": 0,
    }


def _panel_json(panel: Panel, pid: int, x: int, y: int) -> dict[str, Any]:
    grid = {"h": panel.height, "w": panel.width, "x": x, "y": y}
    if panel.kind == "row":
        return {
            "id": pid,
            "type": "row",
            "title": panel.title,
            "collapsed": False,
            "gridPos": grid,
            "panels": [],
        }
    logs = panel.kind == "logs"
    out: dict[str, Any] = {
        "id": pid,
        "type": panel.kind,
        "title": panel.title,
        "gridPos": grid,
        "datasource": LOKI if logs else PROM,
        "targets": [
            {
                "refId": chr(ord("A") + i),
                "datasource": LOKI if logs else PROM,
                "expr": expr,
                **({"queryType": "range"} if logs else {"legendFormat": legend, "range": True}),
            }
            for i, (expr, legend) in enumerate(panel.targets)
        ],
    }
    if panel.description:
        out["description"] = panel.description
    if logs:
        out["options"] = {
            "showTime": True,
            "wrapLogMessage": True,
            "sortOrder": "Descending",
            "enableLogDetails": True,
            "prettifyLogMessage": False,
        }
        return out
    defaults: dict[str, Any] = {"unit": panel.unit} if panel.unit else {}
    if panel.mappings:
        defaults["mappings"] = panel.mappings
    if panel.thresholds:
        defaults["thresholds"] = {
            "mode": "absolute",
            "steps": [{"color": color, "value": value} for color, value in panel.thresholds],
        }
    out["fieldConfig"] = {"defaults": defaults, "overrides": []}
    if panel.kind == "table":
        for target in out["targets"]:
            target.update({"format": "table", "instant": True, "range": False})
    return out


def dashboard(
    uid: str,
    title: str,
    tags: list[str],
    variables: list[dict[str, Any]],
    panels: list[Panel],
    description: str,
) -> dict[str, Any]:
    items, x, y, row_h = [], 0, 0, 0
    for pid, panel in enumerate(panels, start=1):
        width = 24 if panel.kind == "row" else panel.width
        if x + width > 24:
            x, y, row_h = 0, y + row_h, 0
        items.append(_panel_json(panel, pid, x, y))
        x, row_h = x + width, max(row_h, panel.height if panel.kind != "row" else 1)
        if panel.kind == "row":
            x, y, row_h = 0, y + 1, 0
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": tags,
        "editable": True,
        "schemaVersion": 39,
        "version": 1,
        "graphTooltip": 1,
        "refresh": "5m",
        "timezone": "browser",
        "time": {"from": "now-7d", "to": "now"},
        "annotations": {"list": []},
        "links": [],
        "templating": {"list": variables},
        "panels": items,
    }


EXIT_MAPPINGS = [
    {"type": "value", "options": {"0": {"text": "success", "color": "green"}}},
    {"type": "range", "options": {"from": 1, "to": 1, "result": {"text": "warning", "color": "yellow"}}},
    {"type": "range", "options": {"from": 100, "to": 127, "result": {"text": "warning", "color": "yellow"}}},
    {"type": "range", "options": {"from": 2, "to": 99, "result": {"text": "error", "color": "red"}}},
    {"type": "range", "options": {"from": 128, "to": 255, "result": {"text": "signal", "color": "purple"}}},
]


# ------------------------------------------------------------------ SLOs (borgwatch-slo-rules.yml)
# The same recording rules `borgwatch report` documents; Grafana shows them live, the report per period.
BURN = ("(1 - borgwatch:slo_freshness:ratio_{w}{{{job}}}) / on (instance, job, backup_job) "
        "(1 - borgwatch:slo_freshness_objective{{{job}}})")


def slo_panels() -> list[Panel]:
    percent = [("red", None), ("green", 0.95)]
    return [
        Panel("Service level objectives (30 days, borgwatch-slo-rules.yml)", "row"),
        Panel(
            "Recent backup available (freshness SLO)",
            "bargauge",
            [(f"borgwatch:slo_freshness:ratio_30d{{{JOB}}}", "{{backup_job}}")],
            unit="percentunit",
            width=6,
            thresholds=percent,
            description="Share of the last 30 days in which the newest successful backup was younger than "
            "max_age. The objective per job is borgwatch:slo_freshness_objective (default 95 %).",
        ),
        Panel(
            "Freshness error budget left",
            "bargauge",
            [(f"borgwatch:slo_freshness:budget_remaining_30d{{{JOB}}}", "{{backup_job}}")],
            unit="percentunit",
            width=6,
            thresholds=[("red", None), ("orange", 0), ("green", 0.5)],
            description="1 - stale time / stale time the objective allows over 30 days. Below 0 the "
            "objective is missed.",
        ),
        Panel(
            "Successful runs (run success SLO)",
            "bargauge",
            [
                (f"borgwatch:slo_run_success:ratio_30d{{{JOB}}}", "{{backup_job}}"),
                ("borgwatch:slo_run_success:fleet_ratio_30d", "all jobs"),
            ],
            unit="percentunit",
            width=6,
            thresholds=[("red", None), ("green", 0.9)],
            description="Runs that ended success or warning among all runs of the last 30 days.",
        ),
        Panel(
            "Repository verified (integrity SLO)",
            "bargauge",
            [(f"borgwatch:slo_check:ratio_30d{{{JOB}}}", "{{backup_job}}")],
            unit="percentunit",
            width=6,
            thresholds=[("red", None), ("green", 0.99)],
            description="Share of the last 30 days in which the last successful borg check was younger than "
            "borgwatch:slo_check_max_age_seconds (default 8 days).",
        ),
        Panel(
            "Fresh or stale",
            "state-timeline",
            [(f"borgwatch:slo_freshness_good{{{JOB}}}", "{{backup_job}}")],
            width=12,
            mappings=[{"type": "value", "options": {"1": {"text": "fresh", "color": "green"},
                                                    "0": {"text": "stale", "color": "red"}}}],
            description="The SLI itself: 1 while the newest successful backup is within max_age.",
        ),
        Panel(
            "Freshness budget burn rate",
            "timeseries",
            [
                (BURN.format(w="2d", job=JOB), "{{backup_job}} 2d (pages above 10)"),
                (BURN.format(w="3d", job=JOB), "{{backup_job}} 3d (tickets above 1)"),
            ],
            width=12,
            thresholds=[("green", None), ("orange", 1), ("red", 10)],
            description="How many times faster than allowed the job spends its freshness budget; the "
            "BackupFreshnessBudgetBurn alert uses these windows.",
        ),
    ]


def backup_assurance() -> dict[str, Any]:
    variables = [
        _variable_datasource("datasource", "prometheus", "Prometheus"),
        _variable_datasource("loki_datasource", "loki", "Loki"),
        _variable_query("host", "Host", "label_values(borgwatch_build_info, instance)", regex="/^([^:]+)/"),
        _variable_query(
            "backup_job", "Backup job", f"label_values(borgwatch_build_info{{{HOST}}}, backup_job)"
        ),
    ]
    panels = [
        Panel("Freshness", "row"),
        Panel(
            "Age of last success",
            "stat",
            [(f"time() - borgwatch_last_success_timestamp_seconds{{{JOB}}}", "{{backup_job}}")],
            unit="s",
            width=8,
        ),
        Panel(
            "Age of last success / max_age",
            "bargauge",
            [
                (
                    f"(time() - borgwatch_last_success_timestamp_seconds{{{JOB}}})"
                    f" / on (instance, backup_job) group_left () borgwatch_max_age_seconds{{{JOB}}}",
                    "{{backup_job}}",
                )
            ],
            unit="percentunit",
            width=8,
            thresholds=[("green", None), ("orange", 0.8), ("red", 1)],
            description="Above 100 % the BackupStale alert fires.",
        ),
        Panel(
            "Last run status",
            "stat",
            [(f"borgwatch_run_status{{{JOB}}} == 1", "{{backup_job}}: {{status}}")],
            width=8,
            mappings=[{"type": "value", "options": {"1": {"text": "current"}}}],
        ),
        Panel(
            "Exit code over time",
            "state-timeline",
            [(f"borgwatch_run_exit_code{{{JOB}}}", "{{backup_job}}")],
            width=12,
            mappings=EXIT_MAPPINGS,
        ),
        Panel(
            "Runs by result (per day)",
            "timeseries",
            [
                (
                    f"sum by (backup_job, status) (increase(borgwatch_runs_total{{{JOB}}}[1d]))",
                    "{{backup_job}} {{status}}",
                )
            ],
            width=12,
        ),
        Panel("Runs", "row"),
        Panel(
            "Last run duration",
            "stat",
            [(f"borgwatch_run_duration_seconds{{{JOB}}}", "{{backup_job}}")],
            unit="s",
            width=6,
        ),
        Panel(
            "Run in progress",
            "stat",
            [(f"borgwatch_run_in_progress{{{JOB}}}", "{{backup_job}}")],
            width=6,
            mappings=[{"type": "value", "options": {"0": {"text": "idle"}, "1": {"text": "running"}}}],
        ),
        Panel(
            "Run duration vs its 7-day average",
            "timeseries",
            [
                (f"borgwatch_run_duration_seconds{{{JOB}}}", "{{backup_job}}"),
                (f"avg_over_time(borgwatch_run_duration_seconds{{{JOB}}}[7d])", "{{backup_job}} 7d avg"),
            ],
            unit="s",
            width=12,
        ),
        Panel(
            "Stage results (exit code)",
            "state-timeline",
            [(f"borgwatch_stage_exit_code{{{JOB}}}", "{{backup_job}} {{stage}}")],
            width=12,
            mappings=EXIT_MAPPINGS,
        ),
        Panel(
            "Stage durations",
            "timeseries",
            [(f"borgwatch_stage_duration_seconds{{{JOB}}}", "{{backup_job}} {{stage}}")],
            unit="s",
            width=12,
        ),
        Panel("Data", "row"),
        Panel(
            "Last archive: original / compressed / deduplicated",
            "timeseries",
            [
                (f"borgwatch_archive_original_bytes{{{JOB}}}", "{{backup_job}} original"),
                (f"borgwatch_archive_compressed_bytes{{{JOB}}}", "{{backup_job}} compressed"),
                (f"borgwatch_archive_deduplicated_bytes{{{JOB}}}", "{{backup_job}} deduplicated"),
            ],
            unit="bytes",
            width=12,
        ),
        Panel(
            "Repository size",
            "timeseries",
            [
                (
                    f"borgwatch_repository_unique_compressed_bytes{{{JOB}}}",
                    "{{backup_job}} stored (dedup+compressed)",
                ),
                (f"borgwatch_repository_total_bytes{{{JOB}}}", "{{backup_job}} all archives, original"),
            ],
            unit="bytes",
            width=12,
        ),
        Panel(
            "Dataset diff: files by change",
            "timeseries",
            [(f'borgwatch_dataset_files{{{JOB}, change!="unchanged"}}', "{{backup_job}} {{change}}")],
            width=12,
        ),
        Panel(
            "Modified + removed share (mass-change signal)",
            "timeseries",
            [
                (f"borgwatch:dataset_changed_ratio{{{JOB}}}", "{{backup_job}}"),
                (f"avg_over_time(borgwatch:dataset_changed_ratio{{{JOB}}}[7d])", "{{backup_job}} 7d avg"),
            ],
            unit="percentunit",
            width=12,
            description="Recording rule from borgwatch-rules.yml.",
        ),
        Panel("Resources", "row"),
        Panel(
            "borg CPU time",
            "timeseries",
            [(f"borgwatch_borg_cpu_seconds{{{JOB}}}", "{{backup_job}} {{mode}}")],
            unit="s",
            width=8,
        ),
        Panel(
            "borg peak memory (RSS)",
            "timeseries",
            [(f"borgwatch_borg_max_rss_bytes{{{JOB}}}", "{{backup_job}}")],
            unit="bytes",
            width=8,
        ),
        Panel(
            "borg I/O",
            "timeseries",
            [(f"borgwatch_borg_io_bytes{{{JOB}}}", "{{backup_job}} {{direction}}")],
            unit="bytes",
            width=8,
        ),
        Panel("Repository health and delivery", "row"),
        Panel(
            "Age of last successful check",
            "stat",
            [(f"time() - borgwatch_check_last_success_timestamp_seconds{{{JOB}}}", "{{backup_job}}")],
            unit="s",
            width=8,
            thresholds=[("green", None), ("orange", 2592000), ("red", 3024000)],
        ),
        Panel(
            "Loki delivery",
            "timeseries",
            [
                (f'borgwatch_sink_spooled_items{{{JOB}, sink="loki"}}', "{{backup_job}} spooled"),
                (
                    f'increase(borgwatch_sink_failures_total{{{JOB}, sink="loki"}}[1d])',
                    "{{backup_job}} failures/day",
                ),
                (
                    f'increase(borgwatch_sink_dropped_total{{{JOB}, sink="loki"}}[1d])',
                    "{{backup_job}} dropped/day",
                ),
            ],
            width=8,
        ),
        Panel("Versions", "table", [(f"borgwatch_build_info{{{JOB}}}", "")], width=8),
        Panel(
            "Repository inventory (server side)",
            "timeseries",
            [
                ("borgwatch_inventory_archives", "{{repository}} archives"),
                (
                    "time() - borgwatch_inventory_last_archive_timestamp_seconds",
                    "{{repository}} newest archive age",
                ),
            ],
            width=24,
        ),
        Panel("Logs", "row"),
        Panel(
            "Run summaries",
            "logs",
            [
                (
                    '{app="borgwatch", host=~"$host", backup_job=~"$backup_job"}'
                    ' | json | event="run_summary"',
                    "",
                )
            ],
            width=24,
            height=8,
        ),
        Panel(
            "Runs of the selected job (all events)",
            "logs",
            [
                (
                    '{app="borgwatch", host=~"$host", backup_job=~"$backup_job"} | json'
                    ' | event=~"run_started|stage_finished|borg_message|run_summary"',
                    "",
                )
            ],
            width=24,
            height=12,
        ),
    ]
    panels += slo_panels()
    return dashboard(
        "borgwatch-backup-assurance",
        "Backup Assurance",
        ["borgwatch", "backup"],
        variables,
        panels,
        "Is every backup job fresh, complete and healthy? borgwatch metrics + Loki logs.",
    )


NODE = 'instance=~"$host(:[0-9]+)?"'


def hardware_health() -> dict[str, Any]:
    variables = [
        _variable_datasource("datasource", "prometheus", "Prometheus"),
        _variable_query(
            "host", "Host", "label_values(node_textfile_scrape_error, instance)", regex="/^([^:]+)/"
        ),
        _variable_query("ups", "UPS / PDU (SNMP)", "label_values(upsAdvOutputLoad, instance)"),
    ]
    panels = [
        Panel("Disks (smartctl_exporter)", "row"),
        Panel(
            "SMART overall status",
            "stat",
            [(f"smartctl_device_smart_status{{{NODE}}}", "{{device}}")],
            width=8,
            mappings=[
                {
                    "type": "value",
                    "options": {
                        "1": {"text": "PASSED", "color": "green"},
                        "0": {"text": "FAILED", "color": "red"},
                    },
                }
            ],
        ),
        Panel(
            "smartctl exit status",
            "stat",
            [(f"smartctl_device_smartctl_exit_status{{{NODE}}}", "{{device}}")],
            width=8,
            thresholds=[("green", None), ("red", 1)],
        ),
        Panel(
            "Power-on time",
            "bargauge",
            [(f"smartctl_device_power_on_seconds{{{NODE}}}", "{{device}}")],
            unit="s",
            width=8,
        ),
        Panel(
            "Disk temperature",
            "timeseries",
            [(f'smartctl_device_temperature{{{NODE}, temperature_type="current"}}', "{{device}}")],
            unit="celsius",
            width=12,
            thresholds=[("green", None), ("orange", 50), ("red", 60)],
        ),
        Panel(
            "Reallocated / pending / uncorrectable sectors",
            "timeseries",
            [
                (
                    f'smartctl_device_attribute{{{NODE}, attribute_value_type="raw",'
                    ' attribute_name=~"Reallocated_Sector_Ct|Current_Pending_Sector|Offline_Uncorrectable"}',
                    "{{device}} {{attribute_name}}",
                )
            ],
            width=12,
        ),
        Panel(
            "NVMe wear (percentage used)",
            "timeseries",
            [(f"smartctl_device_percentage_used{{{NODE}}}", "{{device}}")],
            unit="percent",
            width=8,
        ),
        Panel(
            "NVMe media errors",
            "timeseries",
            [(f"smartctl_device_media_errors{{{NODE}}}", "{{device}}")],
            width=8,
        ),
        Panel(
            "NVMe critical warning",
            "stat",
            [(f"smartctl_device_critical_warning{{{NODE}}}", "{{device}}")],
            width=8,
            thresholds=[("green", None), ("red", 1)],
        ),
        Panel("ZFS and sensors (node_exporter)", "row"),
        Panel(
            "ZFS pools not ONLINE",
            "stat",
            [(f'count(node_zfs_zpool_state{{{NODE}, state!="online"}} == 1) or vector(0)', "")],
            width=6,
            thresholds=[("green", None), ("red", 1)],
        ),
        Panel(
            "ZFS pool state",
            "state-timeline",
            [(f"max by (zpool, state) (node_zfs_zpool_state{{{NODE}}} == 1)", "{{zpool}} {{state}}")],
            width=18,
        ),
        Panel(
            "Board / CPU sensors",
            "timeseries",
            [(f"node_hwmon_temp_celsius{{{NODE}}}", "{{chip}} {{sensor}}")],
            unit="celsius",
            width=24,
        ),
        Panel("Power (snmp_exporter, where available)", "row"),
        Panel(
            "UPS output load",
            "timeseries",
            [('upsAdvOutputLoad{instance=~"$ups"}', "{{instance}}")],
            unit="percent",
            width=8,
        ),
        Panel(
            "UPS apparent power",
            "timeseries",
            [
                (
                    'upsAdvOutputVoltage{instance=~"$ups"} * upsAdvOutputCurrent{instance=~"$ups"}',
                    "{{instance}}",
                )
            ],
            unit="voltamp",
            width=8,
        ),
        Panel(
            "PDU power",
            "timeseries",
            [('rPDU2DeviceStatusPower{instance=~"$ups"} * 10', "{{instance}}")],
            unit="watt",
            width=8,
            description="rPDU2DeviceStatusPower is in hundredths of kW.",
        ),
        Panel(
            "UPS battery",
            "timeseries",
            [
                ('upsAdvBatteryCapacity{instance=~"$ups"}', "{{instance}} charge %"),
                ('upsAdvBatteryRunTimeRemaining{instance=~"$ups"}', "{{instance}} runtime s"),
            ],
            width=24,
        ),
    ]
    return dashboard(
        "borgwatch-hardware-health",
        "Hardware Health",
        ["borgwatch", "hardware"],
        variables,
        panels,
        "SMART (smartctl_exporter), ZFS pool state (node_exporter) and power (snmp_exporter).",
    )


SVC = 'service=~"$service"'
NS = 'namespace=~"$namespace"'


# TLS probes (blackbox/): the modules of blackbox.yml, labelled by prometheus-scrape.yml
TARGET = 'instance=~"$target"'
VERIFY = f'module=~"https_verify|tls_verify", {TARGET}'
INSECURE = f'module=~"https_insecure|tls_insecure", {TARGET}'
UP_DOWN = [{"type": "value", "options": {"0": {"text": "failing", "color": "red"},
                                         "1": {"text": "ok", "color": "green"}}}]


def tls_probe_panels() -> list[Panel]:
    # the expiry expression of the recording rule tls:cert_expiry_timestamp_seconds, inlined so the
    # panel also works where only the probes, not the rules, are deployed
    expiry = (
        f"max without (job, module) (probe_ssl_last_chain_expiry_timestamp_seconds{{{VERIFY}}} > 0)"
        f" or max without (job, module) (probe_ssl_earliest_cert_expiry{{{INSECURE}}})"
    )
    return [
        Panel("TLS probes", "row"),
        Panel(
            "Days to certificate expiry",
            "bargauge",
            [(f"(({expiry}) - time()) / 86400", "{{instance}}")],
            unit="d",
            width=8,
            thresholds=[("red", None), ("orange", 7), ("green", 21)],
            description="TLSCertificateExpiring: < 21 days warning, < 7 days critical. From the verified chain "
            "when verification succeeds, else from the certificates the server sends.",
        ),
        Panel(
            "Probe success",
            "state-timeline",
            [
                (f"probe_success{{{VERIFY}}}", "{{instance}} {{module}}"),
                (f'probe_success{{module="http_redirect", {TARGET}}}', "{{instance}} redirect to HTTPS"),
            ],
            width=16,
            mappings=UP_DOWN,
            description="Verifying probes and the HTTP-to-HTTPS redirect check. TLSProbeFailed, "
            "TLSCertificateUntrusted and TLSPlainHTTPServed explain a red bar.",
        ),
        Panel(
            "Negotiated TLS version",
            "table",
            [(f"probe_tls_version_info{{{VERIFY}}}", "{{instance}} {{version}}")],
            width=8,
            description="What a current client negotiates (blackbox_exporter offers TLS 1.2 and 1.3).",
        ),
        Panel(
            "Legacy TLS (1.0/1.1) accepted",
            "table",
            [(f'probe_tls_version_info{{module="tls_legacy", {TARGET}}}', "{{instance}} {{version}}")],
            width=8,
            description="Sites that still complete a TLS 1.0/1.1 handshake: TLSLegacyProtocolOffered.",
        ),
        Panel(
            "Probe duration",
            "timeseries",
            [(f"probe_duration_seconds{{{VERIFY}}}", "{{instance}} {{module}}")],
            unit="s",
            width=8,
            thresholds=[("green", None), ("red", 2)],
            description="TLSProbeSlow: average above 2 s for 15 minutes.",
        ),
    ]


def golden_signals() -> dict[str, Any]:
    rate = "[$__rate_interval]"
    variables = [
        _variable_datasource("datasource", "prometheus", "Prometheus"),
        _variable_query(
            "service", "Traefik service", "label_values(traefik_service_requests_total, service)"
        ),
        _variable_query("namespace", "Namespace", "label_values(kube_deployment_spec_replicas, namespace)"),
        _variable_query("target", "Probed site", "label_values(probe_success, instance)"),
    ]

    def quantile(q: str) -> str:
        return (
            f"histogram_quantile({q}, sum by (le, service) "
            f"(rate(traefik_service_request_duration_seconds_bucket{{{SVC}}}{rate})))"
        )

    panels = [
        Panel("Latency", "row"),
        Panel(
            "Service latency p50 / p95 / p99",
            "timeseries",
            [
                (quantile("0.5"), "{{service}} p50"),
                (quantile("0.95"), "{{service}} p95"),
                (quantile("0.99"), "{{service}} p99"),
            ],
            unit="s",
            width=12,
            thresholds=[("green", None), ("red", 1.5)],
            description="IngressLatencyHigh: p95 > 1.5 s for 5 m.",
        ),
        Panel(
            "Entrypoint latency p95",
            "timeseries",
            [
                (
                    "histogram_quantile(0.95, sum by (le, entrypoint) "
                    f"(rate(traefik_entrypoint_request_duration_seconds_bucket{rate})))",
                    "{{entrypoint}}",
                )
            ],
            unit="s",
            width=12,
        ),
        Panel("Traffic", "row"),
        Panel(
            "Requests per second by service",
            "timeseries",
            [(f"sum by (service) (rate(traefik_service_requests_total{{{SVC}}}{rate}))", "{{service}}")],
            unit="reqps",
            width=12,
        ),
        Panel(
            "Requests per second by entrypoint and code",
            "timeseries",
            [
                (
                    f"sum by (entrypoint, code) (rate(traefik_entrypoint_requests_total{rate}))",
                    "{{entrypoint}} {{code}}",
                )
            ],
            unit="reqps",
            width=12,
        ),
        Panel("Errors", "row"),
        Panel(
            "5xx ratio by service",
            "timeseries",
            [
                (
                    f'sum by (service) (rate(traefik_service_requests_total{{{SVC}, code=~"5.."}}{rate}))'
                    f" / sum by (service) (rate(traefik_service_requests_total{{{SVC}}}{rate}))",
                    "{{service}}",
                )
            ],
            unit="percentunit",
            width=8,
        ),
        Panel(
            "Backend servers down",
            "stat",
            [(f"count by (service) (traefik_service_server_up{{{SVC}}} == 0)", "{{service}}")],
            width=8,
        ),
        Panel(
            "Container restarts (1h)",
            "timeseries",
            [(f"sum by (pod) (increase(kube_pod_container_status_restarts_total{{{NS}}}[1h]))", "{{pod}}")],
            width=8,
        ),
        Panel("Saturation", "row"),
        Panel(
            "Pod CPU (cores)",
            "timeseries",
            [
                (
                    f'sum by (pod) (rate(container_cpu_usage_seconds_total{{{NS}, container!=""}}{rate}))',
                    "{{pod}}",
                )
            ],
            width=8,
        ),
        Panel(
            "Pod CPU throttling",
            "timeseries",
            [
                (
                    "sum by (pod) (rate(container_cpu_cfs_throttled_periods_total"
                    f'{{{NS}, container!=""}}{rate}))'
                    f' / sum by (pod) (rate(container_cpu_cfs_periods_total{{{NS}, container!=""}}{rate}))',
                    "{{pod}}",
                )
            ],
            unit="percentunit",
            width=8,
        ),
        Panel(
            "Pod memory / limit",
            "timeseries",
            [
                (
                    f'sum by (pod) (container_memory_working_set_bytes{{{NS}, container!=""}})'
                    f' / sum by (pod) (kube_pod_container_resource_limits{{{NS}, resource="memory"}})',
                    "{{pod}}",
                )
            ],
            unit="percentunit",
            width=8,
        ),
        Panel(
            "Replicas available / desired",
            "timeseries",
            [
                (f"kube_deployment_status_replicas_available{{{NS}}}", "{{deployment}} available"),
                (f"kube_deployment_spec_replicas{{{NS}}}", "{{deployment}} desired"),
            ],
            width=12,
        ),
        Panel(
            "Open connections (Traefik)",
            "timeseries",
            [("sum by (entrypoint) (traefik_entrypoint_open_connections)", "{{entrypoint}}")],
            width=6,
        ),
        Panel(
            "Node CPU busy",
            "timeseries",
            [(f'1 - avg by (instance) (rate(node_cpu_seconds_total{{mode="idle"}}{rate}))', "{{instance}}")],
            unit="percentunit",
            width=6,
            thresholds=[("green", None), ("red", 0.9)],
        ),
        *tls_probe_panels(),
    ]
    return dashboard(
        "borgwatch-golden-signals",
        "Golden Signals",
        ["borgwatch", "ingress", "kubernetes"],
        variables,
        panels,
        "Latency, traffic, errors, saturation: Traefik ingress and pods; TLS probes of the sites.",
    )


DASHBOARDS = {
    "backup-assurance.json": backup_assurance,
    "hardware-health.json": hardware_health,
    "golden-signals.json": golden_signals,
}


def render(name: str) -> str:
    return json.dumps(DASHBOARDS[name](), indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    for name in DASHBOARDS:
        (DASHBOARD_DIR / name).write_text(render(name), encoding="utf-8")
        print(f"wrote {DASHBOARD_DIR / name}")


if __name__ == "__main__":
    main()
