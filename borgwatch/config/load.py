"""Load and validate the TOML configuration against the dataclass schema."""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
import types
import typing
from pathlib import Path
from typing import Any

from borgwatch.config.schema import DEFAULT_CONFIG_PATH, Config
from borgwatch.errors import ConfigError

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
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
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found: create it (see examples/config.toml) "
                          "or pass --config / set BORGWATCH_CONFIG") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}; check its permissions") from None
    return parse_config(text, str(path))


def parse_config(text: str, source: str = "<string>") -> Config:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: invalid TOML: {exc}; fix the syntax") from None
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
        raise ConfigError(f"{source}: {prefix}{unknown[0]}: unknown key; valid keys here: "
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
        shown = "" if "secret" in meta.get("kind", "") else f" {value!r}" if not isinstance(value, dict) else ""
        return ConfigError(f"{source}: {key}: expected {_describe(hint)}, got {_type_name(value)}{shown}")

    if dataclasses.is_dataclass(hint):
        return _build(hint, value, source, f"{key}.")
    if origin is list:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise bad()
        return list(value)
    if origin is dict:
        if not isinstance(value, dict):
            raise bad()
        item = typing.get_args(hint)[1]
        if dataclasses.is_dataclass(item):
            out = {}
            for name, sub in value.items():
                if not NAME_RE.match(name):
                    raise ConfigError(f"{source}: {key}.{name}: invalid name; use letters, digits, "
                                      "'_', '.' and '-'")
                out[name] = _build(item, sub, source, f"{key}.{name}.")
            return out
        if not all(isinstance(v, str) for v in value.values()):
            raise bad()
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
        value = float(value)
    elif hint is str:
        if not isinstance(value, str):
            raise bad()
        if meta.get("kind") == "duration":
            try:
                parse_duration(value)
            except ValueError:
                raise ConfigError(f"{source}: {key}: expected a duration like \"26h\", \"90m\" or \"7d\", "
                                  f"got {value!r}") from None
    choices = meta.get("choices")
    if choices and value not in choices:
        raise ConfigError(f"{source}: {key}: expected one of {', '.join(choices)}, got {value!r}")
    return value


def _check(config: Config, source: str) -> None:
    if config.loki is not None:
        for problem in config.loki.problems():
            raise ConfigError(f"{source}: {problem}")
    for name, job in config.jobs.items():
        given = [k for k in ("passcommand", "passphrase_file", "passphrase_env") if getattr(job, k)]
        if len(given) > 1:
            raise ConfigError(f"{source}: jobs.{name}: set only one of {', '.join(given)}")
        if "{job}" not in job.archive_name and "{now" not in job.archive_name:
            raise ConfigError(f"{source}: jobs.{name}.archive_name: must contain {{now}} (or {{job}} plus "
                              "{now}) so every run gets a new archive name")
