"""Loopback servers for the tests, one way each: ``free_port``, ``serving`` (a Python socketserver in a
thread), ``process`` (a real server binary, waited for until it answers); on top of them the real
prometheus-pushgateway and a recording HTTP receiver (healthchecks-style pings) that can answer, fail or
hang."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import socketserver
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

PUSHGATEWAY = shutil.which("prometheus-pushgateway")


def free_port() -> int:
    """A loopback port nothing listens on right now (for a server's flag, or a connection-refused case)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serving(server: socketserver.BaseServer) -> Iterator[int]:
    """Serve ``server`` (bound to 127.0.0.1) from a daemon thread until the block ends; yields its port."""
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def process(argv: list[str], ready_url: str, log: Path, env: dict[str, str] | None = None) -> Iterator[None]:
    """Run ``argv`` (output to ``log``) until the block ends, once ``ready_url`` answers. Only this PID is
    stopped."""
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, **(env or {})})
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(ready_url, timeout=1).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{argv[0]} did not start: {log.read_text(errors='replace')}") from None
                time.sleep(0.05)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def pushgateway(tmp: Path) -> Iterator[str]:
    """A real Pushgateway on a free loopback port; yields its base URL."""
    assert PUSHGATEWAY is not None
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # Debian's build defaults --persistence.file to /var/lib/prometheus/pushgateway.data: keep tests
    # from sharing (and leaving behind) that file.
    argv = [PUSHGATEWAY, f"--web.listen-address=127.0.0.1:{port}", f"--persistence.file={tmp / 'pgw.data'}"]
    with process(argv, f"{url}/-/ready", tmp / "pushgateway.log"):
        yield url


@dataclass
class Request:
    method: str
    path: str
    body: bytes
    headers: dict[str, str]


@dataclass
class Receiver:
    url: str
    requests: list[Request] = field(default_factory=list)
    mode: str = "ok"  # ok | error (HTTP 500) | hang (never answers)
    release: threading.Event = field(default_factory=threading.Event)


@contextlib.contextmanager
def receiver() -> Iterator[Receiver]:
    state = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            state.requests.append(Request(self.command, self.path, body, dict(self.headers.items())))
            if state.mode == "hang":
                state.release.wait(30)
                return
            code = 500 if state.mode == "error" else 200
            self.send_response(code)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"OK")

        do_GET = do_POST = do_HEAD = _handle

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    with serving(server) as port:
        state.url = f"http://127.0.0.1:{port}"
        try:
            yield state
        finally:
            state.release.set()  # before the shutdown: a hanging handler lets go of its connection
