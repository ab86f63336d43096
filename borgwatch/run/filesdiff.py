"""The files-cache diff of one run: what the create and diff stages share (recording, sealing, reconciling).

During create every ``--list --filter=AMEhC`` line is recorded with the file's lstat, taken when borg
announces the file (borg prints the status once the file is open and fstat'ed, before reading it; an ``E``
line after it means the read failed and the file is not archived); after a committed create, borg's files
cache (age-0 entries) joins them in this run's snapshot, and the counts must reconcile with borg's ``nfiles``
before the snapshot may vouch for anything. A file borg memorized and something wrote again before the lstat
(a log appended every few milliseconds) no longer matches its cache entry: the snapshot does not reconcile.
Then borgwatch hashes the few files borg read but did not memorize (``dataset/decide.py``), and the diff
decides what the two snapshots prove without borg.

The snapshot is written beside the job's baseline (``JOB.snapshot.db.new``) and replaces it (``promote``)
only after a committed create whose snapshot reconciled: a failed or interrupted create leaves the previous
snapshot as the baseline. The snapshot names the archive it describes, so the job's own record (not the
repository, which any other borg may write) says what the next run is compared with.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Mapping
from pathlib import Path

from borgwatch.borg import filescache, filescache_v2
from borgwatch.borg.feature import Feature, available
from borgwatch.borg.filescache import FilesCacheError
from borgwatch.borg.version import BorgVersion
from borgwatch.dataset.clock import Before, before, local_clock
from borgwatch.dataset.decide import decide, decide_new, own_digests
from borgwatch.dataset.snapshot import Snapshot, SnapshotDiff, diff

ARCHIVE_KEY = "archive"  # snapshot meta: the archive the snapshot describes
STARTED_KEY = "started_ns"  # snapshot meta: before borg create started (every lstat of the run is later)
CMTIME_KEY = "cmtime"  # snapshot meta: which time the listed cmtime is (ctime, or mtime in borg's mtime mode)
CLOCK_KEY = "clock"  # snapshot meta: "local" when every listed file is on a local-clock filesystem (clock.py)


class FilesCacheRun:
    def __init__(self, path: Path, mtime_mode: bool = False) -> None:
        """``path``: the job's baseline snapshot; this run's is written beside it until ``promote``."""
        self.baseline = path
        self.path = path.with_name(path.name + ".new")
        self.snapshot = Snapshot.create(self.path)
        self.mtime_mode = mtime_mode
        try:
            self.snapshot.set_meta(STARTED_KEY, str(time.time_ns()))
            self.snapshot.set_meta(CMTIME_KEY, "mtime" if mtime_mode else "ctime")
        except BaseException:
            self.abandon()
            raise
        self.followers = 0  # h lines: later names of a hard-linked inode
        self.errors = 0  # E lines: files borg could not read
        self.aged: list[bytes] | None = None  # the keys of the files cache's older entries (borg 1.x)
        self.devices: set[int] = set()  # of the listed files: which clock wrote their ctimes

    def record(self, status: str, path: str) -> None:
        raw = os.fsencode(path)
        if status == "E":  # borg announced the file, then failed to read it: it is not in the archive
            self.errors += 1
            if self.snapshot.unlist(raw) == "h":
                self.followers -= 1
            return
        try:
            st: os.stat_result | None = os.lstat(raw)
        except OSError:
            st = None
        cmtime = None
        if st is not None:
            cmtime = st.st_mtime_ns if self.mtime_mode else st.st_ctime_ns
            self.devices.add(st.st_dev)
        if status == "h":
            self.followers += 1
        self.snapshot.add_listed(status, raw, st, cmtime)

    def seal(self, create_stdout: bytes, env: Mapping[str, str], version: BorgVersion | None, nfiles: int,
             archive: str = "") -> str:
        """Join borg's files cache (borg 2.0.0b23: the archive series' own); returns why this snapshot cannot
        vouch for the run ("" when it can). ``archive``: how later borg commands name this run's archive."""
        self.snapshot.set_meta(ARCHIVE_KEY, archive)
        self.snapshot.set_meta(CLOCK_KEY, "local" if local_clock(self.devices) else "")
        try:
            if available(Feature.FILES_CACHE_V2, version):
                entries = filescache_v2.read_entries(filescache_v2.locate(create_stdout, env, version),
                                                     mtime_mode=self.mtime_mode)
            else:
                self.aged = []
                entries = filescache.read_entries(filescache.locate(create_stdout, env, version), aged=self.aged)
            self.snapshot.add_cached(entries)
        except FilesCacheError as exc:
            self.snapshot.seal()
            return str(exc)
        self.snapshot.seal()
        accounted = self.snapshot.files()
        if not available(Feature.NFILES_EVERY_NAME, version):  # borg 1.x counts a hard-linked inode once
            accounted -= self.snapshot.followers()
        if accounted != nfiles:
            return (f"borg's files cache and listing account for {accounted} files, borg archived {nfiles} "
                    "(a file borg did not memorize, a special file, or a cache another borg rewrote)")
        if not self.mtime_mode:  # the page cache is warm: borg just read these files
            own_digests(self.snapshot, self._before())
        return ""

    def _before(self, snap: Snapshot | None = None) -> Before:
        """A run's bounds: a ctime they prove was not written during that run (``clock.py``)."""
        snap = snap or self.snapshot
        return before(int(snap.meta(STARTED_KEY) or 0), snap.meta(CLOCK_KEY) == "local")

    def names(self, nfiles: int, version: BorgVersion | None) -> int:
        """The regular file names of the archive whose create reported ``nfiles`` (1.x counts a hard-linked
        inode once: its later names are the ``h`` lines)."""
        return nfiles if available(Feature.NFILES_EVERY_NAME, version) else nfiles + self.followers

    def previous_archive(self) -> str:
        """The archive the job's baseline snapshot describes ("" when there is no usable baseline)."""
        prev = Snapshot.open(self.baseline)
        if prev is None:
            return ""
        try:
            return prev.meta(ARCHIVE_KEY) or ""
        finally:
            prev.close()

    def diff(self, previous: Path | None = None) -> SnapshotDiff | None:
        """Against the previous run's snapshot (the baseline by default); None when there is none. The
        undecided pairs the snapshots prove (``dataset/decide.py``) are decided here, the rest left to borg."""
        prev = Snapshot.open(previous or self.baseline)
        if prev is None:
            return None
        try:
            found = diff(prev, self.snapshot)
            # mtime can be put back by anyone (touch -d): only ctime, on both sides, proves a file was not written
            ctime = not self.mtime_mode and prev.meta(CMTIME_KEY) == "ctime"
            if not found.doubt and found.undecided and prev.meta(STARTED_KEY) and ctime:
                decide(previous or self.baseline, self.snapshot, found, self._before(prev), self._before())
            if not found.doubt:
                complete = self.aged is not None and len(self.aged) < filescache.AGED_KEYS
                decide_new(prev, self.snapshot, found, self.aged if complete else None)
        finally:
            prev.close()
        return found

    def promote(self) -> None:
        """This run's snapshot becomes the baseline (a rename: atomic, and a symlink there is replaced)."""
        self.snapshot.close()
        os.replace(self.path, self.baseline)

    def abandon(self, drop_baseline: bool = False) -> None:
        """This run's snapshot goes; with ``drop_baseline`` the old one too (it no longer describes the
        job's last archive, and this run's cannot replace it: the next run falls back to borg diff)."""
        self.snapshot.close()
        for victim in (self.path, *((self.baseline,) if drop_baseline else ())):
            with contextlib.suppress(OSError):  # gone already; or a directory, an immutable file: said elsewhere
                os.unlink(victim)
