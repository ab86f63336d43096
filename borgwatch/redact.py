"""Keeps secrets out of every output: passphrases, tokens, passwords and credentials in URLs."""

from __future__ import annotations

import re

_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<cred>[^/@\s]+)@")
MASK = "***"


class Redactor:
    """Replaces known secret strings and URL user:password parts with ***."""

    def __init__(self, secrets: list[str] | None = None) -> None:
        self._secrets: list[str] = []
        for s in secrets or []:
            self.add(s)

    def add(self, secret: str | None) -> None:
        if secret and len(secret) >= 3 and secret not in self._secrets:
            self._secrets.append(secret)
            self._secrets.sort(key=len, reverse=True)

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
