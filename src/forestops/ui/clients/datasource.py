"""The batch data API: its clock (``/status``), a portion (``/data``) and a restart."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from forestops.ui.clients.http import Exchange, ServiceError, exchange

SERVICE = "data API"


@dataclass(frozen=True)
class DataSourceClient:
    base_url: str
    timeout: float = 5.0

    @property
    def advice(self) -> str:
        return (
            f"Start it with `forestops datasource` (or `make demo`), or point FORESTOPS_DATASOURCE_URL "
            f"(now {self.base_url}) at a running one."
        )

    def _get(self, path: str, params: dict[str, Any] | None = None) -> Exchange:
        return exchange(SERVICE, "GET", f"{self.base_url}{path}", params=params, timeout=self.timeout)

    def _interpret(self, record: Exchange) -> dict[str, Any] | ServiceError:
        if record.ok and isinstance(record.response_body, dict):
            return record.response_body
        if record.ok:
            return ServiceError(SERVICE, f"unexpected answer from {record.url}", self.advice, record.status_code)
        return record.error(self.advice)

    def health(self) -> dict[str, Any] | ServiceError:
        return self._interpret(self._get("/health"))

    def status(self, group_number: int) -> dict[str, Any] | ServiceError:
        return self._interpret(self._get("/status", {"group_number": group_number}))

    def fetch_exchange(self, group_number: int) -> Exchange:
        """One ``GET /data`` call: note that it counts as a real collection call for the group."""
        return self._get("/data", {"group_number": group_number})

    def restart_exchange(self, group_number: int) -> Exchange:
        return self._get("/restart_data_generation", {"group_number": group_number})

    def restart(self, group_number: int) -> dict[str, Any] | ServiceError:
        return self._interpret(self.restart_exchange(group_number))
