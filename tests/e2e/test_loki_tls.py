"""The Loki sink over HTTPS against the strict fake Loki: CA bundle (ca_file) and client certificate (mTLS).

A throwaway CA, a server certificate for 127.0.0.1 and a client certificate are made with the openssl
CLI in the test's tmp dir; without openssl the tests are skipped.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers.loki import make_config, run_once
from helpers.loki_receiver import LokiReceiver, server_tls_context, subject

OPENSSL = shutil.which("openssl")
pytestmark = pytest.mark.skipif(OPENSSL is None, reason="openssl CLI not installed")

CLIENT_CN = "borgwatch-client-nas1"
EVENTS = ["run_started", "stage_started", "borg_message", "stage_finished", "run_summary"]


@dataclass
class Pki:
    ca: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str
    other_ca: str  # a CA that signed nothing here


def _openssl(*args: str) -> None:
    assert OPENSSL is not None
    subprocess.run([OPENSSL, *args], check=True, capture_output=True, timeout=60)


def _ca(d: Path, name: str) -> tuple[Path, Path]:
    cert, key = d / f"{name}.pem", d / f"{name}.key"
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", f"/CN=borgwatch test {name}",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    return cert, key


def _leaf(d: Path, name: str, cn: str, ca: tuple[Path, Path], ext: str) -> tuple[Path, Path]:
    cert, key, csr, extfile = (d / f"{name}.pem", d / f"{name}.key", d / f"{name}.csr",
                               d / f"{name}.ext")
    extfile.write_text("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                       "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n" + ext + "\n")
    _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={cn}")
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca[0]), "-CAkey", str(ca[1]),
             "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(extfile))
    return cert, key


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    ca = _ca(d, "ca")
    other = _ca(d, "other-ca")
    server = _leaf(d, "server", "127.0.0.1", ca, "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth")
    client = _leaf(d, "client", CLIENT_CN, ca, "extendedKeyUsage=clientAuth")
    return Pki(str(ca[0]), str(server[0]), str(server[1]), str(client[0]), str(client[1]), str(other[0]))


@pytest.fixture(autouse=True)
def no_ca_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """requests reads these; the tests decide what is trusted."""
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def mtls_loki(pki: Pki) -> Iterator[LokiReceiver]:
    """HTTPS Loki that requires a client certificate signed by the test CA."""
    receiver = LokiReceiver(tls=server_tls_context(pki.server_cert, pki.server_key, client_ca=pki.ca))
    yield receiver
    receiver.stop()


def spool_lines(tmp_path: Path) -> list[str]:
    path = tmp_path / "state" / "spool" / "loki-home.jsonl"
    return path.read_text().splitlines() if path.exists() else []


def assert_quiet(capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err and "Traceback" not in caplog.text
    assert not [r for r in caplog.records if r.exc_info]


def test_mtls_delivers_over_https_with_ca_and_client_cert(tmp_path: Path, pki: Pki,
                                                          mtls_loki: LokiReceiver) -> None:
    assert mtls_loki.url.startswith("https://127.0.0.1:")
    config = make_config(tmp_path, mtls_loki.url, ca_file=pki.ca, cert_file=pki.client_cert,
                         key_file=pki.client_key)
    result, report, _ = run_once(config)

    assert [line["event"] for line in mtls_loki.lines()] == EVENTS
    assert all(line["run_id"] == result.run_id for line in mtls_loki.lines())
    assert report is not None
    assert (report.delivered, report.failures, report.spooled, report.dropped) == (5, 0, 0, 0)
    pushes = mtls_loki.pushes()
    assert len(pushes) == 2 and all(p.status == 204 for p in pushes)
    assert all(subject(p.peer_cert) == {"commonName": CLIENT_CN} for p in pushes)
    assert mtls_loki.tls_failures == []
    assert spool_lines(tmp_path) == []


def test_combined_cert_file_without_key_file(tmp_path: Path, pki: Pki, mtls_loki: LokiReceiver) -> None:
    both = tmp_path / "client-both.pem"
    both.write_text(Path(pki.client_cert).read_text() + Path(pki.client_key).read_text())
    config = make_config(tmp_path, mtls_loki.url, ca_file=pki.ca, cert_file=str(both))
    _, report, _ = run_once(config)
    assert report is not None and report.delivered == 5 and report.failures == 0
    assert {subject(p.peer_cert)["commonName"] for p in mtls_loki.pushes()} == {CLIENT_CN}


def test_untrusted_server_cert_fails_honestly_and_spools(tmp_path: Path, pki: Pki, mtls_loki: LokiReceiver,
                                                         capsys: pytest.CaptureFixture[str],
                                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    # no ca_file: the system CAs do not know the test CA
    config = make_config(tmp_path, mtls_loki.url, cert_file=pki.client_cert, key_file=pki.client_key,
                         retries=1)
    _, report, spent = run_once(config)

    assert report is not None
    assert (report.delivered, report.failures, report.spooled, report.dropped) == (0, 2, 5, 0)
    assert len(spool_lines(tmp_path)) == 5
    assert mtls_loki.entries == [] and mtls_loki.requests == []
    assert "CERTIFICATE_VERIFY_FAILED" in caplog.text and "spooled" in caplog.text
    assert spent < 2.0
    assert_quiet(capsys, caplog)


def test_wrong_ca_file_fails_honestly_and_spools(tmp_path: Path, pki: Pki, mtls_loki: LokiReceiver,
                                                 capsys: pytest.CaptureFixture[str],
                                                 caplog: pytest.LogCaptureFixture) -> None:
    config = make_config(tmp_path, mtls_loki.url, ca_file=pki.other_ca, cert_file=pki.client_cert,
                         key_file=pki.client_key, retries=1)
    _, report, _ = run_once(config)
    assert report is not None
    assert (report.delivered, report.failures, report.spooled, report.dropped) == (0, 2, 5, 0)
    assert mtls_loki.entries == [] and mtls_loki.requests == []
    assert_quiet(capsys, caplog)


def test_missing_client_cert_is_refused_by_server_and_spools(tmp_path: Path, pki: Pki,
                                                             mtls_loki: LokiReceiver,
                                                             capsys: pytest.CaptureFixture[str],
                                                             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    config = make_config(tmp_path, mtls_loki.url, ca_file=pki.ca, retries=1)
    _, report, spent = run_once(config)

    assert report is not None
    assert (report.delivered, report.failures, report.spooled, report.dropped) == (0, 2, 5, 0)
    assert len(spool_lines(tmp_path)) == 5
    assert mtls_loki.entries == [] and mtls_loki.requests == []
    assert mtls_loki.tls_failures and all("certificate" in f.lower() for f in mtls_loki.tls_failures)
    assert "connection failed" in caplog.text and "spooled" in caplog.text
    assert spent < 2.0
    assert_quiet(capsys, caplog)


def test_spooled_lines_go_out_once_tls_is_fixed(tmp_path: Path, pki: Pki, mtls_loki: LokiReceiver) -> None:
    base = time.time() - 600
    # no client cert: spooled
    run_once(make_config(tmp_path, mtls_loki.url, ca_file=pki.ca, retries=0), t0=base)
    assert len(spool_lines(tmp_path)) == 5
    fixed = make_config(tmp_path, mtls_loki.url, ca_file=pki.ca, cert_file=pki.client_cert,
                        key_file=pki.client_key)
    _, report, _ = run_once(fixed, run=1, t0=base + 60)
    assert report is not None and report.delivered == 10 and report.spooled == 0
    assert len(mtls_loki.lines()) == 10 and mtls_loki.arrival_in_order()
    assert spool_lines(tmp_path) == []


def test_ca_file_wins_over_requests_ca_bundle_env(tmp_path: Path, pki: Pki, mtls_loki: LokiReceiver,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """requests lets REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE replace a Session's ``verify``; the configured
    ca_file must still be the one used (distros and containers often export these variables)."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", pki.other_ca)
    monkeypatch.setenv("CURL_CA_BUNDLE", pki.other_ca)
    config = make_config(tmp_path, mtls_loki.url, ca_file=pki.ca, cert_file=pki.client_cert,
                         key_file=pki.client_key)
    _, report, _ = run_once(config)
    assert report is not None and report.delivered == 5 and report.failures == 0 and report.spooled == 0
