"""Shipping path of the Loki sink: entries pushed in batches with timeouts and retries with backoff
inside a per-run time budget, and a bounded spool for what could not be delivered.

The Loki push format (v1 JSON, streams keyed by label set) is built here from ``Entry``s, which the sink
makes straight from its events; ``loki_logging`` puts python-logging-loki's handler in front of the same
``Shipper`` for anyone who ships through ``logging``.
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import requests

from borgwatch import __version__
from borgwatch.store.files import atomic_write, make_dirs, open_nofollow, read_own_file, remove_stale_temps

log = logging.getLogger("borgwatch.sinks.loki")

PUSH_PATH = "/loki/api/v1/push"
BACKOFF_BASE = 0.25  # seconds; doubled per retry
MAX_SPLITS = 24  # pushes spent isolating lines Loki rejects (400) per run


def to_ns(seconds: float) -> int:
    """Unix seconds -> Unix nanoseconds, the same way for every caller (event time, not send time)."""
    return int(round(seconds * 1_000_000_000))


def push_url(url: str) -> str:
    url = url.rstrip("/")
    return url if url.endswith(PUSH_PATH) else url + PUSH_PATH


class Entry(NamedTuple):
    labels: dict[str, str]
    ts: str  # Unix ns as a string
    line: str

    def to_json(self) -> str:
        return json.dumps({"s": self.labels, "t": self.ts, "l": self.line}, ensure_ascii=False,
                          separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Entry:
        d = json.loads(text)
        if not (isinstance(d["s"], dict) and isinstance(d["t"], str) and isinstance(d["l"], str)):
            raise ValueError("bad spool entry")
        return cls({str(k): str(v) for k, v in d["s"].items()}, d["t"], d["l"])


def build_body(entries: list[Entry]) -> bytes:
    """One push body: entries grouped into streams by label set, order kept within each stream."""
    streams: dict[tuple[tuple[str, str], ...], list[list[str]]] = {}
    for e in entries:
        streams.setdefault(tuple(sorted(e.labels.items())), []).append([e.ts, e.line])
    payload = {"streams": [{"stream": dict(k), "values": v} for k, v in streams.items()]}
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


class Budget:
    """Seconds a run may still spend on Loki (time in pushes and backoff sleeps, across all hooks)."""

    def __init__(self, seconds: float) -> None:
        self.total = seconds
        self.spent = 0.0

    def remaining(self) -> float:
        return self.total - self.spent

    @contextlib.contextmanager
    def spending(self) -> Iterator[None]:
        t0 = time.monotonic()
        try:
            yield
        finally:
            self.spent += time.monotonic() - t0


class Spool:
    """Undelivered lines of one job on disk (JSON lines, oldest first), bounded by size."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        make_dirs(self.path.parent)
        fd = open_nofollow(self.path.with_suffix(".lock"), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def load(self) -> tuple[list[Entry], int]:
        """(entries, unreadable lines)."""
        if not self.path.exists() and not self.path.is_symlink():
            return [], 0
        entries: list[Entry] = []
        bad = 0
        with self._locked():
            data = read_own_file(self.path, 4 * max(self.max_bytes, 1 << 20))
        if data is None:
            raise OSError(f"{self.path} is not a regular file of borgwatch's user, or far over spool_max_bytes")
        for text in data.decode("utf-8", errors="replace").splitlines():
            if not text.strip():
                continue
            try:
                entries.append(Entry.from_json(text))
            except (ValueError, KeyError, TypeError):
                bad += 1
        return entries, bad

    def save(self, entries: list[Entry]) -> tuple[int, int]:
        """Replace the spool with ``entries`` (newest kept when over the bound): (kept, dropped).
        On OSError the previous spool file is left as it was."""
        lines = [e.to_json() + "\n" for e in entries]
        size, keep_from = 0, len(lines)
        while keep_from > 0 and size + len(lines[keep_from - 1].encode()) <= self.max_bytes:
            keep_from -= 1
            size += len(lines[keep_from].encode())
        kept = lines[keep_from:]
        with self._locked():
            remove_stale_temps(self.path)  # left by a killed run; the spool lock is held
            if not kept:
                self.path.unlink(missing_ok=True)
            else:
                atomic_write(self.path, "".join(kept).encode("utf-8"))
        return len(kept), keep_from


@dataclass
class ShipperStats:
    failures: int = 0  # failed push attempts
    delivered: int = 0
    dropped: int = 0
    rejected_reason: str = ""  # first 400/413 answer of this run
    unavailable_reason: str = ""  # why delivery stopped (last failure)


@dataclass
class Shipper:
    """Delivers entries oldest first in batches; what cannot be delivered stays in ``pending``."""

    url: str
    budget: Budget
    session: requests.Session = field(default_factory=requests.Session)
    headers: dict[str, str] = field(default_factory=dict)
    # CA bundle ([loki].ca_file), passed per request: requests lets REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE
    # replace a Session's ``verify``, so setting it on the session is not enough. None: system CAs.
    verify: str | None = None
    use_gzip: bool = True
    connect_timeout: float = 2.0
    read_timeout: float = 3.0
    retries: int = 3
    batch_max_bytes: int = 1_000_000
    redact: Callable[[str], str] = str
    pending: list[Entry] = field(default_factory=list)
    stats: ShipperStats = field(default_factory=ShipperStats)
    disabled: str = ""  # set: no more pushes this run (timeout, auth/config trouble)
    _splits: int = 0
    _warned_413: bool = False

    def flush(self) -> None:
        """Push everything pending, in order, until done or until Loki is unavailable. Never raises: an
        unexpected error is one more failure, its lines stay pending."""
        try:
            self._flush()
        except Exception as exc:  # noqa: BLE001 - delivery never raises into the caller
            self.stats.failures += 1
            self.stats.unavailable_reason = self.redact(f"{type(exc).__name__}: {exc}"[:200])

    def _flush(self) -> None:
        while self.pending and not self.disabled:
            batch = self._take_batch()
            handled = self._send(batch)
            del self.pending[:handled]
            if handled < len(batch):
                break

    def _take_batch(self, entries: list[Entry] | None = None) -> list[Entry]:
        entries = self.pending if entries is None else entries
        size, n = 0, 0
        for e in entries:
            size += _raw_size([e])
            if n and size > self.batch_max_bytes:
                break
            n += 1
        return entries[:n]

    def _send(self, batch: list[Entry]) -> int:
        """Entries handled (delivered or given up), counted from the front of ``batch``."""
        outcome = self._push(batch)
        if outcome == "ok":
            self.stats.delivered += len(batch)
            return len(batch)
        if outcome == "too_large":  # a proxy's body limit: the lines are fine, the batch is too big
            if len(batch) == 1:
                self.disabled = self.stats.unavailable_reason  # kept in the spool for a later run
                return 0
            self.batch_max_bytes = max(1, min(self.batch_max_bytes, _raw_size(batch) // 2))
            handled = 0
            while handled < len(batch) and not self.disabled:  # the same lines, in smaller batches
                part = self._take_batch(batch[handled:])
                done = self._send(part)
                handled += done
                if done < len(part):
                    break
            return handled
        if outcome != "rejected":
            return 0
        if len(batch) == 1 or self._splits >= MAX_SPLITS:
            self.stats.dropped += len(batch)
            return len(batch)
        self._splits += 1  # find the offending lines, deliver the rest (Loki dedups exact repeats)
        mid = len(batch) // 2
        first = self._send(batch[:mid])
        return first if first < mid else mid + self._send(batch[mid:])

    def _push(self, batch: list[Entry]) -> str:
        """One batch with retries: ok | rejected | too_large | unavailable."""
        body = build_body(batch)
        headers = {"Content-Type": "application/json", "User-Agent": f"borgwatch/{__version__}",
                   **self.headers}
        if self.use_gzip:
            body = gzip.compress(body, compresslevel=6)
            headers["Content-Encoding"] = "gzip"
        attempt = 0
        while True:
            remaining = self.budget.remaining()
            if remaining <= 0.01:
                self.stats.unavailable_reason = self.stats.unavailable_reason or "time budget used up"
                return "unavailable"
            status, text, retry_after = self._post(body, headers, remaining)
            if status in (200, 204):
                return "ok"
            self.stats.failures += 1
            if status == 413:
                self.stats.unavailable_reason = self.redact(
                    f"HTTP 413 for a {len(body)}-byte push of {len(batch)} line(s) (a body size limit, "
                    f"e.g. a proxy's): {text}")
                if not self._warned_413:
                    self._warned_413 = True
                    log.warning("Loki answered 413 (body too large) to %d bytes: sending smaller batches; "
                                "raise the proxy's body limit or lower [loki] batch_max_bytes", len(body))
                return "too_large"
            if status == 400:
                if not self.stats.rejected_reason:
                    self.stats.rejected_reason = self.redact(f"HTTP {status}: {text}")
                    log.warning("Loki rejected %d log line(s), not retried: %s", len(batch),
                                self.stats.rejected_reason)
                return "rejected"
            reason = self.redact(f"HTTP {status}: {text}" if isinstance(status, int) else text)
            self.stats.unavailable_reason = reason
            if status == "timeout" or (isinstance(status, int) and status not in (429,) and status < 500):
                self.disabled = reason  # a hung Loki or a config/auth problem will not heal within the run
                return "unavailable"
            delay = BACKOFF_BASE * 2**attempt
            if retry_after is not None:
                delay = max(delay, retry_after)
            if attempt >= self.retries or delay >= self.budget.remaining():
                self.disabled = reason  # keep the rest of the run fast; the spool goes next run
                return "unavailable"
            with self.budget.spending():
                time.sleep(delay)
            attempt += 1

    def _post(self, body: bytes, headers: dict[str, str],
              remaining: float) -> tuple[int | str, str, float | None]:
        """One POST under a total deadline. requests' timeouts bound each socket operation only, so a
        server answering a byte a second would hold the run for as long as it likes: the request runs in
        a daemon thread that is abandoned (its lines stay pending) when the deadline passes."""
        timeout = (min(self.connect_timeout, remaining), min(self.read_timeout, remaining))
        deadline = min(remaining, self.connect_timeout + self.read_timeout)
        answer: list[tuple[int | str, str, float | None]] = []
        worker = threading.Thread(target=lambda: answer.append(self._request(body, headers, timeout)),
                                  name="borgwatch-loki-push", daemon=True)
        with self.budget.spending():
            worker.start()
            worker.join(deadline)
        if answer:
            return answer[0]
        return "timeout", f"no complete answer within {deadline:.1f}s (Loki answers too slowly)", None

    def _request(self, body: bytes, headers: dict[str, str],
                 timeout: tuple[float, float]) -> tuple[int | str, str, float | None]:
        try:
            resp = self.session.post(self.url, data=body, headers=headers, timeout=timeout, verify=self.verify,
                                     stream=True)  # only the first bytes of an answer are read
        except requests.Timeout as exc:
            kind = "connect" if isinstance(exc, requests.ConnectTimeout) else "read"
            return "timeout", f"no answer within the {kind} timeout ({timeout[1]:.1f}s)", None
        except Exception as exc:  # noqa: BLE001 - runs in a thread: an escape would print a traceback
            return "connection", f"connection failed: {type(exc).__name__}: {_root(exc)}", None
        try:
            text = " ".join(next(resp.iter_content(600), b"").decode("utf-8", "replace")[:300].split())
        except requests.RequestException:
            text = ""
        retry_after = None
        with contextlib.suppress(TypeError, ValueError):
            retry_after = float(resp.headers.get("Retry-After", ""))
        resp.close()
        return resp.status_code, text, retry_after


def _raw_size(batch: list[Entry]) -> int:
    return sum(len(e.line) + len(e.ts) + 8 for e in batch)


def _root(exc: BaseException) -> str:
    while exc.__context__ is not None and exc.__context__ is not exc:
        exc = exc.__context__
    return str(exc)[:200]
