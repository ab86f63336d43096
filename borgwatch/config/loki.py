"""[loki] table: where and how run logs are shipped (see borgwatch/sinks/loki.py).

Without this table the same JSON events go to stderr, and only when stderr is the journal
(systemd's ``JOURNAL_STREAM``), so ``journalctl`` users get them and cron stays quiet.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from borgwatch.config.fields import opt, required

LEVELS = ("debug", "info", "warning", "error")
# Labels borgwatch sets itself; static labels from the config cannot replace them.
BUILTIN_LABELS = ("app", "host", "backup_job", "level")
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
MAX_LABELS = 15  # Loki's max_label_names_per_series
MAX_LABEL_VALUE = 2048  # Loki's max_label_value_length


@dataclass
class LokiConfig:
    url: str = required("Loki base URL or full push URL, e.g. http://loki:3100 "
                        "(/loki/api/v1/push is appended when missing).", kind="secret-url")
    labels: dict[str, str] = opt({}, "Static labels added to every stream (bounded values only, e.g. "
                                     "env = \"prod\"). app, host, backup_job and level are always set.")
    tenant: str | None = opt(None, "Tenant sent as X-Scope-OrgID (multi-tenant Loki, Grafana Cloud).")
    username: str | None = opt(None, "Basic auth user name (Grafana Cloud: the instance id).")
    password_file: str | None = opt(None, "File holding the basic auth password.", kind="path")
    password_command: str | None = opt(None, "Command printing the basic auth password.",
                                       kind="secret-command")
    token_file: str | None = opt(None, "File holding a bearer token (Authorization: Bearer).", kind="path")
    token_command: str | None = opt(None, "Command printing a bearer token.", kind="secret-command")
    ca_file: str | None = opt(None, "CA bundle to verify the Loki server (default: system CAs).",
                              kind="path")
    cert_file: str | None = opt(None, "Client certificate (PEM) for mTLS.", kind="path")
    key_file: str | None = opt(None, "Client key (PEM) for mTLS (omit when cert_file holds both).",
                               kind="path")
    gzip: bool = opt(True, "Gzip the push body (Content-Encoding: gzip).")
    connect_timeout: float = opt(2.0, "Seconds to wait for a connection to Loki.", gt=0, max=3600)
    read_timeout: float = opt(3.0, "Seconds to wait for Loki's answer. A push that times out stops "
                                   "delivery for the rest of the run (the lines are spooled); a push "
                                   "also ends after connect_timeout + read_timeout in all, however "
                                   "slowly Loki keeps answering.", gt=0, max=3600)
    max_delay: float = opt(5.0, "Most seconds a run may spend on Loki in total (start and end, all "
                                "retries and backoff included); what is left is spooled.", gt=0, max=3600)
    retries: int = opt(3, "Retries of one push on 429, 5xx and connection errors, with exponential "
                          "backoff (0.25 s, 0.5 s, 1 s, ...; Retry-After honoured within max_delay).",
                          min=0, max=100)
    batch_max_bytes: int = opt(1_000_000, "Largest push body before compression; more lines are split "
                                          "into several pushes.", min=1024)
    spool_max_bytes: int = opt(10_000_000, "Size bound of the on-disk spool of undelivered lines; the "
                                           "oldest lines are dropped first (counted in "
                                           "borgwatch_sink_dropped_total{sink=\"loki\"}).", min=0)
    min_level: str = opt("info", "Lowest level shipped. The run summary is always shipped.",
                         choices=LEVELS)

    def problems(self) -> list[str]:
        """Configuration mistakes a loader should report (the sink works around them)."""
        out: list[str] = []
        if not self.url.startswith(("http://", "https://")):
            out.append("[loki] url must start with http:// or https://")
        if (self.token_file or self.token_command) and (self.username or self.password_file
                                                        or self.password_command):
            out.append("[loki] set either a bearer token or basic auth (username/password), not both")
        if self.token_file and self.token_command:
            out.append("[loki] set token_file or token_command, not both")
        if self.password_file and self.password_command:
            out.append("[loki] set password_file or password_command, not both")
        if (self.password_file or self.password_command) and not self.username:
            out.append("[loki] a password needs a username")
        if self.key_file and not self.cert_file:
            out.append("[loki] key_file needs cert_file")
        for name, value in self.labels.items():
            if name in BUILTIN_LABELS:
                out.append(f"[loki] labels.{name}: set by borgwatch itself and cannot be overridden")
            elif not LABEL_NAME.match(name) or name.startswith("__"):
                out.append(f"[loki] labels.{name}: Loki label names must match [a-zA-Z_][a-zA-Z0-9_]* "
                           "and must not start with __")
            elif len(str(value)) > MAX_LABEL_VALUE:
                out.append(f"[loki] labels.{name}: value longer than {MAX_LABEL_VALUE} characters")
        if len(set(self.labels) | set(BUILTIN_LABELS)) > MAX_LABELS:
            out.append(f"[loki] labels: at most {MAX_LABELS - len(BUILTIN_LABELS)} static labels")
        for key in ("connect_timeout", "read_timeout", "max_delay"):
            if getattr(self, key) <= 0:
                out.append(f"[loki] {key} must be > 0")
        if self.retries < 0 or self.spool_max_bytes < 0 or self.batch_max_bytes < 1024:
            out.append("[loki] retries and spool_max_bytes must be >= 0, batch_max_bytes >= 1024")
        return out

    def static_labels(self) -> dict[str, str]:
        """The valid static labels, values as strings (Loki answers 400 to anything else)."""
        out: dict[str, str] = {}
        for name, value in self.labels.items():
            if name in BUILTIN_LABELS or not LABEL_NAME.match(name) or name.startswith("__"):
                continue
            if len(out) + len(BUILTIN_LABELS) >= MAX_LABELS:
                break
            out[name] = str(value)[:MAX_LABEL_VALUE]
        return out
