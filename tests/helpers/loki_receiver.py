"""A strict fake Loki push endpoint on 127.0.0.1 (stdlib only) for tests.

It validates POST /loki/api/v1/push the way Loki's distributor does (JSON body, gzip, label rules,
string ns timestamps in the accepted window, line size, out-of-order window per stream) and answers
204 on success and 400 with a Loki-like message on violations. Like Loki it stores the valid entries
of a partly invalid push and silently drops exact duplicates (same stream, timestamp and line).
Failure injection: ``fail_next(status, n)``, ``hang_seconds``, ``refuse()`` / ``restore()``.
TLS: ``LokiReceiver(tls=server_tls_context(cert, key, client_ca))`` serves HTTPS (mTLS with a client CA);
failed handshakes are recorded in ``tls_failures``, the client certificate of each request in
``Request.peer_cert``. Without ``tls`` it is plain HTTP, as before.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import re
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
MAX_AGE_NS = 168 * 3600 * 10**9  # reject_old_samples_max_age
GRACE_NS = 10 * 60 * 10**9  # creation_grace_period
OUT_OF_ORDER_NS = 3600 * 10**9  # max_chunk_age / 2
MAX_LINE = 256 * 1024
MAX_LABELS = 15


class Violation(Exception):
    pass


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    raw: bytes  # the body as sent (maybe gzip)
    body: bytes  # decoded
    status: int = 0
    answer: str = ""
    at: float = field(default_factory=time.time)
    peer_cert: dict[str, Any] | None = None  # the verified client certificate (mTLS), as getpeercert()


def _labels_text(labels: dict[str, str]) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for k, v in pairs:
        if k in seen:
            raise Violation(f"duplicate label name: {k}")
        seen[k] = v
    return seen


def server_tls_context(cert_file: str, key_file: str, client_ca: str | None = None) -> ssl.SSLContext:
    """A server-side context; with ``client_ca`` the client must present a certificate it signed."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert_file, key_file)
    if client_ca:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(client_ca)
    return ctx


def subject(cert: dict[str, Any] | None) -> dict[str, str]:
    """getpeercert()'s subject as a flat dict, e.g. {"commonName": "..."}."""
    return {k: v for rdn in (cert or {}).get("subject", ()) for k, v in rdn}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    tls: ssl.SSLContext | None = None
    tls_failures: list[str]

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = self.socket.accept()
        if self.tls is None:
            return sock, addr
        sock.settimeout(5)  # a client that never finishes the handshake does not block accept for long
        try:
            tls_sock = self.tls.wrap_socket(sock, server_side=True)
        except OSError as exc:  # ssl.SSLError included; socketserver drops the connection quietly
            self.tls_failures.append(f"{type(exc).__name__}: {exc}")
            sock.close()
            raise
        tls_sock.settimeout(None)
        return tls_sock, addr


class LokiReceiver:
    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.tls = tls
        self.tls_failures: list[str] = []  # server-side handshake failures (untrusted/missing client cert)
        self.requests: list[Request] = []
        self.entries: list[tuple[dict[str, str], str, str]] = []  # accepted (labels, ts, line), in order
        self.duplicates = 0
        self.hang_seconds = 0.0
        self._fail: list[int] = []
        self._newest: dict[frozenset, int] = {}
        self._seen: set[tuple[frozenset, str, str]] = set()
        self._lock = threading.Lock()
        self._release = threading.Event()
        self.port = 0
        self._server: ThreadingHTTPServer | None = None
        self.start()

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:  # noqa: N802
                receiver._handle(self)

            def do_GET(self) -> None:  # noqa: N802
                self._answer(405, "method not allowed")

            def _answer(self, status: int, text: str = "") -> None:
                data = text.encode()
                self.send_response(status)
                if status != 204:
                    self.send_header("Content-Type", "text/plain; charset=utf-8")
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if status != 204:
                    self.wfile.write(data)

        self._server = _Server(("127.0.0.1", self.port), Handler)
        self._server.tls = self.tls
        self._server.tls_failures = self.tls_failures
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()

    def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def refuse(self) -> None:
        """Close the port: connections are refused until ``restore()``."""
        self.stop()

    def restore(self) -> None:
        self._release.clear()
        self.start()

    def __enter__(self) -> LokiReceiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def fail_next(self, status: int, n: int = 1) -> None:
        with self._lock:
            self._fail.extend([status] * n)

    # -- queries -------------------------------------------------------------------------------
    def lines(self) -> list[dict[str, Any]]:
        """Accepted lines as a Loki query returns them: ordered by timestamp (stable)."""
        ordered = sorted(self.entries, key=lambda e: int(e[1]))
        return [json.loads(line) for _, _, line in ordered]

    def arrival_in_order(self) -> bool:
        """True when every stream received its entries oldest first (spool before new lines)."""
        last: dict[frozenset, int] = {}
        for labels, ts, _ in self.entries:
            key = frozenset(labels.items())
            if int(ts) < last.get(key, 0):
                return False
            last[key] = int(ts)
        return True

    def streams(self) -> set[frozenset]:
        return {frozenset(labels.items()) for labels, _, _ in self.entries}

    def pushes(self) -> list[Request]:
        return [r for r in self.requests if r.path == "/loki/api/v1/push"]

    # -- the push endpoint -----------------------------------------------------------------------
    def _handle(self, h: Any) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        req = Request("POST", h.path, {k: v for k, v in h.headers.items()}, raw, b"")
        if isinstance(h.connection, ssl.SSLSocket):
            req.peer_cert = h.connection.getpeercert() or None
        with self._lock:
            self.requests.append(req)
            forced = self._fail.pop(0) if self._fail else None
        if self.hang_seconds:
            self._release.wait(self.hang_seconds)
        if forced is not None:
            req.status, req.answer = forced, f"injected {forced}"
            if forced == 429:
                req.answer = "Ingestion rate limit exceeded for user fake (limit: 4194304 bytes/sec)"
            return self._reply(h, req)
        if h.path != "/loki/api/v1/push":
            req.status, req.answer = 404, "404 page not found"
            return self._reply(h, req)
        try:
            req.body = self._decode(req)
            errors = self._ingest(json.loads(req.body, object_pairs_hook=_no_duplicates))
        except Violation as exc:
            errors = [str(exc)]
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            errors = [f"loghttp.PushRequest.Streams: ReadString: {exc}"]
        req.status, req.answer = (400, "\n".join(errors)) if errors else (204, "")
        self._reply(h, req)

    def _reply(self, h: Any, req: Request) -> None:
        with contextlib.suppress(OSError):  # the client gave up (timeout)
            h._answer(req.status, req.answer)

    def _decode(self, req: Request) -> bytes:
        ctype = req.headers.get("Content-Type", "")
        if not ctype.startswith("application/json"):
            raise Violation(f"unsupported Content-Type {ctype!r} (this fake only speaks JSON)")
        enc = req.headers.get("Content-Encoding", "")
        if enc == "gzip":
            try:
                return gzip.decompress(req.raw)
            except (OSError, EOFError) as exc:
                raise Violation(f"gzip: invalid body: {exc}") from exc
        if enc:
            raise Violation(f"unsupported Content-Encoding {enc!r}")
        return req.raw

    def _ingest(self, payload: Any) -> list[str]:
        if not isinstance(payload, dict) or not isinstance(payload.get("streams"), list) \
                or not payload["streams"]:
            raise Violation("push request must hold a non-empty streams list")
        now = time.time_ns()
        errors: list[str] = []
        accepted: list[tuple[dict[str, str], str, str]] = []
        for s in payload["streams"]:
            try:
                labels = self._check_labels(s)
            except Violation as exc:
                errors.append(str(exc))
                continue
            values = s.get("values")
            if not isinstance(values, list):
                errors.append("stream values must be a list")
                continue
            key = frozenset(labels.items())
            for v in values:
                try:
                    ts, line = self._check_entry(v, labels, now, self._newest.get(key))
                except Violation as exc:
                    errors.append(str(exc))
                    continue
                self._newest[key] = max(self._newest.get(key, 0), int(ts))
                accepted.append((labels, ts, line))
        with self._lock:
            for labels, ts, line in accepted:
                ident = (frozenset(labels.items()), ts, line)
                if ident in self._seen:
                    self.duplicates += 1
                    continue
                self._seen.add(ident)
                self.entries.append((labels, ts, line))
        return errors

    def _check_labels(self, s: Any) -> dict[str, str]:
        labels = s.get("stream") if isinstance(s, dict) else None
        if not isinstance(labels, dict) or not labels:
            raise Violation("error at least one label pair is required per stream")
        if len(labels) > MAX_LABELS:
            raise Violation(f"stream '{_labels_text(labels)}' has {len(labels)} label names; limit "
                            f"{MAX_LABELS}")
        for k, v in labels.items():
            if not isinstance(v, str):
                raise Violation(f"loghttp.PushRequest.Streams: ReadString: expects \" or n, but found "
                                f"{json.dumps(v)[:1]} (label {k})")
            if not LABEL_NAME.match(k) or k.startswith("__"):
                raise Violation(f"error parsing labels: invalid label name {k!r}")
            if len(k) > 1024:
                raise Violation(f"label name too long: {k[:40]}")
            if len(v) > 2048:
                raise Violation(f"label value too long: {v[:40]}")
        return labels

    def _check_entry(self, v: Any, labels: dict[str, str], now: int,
                     newest: int | None) -> tuple[str, str]:
        if not isinstance(v, list) or len(v) not in (2, 3):
            raise Violation("entry must be [\"<ns>\", \"<line>\"(, {metadata})]")
        ts, line = v[0], v[1]
        if not isinstance(ts, str) or not ts.isdigit():
            raise Violation(f"timestamp must be a string of digits, got {json.dumps(ts)[:30]}")
        if not isinstance(line, str):
            raise Violation("log line must be a string")
        if len(v) == 3 and not (isinstance(v[2], dict)
                                and all(isinstance(x, str) for x in v[2].values())):
            raise Violation("structured metadata must be a flat string map")
        n = int(ts)
        if n < now - MAX_AGE_NS:
            raise Violation(f"entry for stream '{_labels_text(labels)}' has timestamp too old: {n}")
        if n > now + GRACE_NS:
            raise Violation(f"entry for stream '{_labels_text(labels)}' has timestamp too new: {n}")
        if newest is not None and n < newest - OUT_OF_ORDER_NS:
            raise Violation(f"entry too far behind: entry with timestamp {n} ignored, it's too far behind "
                            f"the newest {newest} of stream '{_labels_text(labels)}'")
        if len(line.encode()) > MAX_LINE:
            raise Violation(f"line too long: {len(line.encode())} bytes, limit {MAX_LINE}")
        return ts, line


def free_port() -> int:
    """A port nothing listens on (for connection-refused cases)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
