"""Shared loading and tool scaffolding for the ops kit tests: the kit's YAML, its rules and unit-test
cases, the playbook's sections, and real promtool / amtool runs."""

from __future__ import annotations

import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from borgwatch.kit import ASSETS, asset_path, read_asset

RUNBOOK_BASE = "https://github.com/borgwatch/borgwatch/blob/main/borgwatch/kit/backup-alert-playbook.md#"
PAGING = "opsgenie-primary,sms-fallback,ops-critical-catchall"  # the receivers a critical alert reaches
PLAYBOOK_PARTS = ("**Meaning.**", "**First three checks**", "**Likely causes.**", "**Remediation",
                  "**Escalation.**", "**Auto-remediation")

needs_promtool = pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
needs_amtool = pytest.mark.skipif(shutil.which("amtool") is None, reason="amtool not installed")


# ------------------------------------------------------------------ the kit's YAML
@cache
def yaml_asset(name: str) -> Any:
    return yaml.safe_load(read_asset(name))


def all_rules(asset: str = "rules") -> list[dict[str, Any]]:
    return [rule for group in yaml_asset(asset)["groups"] for rule in group["rules"]]


def alert_rules(asset: str = "rules") -> list[dict[str, Any]]:
    return [rule for rule in all_rules(asset) if "alert" in rule]


def alert_names(asset: str = "rules") -> set[str]:
    return {rule["alert"] for rule in alert_rules(asset)}


def recorded_names() -> frozenset[str]:
    """Recording rules of both rule files (dashboards use the SLO ones too)."""
    return frozenset(rule["record"] for rule in all_rules() + slo_rules() if "record" in rule)


def slo_rules() -> list[dict[str, Any]]:
    return all_rules("slo-rules")


def slo_alert_names() -> set[str]:
    return alert_names("slo-rules")


def alert_cases(test_asset: str) -> list[dict[str, Any]]:
    """Every ``alert_rule_test`` case of a promtool unit-test file."""
    return [case for group in yaml_asset(test_asset)["tests"] for case in group.get("alert_rule_test", [])]


def firing_and_quiet(test_asset: str) -> tuple[set[str], set[str]]:
    """Alerts with a case that expects them to fire, and alerts with a case that expects silence."""
    cases = alert_cases(test_asset)
    return ({c["alertname"] for c in cases if c["exp_alerts"]}, {c["alertname"] for c in cases if not c["exp_alerts"]})


def assert_alert_conventions(rule: dict[str, Any]) -> None:
    """A severity the routes know, the three annotations, the runbook anchor of its playbook section and a
    for: duration."""
    assert rule["labels"]["severity"] in {"critical", "warning"}
    annotations = rule["annotations"]
    assert set(annotations) == {"summary", "description", "runbook_url"}
    assert all(annotations[k].strip() for k in annotations)
    assert annotations["runbook_url"] == RUNBOOK_BASE + github_anchor(rule["alert"])
    assert re.fullmatch(r"\d+[smh]", rule["for"]), "every alert needs a for: duration"


# ------------------------------------------------------------------ the playbook
def github_anchor(heading: str) -> str:
    slug = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return slug.replace(" ", "-")


def playbook_sections(level: int = 2, part: str = "") -> dict[str, str]:
    """Headings of ``level`` of the playbook -> section text; only below the level-1 heading that starts
    with ``part`` when one is given (the TLS and drill alerts have their own part)."""
    text = read_asset("playbook")
    if part:
        text = re.split(rf"^# {re.escape(part)}.*$", text, maxsplit=1, flags=re.M)[1]
    parts = re.split(rf"^{'#' * level} (.+)$", text, flags=re.M)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts), 2)}


def first_three_checks(name: str, section: str) -> str:
    """The section's checks, once it has every part of a playbook entry and exactly three checks."""
    for part in PLAYBOOK_PARTS:
        assert part in section, f"{name}: missing {part}"
    checks = section.split("**First three checks**")[1].split("**Likely causes.**")[0]
    assert len(re.findall(r"^\d\. ", checks, flags=re.M)) == 3, name
    return checks


# ------------------------------------------------------------------ promtool and amtool
def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=300)


def amtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["amtool", *args], capture_output=True, text=True, timeout=60)


def check_rules(path: Path) -> subprocess.CompletedProcess[str]:
    return promtool("check", "rules", "--lint=all", "--lint-fatal", str(path))


def assert_rules_clean(asset: str) -> None:
    """promtool lints the rule file clean and sees exactly the rules the YAML reader of these tests sees."""
    proc = check_rules(asset_path(asset))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(all_rules(asset))} rules found" in proc.stdout


def assert_unit_tests_pass(test_asset: str) -> None:
    proc = promtool("test", "rules", str(asset_path(test_asset)))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout and "FAILED" not in proc.stdout


def only_group(test_file: str, name: str) -> str:
    """The unit-test file reduced to one test group (promtool 2.42 has no --run filter)."""
    head, *groups = re.split(r"(?m)^(?=  # -{10,}|  - name: )", test_file)
    kept = [g for g in groups if g.startswith(f"  - name: {name}\n")]
    assert len(kept) == 1, name
    return head + kept[0]


def assert_mutation_caught(tmp: Path, rules_asset: str, mutation: tuple[str, str, str]) -> None:
    """``(old, new, group)``: the unit-test group passes against the real rules and fails once ``old``
    becomes ``new`` in them (which still lint clean)."""
    old, new, group = mutation
    rules = read_asset(rules_asset)
    assert rules.count(old) == 1, f"mutation {old!r} no longer applies"
    rules_file, tests_file = tmp / Path(ASSETS[rules_asset]).name, tmp / Path(ASSETS[f"{rules_asset}-test"]).name
    rules_file.write_text(rules)
    tests_file.write_text(only_group(read_asset(f"{rules_asset}-test"), group))
    assert promtool("test", "rules", str(tests_file)).returncode == 0
    rules_file.write_text(rules.replace(old, new))
    assert promtool("check", "rules", str(rules_file)).returncode == 0
    proc = promtool("test", "rules", str(tests_file))
    assert proc.returncode != 0 and "FAILED" in proc.stdout + proc.stderr, proc.stdout


def routes_test(receivers: str, labels: list[str], *flags: str) -> subprocess.CompletedProcess[str]:
    """``amtool config routes test`` of the kit's Alertmanager routes, verifying ``receivers``."""
    return amtool("config", "routes", "test", f"--config.file={asset_path('routes')}",
                  f"--verify.receivers={receivers}", *flags, *labels)


def assert_routed(labels: list[str], receivers: str) -> None:
    """An alert with ``labels`` reaches exactly ``receivers``, in that order."""
    proc = routes_test(receivers, labels)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == receivers
