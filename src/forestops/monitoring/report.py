"""What ``forestops monitor`` prints: the stored batch results as a table or as JSON."""

from __future__ import annotations

import json
from typing import Any

from forestops.settings import Settings

COLUMNS = (
    ("group", "group_number", "{}"),
    ("batch", "batch_number", "{}"),
    ("version", "model_version", "{}"),
    ("rows", "rows_scored", "{}"),
    ("accuracy", "accuracy", "{:.4f}"),
    ("macro-F1", "macro_f1", "{:.4f}"),
    ("drift", "drift_share", "{:.2f}"),
    ("drifted columns", "drifted_columns", "{}"),
    ("scored at (UTC)", "scored_at", "{}"),
)


def load(settings: Settings) -> list[dict[str, Any]]:
    from forestops.monitoring import steps, store

    engine = steps.engine_for(settings.raw_database_url)
    with engine.connect() as connection:
        return store.results(connection)


def _cell(template: str, value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ", ".join(value) or "none"
    return template.format(value)


def table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return (
            "no batch monitored yet: covertype_monitor scores each batch collected after the first champion "
            "(the batches before it are its training data)"
        )
    cells = [[title for title, _, _ in COLUMNS]]
    cells += [[_cell(template, row.get(key)) for _, key, template in COLUMNS] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in cells)


def as_json(rows: list[dict[str, Any]]) -> str:
    return json.dumps({"batches": rows}, indent=2, default=str)
