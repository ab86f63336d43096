"""Micro figures: stream-parser throughput, start-up time, and borgwatch's own peak RSS from 10k to 1M
file-status events (a replayed --log-json stream through the whole ``borgwatch run`` pipeline)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.stats import median
from bench.variants import RSS_DRIVER

FAKEBORG = Path(__file__).with_name("fakeborg.py")


def stream_lines(count: int) -> list[bytes]:
    """A realistic create --list stream: file_status lines with ~1% log messages in between."""
    out = []
    for i in range(count):
        if i % 100 == 99:
            out.append(b'{"type": "log_message", "time": 1700000000.5, "levelname": "INFO", '
                       b'"name": "borg.output.list", "message": "x", "msgid": null}\n')
        else:
            st = b"AMU"[i % 3:i % 3 + 1] if i % 10 == 0 else b"U"
            out.append(b'{"type": "file_status", "status": "%s", "path": "/srv/data/d%02d/d%02d/f%07d.dat"}\n'
                       % (st, (i // 2000) % 100, (i // 100) % 20, i))
    return out


def parser_throughput(count: int = 300_000, rounds: int = 5) -> dict[str, float]:
    """lines/s of ``parse_line`` alone, and of parse + ``FilesCacheRun.record`` (the create hot path)."""
    from borgwatch.borg.events import FileStatus, parse_line
    from borgwatch.run.filesdiff import FilesCacheRun

    lines = stream_lines(count)
    parse_only = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for raw in lines:
            parse_line(raw)
        parse_only.append(count / (time.perf_counter() - t0))
    with_index = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            rec = FilesCacheRun(Path(tmp) / f"s{r}.db")
            t0 = time.perf_counter()
            for raw in lines:
                event = parse_line(raw)
                if isinstance(event, FileStatus):
                    rec.record(event.status, event.path)
            rec.snapshot.seal()
            with_index.append(count / (time.perf_counter() - t0))
            rec.abandon()
    return {"parse_lines_per_s": median(parse_only), "parse_record_lines_per_s": median(with_index)}


def _time_cmd(argv: list[str], runs: int) -> float:
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        samples.append(time.perf_counter() - t0)
    return median(samples) * 1000


FLOOR_IMPORTS = "import dataclasses, json, pathlib, subprocess, tomllib"


def startup(borgwatch: str, runs: int = 21) -> dict[str, float]:
    """Median ms of ``borgwatch --version`` and, for scale, of a bare interpreter start."""
    _time_cmd([borgwatch, "--version"], 3)  # warm the page cache
    return {
        "version_ms": _time_cmd([borgwatch, "--version"], runs),
        "python_ms": _time_cmd([sys.executable, "-c", "pass"], runs),
        # the least a Python CLI that reads a TOML config and runs a child needs: the floor under any fixed cost
        "floor_ms": _time_cmd([sys.executable, "-c", FLOOR_IMPORTS], runs),
        "help_run_ms": _time_cmd([borgwatch, "run", "--help"], runs),
    }


def rss_replay(work: Path, sizes: tuple[int, ...]) -> list[dict[str, float]]:
    """For each size: a first run (all A, paths missing) and an incremental run (all M) of a job whose
    borg is the replaying stand-in; borgwatch's own peak RSS and end-to-end events/s of each run."""
    work.mkdir(parents=True, exist_ok=True)
    shim = work / "fakeborg"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKEBORG}" "$@"\n')
    shim.chmod(0o755)
    rows = []
    baseline = _rss_run(work, ["--version"], {})[0]
    for size in sizes:
        root = work / f"replay{size}"
        state = root / "state"
        state.mkdir(parents=True, exist_ok=True)
        for f in state.iterdir():
            f.unlink()
        (root / "repo.fake-archives").unlink(missing_ok=True)  # the stand-in borg's archive list
        (root / "tf").mkdir(exist_ok=True)
        cfg = root / "borgwatch.toml"
        cfg.write_text(f'textfile_dir = "{root}/tf"\nstate_dir = "{state}"\nborg = "{shim}"\n'
                       f'[jobs.replay]\nrepository = "{root}/repo"\npaths = ["/nonexistent-bench/src"]\n'
                       'archive_name = "{job}-{now:%Y-%m-%dT%H:%M:%S.%f}"\n')
        row: dict[str, float] = {"events": size, "baseline_kib": baseline}
        for label, status in (("first", "A"), ("incremental", "M")):
            env = {"BENCH_FAKE_FILES": str(size), "BENCH_FAKE_STATUS": status}
            kib, seconds, out = _rss_run(work, ["run", "replay", "-c", str(cfg), "--json"], env)
            dataset = json.loads(out).get("dataset") or {}
            # the stand-in keeps no files cache: only a first run's counts can be checked
            if label == "first" and dataset.get("added") != size:
                raise RuntimeError(f"replay {size} {label}: dataset {dataset} does not count {size} added")
            row[f"{label}_kib"] = kib
            row[f"{label}_events_per_s"] = size / seconds
        rows.append(row)
    return rows


def _rss_run(work: Path, args: list[str], extra_env: dict[str, str]) -> tuple[int, float, bytes]:
    out = work / "rss"
    env = {**os.environ, **extra_env}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, str(RSS_DRIVER), str(out), *args], env=env, capture_output=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"borgwatch {' '.join(args)} failed: {proc.stderr.decode()[-2000:]}")
    return int(out.read_text()), seconds, proc.stdout
