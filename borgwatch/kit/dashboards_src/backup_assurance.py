"""Backup Assurance: is every backup job fresh, complete and healthy? borgwatch metrics, the recording rules
of borgwatch-rules.yml and borgwatch-slo-rules.yml, and the runs' Loki logs."""

from __future__ import annotations

from grafana_foundation_sdk.builders import bargauge, logs, prometheus, stat, statetimeline, table, timeseries
from grafana_foundation_sdk.builders.dashboard import Dashboard, Row
from grafana_foundation_sdk.models.common import LogsSortOrder

from borgwatch.kit.dashboards_src.common import (
    HOST,
    JOB,
    PanelBuilder,
    dashboard,
    datasource_variable,
    logql,
    panel,
    prom,
    prom_table,
    query_variable,
    range_map,
    value_map,
)

EXIT_MAPPINGS = [
    value_map({"0": ("success", "green")}),
    range_map(1, 1, "warning", "yellow"),
    range_map(100, 127, "warning", "yellow"),
    range_map(2, 99, "error", "red"),
    range_map(128, 255, "signal", "purple"),
]
JOB_LEGEND = "{{backup_job}}"
# The same recording rules `borgwatch report` documents; Grafana shows them live, the report per period.
BURN = ("(1 - borgwatch:slo_freshness:ratio_{w}{{{job}}}) / on (instance, job, backup_job) "
        "(1 - borgwatch:slo_freshness_objective{{{job}}})")
LOGS = '{app="borgwatch", host=~"$host", backup_job=~"$backup_job"} | json'


def freshness_and_runs() -> list[Row | PanelBuilder]:
    return [
        Row("Freshness"),
        panel(stat.Panel(), "Age of last success",
              prom(f"time() - borgwatch_last_success_timestamp_seconds{{{JOB}}}", JOB_LEGEND), unit="s", width=8),
        panel(bargauge.Panel(), "Age of last success / max_age",
              prom(f"(time() - borgwatch_last_success_timestamp_seconds{{{JOB}}})"
                   f" / on (instance, backup_job) group_left () borgwatch_max_age_seconds{{{JOB}}}", JOB_LEGEND),
              unit="percentunit", width=8, thresholds=[("green", None), ("orange", 0.8), ("red", 1)],
              description="Above 100 % the BackupStale alert fires."),
        panel(stat.Panel(), "Last run status",
              prom(f"borgwatch_run_status{{{JOB}}} == 1", "{{backup_job}}: {{status}}"),
              width=8, mappings=[value_map({"1": "current"})]),
        panel(statetimeline.Panel(), "Exit code over time",
              prom(f"borgwatch_run_exit_code{{{JOB}}}", JOB_LEGEND), width=12, mappings=EXIT_MAPPINGS),
        panel(timeseries.Panel(), "Runs by result (per day)",
              prom(f"sum by (backup_job, status) (increase(borgwatch_runs_total{{{JOB}}}[1d]))",
                   "{{backup_job}} {{status}}"), width=12),
        Row("Runs"),
        panel(stat.Panel(), "Last run duration",
              prom(f"borgwatch_run_duration_seconds{{{JOB}}}", JOB_LEGEND), unit="s", width=6),
        panel(stat.Panel(), "Run in progress", prom(f"borgwatch_run_in_progress{{{JOB}}}", JOB_LEGEND),
              width=6, mappings=[value_map({"0": "idle", "1": "running"})]),
        panel(timeseries.Panel(), "Run duration vs its 7-day average",
              prom(f"borgwatch_run_duration_seconds{{{JOB}}}", JOB_LEGEND),
              prom(f"avg_over_time(borgwatch_run_duration_seconds{{{JOB}}}[7d])", "{{backup_job}} 7d avg"),
              unit="s", width=12),
        panel(statetimeline.Panel(), "Stage results (exit code)",
              prom(f"borgwatch_stage_exit_code{{{JOB}}}", "{{backup_job}} {{stage}}"),
              width=12, mappings=EXIT_MAPPINGS),
        panel(timeseries.Panel(), "Stage durations",
              prom(f"borgwatch_stage_duration_seconds{{{JOB}}}", "{{backup_job}} {{stage}}"), unit="s", width=12),
    ]


def data_and_resources() -> list[Row | PanelBuilder]:
    return [
        Row("Data"),
        panel(timeseries.Panel(), "Last archive: original / compressed / deduplicated",
              *(prom(f"borgwatch_archive_{kind}_bytes{{{JOB}}}", f"{{{{backup_job}}}} {kind}")
                for kind in ("original", "compressed", "deduplicated")),
              unit="bytes", width=12),
        panel(timeseries.Panel(), "Repository size",
              prom(f"borgwatch_repository_unique_compressed_bytes{{{JOB}}}",
                   "{{backup_job}} stored (dedup+compressed)"),
              prom(f"borgwatch_repository_total_bytes{{{JOB}}}", "{{backup_job}} all archives, original"),
              unit="bytes", width=12),
        panel(timeseries.Panel(), "Dataset diff: files by change",
              prom(f'borgwatch_dataset_files{{{JOB}, change!="unchanged"}}', "{{backup_job}} {{change}}"),
              width=12),
        panel(timeseries.Panel(), "Modified + removed share (mass-change signal)",
              prom(f"borgwatch:dataset_changed_ratio{{{JOB}}}", JOB_LEGEND),
              prom(f"avg_over_time(borgwatch:dataset_changed_ratio{{{JOB}}}[7d])", "{{backup_job}} 7d avg"),
              unit="percentunit", width=12, description="Recording rule from borgwatch-rules.yml."),
        Row("Resources"),
        panel(timeseries.Panel(), "borg CPU time",
              prom(f"borgwatch_borg_cpu_seconds{{{JOB}}}", "{{backup_job}} {{mode}}"), unit="s", width=8),
        panel(timeseries.Panel(), "borg peak memory (RSS)",
              prom(f"borgwatch_borg_max_rss_bytes{{{JOB}}}", JOB_LEGEND), unit="bytes", width=8),
        panel(timeseries.Panel(), "borg I/O",
              prom(f"borgwatch_borg_io_bytes{{{JOB}}}", "{{backup_job}} {{direction}}"), unit="bytes", width=8),
        Row("Repository health and delivery"),
        panel(stat.Panel(), "Age of last successful check",
              prom(f"time() - borgwatch_check_last_success_timestamp_seconds{{{JOB}}}", JOB_LEGEND),
              unit="s", width=8, thresholds=[("green", None), ("orange", 2592000), ("red", 3024000)]),
        panel(timeseries.Panel(), "Loki delivery",
              prom(f'borgwatch_sink_spooled_items{{{JOB}, sink="loki"}}', "{{backup_job}} spooled"),
              prom(f'increase(borgwatch_sink_failures_total{{{JOB}, sink="loki"}}[1d])',
                   "{{backup_job}} failures/day"),
              prom(f'increase(borgwatch_sink_dropped_total{{{JOB}, sink="loki"}}[1d])',
                   "{{backup_job}} dropped/day"),
              width=8),
        panel(table.Panel(), "Versions", prom_table(f"borgwatch_build_info{{{JOB}}}"), width=8),
        panel(timeseries.Panel(), "Repository inventory (server side)",
              prom("borgwatch_inventory_archives", "{{repository}} archives"),
              prom("time() - borgwatch_inventory_last_archive_timestamp_seconds",
                   "{{repository}} newest archive age"),
              width=24),
    ]


def drill_panels() -> list[Row | PanelBuilder]:
    """Restore drills (`borgwatch drill`, the run's drill stage): proof that the backups restore."""
    return [
        Row("Restore drills"),
        panel(stat.Panel(), "Last drill result", prom(f"borgwatch_drill_status{{{JOB}}} == 1",
                                                      "{{backup_job}}: {{status}}"),
              width=6, mappings=[value_map({"1": "current"})],
              description="failed: a restored file did not verify; the BackupRestoreDrillFailed alert fires."),
        panel(bargauge.Panel(), "Age of last successful drill / drill.max_age",
              prom(f"(time() - borgwatch_drill_last_success_timestamp_seconds{{{JOB}}})"
                   f" / on (instance, backup_job) group_left () borgwatch_drill_max_age_seconds{{{JOB}}}",
                   JOB_LEGEND),
              unit="percentunit", width=6, thresholds=[("green", None), ("orange", 0.8), ("red", 1)],
              description="Above 100 % the BackupRestoreDrillStale alert fires."),
        panel(bargauge.Panel(), "Drill coverage (30 days)",
              prom(f"borgwatch_drill_coverage_ratio{{{JOB}}}", JOB_LEGEND), unit="percentunit", width=6,
              thresholds=[("red", None), ("orange", 0.5), ("green", 0.9)],
              description="Share of the archive's files verified by drills over the last 30 days."),
        panel(stat.Panel(), "Estimated full restore time (RTO)",
              prom(f"borgwatch_drill_rto_estimate_seconds{{{JOB}}}", JOB_LEGEND), unit="s", width=6,
              description="Archive size / the last drill's restore throughput."),
        panel(timeseries.Panel(), "Drill files by verdict",
              prom(f"borgwatch_drill_files{{{JOB}}}", "{{backup_job}} {{result}}"), width=12),
        panel(timeseries.Panel(), "Restore throughput",
              prom(f"borgwatch_drill_restore_throughput_bytes_per_second{{{JOB}}}", JOB_LEGEND),
              unit="Bps", width=12),
    ]


def log_panel(title: str, expr: str, height: int) -> logs.Panel:
    return (
        panel(logs.Panel(), title, logql(expr), width=24, height=height)
        .show_time(True)
        .wrap_log_message(True)
        .sort_order(LogsSortOrder.DESCENDING)
        .enable_log_details(True)
        .prettify_log_message(False)
    )


def log_panels() -> list[Row | PanelBuilder]:
    return [
        Row("Logs"),
        log_panel("Run summaries", f'{LOGS} | event="run_summary"', height=8),
        log_panel("Runs of the selected job (all events)",
                  f'{LOGS} | event=~"run_started|stage_finished|borg_message|run_summary"', height=12),
        log_panel("Restore drill mismatches and summaries", f'{LOGS} | event=~"drill_mismatch|drill_summary"',
                  height=8),
    ]


def slo_panels() -> list[Row | PanelBuilder]:
    def ratio(title: str, *queries: prometheus.Dataquery, good: float, description: str) -> bargauge.Panel:
        return panel(bargauge.Panel(), title, *queries, unit="percentunit", width=6,
                     thresholds=[("red", None), ("green", good)], description=description)

    return [
        Row("Service level objectives (30 days, borgwatch-slo-rules.yml)"),
        ratio("Recent backup available (freshness SLO)",
              prom(f"borgwatch:slo_freshness:ratio_30d{{{JOB}}}", JOB_LEGEND), good=0.95,
              description="Share of the last 30 days in which the newest successful backup was younger than "
              "max_age. The objective per job is borgwatch:slo_freshness_objective (default 95 %)."),
        panel(bargauge.Panel(), "Freshness error budget left",
              prom(f"borgwatch:slo_freshness:budget_remaining_30d{{{JOB}}}", JOB_LEGEND),
              unit="percentunit", width=6, thresholds=[("red", None), ("orange", 0), ("green", 0.5)],
              description="1 - stale time / stale time the objective allows over 30 days. Below 0 the "
              "objective is missed."),
        ratio("Successful runs (run success SLO)",
              prom(f"borgwatch:slo_run_success:ratio_30d{{{JOB}}}", JOB_LEGEND),
              prom("borgwatch:slo_run_success:fleet_ratio_30d", "all jobs"), good=0.9,
              description="Runs that ended success or warning among all runs of the last 30 days."),
        ratio("Repository verified (integrity SLO)",
              prom(f"borgwatch:slo_check:ratio_30d{{{JOB}}}", JOB_LEGEND), good=0.99,
              description="Share of the last 30 days in which the last successful borg check was younger than "
              "borgwatch:slo_check_max_age_seconds (default 8 days)."),
        panel(statetimeline.Panel(), "Fresh or stale",
              prom(f"borgwatch:slo_freshness_good{{{JOB}}}", JOB_LEGEND), width=12,
              mappings=[value_map({"1": ("fresh", "green"), "0": ("stale", "red")})],
              description="The SLI itself: 1 while the newest successful backup is within max_age."),
        panel(timeseries.Panel(), "Freshness budget burn rate",
              prom(BURN.format(w="2d", job=JOB), "{{backup_job}} 2d (pages above 10)"),
              prom(BURN.format(w="3d", job=JOB), "{{backup_job}} 3d (tickets above 1)"),
              width=12, thresholds=[("green", None), ("orange", 1), ("red", 10)],
              description="How many times faster than allowed the job spends its freshness budget; the "
              "BackupFreshnessBudgetBurn alert uses these windows."),
    ]


def build() -> Dashboard:
    variables = [
        datasource_variable("datasource", "prometheus", "Prometheus"),
        datasource_variable("loki_datasource", "loki", "Loki"),
        query_variable("host", "Host", "label_values(borgwatch_build_info, instance)", regex="/^([^:]+)/"),
        query_variable("backup_job", "Backup job", f"label_values(borgwatch_build_info{{{HOST}}}, backup_job)"),
    ]
    return dashboard(
        "borgwatch-backup-assurance",
        "Backup Assurance",
        "Is every backup job fresh, complete and healthy? borgwatch metrics + Loki logs.",
        ["borgwatch", "backup"],
        variables,
        [*freshness_and_runs(), *data_and_resources(), *drill_panels(), *log_panels(), *slo_panels()],
    )
