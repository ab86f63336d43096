"""PromQL helpers for the ops kit tests: metric names used by an expression, the metric names that
exist (borgwatch's table plus explicit lists of the external exporters the kit relies on), and a
syntax check of many expressions with the real promtool."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from borgwatch.metrics.specs import SPECS

# node_exporter 1.5 (default collectors + textfile; zfs, hwmon, pressure) and its promhttp handler.
NODE_EXPORTER = frozenset(
    {
        "node_cpu_seconds_total",
        "node_load1",
        "node_load5",
        "node_load15",
        "node_memory_MemAvailable_bytes",
        "node_memory_MemTotal_bytes",
        "node_filesystem_avail_bytes",
        "node_filesystem_size_bytes",
        "node_disk_io_time_seconds_total",
        "node_disk_read_bytes_total",
        "node_disk_written_bytes_total",
        "node_network_receive_bytes_total",
        "node_network_transmit_bytes_total",
        "node_pressure_cpu_waiting_seconds_total",
        "node_pressure_io_waiting_seconds_total",
        "node_hwmon_temp_celsius",
        "node_textfile_mtime_seconds",
        "node_textfile_scrape_error",
        "node_zfs_zpool_state",
        "promhttp_metric_handler_errors_total",
    }
)
PROMETHEUS = frozenset({"up"})
# prometheus-community/smartctl_exporter (metrics.go)
SMARTCTL_EXPORTER = frozenset(
    {
        "smartctl_device",
        "smartctl_device_smart_status",
        "smartctl_device_temperature",
        "smartctl_device_power_on_seconds",
        "smartctl_device_attribute",
        "smartctl_device_media_errors",
        "smartctl_device_critical_warning",
        "smartctl_device_percentage_used",
        "smartctl_device_available_spare",
        "smartctl_device_smartctl_exit_status",
        "smartctl_device_error_log_count",
    }
)
# snmp_exporter, default "apcups" module (PowerNet-MIB upsBattery/upsOutput/rPDU2 tables)
SNMP_EXPORTER = frozenset(
    {
        "upsAdvOutputLoad",
        "upsAdvOutputVoltage",
        "upsAdvOutputCurrent",
        "upsAdvBatteryCapacity",
        "upsAdvBatteryRunTimeRemaining",
        "rPDU2DeviceStatusPower",
    }
)
# Traefik v2/v3 Prometheus metrics
TRAEFIK = frozenset(
    {
        "traefik_entrypoint_requests_total",
        "traefik_service_requests_total",
        "traefik_entrypoint_open_connections",
        "traefik_service_open_connections",
        "traefik_service_server_up",
        "traefik_config_reloads_total",
    }
)
TRAEFIK_HISTOGRAMS = frozenset(
    {
        "traefik_entrypoint_request_duration_seconds",
        "traefik_service_request_duration_seconds",
    }
)
KUBE_STATE_METRICS = frozenset(
    {
        "kube_deployment_spec_replicas",
        "kube_deployment_status_replicas_available",
        "kube_pod_container_status_restarts_total",
        "kube_pod_container_resource_limits",
    }
)
CADVISOR = frozenset(
    {
        "container_cpu_usage_seconds_total",
        "container_memory_working_set_bytes",
        "container_cpu_cfs_throttled_periods_total",
        "container_cpu_cfs_periods_total",
    }
)
# blackbox_exporter 0.23 (Debian 12), http and tcp probers: what tests/test_kit_tls_probes.py sees it emit
BLACKBOX_EXPORTER = frozenset(
    {
        "probe_success",
        "probe_duration_seconds",
        "probe_dns_lookup_time_seconds",
        "probe_ip_protocol",
        "probe_ip_addr_hash",
        "probe_http_status_code",
        "probe_http_ssl",
        "probe_http_redirects",
        "probe_http_version",
        "probe_http_content_length",
        "probe_http_uncompressed_body_length",
        "probe_http_duration_seconds",
        "probe_failed_due_to_regex",
        "probe_ssl_earliest_cert_expiry",
        "probe_ssl_last_chain_expiry_timestamp_seconds",
        "probe_ssl_last_chain_info",
        "probe_tls_version_info",
    }
)
EXTERNAL = (
    NODE_EXPORTER | PROMETHEUS | SMARTCTL_EXPORTER | SNMP_EXPORTER | TRAEFIK | KUBE_STATE_METRICS | CADVISOR
    | BLACKBOX_EXPORTER
)
HISTOGRAMS = TRAEFIK_HISTOGRAMS

_KEYWORDS = frozenset(
    {
        "and",
        "or",
        "unless",
        "bool",
        "offset",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "inf",
        "nan",
        "Inf",
        "NaN",
    }
)
_GRAFANA_VARS = {"__rate_interval": "5m", "__interval": "1m", "__range": "1d"}


def known_metric(name: str, recorded: frozenset[str] = frozenset()) -> bool:
    if name in SPECS or name in EXTERNAL or name in recorded:
        return True
    base = re.sub(r"_(bucket|sum|count)$", "", name)
    return base != name and base in HISTOGRAMS


def expand_grafana(expr: str) -> str:
    """Replace Grafana variables: built-in intervals by durations, dashboard variables by a regex."""

    def sub(m: re.Match[str]) -> str:
        return _GRAFANA_VARS.get(m.group(1) or m.group(2), ".+")

    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", sub, expr)


def metric_names(expr: str) -> set[str]:
    """Metric names an expression selects (not functions, keywords, labels or durations)."""
    s = re.sub(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`', '""', expr)
    s = re.sub(r"\{[^}]*\}", " ", s)
    s = re.sub(r"\[[^\]]*\]", " ", s)
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    s = re.sub(r"\boffset\s+-?\w+", " ", s)
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", s):
        before = s[m.start() - 1] if m.start() else " "
        if before.isalnum() or before == ".":
            continue  # part of a number such as 1e12
        if re.match(r"\s*\(", s[m.end() :]) or m.group() in _KEYWORDS:
            continue
        names.add(m.group())
    return names


def promtool_check_exprs(exprs: dict[str, str], workdir: Path) -> subprocess.CompletedProcess[str]:
    """Write one recording rule per expression and run ``promtool check rules`` on the file."""
    lines = ["groups:", "  - name: dashboard-exprs", "    rules:"]
    for i, expr in enumerate(exprs.values()):
        quoted = expr.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")
        lines += [f"      - record: kit:expr_{i}", f'        expr: "{quoted}"']
    path = workdir / "exprs.rules.yml"
    path.write_text("\n".join(lines) + "\n")
    return subprocess.run(
        ["promtool", "check", "rules", "--lint=none", str(path)], capture_output=True, text=True, timeout=60
    )
