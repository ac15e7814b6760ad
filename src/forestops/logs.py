"""The one logging set-up every forestops process uses.

Services and commands log to stderr with the time, level and logger name;
the local stack's launcher talks to a person at a terminal, so it asks for
the short form (clock time and message only).
"""

from __future__ import annotations

import logging
import sys

from forestops.redaction import install_log_redaction

FULL_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
SHORT_FORMAT = "%(asctime)s %(message)s"


def setup_logging(*, short: bool = False, level: int = logging.INFO) -> None:
    """Configure the root logger once (a no-op when a handler is already set)."""
    if short:
        logging.basicConfig(level=level, format=SHORT_FORMAT, datefmt="%H:%M:%S", stream=sys.stderr)
    else:
        logging.basicConfig(level=level, format=FULL_FORMAT)
    # Whatever a library logs (a connection URL, a request with its headers) goes out masked.
    install_log_redaction()
