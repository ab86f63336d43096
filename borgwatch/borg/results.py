"""Borg's result formats -> model objects; which fields a version has is asked of ``feature.py``."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

from borgwatch.borg.argv import archive_id
from borgwatch.borg.feature import Feature, available
from borgwatch.borg.version import BorgVersion
from borgwatch.model import ArchiveStats, RepositoryStats

_PRUNE_LINE = re.compile(r"^(Keeping|Pruning|Would prune)\b")


def parse_create_json(stdout: bytes, version: BorgVersion | None = None
                      ) -> tuple[ArchiveStats | None, RepositoryStats | None]:
    """``borg create --json`` prints one object, and only when an archive was committed. A size this
    borg does not report (2.0: compressed size, repository totals) stays None: absent, not zero."""
    text = stdout.decode("utf-8", "replace").strip()
    if not text:
        return None, None
    try:
        data: dict[str, Any] = json.loads(text)
    except ValueError:
        return None, None
    archive = data.get("archive") or {}
    stats = archive.get("stats") or {}
    store = stats.get("store_stats") or {}
    version = version or _writer(stats)
    archive_stats = ArchiveStats(
        name=str(archive.get("name", "")),
        id=str(archive.get("id", "")),
        original_bytes=int(stats.get("original_size", 0)),
        compressed_bytes=_int(stats.get("compressed_size")) if available(Feature.COMPRESSED_SIZE, version) else None,
        deduplicated_bytes=_int(stats.get("deduplicated_size") if available(Feature.DEDUPLICATED_SIZE, version)
                                # 2.0: the bytes it stored in the repository are the closest equivalent
                                else store.get("backend_store_volume")),
        files=int(stats.get("nfiles", 0)),
        duration_seconds=float(archive.get("duration", 0.0)),
    )
    cache = (data.get("cache") or {}).get("stats")
    repo_stats = None
    if cache and available(Feature.REPOSITORY_TOTALS, version):
        repo_stats = RepositoryStats(
            unique_bytes=_int(cache.get("unique_size")),
            unique_compressed_bytes=_int(cache.get("unique_csize")),
            total_bytes=_int(cache.get("total_size")),
            total_compressed_bytes=_int(cache.get("total_csize")),
            total_chunks=_int(cache.get("total_chunks")),
            unique_chunks=_int(cache.get("total_unique_chunks")),
        )
    return archive_stats, repo_stats


def files_stats(stdout: bytes, version: BorgVersion | None = None) -> dict[str, int] | None:
    """``create --json`` of 2.0 -> items per status letter (``{"A": 3, "M": 1, "U": 9, "d": 1}``);
    None where borg has no such count (1.x: count the ``--list`` file_status events instead)."""
    if not available(Feature.FILES_STATS, version):
        return None
    try:
        counts = json.loads(stdout)["archive"]["stats"]["files_stats"]
    except (ValueError, KeyError, TypeError):
        return None
    return {str(k): int(v) for k, v in counts.items()} if isinstance(counts, dict) else None


# Stands for "some 2.0 beta" when a caller names no version: the document's own shape tells.
_BORG2 = BorgVersion(2, 0, 0, "2.0.0b23")


def _writer(stats: dict[str, Any]) -> BorgVersion | None:
    """The dialect of a ``create --json`` stats object whose borg version the caller did not name."""
    if "files_stats" in stats or ("store_stats" in stats and "deduplicated_size" not in stats):
        return _BORG2
    return None


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def prune_action(message: str) -> str | None:
    """A ``borg prune --list`` line -> 'kept' | 'pruned' | None (column widths differ by version)."""
    m = _PRUNE_LINE.match(message)
    if not m:
        return None
    return "kept" if m.group(1) == "Keeping" else "pruned"


def diff_changed_content(obj: dict[str, Any]) -> bool:
    """A ``borg diff --json-lines --content-only`` record -> did the file's content change?

    1.2 also reports metadata-only changes as ``modified`` with 0 bytes added/removed; 1.4 drops them.
    """
    for change in obj.get("changes", ()):
        kind = change.get("type", "")
        if kind == "modified":
            if "added" not in change or change.get("added") or change.get("removed"):
                return True
        elif kind in ("added", "removed", "changed link", "changed type"):
            return True
    return False


def archive_names(stdout: bytes, version: BorgVersion | None = None) -> list[str] | None:
    """``borg list --json`` of a repository -> archive names in borg's (time) order (2.0: ``aid:ID``, as the
    archives of a series share their name); None when the output is not a listing."""
    series = available(Feature.ARCHIVE_SERIES, version)
    try:
        return [archive_id(str(a["id"])) if series else str(a["name"])
                for a in json.loads(stdout or b"{}").get("archives") or []]
    except (ValueError, AttributeError, KeyError, TypeError):
        return None


def diff_verdicts(lines: Iterable[bytes]) -> Iterator[tuple[str, str]]:
    """``borg diff --json-lines`` lines -> (archive path, "added" | "removed" | "modified") of the regular
    files whose existence or content changed (without ``--content-only``: a type change is a mode change).
    Streamed: a full diff of a big tree never sits in memory."""
    for line in lines:
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        changes = [c for c in obj.get("changes", ()) if isinstance(c, dict)]
        kinds = {str(c.get("type", "")) for c in changes}
        # a regular file where a directory (symlink, FIFO) was, or the reverse: only a mode change to borg,
        # and none at all with --content-only
        retyped = [(str(c.get("old_mode", " "))[:1], str(c.get("new_mode", " "))[:1]) for c in changes
                   if c.get("type") == "mode"]
        retyped += [(str(c.get("item1", " "))[:1], str(c.get("item2", " "))[:1]) for c in changes
                    if c.get("type") == "changed type"]  # borg 2
        if "added" in kinds or "removed" in kinds:
            yield str(obj.get("path", "")), "added" if "added" in kinds else "removed"
        elif retyped and retyped[0][0] != retyped[0][1] and "-" in retyped[0]:
            yield str(obj.get("path", "")), "added" if retyped[0][1] == "-" else "removed"
        elif diff_changed_content(obj):
            yield str(obj.get("path", "")), "modified"


# borg 2's prune says this at WARNING level after every prune that deleted something (rc 0): advice
_ADVICE = ('Done. Run "borg compact" to free space.',)


def problem_level(level: str, logger: str, message: str = "") -> str | None:
    """A ``--log-json`` message's level and logger -> "warning" | "error" | None (not a problem).
    borg.output.* carries --show-rc / --stats / --list text, which mirror the real messages."""
    if logger.startswith("borg.output.") or level not in ("WARNING", "ERROR", "CRITICAL"):
        return None
    if level == "WARNING" and message.strip() in _ADVICE:
        return None
    return "warning" if level == "WARNING" else "error"


def message_path(line: str) -> str:
    """The file a borg message is about ("PATH: what went wrong"), or ""."""
    path = line.split(": ", 1)[0] if ": " in line else ""
    return path if "/" in path else ""


def is_archive_progress(data: dict[str, Any]) -> bool:
    return data.get("type") == "archive_progress"
