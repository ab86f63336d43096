"""Benchmark `borgwatch collect` on a repository with many archives (not part of the test suite).

    .venv/bin/python bench/collect_inventory.py --workdir /tmp/bw-bench --archives 3000

Builds the repository once (archives created in one Python process through borg's own Archiver, about
0.1 s each, names from 7 "clients", one hour apart), then times collect with a cold collector cache
(first run on a backup server: borg info builds its chunk index) and warm (every later run), plus the
raw borg commands, and how long a backup with borg's default --lock-wait 1 can be made to wait.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

PASSPHRASE = "bench"
BORG = str(Path(sys.executable).with_name("borg"))


def build(work: Path, archives: int) -> Path:
    repo = work / "repo"
    env_base = work / "client-base"
    if (work / "built").exists() and int((work / "built").read_text()) >= archives:
        return repo
    shutil.rmtree(work, ignore_errors=True)
    (work / "src" / "d").mkdir(parents=True)
    for i in range(20):
        (work / "src" / "d" / f"f{i}").write_bytes(os.urandom(2000))
    os.environ.update(BORG_PASSPHRASE=PASSPHRASE, BORG_BASE_DIR=str(env_base))
    subprocess.run([BORG, "init", "-e", "repokey-blake2", str(repo)], check=True, capture_output=True)
    from borg.archiver import Archiver

    t0 = time.monotonic()
    os.chdir(work)
    for i in range(archives):
        archiver = Archiver()
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(1.7e9 + i * 3600))
        argv = ["borg", "create", "--timestamp", ts, f"{repo}::host{i % 7}-{i:05d}", "src"]
        args = archiver.get_args(argv, None)
        assert archiver.run(args) in (0, None)
    print(f"built {archives} archives in {time.monotonic() - t0:.0f} s")
    (work / "built").write_text(str(archives))
    return repo


def timed(argv: list[str], env: dict[str, str]) -> float:
    t0 = time.monotonic()
    subprocess.run(argv, env=env, check=True, capture_output=True, stdin=subprocess.DEVNULL)
    return time.monotonic() - t0


def race(work: Path, repo: Path, cli: list[str], env: dict[str, str], passphrase: str, rounds: int) -> dict:
    """Client backups with borg's default --lock-wait 1, started while collect runs: how many fail."""
    client_env = {**os.environ, "BORG_PASSPHRASE": passphrase, "BORG_BASE_DIR": str(work / "client-base"),
                  "LANG": "C.UTF-8"}
    failed, walls = 0, []
    for i in range(rounds):
        collector = subprocess.Popen(cli, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.3 + (i % 6) * 0.25)  # land in borg list, borg info and the gaps
        t0 = time.monotonic()
        done = subprocess.run([BORG, "create", "--lock-wait", "1", f"{repo}::race-{time.time():.0f}-{i}",
                               str(work / "src")], env=client_env, capture_output=True, cwd=work)
        walls.append(time.monotonic() - t0)
        failed += done.returncode != 0
        collector.wait()
    return {"race_client_backups": rounds, "race_client_backups_failed": failed,
            "race_client_create_wall_s_max": round(max(walls), 2)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workdir", default="/tmp/borgwatch-collect-bench")
    parser.add_argument("--archives", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--race", type=int, default=12, help="client backups started during collect")
    parser.add_argument("--passphrase", default=PASSPHRASE, help="of an existing repository in WORKDIR/repo")
    opts = parser.parse_args()
    work = Path(opts.workdir)
    repo = build(work, opts.archives)
    for key in ("BORG_PASSPHRASE", "BORG_BASE_DIR"):
        os.environ.pop(key, None)
    (work / "pass").write_text(opts.passphrase)
    (work / "tf").mkdir(exist_ok=True)
    collector_base = work / "collector-base"
    shutil.rmtree(collector_base, ignore_errors=True)
    shutil.rmtree(work / "state", ignore_errors=True)
    config_file = work / "collect.toml"
    config_file.write_text(f'textfile_dir = "{work / "tf"}"\nstate_dir = "{work / "state"}"\n'
                           f'borg = "{BORG}"\nborg_base_dir = "{collector_base}"\n[repositories.bench]\n'
                           f'repository = "{repo}"\npassphrase_file = "{work / "pass"}"\n')
    cli = [sys.executable, "-m", "borgwatch", "collect", "--json", "-c", str(config_file)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    t0 = time.monotonic()
    cold = json.loads(subprocess.run(cli, env=env, capture_output=True, check=True).stdout)[0]
    cold_wall = time.monotonic() - t0
    warm = []
    for _ in range(opts.runs):
        t0 = time.monotonic()
        out = json.loads(subprocess.run(cli, env=env, capture_output=True, check=True).stdout)[0]
        warm.append((time.monotonic() - t0, out["duration_seconds"]))
    borg_env = {**os.environ, "BORG_PASSPHRASE": opts.passphrase, "BORG_BASE_DIR": str(collector_base),
                "LANG": "C.UTF-8"}
    list_s = statistics.median(timed([BORG, "list", "--json", str(repo)], borg_env) for _ in range(3))
    info_s = statistics.median(timed([BORG, "info", "--json", str(repo)], borg_env) for _ in range(3))
    size = sum(f.stat().st_size for f in repo.rglob("*") if f.is_file())
    raced = race(work, repo, cli, env, opts.passphrase, opts.race) if opts.race else {}
    print(json.dumps({
        "archives": cold["archives"], "repo_bytes_on_disk": size, "status": cold["status"],
        "cold_collect_wall_s": round(cold_wall, 2),
        "cold_collect_in_process_s": round(cold["duration_seconds"], 2),
        "warm_collect_wall_s_median": round(statistics.median(w for w, _ in warm), 2),
        "warm_collect_wall_s_max": round(max(w for w, _ in warm), 2),
        "warm_collect_in_process_s_median": round(statistics.median(d for _, d in warm), 2),
        "borg_list_json_s": round(list_s, 2), "borg_info_json_s": round(info_s, 2), **raced,
    }, indent=2))


if __name__ == "__main__":
    main()
