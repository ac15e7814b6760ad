"""Release controls of the Models page: the promotion history, rollback and promote, each confirmed once.

A click on "Roll back" or "Promote" only arms the action; it runs when the
confirmation that then appears is pressed, and the arming is cleared after
use (or on "Cancel"), so a stale confirmation can never fire twice.  The
moves go through ``forestops.training.promotion`` (the same lock and the
same history rows as the CLI and the training DAG), with the signed-in UI
user as the actor.  The inference service picks the new champion up on its
next poll of the alias.

Access: the actions need a user signed in through the UI's login
(``forestops.ui.auth``), recorded as ``ui:<user>``.  Without a password
(``FORESTOPS_UI_PASSWORD``) they are refused with a message naming it, except
when the UI binds a loopback address, where they stay open and are recorded
as ``ui:anonymous``.  "Confirm" is only drawn, and only acted on, while the access holds.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from forestops.settings import Settings
from forestops.ui import auth

ARMED = "forestops_release_armed"  # session key: the action waiting for its confirmation
DONE = "forestops_release_done"  # session key: the outcome to show after the rerun
HISTORY_ROWS = 50


def _engine(settings: Settings):
    from forestops.storage.db import make_engine

    return make_engine(settings.raw_database_url)


def history_rows(settings: Settings) -> list[dict[str, Any]] | str:
    """The history, newest first, or why it cannot be read."""
    from forestops.training import history

    engine = _engine(settings)
    try:
        with engine.connect() as connection:
            return history.entries(connection, settings.model_name, HISTORY_ROWS)
    except Exception as error:  # no table yet, database down: the page shows why
        return f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"
    finally:
        engine.dispose()


def rollback_target(settings: Settings, champion: str | None, tags: dict[str, str]) -> str | None:
    """Where a rollback would go now: the champion before the current one (history first, then the tag)."""
    if champion is None:
        return None
    from forestops.training import history
    from forestops.training.promotion import TAG_PREVIOUS_CHAMPION

    engine = _engine(settings)
    try:
        with engine.connect() as connection:
            before = history.champion_before(connection, settings.model_name, champion)
    except Exception:
        before = None
    finally:
        engine.dispose()
    return before or tags.get(TAG_PREVIOUS_CHAMPION) or None


def _run(settings: Settings, action: dict[str, str], user: str | None) -> str:
    """Do the armed action; returns what happened, in words (errors too)."""
    from forestops.training import history, promotion, tracking

    engine = _engine(settings)
    try:
        client = tracking.connect(settings.mlflow_tracking_uri, settings.experiment_name)
        actor = history.ui_actor(user)
        if action["kind"] == "rollback":
            decision = promotion.rollback(engine, client, settings.model_name, decided_by=actor)
            return f"Rolled back: v{decision.version} is champion again (was v{decision.previous_champion})."
        decision = promotion.promote(
            engine, client, settings.model_name, action["version"], decided_by=actor, reason="promoted from the UI"
        )
        return f"v{decision.version} is now champion (was v{decision.previous_champion or ' none'})."
    finally:
        engine.dispose()


def show_history(settings: Settings) -> None:
    st.subheader("Promotion history")
    rows = history_rows(settings)
    if isinstance(rows, str):
        st.warning(f"The promotion history cannot be read from {settings.raw_database_url.split('@')[-1]}: {rows}")
        return
    if not rows:
        st.caption("No alias change recorded yet.")
        return
    table = pd.DataFrame(rows)[
        [
            "changed_at",
            "alias",
            "action",
            "from_version",
            "to_version",
            "actor",
            "policy",
            "candidate_score",
            "champion_score",
            "reason",
        ]
    ]
    st.dataframe(table, hide_index=True)


def show_controls(settings: Settings, versions: list, champion) -> None:
    """Rollback and promote, each behind a confirmation that resets after use."""
    st.subheader("Change the champion")
    access = auth.access(settings)
    done = st.session_state.pop(DONE, None)
    if done is not None:
        (st.success if done[0] else st.error)(done[1])
    if not access.allowed:
        st.session_state.pop(ARMED, None)  # signed out meanwhile: an armed action is dropped, never kept
        st.info(access.refusal, icon=":material/lock:")
        return
    champion_version = champion.version if champion else None
    target = rollback_target(settings, champion_version, champion.tags if champion else {})
    left, right = st.columns(2)
    with left:
        label = f"Roll back to v{target}" if target else "Roll back"
        if st.button(label, key="release_rollback", disabled=target is None, help="Return to the previous champion"):
            st.session_state[ARMED] = {"kind": "rollback", "version": target or ""}
    with right:
        others = [v.version for v in versions if v.version != champion_version]
        chosen = st.selectbox("Version to promote", others, key="release_version", format_func=lambda v: f"v{v}")
        if st.button("Promote", key="release_promote", disabled=not others):
            st.session_state[ARMED] = {"kind": "promote", "version": str(chosen)}
    armed = st.session_state.get(ARMED)
    if armed is None:
        return
    what = (
        f"roll back the champion from v{champion_version} to v{armed['version']}"
        if armed["kind"] == "rollback"
        else f"make v{armed['version']} the champion (now v{champion_version or ' none'})"
    )
    st.warning(f"Really {what}? The inference service switches within {settings.model_poll_seconds:g} s.")
    confirm, cancel = st.columns(2)
    if confirm.button("Confirm", key="release_confirm", type="primary"):
        st.session_state.pop(ARMED, None)  # reset before running: one confirmation, one action
        try:
            st.session_state[DONE] = (True, _run(settings, armed, access.user))
        except Exception as error:
            st.session_state[DONE] = (False, f"Not done: {error}")
        st.rerun()
    if cancel.button("Cancel", key="release_cancel"):
        st.session_state.pop(ARMED, None)
        st.rerun()
