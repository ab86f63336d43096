"""The Loki sink at its limits: a server trickling its answer, a proxy's body limit (413), a full disk
under the spool. Real loopback servers and a real (small) tmpfs."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.loki import make_config, run_once
from helpers.loki_receiver import LokiReceiver

from borgwatch.model import RunEvent


class TricklingServer:
    """Reads a whole request, then answers one byte a second (a slowloris in reverse)."""

    ANSWER = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.requests = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            head, _, body = data.partition(b"\r\n\r\n")
            length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            while len(body) < length:
                body += conn.recv(65536)
            self.requests += 1
            for byte in self.ANSWER:
                if self._stop.wait(1.0):
                    return
                conn.sendall(bytes([byte]))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


class BodyLimitedLoki(LokiReceiver):
    """A Loki behind a proxy that answers 413 to any body larger than ``limit`` bytes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.too_large = 0
        super().__init__()

    def _handle(self, h: Any) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        if length > self.limit:
            h.rfile.read(length)
            self.too_large += 1
            h._answer(413, "413 Request Entity Too Large")
            return
        super()._handle(h)


@pytest.fixture
def trickling() -> Iterator[TricklingServer]:
    server = TricklingServer()
    yield server
    server.stop()


def test_a_trickling_loki_is_bounded_by_max_delay(tmp_path: Path, trickling: TricklingServer) -> None:
    config = make_config(tmp_path, trickling.url, max_delay=2.0, connect_timeout=1.0, read_timeout=1.5)
    _, report, spent = run_once(config)
    print(f"\ntrickling Loki (1 byte/s), max_delay 2 s: {spent:.2f}s spent in the sink")
    assert spent < 2.0 + 1.0  # the 67-byte answer alone takes 67 s
    assert trickling.requests == 1  # the push that never completed stops delivery for the run
    assert report is not None and report.spooled == 5 and report.dropped == 0 and report.failures == 1


def _chatty(n: int, t0: float) -> list[RunEvent]:
    return [RunEvent(t0 + 5 + i / 1000, "warning", "borg_message", f"/data/file-{i:04d}: " + "x" * 250, {})
            for i in range(n)]


def test_413_splits_into_smaller_batches_and_delivers_every_line(tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    loki = BodyLimitedLoki(limit=2000)
    try:
        config = make_config(tmp_path, loki.url, gzip=False, max_delay=30.0)
        t0 = time.time() - 60
        result, report, _ = run_once(config, t0=t0, extra_events=_chatty(200, t0))
    finally:
        loki.stop()
    assert report is not None and report.dropped == 0 and report.spooled == 0
    assert report.delivered == 205 and len(loki.entries) == 205 and loki.duplicates == 0
    assert loki.too_large >= 1 and report.failures == loki.too_large
    assert all(len(p.raw) <= 2000 for p in loki.pushes() if p.status == 204)
    assert caplog.text.count("413") == 1  # warned once, not per push


def test_a_line_larger_than_the_proxy_limit_is_spooled_not_dropped(tmp_path: Path) -> None:
    t0 = time.time() - 60
    big = RunEvent(t0 + 5, "warning", "borg_message", "y" * 5000, {})
    small = BodyLimitedLoki(limit=3000)
    try:
        _, report, _ = run_once(make_config(tmp_path, small.url, gzip=False), t0=t0, extra_events=[big])
    finally:
        small.stop()
    assert report is not None and report.dropped == 0 and report.spooled >= 1
    with LokiReceiver() as fixed:  # the proxy's limit was raised: the spool goes first
        _, report, _ = run_once(make_config(tmp_path, fixed.url, gzip=False), run=1, t0=t0 + 30)
        assert report is not None and report.spooled == 0 and report.dropped == 0
        assert "y" * 5000 in [line["msg"] for line in fixed.lines()]
        assert report.delivered == len(fixed.entries) == 7  # the big line, the summary after it, 5 new


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "fs"
    mount.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_full_spool_filesystem_names_the_disk_and_keeps_intact_lines(small_fs: Path,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    loki = LokiReceiver()
    loki.refuse()
    config = make_config(small_fs, loki.url, retries=0)
    t0 = time.time() - 600
    _, report, _ = run_once(config, t0=t0)
    assert report is not None and report.spooled == 5
    spool = small_fs / "state" / "spool" / "loki-home.jsonl"
    before = spool.read_bytes()
    with contextlib.suppress(OSError), open(small_fs / "filler", "wb") as filler:
        while True:
            filler.write(b"\0" * 4096)
            filler.flush()
            os.fsync(filler.fileno())
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="borgwatch"):
        _, report, _ = run_once(config, run=1, t0=t0 + 60)
    assert report is not None and report.dropped == 5 and report.spooled == 5  # only this run's lines lost
    assert spool.read_bytes() == before and len(before.splitlines()) == 5
    assert [json.loads(line)["s"]["backup_job"] for line in before.splitlines()] == ["home"] * 5
    assert "No space left on device" in caplog.text and f"mounted at {small_fs}" in caplog.text
    assert "spool_max_bytes" not in caplog.text and "Loki spool full" not in caplog.text
    assert [p.name for p in spool.parent.iterdir() if p.name.endswith(".tmp")] == []
    loki.stop()
