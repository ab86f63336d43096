"""Generate docs/events.md from the event table in ``borgwatch.model`` (a test keeps the file equal to
this output): ``python -m borgwatch.run.reference > docs/events.md``."""

from __future__ import annotations

from borgwatch.model import EVENTS, Level
from borgwatch.run.stages import MAX_EVENTS


def render_events_markdown() -> str:
    rows = ["| event | level | meaning | fields |", "|---|---|---|---|"]
    for event in EVENTS:
        fields = ", ".join(f"`{name}`" for name in event.fields) or "—"
        rows.append(f"| `{event}` | {event.level} | {event.meaning} | {fields} |")
    return "\n".join([
        "# Events reference", "",
        "Generated from `EventName` in `borgwatch/model.py` by `python -m borgwatch.run.reference`; a test "
        "keeps this file in sync with the code.", "",
        "Every run records structured events (shipped to Loki, one JSON line each, with `time`, `level`, "
        "`event`, `msg`, `job`, `run_id` and the fields below). `level` ∈ "
        f"{', '.join(level.value for level in Level)}; \"varies\" follows the stage's or run's status "
        "(success: info, warning: warning, otherwise error). "
        f"A run keeps at most {MAX_EVENTS} events; the rest are "
        "counted in `events_dropped` of the `run_summary`.", "",
        *rows, "",
    ])


if __name__ == "__main__":
    print(render_events_markdown(), end="")
