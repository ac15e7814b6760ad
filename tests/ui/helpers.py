"""Small helpers for the UI tests: page scripts under AppTest, reading what a page shows."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

PAGES = Path(__file__).resolve().parents[2] / "src" / "forestops" / "ui" / "screens"
NOTHING_LISTENS = "http://127.0.0.1:9"  # the discard port: nothing listens, connections are refused
# The UI's sign-in in tests (ui_env configures it): a name other than the default, so the actor shows it.
UI_USER = "operator"
UI_PASSWORD = "correct-horse-battery-staple-17"


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


def sign_in(at: AppTest, username: str = UI_USER, password: str = UI_PASSWORD) -> AppTest:
    """Fill the sidebar's sign-in form and submit it, as a person would."""
    at.sidebar.text_input(key="auth.username").input(username)
    at.sidebar.text_input(key="auth.password").input(password)
    [submit] = [b for b in at.sidebar.button if b.label == "Sign in"]
    return submit.click().run()
