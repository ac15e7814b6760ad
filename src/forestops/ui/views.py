"""Rendering helpers shared by the pages (errors, exchanges, the page preamble)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import streamlit as st

from forestops.ui import auth
from forestops.ui.clients.http import Exchange, ServiceError
from forestops.ui.context import Services, services_or_error

# Material icons ship with Streamlit, so they render in any browser (emoji need an emoji font).
UP = ":green-badge[:material/check_circle: up]"
DOWN = ":red-badge[:material/error: down]"
NO_MODEL = ":orange-badge[:material/warning: no model]"


def page(title: str, icon: str) -> Services:
    """Set the page up and return the services; a bad configuration stops the page with its message."""
    st.set_page_config(page_title=f"forestops · {title}", page_icon=icon, layout="wide")
    st.title(f"{icon} {title}")
    services = services_or_error()
    if not isinstance(services, Services):
        st.error(f"The configuration is invalid, so the app cannot reach the services.\n\n```\n{services}\n```")
        st.stop()
    auth.sidebar(services.settings)
    return services


def show_error(error: ServiceError, prefix: str = "") -> None:
    lead = f"{prefix}: " if prefix else ""
    st.error(f"**{lead}{error.service} — {error.problem}**\n\nWhat to do: {error.advice}")


def show_exchange(record: Exchange | ServiceError, title: str = "") -> None:
    """The request and the response of one call, as the API console shows them."""
    if isinstance(record, ServiceError):
        show_error(record)
        return
    if title:
        st.markdown(f"**{title}**")
    left, right = st.columns(2)
    with left:
        st.markdown("Request")
        request: dict[str, Any] = {"method": record.method, "url": record.url}
        if record.params:
            request["params"] = record.params
        if record.request_headers:
            request["headers"] = record.request_headers
        if record.request_body is not None:
            request["body"] = record.request_body
        st.code(_pretty(request, limit=4000), language="json")
    with right:
        if record.transport_error is not None:
            st.markdown(f"Response: **no answer** after {record.elapsed_ms:.0f} ms")
            st.error(f"{record.transport_error}")
        else:
            colour = "green" if record.ok else "red"
            st.markdown(f"Response: :{colour}-badge[HTTP {record.status_code}] in {record.elapsed_ms:.0f} ms")
            st.code(_pretty(record.response_body), language="json", height=420)


def _pretty(value: Any, limit: int = 20_000) -> str:
    text = value if isinstance(value, str) else _compact_json(value)
    return text if len(text) <= limit else text[:limit] + f"\n... ({len(text) - limit} more characters)"


def _compact_json(value: Any, depth: int = 0) -> str:
    """Indented JSON where a list of plain values (a data row) stays on one line."""
    pad, inner = "  " * depth, "  " * (depth + 1)
    if isinstance(value, dict) and value:
        items = [f"{inner}{json.dumps(str(k))}: {_compact_json(v, depth + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
        return "[\n" + ",\n".join(inner + _compact_json(v, depth + 1) for v in value) + f"\n{pad}]"
    return json.dumps(value, default=str)


def ago(moment: datetime | str | None) -> str:
    """'3 min ago' for a time (naive times are UTC, as the services store them)."""
    if moment is None:
        return "never"
    if isinstance(moment, str):
        text = moment
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return text
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    seconds = (datetime.now(UTC) - moment).total_seconds()
    if seconds < 0:
        return f"in {_span(-seconds)}"
    return f"{_span(seconds)} ago"


def _span(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 129600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def remember(key: str, value: Any) -> None:
    """Keep an action's outcome across the rerun its button causes."""
    st.session_state[key] = value


def show_remembered(key: str) -> None:
    outcome = st.session_state.get(key)
    if outcome is None:
        return
    kind, message = outcome
    (st.success if kind == "ok" else st.error)(message)
