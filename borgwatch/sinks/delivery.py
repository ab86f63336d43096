"""What every network sink needs to deliver without ever holding up or failing a backup: a wall-clock
bound on a whole call, one error type whose message is free of credentials, and credentials taken out of
a configured URL."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import unquote, urlsplit, urlunsplit

from borgwatch.redact import strip_url_credentials

T = TypeVar("T")
USER_AGENT = "borgwatch"


class DeliveryError(Exception):
    """One failed delivery; the message is already free of credentials."""


def bounded_call(fn: Callable[[], T], timeout: float, what: str) -> T:
    """Run ``fn`` in a daemon thread and give up after ``timeout`` seconds of wall time.

    Socket timeouts bound each connect/read, not a server that trickles bytes or a slow DNS lookup;
    this bounds the whole call. A call that is given up keeps running in its daemon thread and is
    abandoned when the process exits.
    """
    box: dict[str, object] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - reported to the caller below
            box["error"] = exc

    thread = threading.Thread(target=target, name=f"borgwatch-{what}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise DeliveryError(f"{what}: no answer within {timeout:g} s")
    if "error" in box:
        raise DeliveryError(f"{what}: {describe_error(box['error'])}")
    return box["value"]  # type: ignore[return-value]


def describe_error(exc: object) -> str:
    import urllib.error  # (urllib.request costs ~8 ms: imported only when something is sent)

    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return f"{exc.reason}"
    if isinstance(exc, TimeoutError):
        return "timed out"
    return strip_url_credentials(f"{type(exc).__name__}: {exc}")


def split_credentials(url: str) -> tuple[str, str | None, str | None]:
    """http://user:pw@gw:9091 -> ("http://gw:9091", "user", "pw"); the caller sends Basic auth."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.username is None:
        return urlunsplit(parts), None, None
    netloc = parts.hostname or ""
    if ":" in netloc:
        netloc = f"[{netloc}]"
    if parts.port:
        netloc += f":{parts.port}"
    clean = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return clean, unquote(parts.username), unquote(parts.password or "")
