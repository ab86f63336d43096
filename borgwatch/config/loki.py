"""[loki] table: where and how run logs are shipped (see borgwatch/sinks/loki.py)."""

from __future__ import annotations

from dataclasses import dataclass

from borgwatch.config.fields import opt, required


@dataclass
class LokiConfig:
    url: str = required("Loki base URL or full push URL, e.g. http://loki:3100.", kind="secret-url")
    labels: dict[str, str] = opt({}, "Static labels added to every stream (bounded values only).")
    tenant: str | None = opt(None, "Tenant sent as X-Scope-OrgID.")
    username: str | None = opt(None, "Basic auth user name.")
    password_file: str | None = opt(None, "File holding the basic auth password.", kind="path")
    password_command: str | None = opt(None, "Command printing the basic auth password.",
                                       kind="secret-command")
    token_file: str | None = opt(None, "File holding a bearer token.", kind="path")
    token_command: str | None = opt(None, "Command printing a bearer token.", kind="secret-command")
    ca_file: str | None = opt(None, "CA bundle to verify the Loki server.", kind="path")
    cert_file: str | None = opt(None, "Client certificate (PEM) for mTLS.", kind="path")
    key_file: str | None = opt(None, "Client key (PEM) for mTLS.", kind="path")
    gzip: bool = opt(True, "Gzip the push body.")
    connect_timeout: float = opt(2.0, "Seconds to wait for a connection.")
    read_timeout: float = opt(5.0, "Seconds to wait for an answer.")
    max_delay: float = opt(10.0, "Most seconds a run may be delayed by Loki, retries included.")
    retries: int = opt(3, "Retries on 429, 5xx and connection errors (with backoff).")
    spool_max_bytes: int = opt(10_000_000, "Size bound of the on-disk spool of undelivered lines.")
    min_level: str = opt("info", "Lowest level shipped.", choices=("debug", "info", "warning", "error"))
