"""Every borg fact a restore drill needs: argv of ``borg extract`` (chosen files, a named path, a whole
archive ``--dry-run``), ``borg list`` of an archive's files (metadata only) and of the content hashes of a
few, the job's newest archive, and the parsers of their output.

One dialect in borg 1.2.4 and 1.4 (``REPO::ARCHIVE``, local times without a zone); borg 2 (asked through
``feature.py``) takes ``--repo REPO`` and the archive as ``aid:ID`` (a name is a series of archives),
prints times with their offset and marks each item of ``extract --list`` ``+`` (restored) or ``-``."""

from __future__ import annotations

import datetime
import functools
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from borgwatch.borg.argv import archive_id, base
from borgwatch.borg.events import Event, LogMessage
from borgwatch.borg.feature import Feature, available
from borgwatch.borg.version import BorgVersion

# the content hash borg computes from the archived chunks (`borg list --format {sha256}`, 1.2 and 1.4);
# hashlib computes the same for the restored and the live file
HASH_NAME = "sha256"
LIST_LOGGER = "borg.output.list"  # `extract --list` names each item before it writes it


_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_NAIVE_EPOCH = datetime.datetime(1970, 1, 1)
_MICROSECOND = datetime.timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class ArchivedFile:
    """A regular file as borg saw it when it made the archive (times in microseconds, local clock)."""

    path: str  # archive path: the absolute source path without its leading "/"
    size: int
    mtime_us: int
    ctime_us: int


@dataclass(frozen=True, slots=True)
class Archive:
    """The archive a drill restores from: how borg commands name it, how people do, when it was made."""

    ref: str  # 1.x: its name; borg 2: aid:ID (its name is shared by the whole series)
    name: str
    time: float  # Unix time borg made it


def _on_archive(borg: str, command: str, repository: str, archive: str, lock_wait: int,
                version: BorgVersion | None, *options: str) -> list[str]:
    """``borg COMMAND OPTIONS`` on one archive: ``REPO::ARCHIVE`` (1.x) or ``--repo REPO ARCHIVE`` (2.0)."""
    if available(Feature.REPO_OPTION, version):
        return [*base(borg, command, lock_wait, repository, version), *options, archive]
    return [*base(borg, command, lock_wait), *options, f"{repository}::{archive}"]


def list_files(borg: str, repository: str, archive: str, lock_wait: int, *,
               version: BorgVersion | None = None) -> list[str]:
    """Every item of the archive, one JSON object per line; metadata only, no file data is read. The
    keys named in --format are the ones printed (ctime is not among the defaults of 1.4)."""
    return _on_archive(borg, "list", repository, archive, lock_wait, version, "--json-lines", "--format",
                       "{type}{path}{size}{mtime}{ctime}")


def list_hashes(borg: str, repository: str, archive: str, lock_wait: int, paths: Iterable[str], *,
                version: BorgVersion | None = None) -> list[str]:
    """The content hash of the named files, computed by borg from the archive's chunks."""
    return [*_on_archive(borg, "list", repository, archive, lock_wait, version, "--format",
                         f"{{{HASH_NAME}}}{{TAB}}{{path}}{{NUL}}"), *exact_patterns(paths)]


def extract(borg: str, repository: str, archive: str, lock_wait: int, paths: Iterable[str],
            prefixes: bool = False, *, version: BorgVersion | None = None) -> list[str]:
    """Restore the named files (``prefixes``: whole subtrees) into the working directory."""
    patterns = [f"pp:{p}" for p in paths] if prefixes else exact_patterns(paths)
    return [*_on_archive(borg, "extract", repository, archive, lock_wait, version, "--list"), *patterns]


def extract_dry_run(borg: str, repository: str, archive: str, lock_wait: int, *,
                    version: BorgVersion | None = None) -> list[str]:
    """Read, decrypt and authenticate every chunk of the archive without writing anything."""
    return _on_archive(borg, "extract", repository, archive, lock_wait, version, "--dry-run")


def exact_patterns(paths: Iterable[str]) -> list[str]:
    return [f"pf:{p}" for p in paths]


def archive_path(source_path: str) -> str:
    """borg (1.x and 2.0) stores an absolute source path without its leading slash."""
    return source_path.lstrip("/")


def parse_file_line(line: bytes) -> ArchivedFile | None:
    """One line of ``list --json-lines``; None for anything but a regular file (or an unparsable line)."""
    try:
        obj = json.loads(line)
        if obj.get("type") != "-":
            return None
        return ArchivedFile(obj["path"], int(obj["size"]), _micros(obj["mtime"]), _micros(obj["ctime"]))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def parse_files(lines: Iterable[bytes]) -> Iterator[ArchivedFile]:
    for line in lines:
        item = parse_file_line(line)
        if item is not None:
            yield item


def parse_hashes(stdout: bytes) -> dict[str, str]:
    """``list_hashes`` output -> {archive path: hex digest}."""
    out: dict[str, str] = {}
    for record in stdout.split(b"\0"):
        digest, sep, path = record.lstrip(b"\n").partition(b"\t")
        if sep:
            out[path.decode("utf-8", "surrogateescape")] = digest.decode("ascii", "replace")
    return out


def find_archive(stdout: bytes, name: str | None, version: BorgVersion | None = None) -> Archive | None:
    """The archive listing (``list``/``repo-list --json``) -> the archive called ``name`` (borg 2: the
    newest of that series, or ``aid:PREFIX``), or the newest one when ``name`` is None; None when there is
    no such archive."""
    series = available(Feature.ARCHIVE_SERIES, version)
    try:
        archives = json.loads(stdout)["archives"]
        if name is not None and series and name.startswith("aid:"):
            found = [a for a in archives if a["id"].startswith(name[4:])]
        else:
            found = [a for a in archives if name is None or a["name"] == name]
        chosen = found[-1]  # borg lists oldest first
        when = _micros(chosen.get("start") or chosen["time"]) / 1e6
        return Archive(archive_id(chosen["id"]) if series else chosen["name"], chosen["name"], when)
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return None


def listed_path(event: Event, version: BorgVersion | None = None) -> str | None:
    """The item ``extract --list`` is about to write (so a failure names the file borg was reading)."""
    if not isinstance(event, LogMessage) or event.name != LIST_LOGGER:
        return None
    if available(Feature.EXTRACT_LIST_FLAGS, version):
        flag, _, path = event.message.partition(" ")
        return path if flag == "+" else None  # "-": an item the patterns leave out
    return event.message


def _micros(text: str) -> int:
    """borg 1.x times are local, without a zone, to the microsecond; borg 2 adds the offset."""
    moment = datetime.datetime.fromisoformat(text)
    if moment.tzinfo is not None:
        return (moment - _EPOCH) // _MICROSECOND
    return (moment - _NAIVE_EPOCH) // _MICROSECOND - _local_offset(text[:13])


@functools.lru_cache(maxsize=64)
def _local_offset(hour: str) -> int:
    """The local zone's offset in that hour ("YYYY-MM-DDTHH"), in microseconds (cached by the text:
    astimezone() was a quarter, and the datetime arithmetic to find the hour another quarter, of parsing
    a 100k-file listing)."""
    return datetime.datetime.fromisoformat(hour).astimezone().utcoffset() // _MICROSECOND  # type: ignore[operator]
