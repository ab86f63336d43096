"""Borg's path syntax: how a source path is named inside an archive, and the pattern that selects it."""

from __future__ import annotations


def archive_path(path: str) -> str:
    """How borg 1.x names a source path inside the archive (absolute paths lose their leading '/')."""
    path = path.lstrip("/")
    while path.startswith("./"):
        path = path[2:]
    return path


def path_pattern(path: str) -> str:
    """A ``pf:`` (path full-match) pattern selecting exactly this source path in an archive."""
    return f"pf:{archive_path(path)}"
