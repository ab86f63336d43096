"""Issue #13, the drill's ops kit: its rule file is promtool-clean, its unit tests fire and must-not-fire
and catch a broken rule, every alert has a playbook section, the rules use only drill metrics that exist."""

from __future__ import annotations

import re
from pathlib import Path

from helpers.kit_files import (
    alert_rules,
    assert_alert_conventions,
    assert_rules_clean,
    assert_unit_tests_pass,
    first_three_checks,
    needs_promtool,
    playbook_sections,
    promtool,
)

from borgwatch.drill.metrics import DRILL_SPECS
from borgwatch.kit import ASSETS, read_asset


@needs_promtool
def test_drill_rules_are_promtool_clean_and_their_unit_tests_pass() -> None:
    assert_rules_clean("drill-rules")
    assert_unit_tests_pass("drill-rules-test")


@needs_promtool
def test_the_unit_tests_catch_a_rule_that_ignores_mismatches_or_staleness(tmp_path: Path) -> None:
    rules = read_asset("drill-rules")
    (tmp_path / ASSETS["drill-rules-test"]).write_text(read_asset("drill-rules-test"))
    for old, new in (('status=~"failed|error"', 'status="error"'),
                     ("> borgwatch_drill_max_age_seconds", "> 2 * borgwatch_drill_max_age_seconds"),
                     ("unless borgwatch_drill_last_success_timestamp_seconds",
                      "unless borgwatch_drill_max_age_seconds")):
        assert old in rules
        (tmp_path / ASSETS["drill-rules"]).write_text(rules.replace(old, new))
        assert promtool("test", "rules", str(tmp_path / ASSETS["drill-rules-test"])).returncode != 0, old


def test_both_alerts_exist_with_severity_runbook_and_a_playbook_section() -> None:
    alerts = {rule["alert"]: rule for rule in alert_rules("drill-rules")}
    assert set(alerts) == {"BackupRestoreDrillFailed", "BackupRestoreDrillStale"}
    assert alerts["BackupRestoreDrillFailed"]["labels"]["severity"] == "critical"
    assert alerts["BackupRestoreDrillStale"]["labels"]["severity"] == "warning"
    sections = playbook_sections(level=4, part="Restore drill alerts")
    assert set(sections) == set(alerts)
    for name, rule in alerts.items():
        assert_alert_conventions(rule)
        assert "`" in first_three_checks(name, sections[name])
        assert "**Remediation.**" in sections[name], name


def test_the_rules_use_only_exported_drill_metrics() -> None:
    used = set(re.findall(r"borgwatch_drill_\w+", read_asset("drill-rules")))
    assert used and used <= set(DRILL_SPECS)
