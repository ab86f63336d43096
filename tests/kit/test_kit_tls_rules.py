"""TLS probe rules: promtool check and unit tests (real promtool), mutations the tests must catch,
conventions, the playbook entries, and Alertmanager routing of the new alerts (real amtool)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from helpers.kit_files import (
    PAGING,
    alert_names,
    alert_rules,
    all_rules,
    assert_alert_conventions,
    assert_mutation_caught,
    assert_routed,
    assert_rules_clean,
    assert_unit_tests_pass,
    firing_and_quiet,
    first_three_checks,
    github_anchor,
    needs_amtool,
    needs_promtool,
    playbook_sections,
    routes_test,
    yaml_asset,
)
from helpers.kit_promql import known_metric, metric_names

from borgwatch.kit import read_asset

EXPECTED_ALERTS = {
    "TLSProbeFailed", "TLSCertificateUntrusted", "TLSCertificateExpired", "TLSCertificateExpiring",
    "TLSLegacyProtocolOffered", "TLSPlainHTTPServed", "TLSProbeSlow",
}


# ------------------------------------------------------------------ promtool
@needs_promtool
@pytest.mark.slow
def test_promtool_check_rules_is_clean() -> None:
    assert_rules_clean("tls-rules")


@needs_promtool
@pytest.mark.slow
def test_promtool_unit_tests_pass() -> None:
    assert_unit_tests_pass("tls-rules-test")


# mutation -> (text in the rules, replacement, test group that must catch it)
NOT_EXPIRED = "\n          unless on (instance)\n          tls:cert_expiry_timestamp_seconds <= time()\n"
TWIN_WORKS = '            unless on (instance)\n          probe_success{module=~"https_insecure|tls_insecure"}'
MUTATIONS = {
    "untrusted also when expired": (NOT_EXPIRED, "\n", "untrusted"),
    "wildcard matches any depth": ('(reReplaceAll `\\*` "[^.]+"', '(reReplaceAll `\\*` ".+"', "untrusted"),
    "expiry from the sent certificates only": (
        'probe_ssl_last_chain_expiry_timestamp_seconds{module=~"https_verify|tls_verify"} > 0',
        'probe_ssl_earliest_cert_expiry{module=~"https_insecure|tls_insecure"} > 0', "expiry"),
    "warning band open below": ("< 21 >= 7", "< 21", "expiry"),
    "down also when the twin works": (TWIN_WORKS, TWIN_WORKS.replace("unless", "and"), "probe-failed"),
    "slow while failing": ('            and\n          probe_success{module=~"https_verify|tls_verify"} == 1',
                           '            or\n          probe_success{module=~"https_verify|tls_verify"} == 1', "slow"),
    "no port 80 means plain HTTP": ('probe_http_status_code{module="http_redirect"} > 0',
                                    'probe_http_status_code{module="http_redirect"} >= 0', "protocol"),
}


@needs_promtool
@pytest.mark.slow
@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_unit_tests_catch_a_broken_rule(mutation: str, tmp_path: Path) -> None:
    assert_mutation_caught(tmp_path, "tls-rules", MUTATIONS[mutation])


# ------------------------------------------------------------------ conventions
def test_the_expected_alerts_exist() -> None:
    assert alert_names("tls-rules") == EXPECTED_ALERTS


@pytest.mark.parametrize("rule", alert_rules("tls-rules"), ids=lambda r: f"{r['alert']}-{r['labels']['severity']}")
def test_alert_has_severity_annotations_and_runbook(rule: dict[str, Any]) -> None:
    assert_alert_conventions(rule)
    assert rule["labels"] == {"severity": rule["labels"]["severity"]}
    assert rule["alert"].startswith("TLS"), "the routes match the TLS alerts by name"


def test_expiry_severities() -> None:
    by_severity = {r["labels"]["severity"]: r["expr"] for r in alert_rules("tls-rules")
                   if r["alert"] == "TLSCertificateExpiring"}
    assert by_severity == {"warning": "(tls:cert_expiry_timestamp_seconds - time()) / 86400 < 21 >= 7",
                           "critical": "(tls:cert_expiry_timestamp_seconds - time()) / 86400 < 7 > 0"}


@pytest.mark.parametrize("rule", all_rules("tls-rules"), ids=lambda r: r.get("alert") or r["record"])
def test_rule_uses_only_blackbox_metrics(rule: dict[str, Any]) -> None:
    recorded = frozenset(r["record"] for r in all_rules("tls-rules") if "record" in r)
    names = metric_names(rule["expr"])
    assert names and all(known_metric(n, recorded) for n in names), names
    assert all(n.startswith("probe_") or n in recorded for n in names)


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    assert firing_and_quiet("tls-rules-test") == (EXPECTED_ALERTS, EXPECTED_ALERTS)


# ------------------------------------------------------------------ playbook
def test_playbook_has_one_complete_section_per_tls_alert() -> None:
    sections = playbook_sections(level=3, part="TLS probe alerts")
    assert set(sections) == EXPECTED_ALERTS
    for name, text in sections.items():
        checks = first_three_checks(name, text)
        assert "openssl s_client" in checks or "curl" in checks, f"{name}: no command that shows it"


def test_playbook_headings_are_the_runbook_anchors() -> None:
    text = read_asset("playbook")
    for name in EXPECTED_ALERTS:
        assert len(re.findall(rf"^#+ {name}$", text, flags=re.M)) == 1
        assert github_anchor(name) == name.lower()


# ------------------------------------------------------------------ Alertmanager routing
ROUTE_CASES = {
    "down pages": (["alertname=TLSProbeFailed", "severity=critical", "instance=https://www.example.org/",
                    "module=https_verify"], PAGING),
    "untrusted pages": (["alertname=TLSCertificateUntrusted", "severity=critical"], PAGING),
    "expired pages": (["alertname=TLSCertificateExpired", "severity=critical"], PAGING),
    "expiring in 5 days pages": (["alertname=TLSCertificateExpiring", "severity=critical"], PAGING),
    "expiring in 15 days mails": (["alertname=TLSCertificateExpiring", "severity=warning"], "ops-email"),
    "legacy TLS mails": (["alertname=TLSLegacyProtocolOffered", "severity=warning", "version=TLS 1.0"],
                         "ops-email"),
    "plain HTTP mails": (["alertname=TLSPlainHTTPServed", "severity=warning"], "ops-email"),
    "slow mails": (["alertname=TLSProbeSlow", "severity=warning"], "ops-email"),
}


@needs_amtool
@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(ROUTE_CASES))
def test_amtool_routes_tls_alerts(case: str) -> None:
    assert_routed(*ROUTE_CASES[case])


@needs_amtool
@pytest.mark.slow
def test_amtool_tls_routing_can_fail() -> None:
    assert routes_test("ops-email", ["alertname=TLSCertificateExpired", "severity=critical"]).returncode != 0


def _tls_route() -> dict[str, Any]:
    routes = yaml_asset("routes")["route"]["routes"]
    (route,) = [r for r in routes if any("TLS" in m for m in r.get("matchers", []))]
    return route


def test_tls_warnings_group_per_site_and_repeat_daily() -> None:
    route = _tls_route()
    assert route["matchers"] == ['alertname=~"TLS.+"', 'severity="warning"']
    assert route["receiver"] == "ops-email" and route["repeat_interval"] == "24h"
    assert route["group_by"] == ["alertname", "instance"]
    # placed before the generic warning route, which would otherwise take it (first match wins)
    routes = yaml_asset("routes")["route"]["routes"]
    warning = [i for i, r in enumerate(routes) if r.get("matchers") == ['severity="warning"']]
    assert routes.index(route) < warning[0]
