"""Generate docs/config.md from the schema (a test keeps the file equal to this output)."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from borgwatch.config.agent import PingConfig, PushgatewayConfig, RepositoryConfig
from borgwatch.config.load import _describe, range_text
from borgwatch.config.loki import LokiConfig
from borgwatch.config.schema import CheckConfig, CompactConfig, Config, DrillConfig, JobConfig, PruneConfig

TABLES: tuple[tuple[str, type], ...] = (
    ("top level", Config),
    ("[jobs.NAME]", JobConfig),
    ("[jobs.NAME.prune]", PruneConfig),
    ("[jobs.NAME.compact]", CompactConfig),
    ("[jobs.NAME.check]", CheckConfig),
    ("[jobs.NAME.drill]", DrillConfig),
    ("[jobs.NAME.ping]", PingConfig),
    ("[loki]", LokiConfig),
    ("[pushgateway]", PushgatewayConfig),
    ("[repositories.NAME]", RepositoryConfig),
)


def _default(f: dataclasses.Field[Any]) -> str:
    if f.metadata.get("required"):
        return "required"
    factory = f.default_factory
    value = factory() if factory is not dataclasses.MISSING else f.default
    if value is None:
        return "—"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, str):
        return f'`"{value}"`'
    return f"`{value}`"


def render_markdown() -> str:
    out = ["# Configuration reference", "",
           "Generated from `borgwatch/config/schema.py` by `borgwatch config-reference`; a test keeps this "
           "file in sync. The file is TOML, found at `--config`, `$BORGWATCH_CONFIG` or "
           "`/etc/borgwatch/config.toml`. Unknown keys and wrong types are errors naming the file, the key "
           "and what is expected.", ""]
    for title, cls in TABLES:
        hints = typing.get_type_hints(cls)
        out += [f"## {title}", "", "| key | type | default | meaning |", "|---|---|---|---|"]
        for f in dataclasses.fields(cls):
            if f.metadata.get("internal"):
                continue
            kind = _describe(hints[f.name]).removeprefix("a ").removeprefix("an ")
            doc = f.metadata.get("doc", "")
            if range_text(f.metadata):
                doc += f" Range: {range_text(f.metadata)}."
            if f.metadata.get("choices"):
                doc += " One of: " + ", ".join(f"`{c}`" for c in f.metadata["choices"]) + "."
            out.append(f"| `{f.name}` | {kind} | {_default(f)} | {doc.replace('|', '/')} |")
        out.append("")
    return "\n".join(out)
