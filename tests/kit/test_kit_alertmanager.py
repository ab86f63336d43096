"""Alertmanager routes: real amtool check-config and routes test, plus what amtool cannot check
(time intervals are ignored by `amtool config routes test`, alertmanager #3889/#3891)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers.kit_files import (
    PAGING,
    alert_names,
    alert_rules,
    amtool,
    assert_routed,
    needs_amtool,
    routes_test,
    yaml_asset,
)

from borgwatch.kit import asset_path, read_asset

WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


def routes() -> dict[str, Any]:
    return yaml_asset("routes")


@needs_amtool
@pytest.mark.slow
def test_amtool_check_config_is_clean() -> None:
    proc = amtool("check-config", str(asset_path("routes")))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout
    assert "3 inhibit rules" in proc.stdout and "4 receivers" in proc.stdout


@needs_amtool
@pytest.mark.slow
def test_amtool_rejects_a_broken_config(tmp_path: Path) -> None:
    broken = tmp_path / "am.yaml"
    broken.write_text(read_asset("routes").replace("active_time_intervals: [after-hours]",
                                                   "active_time_intervals: [office-hours]"))
    proc = amtool("check-config", str(broken))
    assert proc.returncode != 0 and "office-hours" in proc.stdout + proc.stderr


# labels -> receivers amtool must resolve
ROUTE_CASES = {
    "critical (business hours: OpsGenie)": (["alertname=BackupJobFailed", "severity=critical",
                                             "backup_job=home", "instance=nas:9100"], PAGING),
    "critical (after hours: SMS)": (["alertname=BackupStale", "severity=critical", "backup_job=etc"], PAGING),
    "critical storage": (["alertname=NASPoolDegraded", "severity=critical", "team=storage"], PAGING),
    "warning": (["alertname=BackupDurationHigh", "severity=warning", "backup_job=home"], "ops-email"),
    "no severity": (["alertname=Something"], "ops-email"),
}


@needs_amtool
@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(ROUTE_CASES))
def test_amtool_routes_test(case: str) -> None:
    assert_routed(*ROUTE_CASES[case])


@needs_amtool
@pytest.mark.slow
def test_amtool_routes_test_can_fail() -> None:
    assert routes_test("ops-email", ["severity=critical"]).returncode != 0


# ------------------------------------------------------------------ what amtool cannot check
def _critical_route() -> dict[str, Any]:
    (route,) = [r for r in routes()["route"]["routes"] if r["matchers"] == ['severity="critical"']]
    return route


def test_paging_receivers_are_bound_to_their_intervals() -> None:
    first, second, last = _critical_route()["routes"]
    assert (first["receiver"], first["active_time_intervals"], first["continue"]) == (
        "opsgenie-primary", ["business-hours"], True)
    assert (second["receiver"], second["active_time_intervals"], second["continue"]) == (
        "sms-fallback", ["after-hours"], True)
    # the catch-all: no time restriction, so a critical alert always reaches someone
    assert last == {"receiver": "ops-critical-catchall"}


def _in_interval(interval: list[dict[str, Any]], when: datetime) -> bool:
    """Alertmanager semantics for the subset used: fields of one item are ANDed, items are ORed."""
    for item in interval:
        days: set[str] = set()
        for spec in item.get("weekdays", WEEKDAYS):
            start, _, end = spec.partition(":")
            days |= set(WEEKDAYS[WEEKDAYS.index(start): WEEKDAYS.index(end or start) + 1])
        minute = when.hour * 60 + when.minute
        spans = [(int(t["start_time"][:2]) * 60 + int(t["start_time"][3:]),
                  int(t["end_time"][:2]) * 60 + int(t["end_time"][3:])) for t in item.get("times", [])]
        if WEEKDAYS[when.weekday()] in days and (not spans or any(a <= minute < b for a, b in spans)):
            return True
    return False


def test_business_hours_and_after_hours_partition_the_week() -> None:
    intervals = {i["name"]: i["time_intervals"] for i in routes()["time_intervals"]}
    locations = {item.get("location") for ivl in intervals.values() for item in ivl}
    assert locations == {"Europe/Berlin"}, "both intervals must use the same location"
    start = datetime(2024, 1, 1)  # a Monday, local time of the location
    business = 0
    for step in range(7 * 24 * 4):
        when = start + timedelta(minutes=15 * step)
        active = [name for name in ("business-hours", "after-hours") if _in_interval(intervals[name], when)]
        assert len(active) == 1, f"{when:%a %H:%M}: {active or 'nobody'}"
        business += active == ["business-hours"]
    assert business == 5 * 10 * 4  # Mon-Fri 08:00-18:00


def test_grouping_by_backup_job() -> None:
    assert "backup_job" in routes()["route"]["group_by"]


def test_inhibit_rules_reference_real_alerts() -> None:
    rules = routes()["inhibit_rules"]
    (nas,) = [r for r in rules if r["source_matchers"] == ['alertname="NASPoolDegraded"']]
    assert nas["equal"] == ["instance"]
    targets = re.fullmatch(r'alertname=~"(.+)"', nas["target_matchers"][0]).group(1).split("|")
    assert "BackupJobFailed" in targets and set(targets) <= alert_names()
    for rule in rules:
        for matcher in rule["source_matchers"] + rule["target_matchers"]:
            m = re.fullmatch(r'alertname="(\w+)"', matcher)
            assert m is None or m.group(1) in alert_names()


def test_every_rule_severity_has_a_route() -> None:
    routed = {r["matchers"][0] for r in routes()["route"]["routes"]}
    assert {f'severity="{r["labels"]["severity"]}"' for r in alert_rules()} <= routed
