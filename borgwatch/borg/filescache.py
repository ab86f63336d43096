"""borg's files cache, read after a create: which regular files borg memorized, with their content chunk ids.

borg 1.2 and 1.4 keep one files cache per repository, ``<cache path>/files`` (``files.SUFFIX`` with
``BORG_FILES_CACHE_SUFFIX``; ``create --json`` names the cache path): a msgpack stream of
``(path_hash, (age, inode, size, cmtime, chunk_ids))``, bytes written as msgpack raw. ``path_hash`` is the
repository key's id hash of the absolute path, ``cmtime`` nanoseconds (ctime or mtime, per
``--files-cache``; a "bigint" bytes value where it exceeds int64). After a committed create, ``age == 0``
marks the files of that run that borg memorized, less the ones whose cmtime is not older than the newest
cmtime it memorized (``Cache.commit``); the caller accounts for those from the ``--list`` lines.

It is borg's internal format: anything this module does not recognise raises ``FilesCacheError`` (one
line), and the caller falls back to the listing method. borg 2 keeps one cache per archive series with
another entry shape: ``locate`` refuses it (``filescache_v2`` reads it).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import struct
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from borgwatch.borg.feature import Feature, available
from borgwatch.borg.version import BorgVersion

KEY_BYTES = 16  # of borg's 32-byte path hash: collisions need ~2**64 files
# The file's content identity in this repository: its one chunk id (a keyed 256-bit MAC) cut to 16 bytes, or the
# blake2b of its ordered chunk ids. A change read as no change needs a 2**-128 coincidence per modified file.
DIGEST_BYTES = 16
READ_SIZE = 1 << 16
AGED_KEYS = 1 << 16  # older entries' keys kept for the caller (~3 MB); past this many it cannot rely on them

# key, content digest, inode, size, cmtime_ns
Entry = tuple[bytes, bytes, int, int, int]


class FilesCacheError(Exception):
    """The files cache cannot vouch for this run (``str()`` is one line saying why)."""


def cache_name(env: Mapping[str, str]) -> str:
    suffix = env.get("BORG_FILES_CACHE_SUFFIX", "")
    return f"files.{suffix}" if suffix else "files"


def locate(create_stdout: bytes, env: Mapping[str, str], version: BorgVersion | None) -> Path:
    """The files cache the create that printed ``create_stdout`` (``--json``) saved, with borg's environment."""
    if version is not None and not available(Feature.FILES_CACHE_V1, version):
        raise FilesCacheError(f"borg {version.text} keeps a files cache per archive series, which this "
                              "reader does not read")
    try:
        data: dict[str, Any] = json.loads(create_stdout)
        cache_path, repo_id = data["cache"]["path"], data["repository"]["id"]
    except (ValueError, KeyError, TypeError):
        raise FilesCacheError("borg create --json names no cache path") from None
    if not isinstance(cache_path, str) or not isinstance(repo_id, str) or not cache_path:
        raise FilesCacheError("borg create --json names no cache path")
    return Path(cache_path) / cache_name(env)


def open_cache(path: Path) -> BinaryIO:
    """A file of borg's cache for reading: a regular file, or ``FilesCacheError``. borg replaces its files by a
    rename, so a symlink there is planted (never followed), and a FIFO there must not block the run."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise FilesCacheError(f"borg's cache file {path} is not a regular file")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_entries(path: Path, max_age: int = 0, aged: list[bytes] | None = None) -> Iterator[Entry]:
    """Stream the entries of age ≤ ``max_age``; one tuple at a time, nothing kept. ``aged`` collects the keys
    of the older entries (after a create: paths that run did not visit), up to ``AGED_KEYS`` of them.

    This is the one loop per entry (100k entries: ~60 ms of CPU, msgpack's own part ~20 ms), so every type is
    checked by one ``struct`` call, and only the chunk-id lists of files of several chunks are hashed."""
    import msgpack  # borg's own dependency; only the files-cache diff needs it

    check = struct.Struct("<32s16sQQQq").pack  # path hash, digest, age, inode, size, cmtime: raises on others
    blake2b = hashlib.blake2b
    try:
        with open_cache(path) as fd:
            unpacker = msgpack.Unpacker(fd, raw=True, use_list=False, read_size=READ_SIZE, strict_map_key=False)
            for item in unpacker:
                try:
                    path_hash, (age, inode, size, cmtime, chunk_ids) = item
                except (TypeError, ValueError):
                    raise ValueError("an entry is not (path_hash, (age, inode, size, cmtime, chunk_ids))") from None
                if age > max_age:
                    if aged is not None and len(aged) < AGED_KEYS:
                        aged.append(path_hash[:KEY_BYTES])
                    continue
                if len(chunk_ids) == 1:
                    digest = chunk_ids[0][:DIGEST_BYTES]
                else:
                    digest = blake2b(b"".join(chunk_ids), digest_size=DIGEST_BYTES).digest()
                if type(cmtime) is bytes:  # borg's bigint: little-endian two's complement beyond int64
                    if len(cmtime) < 9:
                        raise ValueError("an entry's cmtime is bytes but no bigint")
                    cmtime = int.from_bytes(cmtime, "little", signed=True)
                    check(path_hash, digest, age, inode, size, 0)
                else:
                    check(path_hash, digest, age, inode, size, cmtime)
                if len(path_hash) != 32:
                    raise ValueError("an entry has no 32-byte path hash")
                yield path_hash[:KEY_BYTES], digest, inode, size, cmtime
            if unpacker.tell() != os.fstat(fd.fileno()).st_size:  # msgpack stops silently inside a cut entry
                raise ValueError("it ends inside an entry (truncated)")
    except FileNotFoundError:
        raise FilesCacheError(f"borg's files cache {path} does not exist (--files-cache=disabled, or another "
                              "BORG_FILES_CACHE_SUFFIX?)") from None
    except OSError as exc:
        raise FilesCacheError(f"cannot read borg's files cache {path} ({exc.strerror})") from None
    except (ValueError, TypeError, struct.error, msgpack.UnpackException) as exc:
        raise FilesCacheError(f"borg's files cache {path} is not in a format borgwatch knows ({exc})") from None
