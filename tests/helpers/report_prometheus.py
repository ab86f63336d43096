"""A real Prometheus for the report tests: TLS (throwaway CA from the openssl CLI), basic auth, a TSDB
backfilled with ``promtool tsdb create-blocks-from openmetrics`` and the kit's SLO rules loaded."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import requests

from borgwatch.kit import read_asset
from helpers.report_data import DAY, Job, make_jobs, openmetrics, seed_successes
from helpers.workspace import free_port

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt  # bcrypt for Prometheus' basic_auth_users (glibc's libxcrypt); removed in Python 3.13

PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")
OPENSSL = shutil.which("openssl")
USER, PASSWORD = "reporter", "s3cret-prom-pass-91c2"
# the documented per-job override: media has a stricter freshness objective than the default
MEDIA_OBJECTIVE = 0.99
OVERRIDE = (f"{MEDIA_OBJECTIVE} * group by (instance, job, backup_job) "
            '(borgwatch_max_age_seconds{backup_job="media"}) '
            "or 0.95 * group by (instance, job, backup_job) (borgwatch_max_age_seconds)")


@dataclass
class PromServer:
    url: str
    ca: Path
    password_file: Path
    jobs: list[Job]
    since: float
    until: float
    proc: subprocess.Popen[bytes]
    log: Path

    def auth_args(self) -> list[str]:
        return ["--ca-file", str(self.ca), "--username", USER, "--password-file", str(self.password_file)]


def _openssl(*args: str) -> None:
    assert OPENSSL is not None
    subprocess.run([OPENSSL, *args], check=True, capture_output=True, timeout=60)


def make_pki(d: Path) -> tuple[Path, Path, Path]:
    """CA, server certificate for 127.0.0.1, server key."""
    ca, ca_key = d / "ca.pem", d / "ca.key"
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
             str(ca_key), "-out", str(ca), "-days", "2", "-subj", "/CN=borgwatch report test CA",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
    cert, key, csr, ext = d / "server.pem", d / "server.key", d / "server.csr", d / "server.ext"
    ext.write_text("basicConstraints=critical,CA:FALSE\nsubjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
             str(key), "-out", str(csr), "-subj", "/CN=127.0.0.1")
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
             "-out", str(cert), "-days", "2", "-extfile", str(ext))
    return ca, cert, key


def start_prometheus(d: Path, tsdb: Path, rules: str | None,
                     web_config: str | None) -> tuple[subprocess.Popen[bytes], str, Path]:
    assert PROMETHEUS is not None
    config = "global:\n  evaluation_interval: 5s\n"
    if rules is not None:
        (d / "slo-rules.yml").write_text(rules)
        config += f"rule_files:\n  - {d / 'slo-rules.yml'}\n"
    (d / "prometheus.yml").write_text(config)
    port = free_port()
    argv = [PROMETHEUS, f"--config.file={d / 'prometheus.yml'}", f"--storage.tsdb.path={tsdb}",
            "--storage.tsdb.retention.time=3650d", f"--web.listen-address=127.0.0.1:{port}"]
    scheme = "http"
    if web_config is not None:
        (d / "web.yml").write_text(web_config)
        argv.append(f"--web.config.file={d / 'web.yml'}")
        scheme = "https"
    log = d / "prometheus.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    return proc, f"{scheme}://127.0.0.1:{port}", log


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, **kw: object) -> None:
    end = time.monotonic() + 60
    while True:
        try:
            if requests.get(f"{url}/-/ready", timeout=2, **kw).status_code == 200:  # type: ignore[arg-type]
                return
        except requests.RequestException:
            pass
        if proc.poll() is not None or time.monotonic() > end:
            raise AssertionError(f"prometheus did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)


def demo_server(d: Path) -> PromServer:
    """Backfill 33 days of three jobs ending now; the report period is the 30 days before today 00:00 UTC."""
    assert PROMTOOL is not None
    now = time.time()
    today = int(now) // DAY * DAY
    jobs = make_jobs(now)
    data_start = today - 33 * DAY - 1800
    seed_successes(jobs, data_start)
    (d / "data.om").write_text(openmetrics(jobs, data_start, now))
    tsdb = d / "tsdb"
    # --max-block-duration (hidden in promtool 2.42): one block per 2 hours reads the input 400 times (minutes)
    proc = subprocess.run([PROMTOOL, "tsdb", "create-blocks-from", "--max-block-duration=1000h", "openmetrics",
                           "--quiet", str(d / "data.om"), str(tsdb)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (d / "data.om").unlink()
    ca, cert, key = make_pki(d)
    hashed = crypt.crypt(PASSWORD, crypt.mksalt(crypt.METHOD_BLOWFISH))
    web = (f"tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n"
           f"basic_auth_users:\n  {USER}: '{hashed}'\n")
    rules = read_asset("slo-rules").replace(
        "expr: 0.95 * group by (instance, job, backup_job) (borgwatch_max_age_seconds)", f"expr: {OVERRIDE}")
    assert OVERRIDE in rules
    server, url, log = start_prometheus(d, tsdb, rules, web)
    kw = {"verify": str(ca), "auth": (USER, PASSWORD)}
    wait_ready(url, server, log, **kw)
    end = time.monotonic() + 60
    while not requests.get(f"{url}/api/v1/query", params={"query": "borgwatch:slo_freshness_objective"},
                           timeout=5, **kw).json()["data"]["result"]:  # type: ignore[arg-type]
        assert time.monotonic() < end, "the SLO rules were never evaluated"
        time.sleep(0.5)
    password_file = d / "password"
    password_file.write_text(PASSWORD + "\n")
    os.chmod(password_file, 0o600)
    return PromServer(url, ca, password_file, jobs, today - 30 * DAY, today, server, log)
