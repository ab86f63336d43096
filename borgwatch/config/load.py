"""Load and validate the TOML configuration against the dataclass schema."""

from __future__ import annotations

import dataclasses
import math
import os
import re
import tomllib
import types
import typing
from pathlib import Path
from typing import Any

from borgwatch.config.checks import (
    env_key_problem,
    extra_args_problem,
    hostname_problem,
    name_problem,
    shown,
    url_password_problem,
)
from borgwatch.config.schema import DEFAULT_CONFIG_PATH, Config
from borgwatch.errors import ConfigError

MAX_CONFIG_BYTES = 4 * 1024 * 1024
_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def config_path(explicit: str | None) -> Path:
    if explicit:
        return Path(explicit)
    env = os.environ.get("BORGWATCH_CONFIG")
    return Path(env) if env else Path(DEFAULT_CONFIG_PATH)


def load_config(explicit: str | None = None) -> Config:
    path = config_path(explicit)
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found: create it (see examples/config.toml) "
                          "or pass --config / set BORGWATCH_CONFIG") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}; check its permissions") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"config file {path} is larger than {MAX_CONFIG_BYTES} bytes; is it the right file?")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}: not valid UTF-8 (byte 0x{data[exc.start]:02x} on line {line}); save the "
                          "file as UTF-8") from None
    return parse_config(text, str(path))


def parse_config(text: str, source: str = "<string>") -> Config:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: invalid TOML: {str(exc)[:200]}; fix the syntax") from None
    config = _build(Config, data, source, "")
    config.source = source
    _check(config, source)
    return config


def parse_duration(value: str) -> float:
    """'26h', '1h30m', '7d', '90' (seconds) -> seconds."""
    text = value.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    pos, total = 0, 0.0
    for m in _DURATION_RE.finditer(text):
        if m.start() != pos and text[pos:m.start()].strip():
            raise ValueError(value)
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos == 0 or text[pos:].strip():
        raise ValueError(value)
    return total


def _describe(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        return _describe(inner[0])
    if origin is list:
        return "a list of strings"
    if origin is dict:
        value = typing.get_args(hint)[1]
        return "a table of strings" if value is str else "a table of tables"
    if dataclasses.is_dataclass(hint):
        return "a table"
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false"}.get(hint, str(hint))


def _type_name(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "an array",
            dict: "a table"}.get(type(value), type(value).__name__)


def _build(cls: type, data: Any, source: str, prefix: str) -> Any:
    where = prefix.rstrip(".") or "top level"
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: {where}: expected a table, got {_type_name(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{source}: {prefix}{shown(unknown[0])[1:-1]}: unknown key; valid keys here: "
                          f"{', '.join(sorted(fields))}")
    kwargs = {}
    for name, f in fields.items():
        key = f"{prefix}{name}"
        if name not in data:
            if f.metadata.get("required"):
                raise ConfigError(f"{source}: {key}: missing required key ({f.metadata['doc']})")
            continue
        kwargs[name] = _value(hints[name], data[name], f.metadata, source, key)
    return cls(**kwargs)


def _value(hint: Any, value: Any, meta: dict[str, Any], source: str, key: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
        origin = typing.get_origin(hint)

    def bad() -> ConfigError:
        echo = "" if "secret" in meta.get("kind", "") or isinstance(value, dict) else f" {shown(value)}"
        return ConfigError(f"{source}: {key}: expected {_describe(hint)}, got {_type_name(value)}{echo}")

    def no_nul(text: str, where: str) -> None:
        if "\x00" in text:  # cannot go into a path, an argv or an environment: run would crash
            raise ConfigError(f"{source}: {where}: contains a NUL character (\\u0000); remove it")

    if dataclasses.is_dataclass(hint):
        return _build(hint, value, source, f"{key}.")
    if origin is list:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise bad()
        for v in value:
            no_nul(v, key)
        return list(value)
    if origin is dict:
        if not isinstance(value, dict):
            raise bad()
        item = typing.get_args(hint)[1]
        if dataclasses.is_dataclass(item):
            out = {}
            for name, sub in value.items():
                problem = name_problem(name)
                if problem:
                    raise ConfigError(f"{source}: {key}: {problem}")
                out[name] = _build(item, sub, source, f"{key}.{name}.")
            return out
        if not all(isinstance(v, str) for v in value.values()):
            raise bad()
        for k, v in value.items():
            no_nul(k, f"{key} (a key)")
            no_nul(v, f"{key}.{k}")
        return dict(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise bad()
    elif hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad()
    elif hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad()
        if not math.isfinite(value):
            raise ConfigError(f"{source}: {key}: expected a finite number, got {value}")
        value = float(value)
    elif hint is str:
        if not isinstance(value, str):
            raise bad()
        no_nul(value, key)
        if meta.get("kind") == "duration":
            try:
                parse_duration(value)
            except ValueError:
                raise ConfigError(f"{source}: {key}: expected a duration like \"26h\", \"90m\" or \"7d\", "
                                  f"got {shown(value)}") from None
    if hint in (int, float) and not in_range(value, meta):
        raise ConfigError(f"{source}: {key}: expected a number {range_text(meta)}, got {shown(value)}")
    choices = meta.get("choices")
    if choices and value not in choices:
        raise ConfigError(f"{source}: {key}: expected one of {', '.join(choices)}, got {shown(value)}")
    return value


def in_range(value: float, meta: dict[str, Any]) -> bool:
    low, above, high = meta.get("min"), meta.get("gt"), meta.get("max")
    return ((low is None or value >= low) and (above is None or value > above)
            and (high is None or value <= high))


def range_text(meta: dict[str, Any]) -> str:
    """'>= 0', '> 0 and <= 86400' (also shown in docs/config.md); '' when unbounded."""
    parts = [f"{op} {meta[k]}" for k, op in (("min", ">="), ("gt", ">"), ("max", "<=")) if k in meta]
    return " and ".join(parts)


def _check(config: Config, source: str) -> None:
    if config.loki is not None:
        for problem in config.loki.problems():
            raise ConfigError(f"{source}: {problem}")
    if config.hostname and (problem := hostname_problem(config.hostname)):
        raise ConfigError(f"{source}: hostname: {problem}")
    for name, job in config.jobs.items():
        where = f"{source}: jobs.{name}"
        given = [k for k in ("passcommand", "passphrase_file", "passphrase_env") if getattr(job, k)]
        if len(given) > 1:
            raise ConfigError(f"{where}: set only one of {', '.join(given)}")
        if "{job}" not in job.archive_name and "{now" not in job.archive_name:
            raise ConfigError(f"{where}.archive_name: must contain {{now}} (or {{job}} plus "
                              "{now}) so every run gets a new archive name")
        if "/" in job.archive_name:
            raise ConfigError(f"{where}.archive_name: borg archive names cannot contain '/'")
        _check_repository(f"{where}.repository", job.repository, job.environment, job.passphrase_env)
        for key, args in (("extra_args", job.extra_args),
                          ("prune.extra_args", job.prune.extra_args if job.prune else []),
                          ("compact.extra_args", job.compact.extra_args if job.compact else []),
                          ("check.extra_args", job.check.extra_args if job.check else [])):
            stage = key.partition(".")[0] if "." in key else "create"
            if problem := extra_args_problem(stage, args):
                raise ConfigError(f"{where}.{key}: {problem}")
    for name, repo in config.repositories.items():
        _check_repository(f"{source}: repositories.{name}.repository", repo.repository, repo.environment,
                          repo.passphrase_env)


def _check_repository(where: str, repository: str, environment: dict[str, str], passphrase_env: str | None) -> None:
    if problem := url_password_problem(repository):
        raise ConfigError(f"{where}: {problem}")
    table = where.rpartition(".")[0]
    for key in environment:
        if problem := env_key_problem(key):
            raise ConfigError(f"{table}.environment: {problem}")
    if passphrase_env and (problem := env_key_problem(passphrase_env)):
        raise ConfigError(f"{table}.passphrase_env: {problem}")
