"""Clients of the stack's services, each returning data or a ``ServiceError``."""

from forestops.ui.clients.http import Exchange, ServiceError

__all__ = ["Exchange", "ServiceError"]
