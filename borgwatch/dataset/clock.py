"""How old a file's ctime must be to prove that nothing wrote the file since a run started.

A write sets the ctime from the clock of whoever stores the inode. A local filesystem takes it from this
kernel's clock, which lags the wall clock a run reads (``time.time_ns()``) by at most one tick (1-10 ms), and
stores it to the nanosecond: a ctime more than ``FINE_MARGIN_NS`` older than the run's start was written
before the run. Anything else gets ``COARSE_MARGIN_NS``: a network or FUSE filesystem's server clock (its
skew is the server's business), a filesystem that truncates timestamps (FAT's 2 s, an ext4 with 128-byte
inodes and its whole seconds), a ctime that is a whole multiple of 10 ms (such a granularity cannot be told
apart from a truncation), or a device this module cannot place in the mount table.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import NamedTuple

COARSE_MARGIN_NS = 1_000_000_000
FINE_MARGIN_NS = 50_000_000  # five ticks of the slowest kernel clock (HZ=100)
FINE_UNIT_NS = 10_000_000  # a ctime with digits below this comes from a nanosecond timestamp
MOUNTINFO = "/proc/self/mountinfo"
# filesystems whose timestamps this kernel writes from its own clock, to the nanosecond (or truncated to whole
# seconds, which the digit test catches); overlay is left out: its lower layers may be anything
LOCAL_CLOCK_FS = frozenset({"ext2", "ext3", "ext4", "xfs", "btrfs", "tmpfs", "zfs", "f2fs", "bcachefs", "jfs",
                            "nilfs2", "ramfs"})


class Before(NamedTuple):
    """A run's bounds: a ctime older than ``coarse`` was written before the run; so was one older than ``fine``
    with nanosecond digits (``fine == coarse`` when the run's files are not all on local-clock filesystems)."""

    coarse: int
    fine: int

    def proves(self, ctime_ns: int) -> bool:
        return ctime_ns < self.coarse or (ctime_ns < self.fine and ctime_ns % FINE_UNIT_NS != 0)


def before(started_ns: int, local_clock: bool) -> Before:
    coarse = started_ns - COARSE_MARGIN_NS
    return Before(coarse, started_ns - FINE_MARGIN_NS if local_clock else coarse)


def local_clock(devices: Iterable[int], mountinfo: str = MOUNTINFO) -> bool:
    """True when every one of ``devices`` (``st_dev``) is a mounted filesystem of ``LOCAL_CLOCK_FS``."""
    wanted = {f"{os.major(dev)}:{os.minor(dev)}" for dev in devices}
    try:
        with open(mountinfo, encoding="utf-8", errors="replace") as lines:
            local = {fields[2] for fields in map(str.split, lines) if _fs_type(fields) in LOCAL_CLOCK_FS}
    except OSError:
        return False
    return wanted <= local


def _fs_type(fields: list[str]) -> str:
    """The filesystem type of one mountinfo line: the field after the ``-`` that ends the optional fields."""
    try:
        return fields[fields.index("-", 6) + 1]
    except (ValueError, IndexError):
        return ""
