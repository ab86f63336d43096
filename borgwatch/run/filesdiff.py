"""The files-cache diff of one run: what the create and diff stages share (recording, sealing, reconciling).

During create every ``--list --filter=AMEhC`` line is recorded with the file's lstat, taken when borg
announces the file (it prints the status before reading); after a committed create, borg's files cache
(age-0 entries) joins them in this run's snapshot, and the counts must reconcile with borg's ``nfiles``
before the snapshot may vouch for anything.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from borgwatch.borg.filescache import FilesCacheError, locate, read_entries
from borgwatch.borg.version import BorgVersion
from borgwatch.dataset.snapshot import Snapshot, SnapshotDiff, diff


class FilesCacheRun:
    def __init__(self, path: Path, mtime_mode: bool = False) -> None:
        self.snapshot = Snapshot.create(path)
        self.mtime_mode = mtime_mode
        self.followers = 0

    def record(self, status: str, path: str) -> None:
        raw = os.fsencode(path)
        try:
            st: os.stat_result | None = os.lstat(raw)
        except OSError:
            st = None
        cmtime = None if st is None else (st.st_mtime_ns if self.mtime_mode else st.st_ctime_ns)
        if status == "h":
            self.followers += 1
        self.snapshot.add_listed(status, raw, st, cmtime)

    def seal(self, create_stdout: bytes, env: Mapping[str, str], version: BorgVersion | None, nfiles: int) -> str:
        """Join borg's files cache; returns why this snapshot cannot vouch for the run ("" when it can)."""
        try:
            self.snapshot.add_cached(read_entries(locate(create_stdout, env, version)))
        except FilesCacheError as exc:
            self.snapshot.seal()
            return str(exc)
        self.snapshot.seal()
        # borg counts a hard-linked inode once; the snapshot counts every name
        accounted = self.snapshot.files() - self.snapshot.count("SELECT count(*) FROM listed WHERE regular AND "
                                                                "status = 'h'")
        if accounted != nfiles:
            return (f"borg's files cache and listing account for {accounted} files, borg archived {nfiles} "
                    "(a file borg did not memorize, a special file, or a cache another borg rewrote)")
        return ""

    def diff(self, previous: Path) -> SnapshotDiff | None:
        """Against the previous run's snapshot; None when there is none."""
        prev = Snapshot.open(previous)
        if prev is None:
            return None
        try:
            return diff(prev, self.snapshot)
        finally:
            prev.close()
