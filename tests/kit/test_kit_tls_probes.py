"""TLS probe kit end to end, every component real: TLS sites on 127.0.0.1 with certificates from a test
CA -> blackbox_exporter 0.23 with the kit's modules -> Prometheus with the kit's scrape jobs -> the
scraped series as promtool input -> the kit's rules. For every case exactly the intended alert fires."""

from __future__ import annotations

import json
import re
import socket
import ssl
import subprocess
import time
import urllib.parse
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import kit_tls
from helpers.kit_files import RUNBOOK_BASE, github_anchor, needs_promtool, promtool
from helpers.kit_promql import BLACKBOX_EXPORTER, metric_names
from helpers.kit_tls import HOST, Pki, Servers, issue, self_signed, server_context
from helpers.servers import free_port

from borgwatch.kit import asset_path, read_asset

pytestmark = [
    pytest.mark.slow,
    needs_promtool,
    pytest.mark.skipif(kit_tls.BLACKBOX is None, reason="prometheus-blackbox-exporter not installed"),
    pytest.mark.skipif(kit_tls.PROMETHEUS is None, reason="prometheus not installed"),
]

JOBS = {
    "https_verify": "blackbox-https-verify", "https_insecure": "blackbox-https-insecure",
    "tls_verify": "blackbox-tls-verify", "tls_insecure": "blackbox-tls-insecure",
    "tls_legacy": "blackbox-tls-legacy", "http_redirect": "blackbox-http-redirect",
}
# promtool's clock starts at 0: timestamps in sample values are moved so that the evaluation time
# below stands for the moment of the real scrape (days to expiry stay what they were).
TIMESTAMP_METRICS = {"probe_ssl_earliest_cert_expiry", "probe_ssl_last_chain_expiry_timestamp_seconds",
                     "probe_http_last_modified_timestamp_seconds"}
EVAL_MINUTES = 120  # longer than every `for:` of the rules
SLOW_SECONDS = 3.0  # the slow site's delay; TLSProbeSlow fires above 2 s


@dataclass
class Site:
    https: list[str] = field(default_factory=list)
    tls: list[str] = field(default_factory=list)
    redirect: list[str] = field(default_factory=list)

    @property
    def instances(self) -> set[str]:
        return {*self.https, *self.tls, *self.redirect}


@dataclass
class Sample:
    labels: dict[str, str]  # __name__ included
    value: float
    timestamp: float


@dataclass
class World:
    pki: Pki
    sites: dict[str, Site]
    exporter: str
    prometheus: str
    targets: list[dict[str, Any]]
    samples: list[Sample]


def _sites(pki: Pki, d: Path, s: Servers) -> dict[str, Site]:
    def https(name: str, delay: float = 0.0, **cert: Any) -> str:
        return s.https(server_context(issue(pki, d, name, **cert)), delay=delay)

    valid = https("valid")
    return {
        "valid": Site(https=[valid], redirect=[s.http(redirect=valid)]),
        "expiring in 15 days": Site(https=[https("exp15", days=15)]),
        "expiring in 5 days": Site(https=[https("exp5", days=5)]),
        "expired": Site(https=[https("expired", days=-2)]),
        "self-signed": Site(https=[s.https(server_context(self_signed(d, "self-signed")))]),
        "wrong hostname": Site(https=[https("wrong-host", hostname="other.example")]),
        "missing intermediate": Site(https=[https("no-intermediate", with_intermediate=False)]),
        "accepts TLS 1.0": Site(https=[s.https(server_context(issue(pki, d, "tls10"), legacy=True))]),
        "plain HTTP": Site(redirect=[s.http()]),
        "down": Site(https=[f"https://{HOST}:{free_port()}/"]),  # nobody listens there
        "slow": Site(https=[https("slow", delay=SLOW_SECONDS)]),
        "TLS service": Site(tls=[s.tls_service(server_context(issue(pki, d, "service")))]),
        "TLS service, self-signed": Site(tls=[s.tls_service(server_context(self_signed(d, "service-ss")))]),
        # not a case: only there to show how tls_legacy derives host:port from a URL without a port
        "URL without port": Site(https=[f"https://{HOST}/health"]),
    }


def _prometheus_config(exporter: str, sd_dir: Path) -> str:
    """The kit's scrape jobs, pointed at the test exporter and target files, scraped every 5 s."""
    text = read_asset("blackbox-scrape")
    assert text.count("127.0.0.1:9115") == len(JOBS) and text.count("- /etc/prometheus/blackbox/") == 7
    text = text.replace("127.0.0.1:9115", exporter.removeprefix("http://"))
    text = text.replace("- /etc/prometheus/blackbox/", f"- {sd_dir}/")
    return "global:\n  scrape_interval: 5s\n  scrape_timeout: 5s\n" + text


def _scraped(prom: str, expected_targets: int) -> tuple[list[dict[str, Any]], list[Sample]]:
    deadline = time.monotonic() + 60
    while True:
        targets = kit_tls.api(prom, "targets")["activeTargets"]
        if len(targets) == expected_targets and all(not t["lastScrape"].startswith("0001") for t in targets):
            break
        assert time.monotonic() < deadline, f"not every target scraped: {targets}"
        time.sleep(0.5)
    data = kit_tls.api(prom, "query", query='{__name__=~"probe_.+"}[5m]')
    samples = [Sample(series["metric"], float(series["values"][-1][1]), float(series["values"][-1][0]))
               for series in data["result"]]
    return targets, samples


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("tls-probes")
    pki = kit_tls.make_pki()
    root = pki.write_root(tmp / "root.pem")
    with kit_tls.servers() as servers:
        sites = _sites(pki, tmp, servers)
        sd = tmp / "sd"
        sd.mkdir()
        for kind in ("https", "tls", "redirect"):
            targets = [t for site in sites.values() for t in getattr(site, kind)]
            name = "http-redirect" if kind == "redirect" else kind
            (sd / f"{name}.yml").write_text(json.dumps([{"targets": targets}]))
        # https and tls targets: verify, insecure and legacy jobs; redirect targets: one job
        count = sum(3 * (len(s.https) + len(s.tls)) + len(s.redirect) for s in sites.values())
        with kit_tls.blackbox_exporter(asset_path("blackbox-config"), root, tmp) as exporter, \
                kit_tls.prometheus(_prometheus_config(exporter, sd), tmp) as prom:
            targets, samples = _scraped(prom, count)
            yield World(pki, sites, exporter, prom, targets, samples)


# ------------------------------------------------------------------ expected alerts per case
def _labels(instance: str, module: str, **extra: str) -> dict[str, str]:
    return {"instance": instance, "job": JOBS[module], "module": module, **extra}


def _alert(name: str, severity: str, labels: dict[str, str], summary: str, description: str) -> dict[str, Any]:
    return {"alertname": name, "exp_labels": {**labels, "severity": severity},
            "exp_annotations": {"summary": summary, "description": description,
                                "runbook_url": RUNBOOK_BASE + github_anchor(name)}}


def _untrusted(url: str, reason: str, module: str = "https_verify") -> dict[str, Any]:
    return _alert("TLSCertificateUntrusted", "critical", _labels(url, module),
                  f"{url} presents a certificate that does not verify",
                  f"The {module} probe of {url} fails its TLS handshake while the same probe without "
                  f"verification succeeds: clients that verify cannot connect. Reason: {reason}")


def _expiring(url: str, days: int, severity: str, advice: str) -> dict[str, Any]:
    return _alert("TLSCertificateExpiring", severity, {"instance": url},
                  f"The TLS certificate of {url} expires in {days} days",
                  f"The certificate chain {url} presents expires in {days} days (warning below 21 days, "
                  f"critical below 7). {advice}")


def _intermediate_name(pki: Pki) -> str:
    from cryptography import x509
    return x509.load_pem_x509_certificate(pki.intermediate.cert_pem.bytes()).subject.rfc4514_string()


def _slow_seconds(world: World, url: str) -> float:
    (value,) = [s.value for s in world.samples
                if s.labels["__name__"] == "probe_duration_seconds" and s.labels["instance"] == url
                and s.labels["module"] == "https_verify"]
    return value


EXPECTED: dict[str, Callable[[World, Site], list[dict[str, Any]]]] = {
    "valid": lambda w, s: [],
    "expiring in 15 days": lambda w, s: [
        _expiring(s.https[0], 15, "warning", "Automatic renewal should have replaced it by now.")],
    "expiring in 5 days": lambda w, s: [_expiring(s.https[0], 5, "critical", "Renew and deploy it now.")],
    "expired": lambda w, s: [_alert(
        "TLSCertificateExpired", "critical", {"instance": s.https[0]},
        f"The TLS certificate of {s.https[0]} has expired",
        f"The certificate chain {s.https[0]} presents expired 2 days ago; clients that verify refuse to connect.")],
    "self-signed": lambda w, s: [_untrusted(s.https[0], "self-signed certificate (CN=localhost).")],
    "wrong hostname": lambda w, s: [
        _untrusted(s.https[0], "wrong hostname, the certificate is for other.example, not localhost.")],
    "missing intermediate": lambda w, s: [_untrusted(
        s.https[0], "the chain does not reach a trusted root: the server does not send its intermediate "
        f"certificate, or the issuer ({_intermediate_name(w.pki)}) is a CA the prober does not trust.")],
    "accepts TLS 1.0": lambda w, s: [_alert(
        "TLSLegacyProtocolOffered", "warning", _labels(s.https[0], "tls_legacy", version="TLS 1.1"),
        f"{s.https[0]} still accepts TLS 1.1",
        f"{s.https[0]} completes a handshake limited to TLS 1.0/1.1 (TLS 1.1 negotiated). Both are "
        "deprecated (RFC 8996); disable them and keep TLS 1.2 and 1.3.")],
    "plain HTTP": lambda w, s: [_alert(
        "TLSPlainHTTPServed", "warning", _labels(s.redirect[0], "http_redirect"),
        f"{s.redirect[0]} serves plain HTTP instead of redirecting to HTTPS",
        f"{s.redirect[0]} answers HTTP 200 without TLS after following all redirects; it should redirect "
        "to https:// (301/308).")],
    "down": lambda w, s: [_alert(
        "TLSProbeFailed", "critical", _labels(s.https[0], "https_verify"),
        f"{s.https[0]} is down for its https_verify probe",
        f"{s.https[0]} fails its https_verify probe, and the same probe without certificate verification "
        "fails too, so this is not a certificate problem: no answer (connection refused, timeout, DNS, or a "
        "TLS handshake that fails even unverified).")],
    "slow": lambda w, s: [_alert(
        "TLSProbeSlow", "warning", _labels(s.https[0], "https_verify"),
        f"{s.https[0]} answers its https_verify probe slowly",
        f"The https_verify probe of {s.https[0]} succeeds but has taken "
        f"{_slow_seconds(w, s.https[0]):.1f} s on average over 10 minutes (threshold 2 s).")],
    "TLS service": lambda w, s: [],
    "TLS service, self-signed": lambda w, s: [
        _untrusted(s.tls[0], "self-signed certificate (CN=localhost).", module="tls_verify")],
}


def _alert_names() -> list[str]:
    doc = yaml.safe_load(read_asset("tls-rules"))
    return sorted({r["alert"] for g in doc["groups"] for r in g["rules"] if "alert" in r})


def _series(sample: Sample) -> dict[str, str]:
    labels = dict(sample.labels)
    name = labels.pop("__name__")
    value = sample.value
    if name in TIMESTAMP_METRICS:
        value = value - sample.timestamp + EVAL_MINUTES * 60
    selector = ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(labels.items()))
    return {"series": f"{name}{{{selector}}}", "values": f"{value!r}x{EVAL_MINUTES + 10}"}


def _promtool_case(world: World, site: Site, alerts: list[dict[str, Any]],
                   tmp: Path) -> subprocess.CompletedProcess[str]:
    series = [_series(s) for s in world.samples if s.labels["instance"] in site.instances]
    assert series, "no scraped samples for the case"
    tests = [{"eval_time": f"{EVAL_MINUTES}m", "alertname": name,
              "exp_alerts": [{k: a[k] for k in ("exp_labels", "exp_annotations")}
                             for a in alerts if a["alertname"] == name]}
             for name in _alert_names()]
    doc = {"rule_files": [str(asset_path("tls-rules"))], "evaluation_interval": "1m",
           "tests": [{"interval": "1m", "input_series": series, "alert_rule_test": tests}]}
    path = tmp / "case.test.yml"
    path.write_text(json.dumps(doc, indent=1))  # JSON is YAML
    return promtool("test", "rules", str(path))


@pytest.mark.parametrize("case", list(EXPECTED))
def test_exactly_the_intended_alert_fires(case: str, world: World, tmp_path: Path) -> None:
    site = world.sites[case]
    alerts = EXPECTED[case](world, site)
    proc = _promtool_case(world, site, alerts, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_case_check_can_fail(world: World, tmp_path: Path) -> None:
    # the expired site's real samples, with the valid site's expectation (nothing fires): must fail
    proc = _promtool_case(world, world.sites["expired"], [], tmp_path)
    assert proc.returncode != 0 and "TLSCertificateExpired" in proc.stdout + proc.stderr


def test_every_alert_has_a_real_case(world: World) -> None:
    expected = {a["alertname"] for case, alerts in EXPECTED.items() for a in alerts(world, world.sites[case])}
    assert expected == set(_alert_names())


# ------------------------------------------------------------------ the pieces the cases rely on
def test_the_exporter_accepts_the_kit_config_and_rejects_a_broken_one(tmp_path: Path) -> None:
    def check(path: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([kit_tls.BLACKBOX, f"--config.file={path}", "--config.check"],
                              capture_output=True, text=True, timeout=60)

    ok = check(asset_path("blackbox-config"))
    assert ok.returncode == 0 and "Config file is ok" in ok.stdout + ok.stderr, ok.stderr
    broken = tmp_path / "blackbox.yml"
    broken.write_text(read_asset("blackbox-config").replace("max_version: TLS11", "max_version: TLS99"))
    bad = check(broken)
    assert bad.returncode != 0 and "TLS99" in bad.stdout + bad.stderr


def test_scrape_jobs_label_every_probe_with_instance_and_module(world: World) -> None:
    by_job: dict[str, list[dict[str, Any]]] = {}
    for target in world.targets:
        by_job.setdefault(target["labels"]["job"], []).append(target)
    assert set(by_job) == set(JOBS.values())
    for target in world.targets:
        labels, listed = target["labels"], target["discoveredLabels"]["__address__"]
        module = labels["module"]
        assert JOBS[module] == labels["job"] and labels["instance"] == listed
        assert target["health"] == "up", target["lastError"]
        sent = dict(p.split("=", 1) for p in target["scrapeUrl"].split("?", 1)[1].split("&"))
        assert sent["module"] == module
        # tls_legacy speaks TCP: https://host:port/path becomes host:port (443 if the URL has none),
        # a listed host:port stays
        expected = listed
        if module == "tls_legacy" and listed.startswith("https://"):
            expected = re.sub(r"^https://([^/:]+)(:\d+)?/.*$", lambda m: m[1] + (m[2] or ":443"), listed)
        assert urllib.parse.unquote(sent["target"]) == expected
    legacy = {t["scrapeUrl"] for t in by_job[JOBS["tls_legacy"]]}
    assert any("target=localhost%3A443&" in u or u.endswith("target=localhost%3A443") for u in legacy)


def test_certificate_facts_vanish_under_verification_but_not_from_the_twin(world: World) -> None:
    """blackbox_exporter #1119, the reason for the insecure twin: a failed verification drops them."""
    def has_expiry(instance: str, module: str) -> bool:
        return any(s.labels["__name__"] == "probe_ssl_earliest_cert_expiry" and s.labels["instance"] == instance
                   and s.labels["module"] == module for s in world.samples)

    for case in ("expired", "self-signed", "wrong hostname", "missing intermediate"):
        url = world.sites[case].https[0]
        assert not has_expiry(url, "https_verify") and has_expiry(url, "https_insecure"), case
    valid = world.sites["valid"].https[0]
    assert has_expiry(valid, "https_verify") and has_expiry(valid, "https_insecure")


def _handshake(target: str, version: ssl.TLSVersion) -> str | None:
    """TLS version negotiated with ``target`` (host:port) when the client offers only ``version``."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ctx.maximum_version = version
    host, port = target.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=10) as sock, \
                ctx.wrap_socket(sock, server_hostname=host) as tls:
            return tls.version()
    except ssl.SSLError:
        return None


def test_the_legacy_site_really_accepts_tls_1_0_and_the_others_do_not(world: World) -> None:
    legacy = world.sites["accepts TLS 1.0"].https[0].removeprefix("https://").rstrip("/")
    valid = world.sites["valid"].https[0].removeprefix("https://").rstrip("/")
    assert _handshake(legacy, ssl.TLSVersion.TLSv1) == "TLSv1"
    assert _handshake(legacy, ssl.TLSVersion.TLSv1_3) == "TLSv1.3"
    assert _handshake(valid, ssl.TLSVersion.TLSv1) is None
    assert "probe_success 0" in kit_tls.probe(world.exporter, "tls_legacy", valid)


# ------------------------------------------------------------------ exporter version, dashboard panels
def test_rules_and_panels_use_only_metrics_this_exporter_emits(world: World) -> None:
    """Everything the kit reads exists in blackbox_exporter 0.23: no rule needs a newer exporter."""
    seen = {s.labels["__name__"] for s in world.samples}
    assert not BLACKBOX_EXPORTER - seen, "listed in kit_promql but not emitted by this exporter"
    doc = yaml.safe_load(read_asset("tls-rules"))
    recorded = {r["record"] for g in doc["groups"] for r in g["rules"] if "record" in r}
    used = set().union(*(metric_names(r["expr"]) for g in doc["groups"] for r in g["rules"]))
    panels = set().union(*(metric_names(t["expr"]) for p in _tls_row() for t in p["targets"]))
    assert (used - recorded) | panels <= seen


def _tls_row() -> list[dict[str, Any]]:
    """The panels of the shipped Golden Signals dashboard's "TLS probes" row."""
    panels = json.loads(read_asset("dashboard-golden-signals"))["panels"]
    start = next(i for i, p in enumerate(panels) if p["type"] == "row" and p["title"] == "TLS probes") + 1
    end = next((i for i, p in enumerate(panels[start:], start) if p["type"] == "row"), len(panels))
    return panels[start:end]


def _panel(title: str) -> list[str]:
    (panel,) = [p for p in _tls_row() if p["title"] == title]
    return [t["expr"].replace("$target", ".+") for t in panel["targets"]]


def _query(world: World, expr: str) -> dict[str, dict[str, Any]]:
    result = kit_tls.api(world.prometheus, "query", query=expr)["result"]
    return {r["metric"]["instance"]: r for r in result}


def test_panels_show_the_real_probes(world: World) -> None:
    (days_expr,) = _panel("Days to certificate expiry")
    days = {k: float(v["value"][1]) for k, v in _query(world, days_expr).items()}
    for case, expected in (("valid", 90), ("expiring in 15 days", 15), ("expiring in 5 days", 5),
                           ("expired", -2), ("self-signed", 90), ("TLS service", 90)):
        site = world.sites[case]
        assert round(days[(site.https or site.tls)[0]]) == expected, case
    assert world.sites["down"].https[0] not in days

    verify, redirect = _panel("Probe success")
    success = {k: v["value"][1] for k, v in _query(world, verify).items()}
    assert success[world.sites["valid"].https[0]] == "1" and success[world.sites["wrong hostname"].https[0]] == "0"
    assert {k: v["value"][1] for k, v in _query(world, redirect).items()} == {
        world.sites["valid"].redirect[0]: "1", world.sites["plain HTTP"].redirect[0]: "0"}

    (version,) = _panel("Negotiated TLS version")
    assert _query(world, version)[world.sites["valid"].https[0]]["metric"]["version"] == "TLS 1.3"
    (legacy,) = _panel("Legacy TLS (1.0/1.1) accepted")
    assert {k: v["metric"]["version"] for k, v in _query(world, legacy).items()} == {
        world.sites["accepts TLS 1.0"].https[0]: "TLS 1.1"}
