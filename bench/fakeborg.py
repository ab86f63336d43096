"""A stand-in for ``borg`` that replays a generated ``--log-json`` stream, to drive borgwatch with 1M
file-status events without backing up 1M files. ``BENCH_FAKE_FILES`` events, status ``BENCH_FAKE_STATUS``;
the paths do not exist (an A status makes borgwatch lstat them and get ENOENT: no size, no mtime)."""

from __future__ import annotations

import json
import os
import sys

CHUNK = 10000


def _create(argv: list[str]) -> int:
    files = int(os.environ.get("BENCH_FAKE_FILES", "10000"))
    status = os.environ.get("BENCH_FAKE_STATUS", "A")
    repository, archive = next(a for a in argv if "::" in a).split("::", 1)
    with open(repository + ".fake-archives", "a") as fh:  # what `list --json` answers next run
        fh.write(archive + "\n")
    err = sys.stderr.buffer
    head = (b'{"type": "file_status", "status": "%s", '
            b'"path": "/nonexistent-bench/src/d%02d/d%02d/f%07d.dat"}\n')
    for start in range(0, files, CHUNK):
        err.write(b"".join(head % (status.encode(), (i // 2000) % 100, (i // 100) % 20, i)
                           for i in range(start, min(files, start + CHUNK))))
    err.write(b'{"type": "log_message", "time": 0, "levelname": "INFO", "name": "borg.archiver", '
              b'"message": "terminating with success status, rc 0"}\n')
    err.flush()
    stats = {"nfiles": files, "original_size": 0, "compressed_size": 0, "deduplicated_size": 0}
    print(json.dumps({"archive": {"name": archive, "id": "0" * 64, "duration": 1.0, "stats": stats},
                      "cache": {"stats": {"total_chunks": 0, "total_unique_chunks": 0}}}))
    return 0


def main() -> int:
    argv = sys.argv[1:]
    if "--version" in argv:
        print("borg 1.4.5")
        return 0
    if argv and argv[0] == "create":
        return _create(argv)
    if argv and argv[0] == "list" and "--json" in argv:
        return _list(argv[-1])
    return 0  # diff and anything else: nothing to report


def _list(repository: str) -> int:
    """The archives this stand-in "created": borgwatch checks its baseline against them every run."""
    try:
        with open(repository + ".fake-archives") as fh:
            names = fh.read().split()
    except FileNotFoundError:
        names = []
    print(json.dumps({"archives": [{"name": n, "id": "0" * 64, "start": "2026-01-01T00:00:00.000000",
                                    "time": "2026-01-01T00:00:00.000000"} for n in names]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
