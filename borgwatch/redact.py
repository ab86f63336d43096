"""Keeps secrets out of every output: passphrases, tokens, passwords and credentials in URLs."""

from __future__ import annotations

import re
from typing import BinaryIO

# the scheme's length is bounded: unbounded, a 100 kB word without "://" costs quadratic time (seconds)
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]{0,31}://)(?P<cred>[^/@\s]+)@")
MASK = "***"


class Redactor:
    """Replaces known secret strings and URL user:password parts with ***."""

    def __init__(self, secrets: list[str] | None = None) -> None:
        self._secrets: list[str] = []
        for s in secrets or []:
            self.add(s)

    def add(self, secret: str | None) -> None:
        if secret and len(secret) >= 3 and secret not in self._secrets:
            # a new list, swapped in whole: a sink thread may add while the run thread redacts
            self._secrets = sorted([*self._secrets, secret], key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return strip_url_credentials(text)


def strip_url_credentials(text: str) -> str:
    """ssh://user:pw@host/repo -> ssh://user:***@host/repo; a bare user@ is kept (not a secret)."""

    def repl(m: re.Match[str]) -> str:
        cred = m.group("cred")
        if ":" in cred:
            user = cred.split(":", 1)[0]
            return f"{m.group('scheme')}{user}:{MASK}@"
        return m.group(0)

    return _URL_CREDENTIALS.sub(repl, text)


def url_passwords(args: list[str]) -> list[str]:
    """The passwords of URLs among ``args`` (ssh://user:pw@host/…), to redact them in any form."""
    found = []
    for arg in args:
        for m in _URL_CREDENTIALS.finditer(arg):
            user, sep, password = m.group("cred").partition(":")
            if sep and password:
                found.append(password)
    return found


class RedactingWriter:
    """A binary stream wrapper that redacts what passes through it, line by line.

    A line is held until its newline (or carriage return), so a secret split across two writes is still
    found; a partial line that looks like a prompt (ends in ": ", "? " or "] ") is written at once so the
    user sees it."""

    PROMPT_ENDS = (b": ", b"? ", b"] ")

    def __init__(self, stream: BinaryIO, redact: Redactor) -> None:
        self.stream = stream
        self.redact = redact
        self._pending = b""

    def write(self, data: bytes) -> int:
        text = self._pending + data
        cut = max(text.rfind(b"\n"), text.rfind(b"\r")) + 1  # --progress ends its lines with \r
        if cut:
            self.stream.write(self._clean(text[:cut]))
        tail = text[cut:]
        if tail.endswith(self.PROMPT_ENDS):
            self.stream.write(self._clean(tail))
            tail = b""
        self._pending = tail
        return len(data)

    def flush(self) -> None:
        self.stream.flush()

    def close(self) -> None:
        if self._pending:
            self.stream.write(self._clean(self._pending))
            self._pending = b""
        self.stream.flush()

    def _clean(self, data: bytes) -> bytes:
        return self.redact(data.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape")
