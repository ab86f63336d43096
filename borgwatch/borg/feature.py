"""Which borg version has which feature: one table, asked by every builder and parser.

Each feature maps to the half-open version range ``[first, until)`` that has it (``until`` None: still
there). A version is compared as (major, minor, patch, pre-release), so 2.0.0b23 sorts before 2.0.0.
Add a borg-version difference here, then let the builder or parser ask ``available(feature, version)``.
"""

from __future__ import annotations

import re
from enum import StrEnum

from borgwatch.borg.version import BorgVersion

Key = tuple[int, int, int, int, int]

_PRE = re.compile(r"\d+\.\d+\.\d+(?:(a|b|rc)(\d+))?")
_PRE_RANK = {"a": 0, "b": 1, "rc": 2}
_FINAL = 3  # a final release sorts after its alphas, betas and release candidates


class Feature(StrEnum):
    REPO_OPTION = "repo-option"  # -r/--repo REPO and a bare NAME instead of REPO::ARCHIVE
    REPO_COMMANDS = "repo-commands"  # repo-create, repo-list, repo-info instead of init, list REPO, info REPO
    MATCH_ARCHIVES = "match-archives"  # --match-archives PATTERN (2.0) instead of --glob-archives GLOB
    ARCHIVE_SERIES = "archive-series"  # one name for many archives told apart by id (aid:…)
    CHECKPOINTS = "checkpoints"  # an interrupted create leaves NAME.checkpoint; --consider-checkpoints
    KEEP_WITHIN = "keep-within"  # prune --keep-within (removed in 2.0.0b22)
    KEEP_LAST = "keep-last"  # prune --keep-last (removed in 2.0.0b22)
    KEEP = "keep"  # prune --keep N|INTERVAL, the successor of --keep-last and --keep-within
    PRUNE_JSON = "prune-json"
    COMPACT_DRY_RUN = "compact-dry-run"
    COMPRESSED_SIZE = "compressed-size"  # create --json stats.compressed_size, info cache.stats *_csize
    DEDUPLICATED_SIZE = "deduplicated-size"  # create --json stats.deduplicated_size
    REPOSITORY_TOTALS = "repository-totals"  # cache.stats (unique/total sizes) in create/info --json
    FILES_STATS = "files-stats"  # create --json stats.files_stats: item count per status letter
    MODERN_EXIT_CODES = "modern-exit-codes"  # specific codes (73 lock timeout, 100+ warnings)
    # <cache>/files[.SUFFIX]: msgpack (path_hash, (age, inode, size, cmtime, chunk_ids)) per regular file;
    # 2.0 keeps one per archive series with another entry shape (borg/filescache_v2.py reads it)
    FILES_CACHE_V1 = "files-cache-v1"
    EXTRACT_LIST_FLAGS = "extract-list-flags"  # extract --list: "+ PATH" restored, "- PATH" left out (2.0b23)
    # <cache>/files.<sha256(series) | SUFFIX>: (path_hash, (age, inode, size, ctime, mtime, ((id, size), ...),
    # digests)), checked against [integrity] in <cache>/config (borg/filescache_v2.py); as of 2.0.0b23
    FILES_CACHE_V2 = "files-cache-v2"
    NFILES_EVERY_NAME = "nfiles-every-name"  # create --json nfiles counts each hard-link name (1.x: each inode)


V1_2: Key = (1, 2, 0, _FINAL, 0)
V1_4: Key = (1, 4, 0, _FINAL, 0)
V2_0A: Key = (2, 0, 0, 0, 0)  # the first 2.0 alpha: where every 2.0 redesign starts
V2_0B22: Key = (2, 0, 0, 1, 22)
V2_0B23: Key = (2, 0, 0, 1, 23)

FEATURES: dict[Feature, tuple[Key, Key | None]] = {
    Feature.REPO_OPTION: (V2_0A, None),
    Feature.REPO_COMMANDS: (V2_0A, None),
    Feature.MATCH_ARCHIVES: (V2_0A, None),
    Feature.ARCHIVE_SERIES: (V2_0A, None),
    Feature.CHECKPOINTS: (V1_2, V2_0A),
    Feature.KEEP_WITHIN: (V1_2, V2_0B22),
    Feature.KEEP_LAST: (V1_2, V2_0B22),
    Feature.KEEP: (V2_0B22, None),
    Feature.PRUNE_JSON: (V2_0A, None),
    Feature.COMPACT_DRY_RUN: (V2_0A, None),
    Feature.COMPRESSED_SIZE: (V1_2, V2_0A),
    Feature.DEDUPLICATED_SIZE: (V1_2, V2_0A),
    Feature.REPOSITORY_TOTALS: (V1_2, V2_0A),
    Feature.FILES_STATS: (V2_0A, None),
    Feature.MODERN_EXIT_CODES: (V1_4, None),  # 1.4 only with BORG_EXIT_CODES=modern, which build_env sets
    Feature.FILES_CACHE_V1: (V1_2, V2_0A),
    Feature.EXTRACT_LIST_FLAGS: (V2_0A, None),
    Feature.FILES_CACHE_V2: (V2_0B23, None),  # the entry shape changed during the betas: b23 is the one read
    Feature.NFILES_EVERY_NAME: (V2_0A, None),
}

# The dialect a builder speaks when its caller names no version: borg 1.4, the project's default borg.
DEFAULT = BorgVersion(1, 4, 0, "1.4.0")


def key(version: BorgVersion) -> Key:
    m = _PRE.match(version.text)
    if m and m.group(1):
        return version.major, version.minor, version.patch, _PRE_RANK[m.group(1)], int(m.group(2))
    return version.major, version.minor, version.patch, _FINAL, 0


def available(feature: Feature, version: BorgVersion | None) -> bool:
    first, until = FEATURES[feature]
    k = key(version or DEFAULT)
    return first <= k and (until is None or k < until)
