"""Which ctimes prove that nothing wrote a file since a run started: the fine bound only for nanosecond
ctimes on filesystems stamped by this kernel's clock, the coarse one for everything else."""

from __future__ import annotations

import os
from pathlib import Path

from borgwatch.dataset.clock import COARSE_MARGIN_NS, FINE_MARGIN_NS, before, local_clock

START = 1_800_000_000_123_456_789


def test_a_nanosecond_ctime_older_than_the_fine_margin_is_proven_on_a_local_clock_only() -> None:
    ctime = START - FINE_MARGIN_NS - 1_234_567
    assert before(START, local_clock=True).proves(ctime)
    assert not before(START, local_clock=False).proves(ctime)
    assert not before(START, local_clock=True).proves(START - FINE_MARGIN_NS + 7)  # inside the margin


def test_a_ctime_in_whole_ten_milliseconds_needs_the_coarse_margin() -> None:
    # a truncating filesystem (whole seconds, 10 ms units) may stamp a write after the start this far back
    truncated = (START - FINE_MARGIN_NS * 2) // 10_000_000 * 10_000_000
    assert not before(START, local_clock=True).proves(truncated)
    assert before(START, local_clock=True).proves(START - COARSE_MARGIN_NS - 10_000_000)
    assert before(START, local_clock=False).proves(START - COARSE_MARGIN_NS - 1)


def _mountinfo(tmp: Path, *lines: str) -> str:
    path = tmp / "mountinfo"
    path.write_text("".join(line + "\n" for line in lines))
    return str(path)


def test_local_clock_reads_the_mount_table(tmp_path: Path) -> None:
    table = _mountinfo(tmp_path,
                       "29 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw",
                       "30 29 0:25 / /run rw,nosuid shared:5 master:3 - tmpfs tmpfs rw",  # two optional fields
                       "31 29 0:44 / /mnt/nas rw,relatime shared:9 - nfs4 nas:/export rw,vers=4.2",
                       "32 29 0:45 / /home/u/remote rw - fuse.sshfs u@host:/ rw",
                       "33 29 0:46 / /ov rw - overlay overlay rw,lowerdir=/a,upperdir=/b")
    ext4, tmpfs, nfs, sshfs, overlay = (os.makedev(254, 0), os.makedev(0, 25), os.makedev(0, 44),
                                        os.makedev(0, 45), os.makedev(0, 46))
    assert local_clock([ext4, tmpfs], table)
    assert local_clock([], table)
    for remote in (nfs, sshfs, overlay, os.makedev(0, 99)):  # 0:99: not mounted (a btrfs subvolume's own)
        assert not local_clock([ext4, remote], table), remote
    assert not local_clock([ext4], str(tmp_path / "missing"))


def test_a_pseudo_filesystem_is_not_a_local_clock() -> None:
    st = os.lstat("/proc/self/mountinfo")
    assert not local_clock([st.st_dev])  # proc: not a filesystem of files written by anyone
