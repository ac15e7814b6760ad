"""A service's port, checked before the service spends time starting.

Without the check, the data API loads its whole data set and the MLflow
server starts its workers before the web server finds the port taken; the
user then reads a bind error deep in a log (and MLflow keeps running
without a socket).  One bind attempt up front names the port, the setting
that moves it, and the command that shows who holds it.
"""

from __future__ import annotations

import errno
import socket

from forestops.errors import ForestopsError


class PortInUse(ForestopsError):
    """The port a service should listen on is taken; stop its holder or pick another."""


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """True when binding ``host:port`` fails because something listens there."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                return True
            raise
    return False


def require_free_port(host: str, port: int, setting: str, title: str) -> None:
    """Raise :class:`PortInUse` (exit 1) naming ``FORESTOPS_<setting>`` when ``host:port`` is taken."""
    try:
        busy = port_in_use(port, host)
    except OSError as error:
        raise PortInUse(
            f"{title} cannot listen on {host}:{port} ({error.strerror or error}); "
            f"check the host (--host) and FORESTOPS_{setting}"
        ) from None
    if busy:
        raise PortInUse(
            f"port {port} ({title}) is already in use: stop what listens there "
            f"(`ss -ltnp 'sport = :{port}'` shows it) or set FORESTOPS_{setting} (or --port) to a free port"
        )
