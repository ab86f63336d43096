"""Issue #13, the drill's ops kit: its rule file is promtool-clean, its unit tests fire and must-not-fire
and catch a broken rule, every alert has a playbook section, the rules use only drill metrics that exist."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml
from helpers.kit_files import RUNBOOK_BASE, github_anchor, needs_promtool

from borgwatch.drill.metrics import DRILL_SPECS
from borgwatch.kit import ASSETS, KIT_DIR, read_asset


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=120)


def drill_alerts() -> list[dict]:
    doc = yaml.safe_load(read_asset("drill-rules"))
    return [rule for group in doc["groups"] for rule in group["rules"] if "alert" in rule]


@needs_promtool
def test_drill_rules_are_promtool_clean_and_their_unit_tests_pass() -> None:
    check = promtool("check", "rules", "--lint=all", "--lint-fatal", str(KIT_DIR / ASSETS["drill-rules"]))
    assert check.returncode == 0, check.stdout + check.stderr
    test = promtool("test", "rules", str(KIT_DIR / ASSETS["drill-rules-test"]))
    assert test.returncode == 0, test.stdout + test.stderr


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
    alerts = {rule["alert"]: rule for rule in drill_alerts()}
    assert set(alerts) == {"BackupRestoreDrillFailed", "BackupRestoreDrillStale"}
    assert alerts["BackupRestoreDrillFailed"]["labels"]["severity"] == "critical"
    assert alerts["BackupRestoreDrillStale"]["labels"]["severity"] == "warning"
    playbook = read_asset("playbook")
    drill_part = playbook.split("# Restore drill alerts")[1]
    for name, rule in alerts.items():
        assert rule["annotations"]["runbook_url"] == RUNBOOK_BASE + github_anchor(name)
        section = drill_part.split(f"\n#### {name}\n")[1].split("\n#### ")[0]
        checks = section.split("**First three checks**")[1].split("**Likely causes.**")[0]
        assert len(re.findall(r"^\d\. ", checks, flags=re.M)) == 3 and "`" in checks
        for part in ("**Meaning.**", "**Remediation.**", "**Escalation.**", "**Auto-remediation"):
            assert part in section, (name, part)


def test_the_rules_use_only_exported_drill_metrics() -> None:
    used = set(re.findall(r"borgwatch_drill_\w+", read_asset("drill-rules")))
    assert used and used <= set(DRILL_SPECS)
