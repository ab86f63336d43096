"""Repository listings (``list``/``repo-list --json``, ``info``/``repo-info --json``) -> numbers."""

from __future__ import annotations

import json
from datetime import datetime

from borgwatch.borg.feature import Feature, available
from borgwatch.borg.version import BorgVersion


def parse_archive_listing(stdout: bytes) -> tuple[int, float | None]:
    """The archive listing -> (archive count, Unix time of the newest archive or None). 1.x and 2.0 both
    print ``{"archives": [{"time": …}, …]}``."""
    archives = json.loads(stdout)["archives"]
    times = [timestamp(a["time"]) for a in archives if a.get("time")]
    return len(archives), max(times) if times else None


def timestamp(text: str) -> float:
    # 1.x prints local time without an offset (the local time of this machine, which ran borg);
    # 2.0 adds the offset. fromisoformat handles both; naive values are read as local time.
    return datetime.fromisoformat(text).timestamp()


def parse_repository_info(stdout: bytes, version: BorgVersion | None = None
                          ) -> tuple[int | None, int | None, int | None]:
    """The repository info -> (unique_size, unique_csize, total_size) of cache.stats. 2.0 keeps no such
    totals (REPOSITORY_TOTALS): all three are None, absent rather than zero."""
    if not available(Feature.REPOSITORY_TOTALS, version):
        return None, None, None
    stats = (json.loads(stdout).get("cache") or {}).get("stats") or {}
    return stats.get("unique_size"), stats.get("unique_csize"), stats.get("total_size")
