"""Field helpers shared by every schema module: a default plus its documentation."""

from __future__ import annotations

from dataclasses import field
from typing import Any


def opt(default: Any, doc: str, **meta: Any) -> Any:
    """An optional key with its default and reference documentation."""
    if isinstance(default, list | dict):
        return field(default_factory=lambda: type(default)(default), metadata={"doc": doc, **meta})
    return field(default=default, metadata={"doc": doc, **meta})


def required(doc: str, **meta: Any) -> Any:
    """A key that must be present in its table."""
    return field(metadata={"doc": doc, "required": True, **meta})
