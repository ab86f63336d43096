"""Prometheus HTTP API client of ``borgwatch report``: instant and range queries, basic or bearer auth,
CA and client certificates the same way the Loki sink takes them. Every failure becomes one UserError
naming cause and remedy; credentials never appear in a message."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import requests

from borgwatch.errors import UserError
from borgwatch.redact import Redactor, strip_url_credentials
from borgwatch.sinks.loki import read_secret

# the readable part of requests' nested exception text
_REASON = re.compile(r"\[Errno -?\d+\] [^'\"()]+|certificate verify failed[^'\"()]*|"
                     r"wrong version number|Name or service not known|Connection refused")
Series = tuple[dict[str, str], list[tuple[float, float]]]  # (labels, [(unix time, value)])


@dataclass
class PromAuth:
    username: str | None = None
    password_file: str | None = None
    password_command: str | None = None
    token_file: str | None = None
    token_command: str | None = None
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None

    def problems(self) -> list[str]:
        out = []
        if (self.token_file or self.token_command) and self.username:
            out.append("set either a bearer token (--token-file/--token-command) or basic auth (--username), not both")
        if (self.password_file or self.password_command) and not self.username:
            out.append("--password-file/--password-command need --username")
        if self.password_file and self.password_command:
            out.append("set --password-file or --password-command, not both")
        if self.token_file and self.token_command:
            out.append("set --token-file or --token-command, not both")
        if self.key_file and not self.cert_file:
            out.append("--key-file needs --cert-file")
        return out


class PromClient:
    """One requests session against one Prometheus server (``/api/v1/query``, ``query_range``, ``series``)."""

    def __init__(self, url: str, auth: PromAuth, timeout: float = 30.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise UserError(f"--prometheus {strip_url_credentials(url)!r} must start with http:// or https://")
        if problems := auth.problems():
            raise UserError(f"report: {problems[0]}")
        self.url = url.rstrip("/")
        self.shown_url = strip_url_credentials(self.url)
        self.timeout = timeout
        self.redact = Redactor()
        self.session = requests.Session()
        self.session.headers["User-Agent"] = "borgwatch-report"
        try:
            password = read_secret(auth.password_file, auth.password_command, timeout=10)
            token = read_secret(auth.token_file, auth.token_command, timeout=10)
        except OSError as exc:
            which = "password" if auth.password_file or auth.password_command else "token"
            raise UserError(f"cannot read the Prometheus {which} ({exc.strerror or exc}); check the file or "
                            "command and that borgwatch runs as a user who may read it") from None
        self.redact.add(password)
        self.redact.add(token)
        if auth.username:
            self.session.auth = (auth.username, password or "")
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"
        # passed per request: REQUESTS_CA_BUNDLE would replace a Session's verify (see loki_transport)
        self.verify: str | bool = auth.ca_file or True
        self.cert = (auth.cert_file, auth.key_file) if auth.key_file else auth.cert_file

    def _get(self, path: str, params: dict[str, Any]) -> Any:
        try:
            resp = self.session.get(f"{self.url}{path}", params=params, timeout=self.timeout, verify=self.verify,
                                    cert=self.cert)
        except requests.exceptions.SSLError as exc:
            raise UserError(f"TLS error talking to Prometheus at {self.shown_url} ({self._reason(exc)}); pass the "
                            "server's CA with --ca-file") from None
        except requests.exceptions.Timeout:
            raise UserError(f"Prometheus at {self.shown_url} did not answer within {self.timeout:.0f}s; check "
                            "the server or shorten the period (--since)") from None
        except (requests.exceptions.ConnectionError, OSError) as exc:
            raise UserError(f"cannot reach Prometheus at {self.shown_url} ({self._reason(exc)}); check "
                            "--prometheus and that the server is up") from None
        if resp.status_code in (401, 403):
            raise UserError(f"Prometheus at {self.shown_url} refused the credentials (HTTP {resp.status_code}); "
                            "check --username/--password-file or --token-file") from None
        try:
            body = resp.json()
        except ValueError:
            raise UserError(f"{self.shown_url}{path} answered HTTP {resp.status_code} without Prometheus JSON; "
                            "is --prometheus the Prometheus base URL (e.g. http://prometheus:9090)?") from None
        if body.get("status") != "success":
            raise UserError(f"Prometheus at {self.shown_url} rejected a query: "
                            f"{self.redact(str(body.get('error', resp.status_code)))}")
        return body["data"]

    def _reason(self, exc: Exception) -> str:
        m = _REASON.search(str(exc))
        return self.redact(m.group().strip().rstrip(".") if m else type(exc).__name__)

    def query(self, expr: str, at: float) -> list[tuple[dict[str, str], float]]:
        data = self._get("/api/v1/query", {"query": expr, "time": f"{at:.3f}"})
        return [(r["metric"], float(r["value"][1])) for r in data["result"]]

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[Series]:
        data = self._get("/api/v1/query_range",
                         {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"})
        return [(r["metric"], [(float(t), float(v)) for t, v in r["values"]]) for r in data["result"]]

    def series_exist(self, match: str) -> bool:
        """True if Prometheus holds the series at any time it still stores (no period)."""
        return bool(self._get("/api/v1/series", {"match[]": match}))
