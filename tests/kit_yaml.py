"""A small YAML-subset reader for the ops kit tests (the venv has no PyYAML).

Handles what the kit files use: block mappings and sequences, ``|``/``>`` block scalars (with ``-``),
quoted and plain scalars, flow lists/maps and comments. Scalars stay strings. Anything it cannot
read raises ValueError, so a test fails loudly instead of passing on a misread file.
"""

from __future__ import annotations

import re
from typing import Any

_KEY = re.compile(r"""^("(?:[^"\\]|\\.)*"|'(?:[^']|'')*'|[^'"\[{#][^:#]*?)\s*:(?:\s+|$)(.*)$""")


def _strip_comment(text: str) -> str:
    quote = ""
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"" and (i == 0 or text[i - 1] in " [{,:"):
            quote = ch
        elif ch == "#" and (i == 0 or text[i - 1] in " \t"):
            return text[:i].rstrip()
    return text.rstrip()


def _unquote(text: str) -> str:
    if text.startswith('"'):
        return bytes(text[1:-1], "utf-8").decode("unicode_escape").encode("latin-1").decode("utf-8")
    if text.startswith("'"):
        return text[1:-1].replace("''", "'")
    return text


class _Flow:
    def __init__(self, text: str) -> None:
        self.s, self.i = text, 0

    def ws(self) -> None:
        while self.i < len(self.s) and self.s[self.i] in " \t":
            self.i += 1

    def value(self, stops: str) -> Any:
        self.ws()
        ch = self.s[self.i]
        if ch == "[":
            self.i += 1
            out: list[Any] = []
            while True:
                self.ws()
                if self.s[self.i] == "]":
                    self.i += 1
                    return out
                out.append(self.value(",]"))
                self.ws()
                if self.s[self.i] == ",":
                    self.i += 1
        if ch == "{":
            self.i += 1
            obj: dict[str, Any] = {}
            while True:
                self.ws()
                if self.s[self.i] == "}":
                    self.i += 1
                    return obj
                key = self.value(":")
                self.ws()
                if self.s[self.i] != ":":
                    raise ValueError(f"flow map without ':' in {self.s!r}")
                self.i += 1
                obj[key] = self.value(",}")
                self.ws()
                if self.s[self.i] == ",":
                    self.i += 1
        if ch in "'\"":
            m = re.compile(r'"(?:[^"\\]|\\.)*"' if ch == '"' else r"'(?:[^']|'')*'").match(self.s, self.i)
            if not m:
                raise ValueError(f"unterminated quote in {self.s!r}")
            self.i = m.end()
            return _unquote(m.group())
        start = self.i
        while self.i < len(self.s) and self.s[self.i] not in stops:
            if self.s[self.i] == ":" and ":" in stops and self.s[self.i + 1 : self.i + 2] not in (" ", ""):
                self.i += 1
                continue
            self.i += 1
        return self.s[start : self.i].strip()


def _scalar(text: str) -> Any:
    if text[:1] in "[{":
        flow = _Flow(text)
        value = flow.value("")
        if flow.s[flow.i :].strip():
            raise ValueError(f"trailing text after flow value: {text!r}")
        return value
    if text[:1] in "'\"":
        return _unquote(text)
    return text


class _Reader:
    def __init__(self, text: str) -> None:
        self.raw = text.splitlines()
        self.i = 0

    def _next(self) -> tuple[int, str] | None:
        """Skip blank and comment lines; return (indent, content) of the next line."""
        while self.i < len(self.raw):
            line = self.raw[self.i]
            content = _strip_comment(line.lstrip(" "))
            if content and content != "---":
                return len(line) - len(line.lstrip(" ")), content
            self.i += 1
        return None

    def block(self, indent: int) -> Any:
        nxt = self._next()
        if nxt is None:
            return None
        ind, content = nxt
        if content == "-" or content.startswith("- "):
            return self._seq(ind)
        return self._map(ind)

    def _seq(self, indent: int) -> list[Any]:
        out: list[Any] = []
        while (nxt := self._next()) and nxt[0] == indent and (nxt[1] == "-" or nxt[1].startswith("- ")):
            rest = nxt[1][2:].strip() if nxt[1] != "-" else ""
            if not rest:
                self.i += 1
                out.append(self.block(indent + 1))
            elif rest[0] not in "[{" and _KEY.match(rest):
                # "- key: value" opens a mapping indented past the dash
                self.raw[self.i] = " " * (indent + 2) + rest
                out.append(self._map(indent + 2))
            else:
                self.i += 1
                out.append(_scalar(rest))
        return out

    def _map(self, indent: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        while (nxt := self._next()) and nxt[0] == indent and not nxt[1].startswith("- "):
            m = _KEY.match(nxt[1])
            if not m:
                raise ValueError(f"line {self.i + 1}: expected 'key: value', got {nxt[1]!r}")
            key, rest = _unquote(m.group(1).strip()), m.group(2).strip()
            self.i += 1
            if rest and rest[0] in "|>":
                out[key] = self._block_scalar(indent, rest)
            elif rest:
                out[key] = _scalar(rest)
            else:
                after = self._next()
                if after and (after[0] > indent or (after[0] == indent and after[1].startswith("- "))):
                    out[key] = self.block(after[0])
                else:
                    out[key] = None
        if (nxt := self._next()) and nxt[0] > indent:
            raise ValueError(f"line {self.i + 1}: unexpected indentation")
        return out

    def _block_scalar(self, indent: int, header: str) -> str:
        lines: list[str] = []
        while self.i < len(self.raw):
            line = self.raw[self.i]
            if line.strip() and len(line) - len(line.lstrip(" ")) <= indent:
                break
            lines.append(line)
            self.i += 1
        while lines and not lines[-1].strip():
            lines.pop()
        body = [ln for ln in lines if ln.strip()]
        cut = min((len(ln) - len(ln.lstrip(" ")) for ln in body), default=0)
        lines = [ln[cut:] for ln in lines]
        if header[0] == "|":
            text = "\n".join(lines)
        else:
            text = re.sub(r"(?<!\n)\n(?!\n)", " ", "\n".join(lines)).replace("\n\n", "\n")
        return text if header.endswith("-") else text + "\n"


def load(text: str) -> Any:
    """Parse ``text`` (one document) into dicts, lists and strings."""
    reader = _Reader(text)
    value = reader.block(0)
    if reader._next() is not None:
        raise ValueError(f"line {reader.i + 1}: trailing content not parsed")
    return value
