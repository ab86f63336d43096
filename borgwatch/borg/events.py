"""Borg's --log-json stderr stream, parsed one line at a time in constant memory.

Not every line is JSON (argparse errors, getpass prompts that share a line with the next JSON object,
SIGUSR2 dumps): such text becomes a ``Text`` record. ``file_status`` lines, one per item, take a
fast path that avoids json.loads for the common case.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

_FILE_STATUS_PREFIX = b'{"type": "file_status", "status": "'
_PATH_SEP = b'", "path": "'
_PREFIX_LEN = len(_FILE_STATUS_PREFIX)


@dataclass(slots=True)
class FileStatus:
    status: str
    path: str


@dataclass(slots=True)
class LogMessage:
    level: str  # DEBUG … CRITICAL
    message: str
    msgid: str
    name: str
    time: float | None


@dataclass(slots=True)
class Progress:
    data: dict[str, Any]


@dataclass(slots=True)
class Prompt:
    msgid: str
    message: str
    kind: str


@dataclass(slots=True)
class Text:
    text: str


Event = FileStatus | LogMessage | Progress | Prompt | Text


def parse_line(raw: bytes) -> Event | None:
    """One stderr line (with or without the newline) -> a typed record, or None for blank lines."""
    if raw.startswith(_FILE_STATUS_PREFIX):
        fast = _fast_file_status(raw)
        if fast is not None:
            return fast
    line = raw.decode("utf-8", "surrogateescape").strip()
    if not line:
        return None
    obj = _loads(line)
    if obj is None:
        brace = line.find("{")
        if brace > 0:  # e.g. a getpass prompt followed by JSON on the same line
            obj = _loads(line[brace:])
            if obj is not None:
                return _from_obj(obj)
        return Text(line)
    return _from_obj(obj)


def _loads(line: str) -> dict[str, Any] | None:
    if not line.startswith("{"):
        return None
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def _fast_file_status(raw: bytes) -> FileStatus | None:
    # {"type": "file_status", "status": "A", "path": "src/x"}
    line = raw.rstrip(b"\r\n")
    if line[_PREFIX_LEN + 1:_PREFIX_LEN + 1 + len(_PATH_SEP)] != _PATH_SEP or not line.endswith(b'"}'):
        return None
    path = line[_PREFIX_LEN + 1 + len(_PATH_SEP):-2]
    if b"\\" in path or b'"' in path:
        return None  # escapes: let json decode it
    return FileStatus(chr(line[_PREFIX_LEN]), path.decode("utf-8", "surrogateescape"))


def _from_obj(obj: dict[str, Any]) -> Event:
    kind = obj.get("type")
    if kind == "file_status":
        return FileStatus(str(obj.get("status", "?")), str(obj.get("path", "")))
    if kind == "log_message":
        return LogMessage(str(obj.get("levelname", "INFO")), str(obj.get("message", "")),
                          str(obj.get("msgid") or ""), str(obj.get("name", "")), obj.get("time"))
    if kind in ("archive_progress", "progress_message", "progress_percent"):
        return Progress(obj)
    if isinstance(kind, str) and kind.startswith("question_"):
        return Prompt(str(obj.get("msgid", "")), str(obj.get("message", "")), kind)
    return Text(json.dumps(obj))


def msgid_suffix(msgid: str) -> str:
    """'Repository.DoesNotExist' -> 'DoesNotExist' (borg 2 dropped some prefixes)."""
    return msgid.rsplit(".", 1)[-1]
