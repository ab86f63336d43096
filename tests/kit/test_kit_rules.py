"""The alert rules: promtool check + unit tests (real promtool), conventions, metric names, runbook."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from helpers.kit_files import (
    alert_names,
    alert_rules,
    all_rules,
    assert_alert_conventions,
    assert_mutation_caught,
    assert_rules_clean,
    assert_unit_tests_pass,
    firing_and_quiet,
    first_three_checks,
    needs_promtool,
    playbook_sections,
    recorded_names,
    slo_alert_names,
    yaml_asset,
)
from helpers.kit_promql import known_metric, metric_names

from borgwatch.kit import ASSETS, KIT_DIR, read_asset

EXPECTED_ALERTS = {
    "BackupJobFailed", "BackupStale", "BackupNeverSucceeded", "BackupRunStuck", "BackupDurationHigh",
    "BackupMassChange", "BackupSourceShrank", "BackupRepositoryCheckFailed", "BackupRepositoryCheckTooOld",
    "BackupInventoryCollectFailed", "BackupRepositoryNoRecentArchive", "BackupTimerStopped",
    "BackupMetricsMissing", "BackupTextfileScrapeError", "BackupLokiDeliveryFailing", "BackupLokiLogsDropped",
    "NASPoolDegraded", "IngressLatencyHigh", "NodeCPUHigh",
}


# ------------------------------------------------------------------ the kit package
def test_every_asset_exists_and_reads() -> None:
    for name, rel in ASSETS.items():
        assert (KIT_DIR / rel).is_file(), name
        assert read_asset(name).strip(), name


def test_unknown_asset_lists_valid_names() -> None:
    with pytest.raises(KeyError) as err:
        read_asset("nope")
    assert "rules" in str(err.value) and "routes" in str(err.value)


# ------------------------------------------------------------------ promtool
@needs_promtool
@pytest.mark.slow
def test_promtool_check_rules_is_clean() -> None:
    assert_rules_clean("rules")


@needs_promtool
@pytest.mark.slow
def test_promtool_unit_tests_pass() -> None:
    assert_unit_tests_pass("rules-test")


# mutation -> (text in the rules, replacement, test group that must catch it)
MUTATIONS = {
    "latency threshold": ("\n            > 1.5\n", "\n            > 15\n", "platform"),
    "signal class": ("borgwatch_run_exit_code >= 128", "borgwatch_run_exit_code >= 200", "job-failed"),
    "mass change floor": ("borgwatch:dataset_changed_files >= 100)",
                          "borgwatch:dataset_changed_files >= 100000)", "data-signals"),
    "stale loses labels": ("(time() - borgwatch_last_success_timestamp_seconds)\n"
                           "            > on (instance, backup_job) group_left ()",
                           "(time() - borgwatch_last_success_timestamp_seconds)\n"
                           "            > on (instance, backup_job)", "freshness"),
    "never-succeeded fires always": ("borgwatch_run_exit_code unless on (instance, backup_job) "
                                     "borgwatch_last_success_timestamp_seconds", "borgwatch_run_exit_code",
                                     "freshness"),
}


@needs_promtool
@pytest.mark.slow
@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_unit_tests_catch_a_broken_rule(mutation: str, tmp_path: Path) -> None:
    assert_mutation_caught(tmp_path, "rules", MUTATIONS[mutation])


# ------------------------------------------------------------------ conventions
def test_the_expected_alerts_exist() -> None:
    assert alert_names() == EXPECTED_ALERTS


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda r: r["alert"])
def test_alert_has_severity_annotations_and_runbook(rule: dict) -> None:
    assert_alert_conventions(rule)


def test_backup_job_failed_severity_by_class() -> None:
    by_class = {r["labels"]["borg_class"]: r for r in alert_rules() if r["alert"] == "BackupJobFailed"}
    assert {c: r["labels"]["severity"] for c, r in by_class.items()} == {
        "warning": "warning", "error": "critical", "signal": "critical"}
    for rule in by_class.values():
        description = rule["annotations"]["description"]
        for part in ("$labels.backup_job", "$value", "message class"):
            assert part in description


def test_one_node_cpu_alert() -> None:
    cpu = [r["alert"] for r in alert_rules() if re.search(r"node_cpu_seconds_total|node_load\d", r["expr"])]
    assert cpu == ["NodeCPUHigh"]


def test_job_rules_never_use_job_label_for_backup_jobs() -> None:
    for rule in all_rules():
        assert not re.search(r'\bjob\s*=~?\s*"', rule["expr"]), rule.get("alert", rule.get("record"))


# ------------------------------------------------------------------ metric names
def test_metric_name_extractor() -> None:
    expr = ('histogram_quantile(0.95, sum by (le) (rate(a_bucket{x="y"}[5m]))) > 1.5e3 and on (i) '
            'label_replace(b, "d", "$1", "s", "(.*)") unless c offset 1d or time() - d:rec')
    assert metric_names(expr) == {"a_bucket", "b", "c", "d:rec"}


@pytest.mark.parametrize("rule", all_rules(), ids=lambda r: r.get("alert") or r["record"])
def test_rule_uses_only_existing_metrics(rule: dict) -> None:
    names = metric_names(rule["expr"])
    assert names, "no metric found: the extractor is broken"
    unknown = {n for n in names if not known_metric(n, recorded_names())}
    assert not unknown, f"unknown metrics {unknown}"


def test_known_metric_rejects_typos() -> None:
    assert known_metric("borgwatch_run_exit_code")
    assert not known_metric("borgwatch_last_exit_code")
    assert known_metric("traefik_service_request_duration_seconds_bucket")
    assert not known_metric("borgwatch_run_exit_code_bucket")


# ------------------------------------------------------------------ unit-test coverage
def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    assert firing_and_quiet("rules-test") == (alert_names(), alert_names())
    for group in yaml_asset("rules-test")["tests"]:
        assert group["interval"] == "1m"
        for case in group.get("alert_rule_test", []):
            for alert in case["exp_alerts"]:
                assert "severity" in alert["exp_labels"]
                assert set(alert["exp_annotations"]) == {"summary", "description", "runbook_url"}


def test_test_file_reader_is_faithful() -> None:
    doc = yaml_asset("rules-test")
    assert doc["rule_files"] == [ASSETS["rules"]]
    assert doc["evaluation_interval"] == "1m"


# ------------------------------------------------------------------ playbook
def test_playbook_has_one_complete_section_per_alert() -> None:
    sections = playbook_sections()
    assert set(sections) == alert_names() | slo_alert_names()
    for name, text in sections.items():
        assert "`" in first_three_checks(name, text), f"{name}: checks need exact commands"


def test_playbook_commands_use_real_cli_and_labels() -> None:
    text = read_asset("playbook")
    assert "borgwatch status" in text and "journalctl -u borgwatch@JOB.service" in text
    assert '{app="borgwatch", backup_job="JOB"} | json | event="run_summary"' in text
    storage = playbook_sections()["NASPoolDegraded"]
    assert "storage on-call" in storage.lower() and "resilver checklist" in storage.lower()
    ingress = playbook_sections()["IngressLatencyHigh"]
    assert "scale the replica set" in ingress.lower() and "middleware" in ingress.lower()
