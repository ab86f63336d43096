"""TLS probe rules: promtool check and unit tests (real promtool), mutations the tests must catch,
conventions, the playbook entries, and Alertmanager routing of the new alerts (real amtool)."""

from __future__ import annotations

import re
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers.kit_files import RUNBOOK_BASE, github_anchor, needs_amtool, needs_promtool
from helpers.kit_promql import known_metric, metric_names

from borgwatch.kit import ASSETS, asset_path, read_asset

EXPECTED_ALERTS = {
    "TLSProbeFailed", "TLSCertificateUntrusted", "TLSCertificateExpired", "TLSCertificateExpiring",
    "TLSLegacyProtocolOffered", "TLSPlainHTTPServed", "TLSProbeSlow",
}
RULES = Path(ASSETS["tls-rules"]).name
RULES_TEST = Path(ASSETS["tls-rules-test"]).name


@cache
def rules_doc() -> dict[str, Any]:
    return yaml.safe_load(read_asset("tls-rules"))


def all_rules() -> list[dict[str, Any]]:
    return [rule for group in rules_doc()["groups"] for rule in group["rules"]]


def alert_rules() -> list[dict[str, Any]]:
    return [rule for rule in all_rules() if "alert" in rule]


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=120)


# ------------------------------------------------------------------ promtool
@needs_promtool
@pytest.mark.slow
def test_promtool_check_rules_is_clean() -> None:
    proc = _promtool("check", "rules", "--lint=all", "--lint-fatal", str(asset_path("tls-rules")))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(all_rules())} rules found" in proc.stdout


@needs_promtool
@pytest.mark.slow
def test_promtool_unit_tests_pass() -> None:
    proc = _promtool("test", "rules", str(asset_path("tls-rules-test")))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout and "FAILED" not in proc.stdout


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


def _only_group(test_file: str, name: str) -> str:
    head, *groups = re.split(r"(?m)^(?=  # -{10,}|  - name: )", test_file)
    kept = [g for g in groups if g.startswith(f"  - name: {name}\n")]
    assert len(kept) == 1, name
    return head + kept[0]


@needs_promtool
@pytest.mark.slow
@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_unit_tests_catch_a_broken_rule(mutation: str, tmp_path: Path) -> None:
    old, new, group = MUTATIONS[mutation]
    rules = read_asset("tls-rules")
    assert rules.count(old) == 1, f"mutation {mutation!r} no longer applies"
    (tmp_path / RULES).write_text(rules)
    (tmp_path / RULES_TEST).write_text(_only_group(read_asset("tls-rules-test"), group))
    assert _promtool("test", "rules", str(tmp_path / RULES_TEST)).returncode == 0
    (tmp_path / RULES).write_text(rules.replace(old, new))
    assert _promtool("check", "rules", str(tmp_path / RULES)).returncode == 0
    proc = _promtool("test", "rules", str(tmp_path / RULES_TEST))
    assert proc.returncode != 0 and "FAILED" in proc.stdout + proc.stderr, proc.stdout


# ------------------------------------------------------------------ conventions
def test_the_expected_alerts_exist() -> None:
    assert {r["alert"] for r in alert_rules()} == EXPECTED_ALERTS


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda r: f"{r['alert']}-{r['labels']['severity']}")
def test_alert_has_severity_annotations_and_runbook(rule: dict[str, Any]) -> None:
    assert rule["labels"] == {"severity": rule["labels"]["severity"]}
    assert rule["labels"]["severity"] in {"critical", "warning"}
    annotations = rule["annotations"]
    assert set(annotations) == {"summary", "description", "runbook_url"}
    assert annotations["runbook_url"] == RUNBOOK_BASE + github_anchor(rule["alert"])
    assert re.fullmatch(r"\d+[smh]", rule["for"])
    assert rule["alert"].startswith("TLS"), "the routes match the TLS alerts by name"


def test_expiry_severities() -> None:
    by_severity = {r["labels"]["severity"]: r["expr"] for r in alert_rules() if r["alert"] == "TLSCertificateExpiring"}
    assert by_severity == {"warning": "(tls:cert_expiry_timestamp_seconds - time()) / 86400 < 21 >= 7",
                           "critical": "(tls:cert_expiry_timestamp_seconds - time()) / 86400 < 7 > 0"}


@pytest.mark.parametrize("rule", all_rules(), ids=lambda r: r.get("alert") or r["record"])
def test_rule_uses_only_blackbox_metrics(rule: dict[str, Any]) -> None:
    recorded = frozenset(r["record"] for r in all_rules() if "record" in r)
    names = metric_names(rule["expr"])
    assert names and all(known_metric(n, recorded) for n in names), names
    assert all(n.startswith("probe_") or n in recorded for n in names)


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for group in yaml.safe_load(read_asset("tls-rules-test"))["tests"]:
        for case in group.get("alert_rule_test", []):
            (firing if case["exp_alerts"] else quiet).add(case["alertname"])
    assert firing == quiet == EXPECTED_ALERTS


# ------------------------------------------------------------------ playbook
def tls_playbook_sections() -> dict[str, str]:
    """The TLS part of the shared playbook: one level-3 section per alert."""
    text = read_asset("playbook").split("\n# TLS probe alerts\n", 1)[1]
    parts = re.split(r"^### (.+)$", text, flags=re.M)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts), 2)}


def test_playbook_has_one_complete_section_per_tls_alert() -> None:
    sections = tls_playbook_sections()
    assert set(sections) == EXPECTED_ALERTS
    for name, text in sections.items():
        for part in ("**Meaning.**", "**First three checks**", "**Likely causes.**", "**Remediation",
                     "**Escalation.**", "**Auto-remediation"):
            assert part in text, f"{name}: missing {part}"
        checks = text.split("**First three checks**")[1].split("**Likely causes.**")[0]
        assert len(re.findall(r"^\d\. ", checks, flags=re.M)) == 3, name
        assert "openssl s_client" in checks or "curl" in checks, f"{name}: no command that shows it"


def test_playbook_headings_are_the_runbook_anchors() -> None:
    text = read_asset("playbook")
    for name in EXPECTED_ALERTS:
        assert len(re.findall(rf"^#+ {name}$", text, flags=re.M)) == 1
        assert github_anchor(name) == name.lower()


# ------------------------------------------------------------------ Alertmanager routing
ROUTES = str(asset_path("routes"))
PAGING = "opsgenie-primary,sms-fallback,ops-critical-catchall"
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


def _amtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["amtool", *args], capture_output=True, text=True, timeout=60)


@needs_amtool
@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(ROUTE_CASES))
def test_amtool_routes_tls_alerts(case: str) -> None:
    labels, receivers = ROUTE_CASES[case]
    proc = _amtool("config", "routes", "test", f"--config.file={ROUTES}", f"--verify.receivers={receivers}",
                   *labels)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == receivers


@needs_amtool
@pytest.mark.slow
def test_amtool_tls_routing_can_fail() -> None:
    proc = _amtool("config", "routes", "test", f"--config.file={ROUTES}", "--verify.receivers=ops-email",
                   "alertname=TLSCertificateExpired", "severity=critical")
    assert proc.returncode != 0


def _tls_route() -> dict[str, Any]:
    routes = yaml.safe_load(read_asset("routes"))["route"]["routes"]
    (route,) = [r for r in routes if any("TLS" in m for m in r.get("matchers", []))]
    return route


def test_tls_warnings_group_per_site_and_repeat_daily() -> None:
    route = _tls_route()
    assert route["matchers"] == ['alertname=~"TLS.+"', 'severity="warning"']
    assert route["receiver"] == "ops-email" and route["repeat_interval"] == "24h"
    assert route["group_by"] == ["alertname", "instance"]
    # placed before the generic warning route, which would otherwise take it (first match wins)
    routes = yaml.safe_load(read_asset("routes"))["route"]["routes"]
    warning = [i for i, r in enumerate(routes) if r.get("matchers") == ['severity="warning"']]
    assert routes.index(route) < warning[0]
