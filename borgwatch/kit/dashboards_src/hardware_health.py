"""Hardware Health: SMART (smartctl_exporter), ZFS pool state and sensors (node_exporter) and power
(snmp_exporter's apcups module)."""

from __future__ import annotations

from grafana_foundation_sdk.builders import bargauge, stat, statetimeline, timeseries
from grafana_foundation_sdk.builders.dashboard import Dashboard, Row

from borgwatch.kit.dashboards_src.common import (
    HOST,
    dashboard,
    datasource_variable,
    panel,
    prom,
    query_variable,
    value_map,
)

DEVICE = "{{device}}"
UPS = 'instance=~"$ups"'
ALARM = [("green", None), ("red", 1)]  # any non-zero value is bad


def build() -> Dashboard:
    variables = [
        datasource_variable("datasource", "prometheus", "Prometheus"),
        query_variable("host", "Host", "label_values(node_textfile_scrape_error, instance)", regex="/^([^:]+)/"),
        query_variable("ups", "UPS / PDU (SNMP)", "label_values(upsAdvOutputLoad, instance)"),
    ]
    panels = [
        Row("Disks (smartctl_exporter)"),
        panel(stat.Panel(), "SMART overall status", prom(f"smartctl_device_smart_status{{{HOST}}}", DEVICE),
              width=8, mappings=[value_map({"1": ("PASSED", "green"), "0": ("FAILED", "red")})]),
        panel(stat.Panel(), "smartctl exit status",
              prom(f"smartctl_device_smartctl_exit_status{{{HOST}}}", DEVICE), width=8, thresholds=ALARM),
        panel(bargauge.Panel(), "Power-on time", prom(f"smartctl_device_power_on_seconds{{{HOST}}}", DEVICE),
              unit="s", width=8),
        panel(timeseries.Panel(), "Disk temperature",
              prom(f'smartctl_device_temperature{{{HOST}, temperature_type="current"}}', DEVICE),
              unit="celsius", width=12, thresholds=[("green", None), ("orange", 50), ("red", 60)]),
        panel(timeseries.Panel(), "Reallocated / pending / uncorrectable sectors",
              prom(f'smartctl_device_attribute{{{HOST}, attribute_value_type="raw",'
                   ' attribute_name=~"Reallocated_Sector_Ct|Current_Pending_Sector|Offline_Uncorrectable"}',
                   "{{device}} {{attribute_name}}"),
              width=12),
        panel(timeseries.Panel(), "NVMe wear (percentage used)",
              prom(f"smartctl_device_percentage_used{{{HOST}}}", DEVICE), unit="percent", width=8),
        panel(timeseries.Panel(), "NVMe media errors", prom(f"smartctl_device_media_errors{{{HOST}}}", DEVICE),
              width=8),
        panel(stat.Panel(), "NVMe critical warning",
              prom(f"smartctl_device_critical_warning{{{HOST}}}", DEVICE), width=8, thresholds=ALARM),
        Row("ZFS and sensors (node_exporter)"),
        panel(stat.Panel(), "ZFS pools not ONLINE",
              prom(f'count(node_zfs_zpool_state{{{HOST}, state!="online"}} == 1) or vector(0)'),
              width=6, thresholds=ALARM),
        panel(statetimeline.Panel(), "ZFS pool state",
              prom(f"max by (zpool, state) (node_zfs_zpool_state{{{HOST}}} == 1)", "{{zpool}} {{state}}"),
              width=18),
        panel(timeseries.Panel(), "Board / CPU sensors",
              prom(f"node_hwmon_temp_celsius{{{HOST}}}", "{{chip}} {{sensor}}"), unit="celsius", width=24),
        Row("Power (snmp_exporter, where available)"),
        panel(timeseries.Panel(), "UPS output load", prom(f"upsAdvOutputLoad{{{UPS}}}", "{{instance}}"),
              unit="percent", width=8),
        panel(timeseries.Panel(), "UPS apparent power",
              prom(f"upsAdvOutputVoltage{{{UPS}}} * upsAdvOutputCurrent{{{UPS}}}", "{{instance}}"),
              unit="voltamp", width=8),
        panel(timeseries.Panel(), "PDU power", prom(f"rPDU2DeviceStatusPower{{{UPS}}} * 10", "{{instance}}"),
              unit="watt", width=8, description="rPDU2DeviceStatusPower is in hundredths of kW."),
        panel(timeseries.Panel(), "UPS battery",
              prom(f"upsAdvBatteryCapacity{{{UPS}}}", "{{instance}} charge %"),
              prom(f"upsAdvBatteryRunTimeRemaining{{{UPS}}}", "{{instance}} runtime s"),
              width=24),
    ]
    return dashboard(
        "borgwatch-hardware-health",
        "Hardware Health",
        "SMART (smartctl_exporter), ZFS pool state (node_exporter) and power (snmp_exporter).",
        ["borgwatch", "hardware"],
        variables,
        panels,
    )
