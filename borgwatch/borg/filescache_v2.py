"""borg 2's files cache, read after a create: the same ``Entry`` tuples as ``filescache.read_entries``.

borg 2.0.0b23 (``borg/cache.py``, ``FilesCacheMixin``) keeps one files cache per archive *series* in the
cache directory ``create --json`` names (``cache.path``: ``$BORG_CACHE_DIR/<repository id>``):
``files.<sha256 hex of the archive name>``, or ``files.<BORG_FILES_CACHE_SUFFIX>`` when that is set (then
every series shares it). The file is a plain msgpack stream of ``(path_hash, (age, inode, size, ctime, mtime,
((chunk_id, chunk_size), ...), digests))``: ``path_hash`` is the repository key's 32-byte id hash of the
archive path, ``ctime``/``mtime`` msgpack timestamps, ``digests`` None unless ``--digests``. Its integrity
record sits in ``<cache>/config``, section ``[integrity]``, key = the file name: SHA256 over the file name,
the content and the part name ``final`` with the length (``crypto/file_integrity.py``); it is checked here.

After a committed create, ``age == 0`` marks the regular files of the run that borg memorized, less every
entry whose ``max(ctime, mtime)`` is not older than the newest ``max(ctime, mtime)`` memorized in the run
(``_write_files_cache``; b23 passes no ``start_backup``, so the 3-second rule there is dormant). Not memorized:
the newest file(s), ``C`` (changed while read), ``h`` (later names of a hard-linked inode), special files.
When the series has no cache file, borg 2 builds one from the series' previous archive, all at age 0: a
file removed since then stays at age 0 for one run (the caller's count against ``nfiles`` catches it).

It is borg's internal format: anything this module does not recognise raises ``FilesCacheError`` (one
line), and the caller falls back to another method.
"""

from __future__ import annotations

import configparser
import hashlib
import io
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from borgwatch.borg.feature import Feature, available
from borgwatch.borg.filescache import DIGEST_BYTES, KEY_BYTES, READ_SIZE, Entry, FilesCacheError, open_cache
from borgwatch.borg.version import BorgVersion

__all__ = ["Entry", "FilesCacheError", "cache_name", "locate", "read_entries"]


def cache_name(archive: str, env: Mapping[str, str]) -> str:
    """The files cache of the series ``archive`` (``files_cache_name`` in borg 2's ``cache.py``)."""
    suffix = env.get("BORG_FILES_CACHE_SUFFIX", "")
    return f"files.{suffix or hashlib.sha256(archive.encode()).hexdigest()}"


def locate(create_stdout: bytes, env: Mapping[str, str], version: BorgVersion | None) -> Path:
    """The files cache the create that printed ``create_stdout`` (``--json``) saved, with borg's environment."""
    if version is not None and not available(Feature.FILES_CACHE_V2, version):
        raise FilesCacheError(f"borg {version.text}'s files cache is not the per-series one of borg 2.0.0b23")
    try:
        data: dict[str, Any] = json.loads(create_stdout)
        cache_path, archive = data["cache"]["path"], data["archive"]["name"]
    except (ValueError, KeyError, TypeError):
        raise FilesCacheError("borg create --json names no cache path and archive") from None
    if not (isinstance(cache_path, str) and isinstance(archive, str) and cache_path and archive):
        raise FilesCacheError("borg create --json names no cache path and archive")
    return Path(cache_path) / cache_name(archive, env)


def read_entries(path: Path, max_age: int = 0, mtime_mode: bool = False) -> Iterator[Entry]:
    """Stream the entries of age ≤ ``max_age``, one tuple at a time; the cmtime is the ctime, or the mtime
    with ``mtime_mode`` (as ``--files-cache`` compares them). The integrity check ends the stream: a damaged
    file raises after its last entry, so a caller must not trust what it read before the end."""
    import msgpack  # borg's own dependency; only the files-cache diff needs it

    try:
        with open_cache(path) as fd:
            expected = _integrity(path)
            hasher = _Hashing(fd, path.name)
            unpacker = msgpack.Unpacker(hasher, raw=True, use_list=False, read_size=READ_SIZE,
                                        strict_map_key=False, timestamp=2)
            for item in unpacker:
                entry = _entry(item, max_age, mtime_mode)
                if entry is not None:
                    yield entry
            if hasher.final() != expected:
                raise FilesCacheError(f"borg's files cache {path} fails its integrity check (damaged, or "
                                      "written without its cache config)")
    except FileNotFoundError as exc:
        raise FilesCacheError(f"borg's files cache {exc.filename} does not exist (--files-cache=disabled, "
                              "another BORG_FILES_CACHE_SUFFIX, or another archive series?)") from None
    except OSError as exc:
        raise FilesCacheError(f"cannot read borg's files cache {path} ({exc.strerror})") from None
    except (ValueError, msgpack.UnpackException) as exc:
        raise FilesCacheError(f"borg's files cache {path} is not in a format borgwatch knows ({exc})") from None


def _integrity(path: Path) -> str:
    """The SHA256 borg recorded for the cache file in ``<cache>/config`` (``[integrity]``)."""
    config = configparser.ConfigParser(interpolation=None)
    try:
        with io.TextIOWrapper(open_cache(path.parent / "config"), encoding="utf-8") as fd:
            config.read_file(fd)
    except FileNotFoundError:
        raise FilesCacheError(f"borg's cache config {path.parent / 'config'} does not exist") from None
    try:
        record = json.loads(config.get("integrity", path.name))
        if record["algorithm"] != "SHA256":
            raise ValueError(f"integrity algorithm {record['algorithm']!r}")
        final = record["digests"]["final"]
    except (configparser.Error, KeyError, TypeError) as exc:
        raise ValueError(f"no integrity record in the cache config: {exc}") from None
    if not isinstance(final, str):
        raise ValueError("the integrity record has no final digest")
    return final


class _Hashing:
    """A reader that hashes what it reads the way borg's ``IntegrityCheckedFile`` does."""

    def __init__(self, fd: BinaryIO, name: str) -> None:
        self.fd, self.length = fd, 0
        self.hash = hashlib.sha256(b"%10d" % len(name) + name.encode())

    def read(self, n: int = -1) -> bytes:
        data = self.fd.read(n)
        self.hash.update(data)
        self.length += len(data)
        return data

    def final(self) -> str:
        self.read()  # whatever follows the last whole entry is hashed too, as borg reads to the end
        self.hash.update(b"%10d" % len("final") + b"final" + str(self.length).encode())
        return self.hash.hexdigest()


def _entry(item: Any, max_age: int, mtime_mode: bool) -> Entry | None:
    try:
        path_hash, (age, inode, size, ctime, mtime, chunks, *digests) = item
    except (TypeError, ValueError):
        raise ValueError("an entry is not (path_hash, (age, inode, size, ctime, mtime, chunks, digests))") from None
    if not isinstance(path_hash, bytes) or len(path_hash) != 32 or not isinstance(age, int) or len(digests) > 1:
        raise ValueError("an entry has no 32-byte path hash, integer age and at most 7 fields")
    if age > max_age:
        return None
    if not (isinstance(inode, int) and isinstance(size, int) and isinstance(ctime, int)
            and isinstance(mtime, int) and isinstance(chunks, tuple)):
        raise ValueError("an entry has a field of an unknown type")
    ids = []
    for chunk in chunks:
        if not (isinstance(chunk, tuple) and len(chunk) == 2 and isinstance(chunk[0], bytes)
                and len(chunk[0]) == 32 and isinstance(chunk[1], int)):
            raise ValueError("a chunk is not (32-byte id, size)")
        ids.append(chunk[0])
    if sum(chunk[1] for chunk in chunks) != size:
        raise ValueError("an entry's chunk sizes do not add up to its size")
    digest = hashlib.blake2b(b"".join(ids), digest_size=DIGEST_BYTES).digest()
    return path_hash[:KEY_BYTES], digest, inode, size, mtime if mtime_mode else ctime
