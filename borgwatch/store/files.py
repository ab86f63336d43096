"""Every file borgwatch creates, replaces or reads back goes through here.

borgwatch usually runs as root and writes into directories other users may be able to reach (a
world-writable textfile dir, a state_dir created under umask 000 by an older version). So: files are
created with explicit modes and never through a symlink, temp files get unpredictable names (O_EXCL) and
are removed whatever happens, directories are created with explicit modes whatever the umask, and files
read back are opened without following symlinks or blocking, and only when they are small regular files
of our own.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
from pathlib import Path

from borgwatch.errors import UserError

STATE_DIR_MODE = 0o700  # state holds repository URLs, archive names and spooled logs: owner only
NOFOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC
TEMP_SUFFIX = ".tmp"
# mkstemp's random part: 8 characters of [a-z0-9_]; a temp name is ".<target name>.<random>.tmp"
_RANDOM = r"[a-z0-9_]{8}"


def make_dirs(path: Path, mode: int = STATE_DIR_MODE, parent_mode: int = 0o755) -> None:
    """mkdir -p with explicit modes (the umask cannot widen or narrow them); existing dirs are left alone."""
    missing: list[Path] = []
    probe = path
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):
            os.mkdir(directory, 0o700)
            os.chmod(directory, mode if directory == path else parent_mode)


def check_private_dir(path: Path, what: str) -> None:
    """Refuse a directory other users could plant files in (a symlink there makes root overwrite any file)."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise UserError(f"cannot use {what} {path}: {exc.strerror}; create it or set {what}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise UserError(f"{what} {path} is not a directory; point {what} at a directory")
    if st.st_uid not in (os.geteuid(), 0):
        raise UserError(f"{what} {path} belongs to uid {st.st_uid}, not to borgwatch's user or root; "
                        f"chown it to the user borgwatch runs as")
    if st.st_mode & 0o022:
        raise UserError(f"{what} {path} is writable by other users (mode {stat.S_IMODE(st.st_mode):04o}); "
                        f"run `chmod go-w {path}` (borgwatch creates it {STATE_DIR_MODE:04o})")


def open_nofollow(path: Path, flags: int, mode: int = 0o600) -> int:
    """os.open that fails (ELOOP) on a symlink; a created file gets exactly ``mode``."""
    fd = os.open(path, flags | NOFOLLOW, mode)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(f"{path} is not a regular file")
        if flags & os.O_CREAT and st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) != mode:
            os.fchmod(fd, mode)
    except BaseException:
        os.close(fd)
        raise
    return fd


def atomic_write(path: Path, data: bytes, mode: int = 0o600, durable: bool = True) -> None:
    """Replace ``path``: temp file (O_EXCL, never through a symlink, not matching ``*.prom``) in the same
    dir, exact ``mode``, rename. The temp file never outlives a failure, and no reader ever sees a torn file:
    the rename is atomic, so a killed writer leaves the old file (and a temp the next write removes).

    ``durable``: the file survives a power loss once this returns: its data is fsynced before the rename
    (else a crash could leave the new name with no data) and the dir after it (else the rename itself may be
    lost). Files that the next run rewrites anyway (the textfile, caches) need neither: two fsyncs, up to
    tens of ms each on a busy disk, are the largest cost left after borg exits."""
    import tempfile  # here: the first write comes once borg runs, and tempfile imports random (~2 ms)

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fchmod(fh.fileno(), mode)
            if durable:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(path.parent)


def remove_stale_temps(path: Path) -> int:
    """Remove temp files of ``path`` left by a killed writer (call while holding the job's lock).

    Matches exactly ``.<name>.<8 random>.tmp`` (and the suffix-less names borgwatch used before), so
    another job whose name starts with this one's is never touched. Only our own regular files go."""
    pattern = re.compile(rf"\.{re.escape(path.name)}\.{_RANDOM}(?:{re.escape(TEMP_SUFFIX)})?")
    removed = 0
    try:
        names = os.listdir(path.parent)
    except OSError:
        return 0
    for name in names:
        if not pattern.fullmatch(name):
            continue
        candidate = path.parent / name
        with contextlib.suppress(OSError):
            st = os.lstat(candidate)
            if stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid():
                candidate.unlink()
                removed += 1
    return removed


def read_own_file(path: Path, limit: int) -> bytes | None:
    """The content of ``path`` if it is a regular file of ours, not a symlink or a hard link to another
    file, and at most ``limit`` bytes; else None. Never blocks (a planted FIFO) and never reads more than
    ``limit`` + 1 bytes (a symlink to /dev/zero)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | NOFOLLOW)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if (not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_nlink != 1
                or st.st_size > limit):
            return None
        chunks, size = [], 0
        while size <= limit and (chunk := os.read(fd, min(65536, limit + 1 - size))):
            chunks.append(chunk)
            size += len(chunk)
        return None if size > limit else b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(fd)


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (best effort)."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
