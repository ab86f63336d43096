"""Config fuzzing: hundreds of mutated configs through the loader, a few through the real CLI.

Every config is either accepted, and then usable by `run` (argv, environment and file names can be built),
or refused with a ConfigError of at most three short lines that names the key. Never another exception.
"""

from __future__ import annotations

import copy
import datetime
import json
import os
import random
import subprocess
from pathlib import Path
from typing import Any

import pytest
from helpers.workspace import BORGWATCH

from borgwatch.borg import argv as borg_argv
from borgwatch.config.load import load_config, parse_config
from borgwatch.config.schema import Config
from borgwatch.errors import ConfigError

BASE: dict[str, Any] = {
    "textfile_dir": "/var/lib/prometheus/node-exporter", "state_dir": "/var/lib/borgwatch",
    "hostname": "nas1", "lock_wait": 60,
    "jobs": {
        "home": {"repository": "ssh://backup@nas.example:22/./home", "paths": ["/home", "/etc"],
                 "exclude": ["/home/*/.cache"], "passphrase_file": "/etc/borgwatch/home.pass",
                 "environment": {"BORG_RSH": "ssh -i /root/.ssh/backup"}, "max_age": "26h",
                 "extra_args": ["--compression", "zstd,3"], "lock_wait": 5,
                 "prune": {"keep_daily": 7, "keep_weekly": 4, "extra_args": []},
                 "compact": {"threshold": 10}, "check": {"every": "7d", "max_duration": 600},
                 "ping": {"success": "https://hc.example/ping/abc", "timeout": 5.0}},
        "etc": {"repository": "/srv/borg/etc", "paths": ["/etc"], "passcommand": "cat /etc/pass"},
    },
    "loki": {"url": "http://127.0.0.1:3100", "labels": {"env": "prod"}, "max_delay": 5.0, "retries": 3},
    "pushgateway": {"url": "http://127.0.0.1:9091", "timeout": 5.0},
    "repositories": {"r": {"repository": "/srv/borg/r", "lock_wait": 1, "timeout": 600}},
}
HOSTILE: list[Any] = [
    "", "\x00", "a\x00b", "x" * 100_000, "../../etc/passwd", "nas/1", "ssh://u:pw-FUZZ@h/./r", " ", "é☃",
    "--filter=AME", "{now}", "\n", -1, 0, 1, 2**63 - 1, -(2**63), 1e308, -0.5, float("nan"), float("inf"),
    float("-inf"), True, False, [], ["a", 1], ["\x00"], ["--list"], ["/etc"], {}, {"a": 1}, {"A=B": "x"},
    {"K": "\x00"}, {"": ""}, datetime.datetime(1979, 5, 27, 7, 32, tzinfo=datetime.UTC), datetime.date(2024, 1, 1),
]
NAMES = ["", "a" * 65, "a" * 240, "..", ".x", "a/b", "a b", "é", "x\x00y", "ok-name", "-x"]


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if value != value else "inf" if value == float("inf") else "-inf" if value == -float("inf") \
            else repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{toml_value(str(k))} = {toml_value(v)}" for k, v in value.items()) + "}"


def to_toml(data: dict[str, Any]) -> str:
    return "".join(f"{toml_value(k)} = {toml_value(v)}\n" for k, v in data.items())


def paths(data: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = [prefix] if prefix else []
    if isinstance(data, dict):
        for key, value in data.items():
            out += paths(value, (*prefix, key))
    return out


def mutate(rng: random.Random) -> tuple[dict[str, Any], tuple[str, ...]]:
    """A copy of BASE with one hostile change; returns it and the key path that was changed."""
    data = copy.deepcopy(BASE)
    path = rng.choice(paths(data))
    parent = data
    for key in path[:-1]:
        parent = parent[key]
    kind = rng.random()
    if kind < 0.7:
        parent[path[-1]] = rng.choice(HOSTILE)
    elif kind < 0.8:
        del parent[path[-1]]
    elif kind < 0.9:
        new = rng.choice(NAMES) or "unknown"
        parent[new] = rng.choice(HOSTILE)
        path = (*path[:-1], new)
    else:  # rename a job or a repository
        table = rng.choice(["jobs", "repositories"])
        old = next(iter(data[table]))
        data[table][rng.choice(NAMES)] = data[table].pop(old)
        path = (table,)
    return data, path


def usable_by_run(config: Config) -> None:
    """What `run` builds from an accepted config: file names, borg argv, environment."""
    for name, job in config.jobs.items():
        assert len(f".borgwatch-{name}.prom.12345678.tmp".encode()) <= 255
        archive = borg_argv.render_name(job.archive_name, name, config.hostname or "host")
        argv = borg_argv.create("borg", job, archive, job.lock_wait or config.lock_wait, True)
        if job.prune:
            argv += borg_argv.prune("borg", job, job.prune, borg_argv.archive_glob(job, name, "h"), 1)
        for arg in [*argv, config.state_dir, config.textfile_dir, job.passphrase_file or ""]:
            assert "\x00" not in arg
            os.fsencode(arg)
        for key, value in job.environment.items():
            assert key and "=" not in key and "\x00" not in key + value


def check_message(message: str, path: tuple[str, ...]) -> None:
    assert message.count("\n") <= 2 and len(message) < 600, message[:300]
    assert "\x00" not in message and "pw-FUZZ" not in message
    named = [p for p in path if p not in NAMES and p != "unknown"]
    assert any(part in message for part in named) or "unknown key" in message or "invalid name" in message, \
        (message, path)


def test_mutated_configs_are_accepted_and_usable_or_refused_naming_the_key() -> None:
    rng = random.Random(10)
    outcomes = {"accepted": 0, "refused": 0}
    for _ in range(400):
        data, path = mutate(rng)
        text = to_toml(data)
        try:
            config = parse_config(text, "fuzz.toml")
        except ConfigError as exc:
            outcomes["refused"] += 1
            check_message(str(exc), path)
            continue
        outcomes["accepted"] += 1
        usable_by_run(config)
    print(f"\nfuzzed configs: {outcomes}")
    assert outcomes["refused"] > 150 and outcomes["accepted"] > 20  # both paths were exercised


def byte_mutation(rng: random.Random, raw: bytes) -> bytes:
    data = bytearray(raw)
    for _ in range(rng.randint(1, 4)):
        pos = rng.randrange(len(data))
        op = rng.random()
        if op < 0.4:
            data[pos] = rng.choice([0x00, 0xff, 0xc3, 0xe9, 0x22, 0x5b, 0x3d, 0x0a, rng.randrange(256)])
        elif op < 0.7:
            data[pos:pos] = rng.choice([b"\xff\xfe", b"\\u0000", b'"', b"]", b"=", b"\n[jobs.x]\n", b"\x00"])
        else:
            del data[pos:pos + rng.randint(1, 20)]
    return bytes(data)


def test_byte_mutated_config_files_never_raise_anything_but_config_errors(tmp_path: Path) -> None:
    rng = random.Random(11)
    raw = to_toml(BASE).encode()
    cfg = tmp_path / "fuzz.toml"
    for _ in range(300):
        cfg.write_bytes(byte_mutation(rng, raw))
        try:
            usable_by_run(load_config(str(cfg)))
        except ConfigError as exc:
            assert str(exc).count("\n") <= 2 and len(str(exc)) < 600


@pytest.mark.parametrize("seed", range(6))
def test_mutated_configs_through_the_real_cli(tmp_path: Path, seed: int) -> None:
    rng = random.Random(100 + seed)
    cfg = tmp_path / "c.toml"
    if seed % 2:
        cfg.write_bytes(byte_mutation(rng, to_toml(BASE).encode()))
    else:
        cfg.write_text(to_toml(mutate(rng)[0]), encoding="utf-8")
    proc = subprocess.run([BORGWATCH, "check-config", "-c", str(cfg)], capture_output=True, text=True,
                          errors="replace")
    assert proc.returncode in (0, 78), proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") <= 3
    assert (proc.returncode == 0) == ("OK" in proc.stdout)
