"""The running local stack's settings, for commands run by hand next to it.

``make demo`` starts the stack with the demo's short windows (a 30 s search,
three candidates) and its own ports; a ``forestops train`` typed in another
shell would otherwise use the defaults (a 60 s search, four candidates) and
perhaps another MLflow.  ``stack up`` records the ``FORESTOPS_*`` values it
started with in its state file (secrets and URLs holding credentials left
out), and commands that act on the stack's data take every recorded value
the shell does not set itself, saying which.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, MutableMapping
from pathlib import Path

from forestops.redaction import is_secret_name

NOTE = "environment"
PREFIX = "FORESTOPS_"


def shareable(environ: Mapping[str, str]) -> dict[str, str]:
    """The ``FORESTOPS_*`` values safe to keep in the state file: no secrets, no URL with credentials."""
    kept = {}
    for name, value in environ.items():
        if not name.startswith(PREFIX) or is_secret_name(name):
            continue
        if "://" in value and "@" in value.split("://", 1)[1].split("/", 1)[0]:
            continue
        kept[name] = value
    return dict(sorted(kept.items()))


def running_stack_environment(home: Path) -> dict[str, str]:
    """What the stack under ``home`` recorded at start, when it is running (else nothing)."""
    from forestops.local import supervise

    state = supervise.StackState.load(home / "stack" / "state.json")
    if not state.alive():
        return {}
    try:
        recorded = json.loads(state.notes.get(NOTE, "{}"))
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in recorded.items()} if isinstance(recorded, dict) else {}


def adopt_running_stack(home: Path, environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Copy the running stack's values the environment does not set into it; returns those copied."""
    environ = os.environ if environ is None else environ
    adopted = {name: value for name, value in running_stack_environment(home).items() if name not in environ}
    environ.update(adopted)
    return adopted
