"""The event table: docs/events.md is generated from it, and every event a run records is in it."""

from __future__ import annotations

from helpers.workspace import ROOT

from borgwatch.model import EVENTS, EventName
from borgwatch.run.reference import render_events_markdown


def test_events_reference_is_in_sync() -> None:
    assert (ROOT / "docs" / "events.md").read_text() == render_events_markdown(), \
        "docs/events.md is stale: run `python -m borgwatch.run.reference > docs/events.md`"


def test_every_event_name_the_code_emits_is_in_the_table() -> None:
    names = {str(e) for e in EVENTS}
    source = "\n".join(p.read_text() for p in (ROOT / "borgwatch").rglob("*.py"))
    for event in EventName:
        assert f"EventName.{event.name}" in source or f'"{event}"' in source, f"{event} is never emitted"
    assert len(names) == len(EVENTS) and all(e.meaning and e.level for e in EVENTS)
