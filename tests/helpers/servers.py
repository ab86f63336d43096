"""Loopback servers for the agent tests: the real prometheus-pushgateway binary, a recording HTTP
receiver (healthchecks-style pings) that can answer, fail or hang, and a port nobody listens on."""

from __future__ import annotations

import contextlib
import shutil
import socket
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
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def pushgateway(tmp: Path) -> Iterator[str]:
    """A real Pushgateway on a free loopback port; yields its base URL. Only our own PID is killed."""
    assert PUSHGATEWAY is not None
    port = free_port()
    log = (tmp / "pushgateway.log").open("wb")
    # Debian's build defaults --persistence.file to /var/lib/prometheus/pushgateway.data: keep tests
    # from sharing (and leaving behind) that file.
    argv = [PUSHGATEWAY, f"--web.listen-address=127.0.0.1:{port}", f"--persistence.file={tmp / 'pgw.data'}"]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                urllib.request.urlopen(f"{url}/-/ready", timeout=1).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    text = (tmp / "pushgateway.log").read_text()
                    raise RuntimeError(f"pushgateway did not start: {text}") from None
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


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
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()
