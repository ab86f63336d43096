"""Verification of restored files against the live file or against what the archive promises.

A file borg saw unchanged since the archive (same size, mtime and ctime now as then) must be byte-identical
to the live file. A file changed since is compared with the content hash borg computes from the archive
itself, so a live edit is never reported as a mismatch.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from borgwatch.borg.extract import HASH_NAME, ArchivedFile

_READ = 1 << 20


@dataclass
class Verdicts:
    verified: list[ArchivedFile] = field(default_factory=list)
    mismatched: list[tuple[ArchivedFile, str]] = field(default_factory=list)
    unreadable: list[tuple[ArchivedFile, str]] = field(default_factory=list)
    # changed since the archive: (file, hash of the restored copy), to compare with the archive's hashes
    changed: list[tuple[ArchivedFile, str]] = field(default_factory=list)

    def problems(self) -> dict[str, str]:
        """One line per file that did not verify (its path and the cause) -> the file's path."""
        return {f"/{f.path}: {cause}": f"/{f.path}" for f, cause in [*self.mismatched, *self.unreadable]}


def file_hash(path: Path) -> str | None:
    """Content hash of a regular file (never through a symlink, never blocking); None if unreadable."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        digest = hashlib.new(HASH_NAME)
        while chunk := os.read(fd, _READ):
            digest.update(chunk)
        return digest.hexdigest()
    except OSError:
        return None
    finally:
        os.close(fd)


def unchanged(archived: ArchivedFile, st: os.stat_result) -> bool:
    """Whether the live file is still what borg archived (size, mtime and ctime, to the microsecond)."""
    return (stat.S_ISREG(st.st_mode) and st.st_size == archived.size
            and abs(st.st_mtime_ns // 1000 - archived.mtime_us) <= 1
            and abs(st.st_ctime_ns // 1000 - archived.ctime_us) <= 1)


def verify_restored(files: list[ArchivedFile], restore_dir: Path, failed: dict[str, str]) -> Verdicts:
    """``failed``: archive path -> why borg could not restore it (named by the extract)."""
    out = Verdicts()
    for archived in files:
        if archived.path in failed:
            out.unreadable.append((archived, failed[archived.path]))
            continue
        restored = restore_dir / archived.path
        restored_hash = file_hash(restored)
        if restored_hash is None:
            out.unreadable.append((archived, "not restored by borg extract"))
            continue
        if os.path.getsize(restored) != archived.size:
            out.mismatched.append((archived, f"restored {os.path.getsize(restored)} bytes, the archive "
                                             f"lists {archived.size}"))
            continue
        live = Path("/" + archived.path)
        try:
            before = os.lstat(live)
        except OSError:
            out.changed.append((archived, restored_hash))  # deleted since: only the archive can tell
            continue
        if not unchanged(archived, before):
            out.changed.append((archived, restored_hash))
            continue
        live_hash = file_hash(live)
        try:
            still = unchanged(archived, os.lstat(live))
        except OSError:
            still = False
        if live_hash is None or not still:  # edited while we read it: a live edit, not a mismatch
            out.changed.append((archived, restored_hash))
        elif live_hash == restored_hash:
            out.verified.append(archived)
        else:
            out.mismatched.append((archived, "restored content differs from the live file, which is "
                                             "unchanged since the archive (size, mtime, ctime)"))
    return out


def verify_against_archive(out: Verdicts, promised: dict[str, str]) -> None:
    """Settle the changed files with the hashes borg computed from the archive (``borg list``)."""
    for archived, restored_hash in out.changed:
        expected = promised.get(archived.path)
        if expected is None:
            out.unreadable.append((archived, "borg list could not read its content hash from the archive"))
        elif expected == restored_hash:
            out.verified.append(archived)
        else:
            out.mismatched.append((archived, "restored content differs from the hash the archive promises"))
    out.changed = []
