"""The UI's sign-in: looking and predicting are open, actions that change state need a signed-in user.

Gated actions: triggering a DAG and restarting the collection (Pipeline
page), rolling back or promoting a model version (Models page), and the API
console's calls that change state (a data API fetch, which starts a group's
batch clock, and a DAG trigger).  Everything else (every page's view, Predict,
Batch predict and the console's ``POST /predict``) needs no sign-in.

One account, from the settings: ``FORESTOPS_UI_USERNAME`` (``admin``) and
``FORESTOPS_UI_PASSWORD``.  The password is compared with
:func:`hmac.compare_digest` (the user name too, so a wrong name takes as long
as a wrong password), and a failed attempt names neither which part was wrong
nor anything typed.  The signed-in user lives in Streamlit's server-side
session state (the browser holds no token), so closing or reloading the tab
signs out.  Against guessing, each failed attempt waits
``FAILURE_DELAY_SECONDS`` and the whole process accepts at most
``FAILURES_PER_WINDOW`` failures per ``WINDOW_SECONDS`` (then every sign-in
is refused until the window frees up).

Without a password the actions are refused, with a message naming
``FORESTOPS_UI_PASSWORD``, unless Streamlit binds a loopback address
(``forestops ui`` on its default 127.0.0.1): then only this machine reaches
the UI and the actions stay open, recorded as ``ui:anonymous``.  The local
stack always generates a password, so ``make demo`` asks for a sign-in too.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import streamlit as st

from forestops.settings import Settings, SettingsError, load_settings

log = logging.getLogger(__name__)

USER_KEY = "forestops_ui_user"  # session key: the signed-in user name (never a widget key)
PROBLEM_KEY = "forestops_ui_sign_in_problem"  # session key: why the last attempt failed, shown once
USERNAME_FIELD = "auth.username"
PASSWORD_FIELD = "auth.password"
FAILURE_DELAY_SECONDS = 1.0
FAILURES_PER_WINDOW = 10
WINDOW_SECONDS = 60.0
SIGN_IN_FAILED = "Sign-in failed: wrong user name or password."


class Throttle:
    """At most ``limit`` failed sign-ins per ``window`` seconds, counted over the whole process."""

    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._failures: deque[float] = deque()
        self._lock = threading.Lock()

    def _forget_old(self, now: float) -> None:
        while self._failures and self._failures[0] <= now - self.window:
            self._failures.popleft()

    def wait_seconds(self) -> float:
        """0 when an attempt may be checked now, else how long until one may."""
        with self._lock:
            now = self._clock()
            self._forget_old(now)
            if len(self._failures) < self.limit:
                return 0.0
            return self._failures[0] + self.window - now

    def failed(self) -> None:
        with self._lock:
            now = self._clock()
            self._forget_old(now)
            self._failures.append(now)


THROTTLE = Throttle(FAILURES_PER_WINDOW, WINDOW_SECONDS)


@dataclass(frozen=True)
class Access:
    """Whether this session may act now, as whom, and if not, why (a sentence saying what to do)."""

    allowed: bool
    user: str | None
    refusal: str = ""


def bind_address() -> str | None:
    """The interface Streamlit listens on (``forestops ui`` passes FORESTOPS_UI_HOST); None: every interface."""
    address = st.get_option("server.address")
    return str(address) if address else None


def answers_only_locally() -> bool:
    """True when Streamlit binds a loopback address, so only this machine reaches the UI."""
    address = bind_address()
    if address is None:
        return False
    if address.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False


def _settings(settings: Settings | None) -> Settings | None:
    if settings is not None:
        return settings
    try:
        return load_settings()
    except SettingsError:
        return None


def login_required(settings: Settings | None = None) -> bool:
    """Actions need a signed-in user: always when a password is set, and without one off a loopback bind."""
    settings = _settings(settings)
    return settings is None or settings.ui_password is not None or not answers_only_locally()


def current_user(settings: Settings | None = None) -> str | None:
    """The signed-in user of this session, or None."""
    settings = _settings(settings)
    if settings is None or settings.ui_password is None:
        return None
    user = st.session_state.get(USER_KEY)
    # A session signed in under another configured name (the setting changed) is signed out.
    return user if isinstance(user, str) and user == settings.ui_username else None


def access(settings: Settings) -> Access:
    """May this session change state now?"""
    if settings.ui_password is None:
        if answers_only_locally():
            return Access(True, None)
        where = bind_address() or "every interface"
        return Access(
            False,
            None,
            f"Actions are switched off: the UI has no password. Set FORESTOPS_UI_PASSWORD (user name: "
            f"FORESTOPS_UI_USERNAME, default admin) where the UI runs, then restart it; the UI answers on "
            f"{where}, not only on this machine.",
        )
    user = current_user(settings)
    if user is None:
        return Access(
            False, None, "Sign in (in the sidebar) to trigger runs, restart the collection or change the champion."
        )
    return Access(True, user)


def credentials_match(settings: Settings, username: str, password: str) -> bool:
    """Both parts compared in constant time, both always compared."""
    if settings.ui_password is None:
        return False
    user_ok = hmac.compare_digest(username.encode("utf-8"), settings.ui_username.encode("utf-8"))
    password_ok = hmac.compare_digest(password.encode("utf-8"), settings.ui_password.get_secret_value().encode("utf-8"))
    return user_ok and password_ok


def sign_in(settings: Settings, username: str, password: str) -> str | None:
    """Sign this session in; None on success, else the message to show (which repeats nothing typed)."""
    wait = THROTTLE.wait_seconds()
    if wait > 0:
        log.warning("UI sign-in refused: too many failed attempts in the last %.0f s", THROTTLE.window)
        return f"Too many failed sign-ins: try again in {math.ceil(wait)} s."
    if credentials_match(settings, username.strip(), password):
        st.session_state[USER_KEY] = settings.ui_username
        log.info("UI sign-in: %s", settings.ui_username)
        return None
    THROTTLE.failed()
    log.warning("UI sign-in failed")  # never what was typed: a password may sit in the user name field
    time.sleep(FAILURE_DELAY_SECONDS)
    return SIGN_IN_FAILED


def sign_out() -> None:
    st.session_state.pop(USER_KEY, None)


def sidebar(settings: Settings) -> None:
    """The sign-in form, or who is signed in and a sign-out button, or why actions are off."""
    with st.sidebar:
        if settings.ui_password is None:
            now = access(settings)
            if now.allowed:
                st.caption(
                    f"No UI password (FORESTOPS_UI_PASSWORD): actions are open because the UI answers only on "
                    f"this machine ({bind_address()})."
                )
            else:
                st.warning(now.refusal, icon=":material/lock:")
            return
        user = current_user(settings)
        if user is not None:
            st.caption(f"Signed in as **{user}**.")
            if st.button("Sign out", key="auth.sign_out"):
                sign_out()
                st.rerun()
            return
        st.caption("Looking and predicting need no sign-in; triggering runs and changing the champion do.")
        with st.form("auth.sign_in", clear_on_submit=True):
            st.text_input("User name", key=USERNAME_FIELD)
            st.text_input("Password", type="password", key=PASSWORD_FIELD)
            st.form_submit_button("Sign in", on_click=_submitted, args=(settings,))
        problem = st.session_state.pop(PROBLEM_KEY, None)
        if problem:
            st.error(problem)


def _submitted(settings: Settings) -> None:
    """The form's callback: runs before the page, so the page already draws the outcome.

    The password field is emptied here on the server too (``clear_on_submit`` only clears the browser's copy).
    """
    username = str(st.session_state.get(USERNAME_FIELD) or "")
    password = str(st.session_state.get(PASSWORD_FIELD) or "")
    st.session_state[PASSWORD_FIELD] = ""
    problem = sign_in(settings, username, password)
    if problem is not None:
        st.session_state[PROBLEM_KEY] = problem
