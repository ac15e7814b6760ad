"""The local state folder (``FORESTOPS_HOME``): made on first use, or a clear refusal.

Embedded databases, logs, the data API's state and the local stack's state
file all live under it, so a command that finds it missing creates it (with
its parents, readable by the owner only: it holds the Airflow password and
database files).  When it cannot be made or written, the user gets the
setting, the path and the reason instead of SQLite's "unable to open
database file" many frames later.
"""

from __future__ import annotations

import os
from pathlib import Path

from forestops.errors import ConfigurationError

HOME_MODE = 0o700


def ensure_home(home: Path) -> Path:
    """Create ``home`` if needed and check that it is a writable folder; returns it resolved."""
    resolved = home.expanduser().resolve()
    fix = "set FORESTOPS_HOME to a folder you can write (it is created when missing)"
    if resolved.exists() and not resolved.is_dir():
        raise ConfigurationError(f"FORESTOPS_HOME={home} is not a folder ({resolved} is a file); {fix}")
    try:
        resolved.mkdir(mode=HOME_MODE, parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigurationError(
            f"FORESTOPS_HOME={home} cannot be created ({error.strerror or error} at {error.filename or resolved}); "
            f"{fix}"
        ) from None
    if not os.access(resolved, os.W_OK | os.X_OK):
        raise ConfigurationError(f"FORESTOPS_HOME={home} is not writable by this user ({resolved}); {fix}")
    return resolved
