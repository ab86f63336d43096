"""The SLO rules: promtool lint + unit tests (real promtool), burn-rate tiers that must catch a broken
rule, the restore-drill SLOs (time slices and coverage) whose unit tests catch a broken rule, conventions
shared with the alert rules, and Alertmanager routing of the SLO alerts (real amtool)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from helpers.kit_files import (
    alert_cases,
    assert_alert_conventions,
    assert_rules_clean,
    check_rules,
    first_three_checks,
    needs_amtool,
    needs_promtool,
    playbook_sections,
    promtool,
    recorded_names,
    routes_test,
    slo_alert_names,
    slo_rules,
    yaml_asset,
)
from helpers.kit_promql import expand_grafana, known_metric, metric_names

from borgwatch.drill.config import COVERAGE_WINDOW_SECONDS
from borgwatch.drill.metrics import DRILL_SPECS
from borgwatch.kit import ASSETS, KIT_DIR, read_asset

SLO_RULES = KIT_DIR / ASSETS["slo-rules"]
SLO_TEST = KIT_DIR / ASSETS["slo-rules-test"]
DRILLS_TEST = KIT_DIR / ASSETS["slo-rules-drills-test"]
DRILL_ALERTS = {"BackupRestoreDrillBudgetBurn", "BackupRestoreDrillCoverageLow"}


@needs_promtool
@pytest.mark.slow
def test_promtool_lint_all_is_clean() -> None:
    assert_rules_clean("slo-rules")


@needs_promtool
@pytest.mark.slow
def test_promtool_unit_tests_pass_and_catch_broken_tiers(tmp_path: Path) -> None:
    proc = promtool("test", "rules", str(SLO_TEST))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # one missed night must not page: a page factor of 5 (stale a quarter of 2 days) pages on it
    rules = read_asset("slo-rules")
    page = "(1 - borgwatch:slo_freshness_objective)\n          ) > 10\n"
    assert rules.count(page) == 2
    (tmp_path / SLO_RULES.name).write_text(rules.replace(page, page.replace("> 10", "> 5"), 1))
    (tmp_path / SLO_TEST.name).write_text(read_asset("slo-rules-test"))
    proc = promtool("test", "rules", str(tmp_path / SLO_TEST.name))
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "FAILED" in out
    got = out.split("got:")[1]
    assert 'backup_job="once"' in got and 'severity="critical"' in got


@needs_promtool
@pytest.mark.slow
def test_drill_slo_unit_tests_pass() -> None:
    proc = promtool("test", "rules", str(DRILLS_TEST))
    assert proc.returncode == 0, proc.stdout + proc.stderr


@needs_promtool
@pytest.mark.slow
@pytest.mark.parametrize(("old", "new", "caught"), [
    # a job whose drills never succeeded must count as stale, not as absent
    ("          )\n            or\n          0 * borgwatch_drill_max_age_seconds\n", "          )\n",
     'backup_job="never"'),
    # the 30-day budget is 5 % (36 h), not twice that
    ("(1 - borgwatch:slo_drill_freshness_objective)\n          ) > 1\n",
     "(1 - borgwatch:slo_drill_freshness_objective)\n          ) > 2\n", 'backup_job="broken"'),
    # a job is judged on coverage only after a whole 30-day window of it
    ("[1d] offset 29d)", "[1d] offset 1d)", 'backup_job="small"'),
])
def test_drill_slo_unit_tests_catch_a_broken_rule(tmp_path: Path, old: str, new: str, caught: str) -> None:
    rules = read_asset("slo-rules")
    assert old in rules
    (tmp_path / SLO_RULES.name).write_text(rules.replace(old, new, 1))
    (tmp_path / DRILLS_TEST.name).write_text(read_asset("slo-rules-drills-test"))
    assert check_rules(tmp_path / SLO_RULES.name).returncode == 0
    proc = promtool("test", "rules", str(tmp_path / DRILLS_TEST.name))
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "FAILED" in out and caught in out, out[-2000:]


def test_objectives_are_in_one_group_and_label_free() -> None:
    (targets,) = [g for g in yaml_asset("slo-rules")["groups"]
                  if g["name"] == "borgwatch-slo-targets"]
    records = {r["record"] for r in targets["rules"]}
    assert records == {"borgwatch:slo_freshness_objective", "borgwatch:slo_run_success_objective",
                       "borgwatch:slo_check_objective", "borgwatch:slo_check_max_age_seconds",
                       "borgwatch:slo_drill_freshness_objective", "borgwatch:slo_drill_coverage_objective"}
    for rule in targets["rules"]:
        assert "labels" not in rule
        assert re.match(r"^[\d.* ]+ \* group by \(instance, job, backup_job\) \(borgwatch_\w+\)$",
                        rule["expr"].strip()), rule["expr"]
    elsewhere = [r for r in slo_rules() if r not in targets["rules"]]
    for rule in elsewhere:  # no number that is an objective hides in an indicator or an alert
        assert not re.search(r"\b0\.9\d*\b", rule["expr"]), rule.get("alert") or rule["record"]


def _windows(prefix: str) -> set[str]:
    return {r["record"].removeprefix(prefix) for r in slo_rules() if r.get("record", "").startswith(prefix)}


def test_freshness_ratios_cover_the_issue_and_alert_windows() -> None:
    assert _windows("borgwatch:slo_freshness:ratio_") == {"1h", "4h", "6h", "1d", "2d", "3d", "30d"}


def test_drill_freshness_has_the_windows_of_freshness_and_the_sli_of_the_stale_alert() -> None:
    assert _windows("borgwatch:slo_drill_freshness:ratio_") == _windows("borgwatch:slo_freshness:ratio_")
    sli = next(r["expr"] for r in slo_rules() if r.get("record") == "borgwatch:slo_drill_freshness_good")
    stale = read_asset("drill-rules")  # BackupRestoreDrillStale: the same age, limit and never-succeeded case
    for metric in ("time() - borgwatch_drill_last_success_timestamp_seconds", "borgwatch_drill_max_age_seconds"):
        assert metric in sli and metric in stale


@pytest.mark.parametrize("rule", [r for r in slo_rules() if "alert" in r],
                         ids=lambda r: f"{r['alert']}-{r['labels']['window']}")
def test_alert_conventions(rule: dict) -> None:
    assert_alert_conventions(rule)
    assert rule["labels"]["slo"] in {"freshness", "drill_freshness", "drill_coverage"}
    if rule["labels"]["slo"] == "drill_coverage":  # coverage is itself a 30-day share: judged after one window
        days = COVERAGE_WINDOW_SECONDS // 86400
        assert rule["labels"]["window"] == f"{days}d"
        assert f"[1d] offset {days - 1}d)" in rule["expr"]
        return
    long, short = rule["labels"]["window"].split("/")
    assert f"ratio_{long})" in rule["expr"] and f"ratio_{short})" in rule["expr"]
    assert rule["labels"]["slo"] == "drill_freshness" or "drill" not in rule["expr"]


def test_tiers_page_on_two_misses_and_ticket_on_one() -> None:
    tiers = {r["labels"]["severity"]: r for r in slo_rules() if "alert" in r and r["labels"]["slo"] == "freshness"}
    assert tiers["critical"]["labels"]["window"] == "2d/4h" and tiers["warning"]["labels"]["window"] == "3d/6h"
    factor = {sev: {float(x) for x in re.findall(r"\) > (\d+(?:\.\d+)?)", r["expr"])} for sev, r in tiers.items()}
    objective = float(re.match(r"([\d.]+)", next(r["expr"] for r in slo_rules()
                               if r.get("record") == "borgwatch:slo_freshness_objective")).group(1))
    budget = 1 - objective
    # one missed night of a daily job is stale at most 24 h of 48 h; two are stale more than that
    (page,) = factor["critical"]
    assert page * budget == pytest.approx(0.5)
    (ticket,) = factor["warning"]
    assert ticket * budget * 3 * 24 < 24  # a single missed night (hours stale) uses the 3-day share


@pytest.mark.parametrize("rule", slo_rules(), ids=lambda r: r.get("alert") or r["record"])
def test_rule_uses_only_existing_metrics(rule: dict) -> None:
    names = metric_names(rule["expr"])
    assert names
    assert not {n for n in names if not known_metric(n, recorded_names() | frozenset(DRILL_SPECS))}


def _alert_cases(asset: str) -> list[dict]:
    assert yaml_asset(asset)["rule_files"] == [ASSETS["slo-rules"]]
    return alert_cases(asset)


def test_every_slo_alert_fires_and_stays_quiet_in_the_unit_tests() -> None:
    cases = _alert_cases("slo-rules-test")
    freshness = slo_alert_names() - DRILL_ALERTS
    fired = {(c["alertname"], a["exp_labels"]["severity"]) for c in cases for a in c["exp_alerts"]}
    assert fired == {(name, sev) for name in freshness for sev in ("critical", "warning")}
    assert {c["alertname"] for c in cases if not c["exp_alerts"]} == freshness
    drills = _alert_cases("slo-rules-drills-test")
    assert slo_alert_names() >= DRILL_ALERTS
    assert {c["alertname"] for c in drills if c["exp_alerts"]} == DRILL_ALERTS
    assert {c["alertname"] for c in drills if not c["exp_alerts"]} == DRILL_ALERTS
    # the jobs within their objective never alert in any case
    alerted = {a["exp_labels"]["backup_job"] for c in drills for a in c["exp_alerts"]}
    assert alerted == {"never", "broken", "small", "drops"}
    # the single miss is asserted at its worst moment (just before the next success) without a page
    worst = next(c for c in cases if c["eval_time"] == "4314m")
    assert {(a["exp_labels"]["backup_job"], a["exp_labels"]["severity"]) for a in worst["exp_alerts"]} == {
        ("once", "warning"), ("twice", "warning")}


def test_playbook_section_per_slo_alert() -> None:
    sections = playbook_sections()
    for name in slo_alert_names():
        text = sections[name]
        first_three_checks(name, text)
        assert "borgwatch report" in text and "borgwatch-slo-targets" in text


@needs_amtool
@pytest.mark.slow
@pytest.mark.parametrize(("alert", "severity", "receivers", "route"), [
    ("BackupFreshnessBudgetBurn", "critical", "opsgenie-primary,sms-fallback,ops-critical-catchall",
     '{severity="critical"}'),
    ("BackupFreshnessBudgetBurn", "warning", "ops-email", '{slo=~".+"}'),
    ("BackupRestoreDrillBudgetBurn", "warning", "ops-email", '{slo=~".+"}'),
    ("BackupRestoreDrillCoverageLow", "warning", "ops-email", '{slo=~".+"}'),
])
def test_slo_alerts_route_into_the_existing_tree(alert: str, severity: str, receivers: str, route: str) -> None:
    (rule,) = [r for r in slo_rules() if r.get("alert") == alert and r["labels"]["severity"] == severity]
    labels = [f"alertname={alert}", *(f"{k}={v}" for k, v in rule["labels"].items()),
              "backup_job=home", "instance=nas:9100"]
    proc = routes_test(receivers, labels, "--tree")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert route in proc.stdout


def test_backup_assurance_shows_the_slo_recording_rules() -> None:
    import json
    dash = json.loads(read_asset("dashboard-backup-assurance"))
    titles = [p["title"] for p in dash["panels"]]
    row = titles.index("Service level objectives (30 days, borgwatch-slo-rules.yml)")
    exprs = [t["expr"] for p in dash["panels"][row + 1:] for t in p.get("targets", [])]
    slo_records = {r["record"] for r in slo_rules() if "record" in r}
    used = {n for e in exprs for n in metric_names(expand_grafana(e)) if n.startswith("borgwatch:slo")}
    assert used <= slo_records
    assert {"borgwatch:slo_freshness:ratio_30d", "borgwatch:slo_freshness:budget_remaining_30d",
            "borgwatch:slo_run_success:ratio_30d", "borgwatch:slo_check:ratio_30d",
            "borgwatch:slo_freshness_good"} <= used
