"""Every borg fact a restore drill needs: argv of ``borg extract`` (chosen files, a named path, a whole
archive ``--dry-run``), ``borg list`` of an archive's files (metadata only) and of the content hashes of a
few, the job's newest archive, and the parsers of their output. Same dialect in borg 1.2.4 and 1.4."""

from __future__ import annotations

import datetime
import functools
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from borgwatch.borg.argv import base
from borgwatch.borg.events import Event, LogMessage

# the content hash borg computes from the archived chunks (`borg list --format {sha256}`, 1.2 and 1.4);
# hashlib computes the same for the restored and the live file
HASH_NAME = "sha256"
LIST_LOGGER = "borg.output.list"  # `extract --list` names each item before it writes it


_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_MICROSECOND = datetime.timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class ArchivedFile:
    """A regular file as borg saw it when it made the archive (times in microseconds, local clock)."""

    path: str  # archive path: the absolute source path without its leading "/"
    size: int
    mtime_us: int
    ctime_us: int


def list_files(borg: str, repository: str, archive: str, lock_wait: int) -> list[str]:
    """Every item of the archive, one JSON object per line; metadata only, no file data is read. The
    keys named in --format are the ones printed (ctime is not among the defaults of 1.4)."""
    return [*base(borg, "list", lock_wait), "--json-lines", "--format", "{type}{path}{size}{mtime}{ctime}",
            f"{repository}::{archive}"]


def list_hashes(borg: str, repository: str, archive: str, lock_wait: int, paths: Iterable[str]) -> list[str]:
    """The content hash of the named files, computed by borg from the archive's chunks."""
    return [*base(borg, "list", lock_wait), "--format", f"{{{HASH_NAME}}}{{TAB}}{{path}}{{NUL}}",
            f"{repository}::{archive}", *exact_patterns(paths)]


def extract(borg: str, repository: str, archive: str, lock_wait: int, paths: Iterable[str],
            prefixes: bool = False) -> list[str]:
    """Restore the named files (``prefixes``: whole subtrees) into the working directory."""
    patterns = [f"pp:{p}" for p in paths] if prefixes else exact_patterns(paths)
    return [*base(borg, "extract", lock_wait), "--list", f"{repository}::{archive}", *patterns]


def extract_dry_run(borg: str, repository: str, archive: str, lock_wait: int) -> list[str]:
    """Read, decrypt and authenticate every chunk of the archive without writing anything."""
    return [*base(borg, "extract", lock_wait), "--dry-run", f"{repository}::{archive}"]


def exact_patterns(paths: Iterable[str]) -> list[str]:
    return [f"pf:{p}" for p in paths]


def archive_path(source_path: str) -> str:
    """borg 1.x stores an absolute source path without its leading slash."""
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


def find_archive(stdout: bytes, name: str | None) -> tuple[str, float] | None:
    """``list --json`` -> (name, creation time as a Unix time) of the archive called ``name``, or of the
    newest one when ``name`` is None; None when there is no such archive."""
    try:
        archives = json.loads(stdout)["archives"]
        found = [a for a in archives if name is None or a["name"] == name]
        chosen = found[-1]  # borg lists oldest first
        return chosen["name"], _micros(chosen.get("start") or chosen["time"]) / 1e6
    except (ValueError, KeyError, IndexError, TypeError):
        return None


def listed_path(event: Event) -> str | None:
    """The item ``extract --list`` is about to write (so a failure names the file borg was reading)."""
    if isinstance(event, LogMessage) and event.name == LIST_LOGGER:
        return event.message
    return None


def _micros(text: str) -> int:
    """borg 1.x times are local, without a zone, to the microsecond."""
    moment = datetime.datetime.fromisoformat(text)
    if moment.tzinfo is not None:
        return (moment - _EPOCH) // _MICROSECOND
    naive_utc = (moment.replace(tzinfo=datetime.UTC) - _EPOCH) // _MICROSECOND
    return naive_utc - _local_offset(moment.replace(minute=0, second=0, microsecond=0))


@functools.lru_cache(maxsize=64)
def _local_offset(hour: datetime.datetime) -> int:
    """The local zone's offset in that hour, in microseconds (cached: astimezone() was a quarter of the
    time of parsing a 100k-file listing)."""
    return hour.astimezone().utcoffset() // _MICROSECOND  # type: ignore[operator]
