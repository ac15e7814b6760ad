"""Small helpers for the UI tests: page scripts under AppTest, reading what a page shows."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

PAGES = Path(__file__).resolve().parents[2] / "src" / "forestops" / "ui" / "screens"
NOTHING_LISTENS = "http://127.0.0.1:9"  # the discard port: nothing listens, connections are refused


def page(name: str) -> AppTest:
    return AppTest.from_file(str(PAGES / f"{name}.py"), default_timeout=60)


def texts(at: AppTest, kind: str) -> list[str]:
    return [element.value for element in getattr(at, kind)]


def shown(at: AppTest) -> str:
    """Everything textual on the page, for "does the page say X" checks."""
    parts = []
    for kind in ("title", "markdown", "caption", "success", "info", "warning", "error", "code"):
        parts += [str(v) for v in texts(at, kind)]
    parts += [f"{m.label} {m.value}" for m in at.metric]
    return "\n".join(parts)


def button(at: AppTest, label: str):
    matches = [b for b in at.button if b.label == label]
    assert matches, f"no button {label!r}; buttons: {[b.label for b in at.button]}"
    return matches[0]
