"""The pin: pause automatic promotion until a person lifts it.

A champion chosen by hand (``forestops promote`` or ``rollback``) would
otherwise be replaced by the next automatic training that scores better on
its own evaluation rows, minutes later.  The pin is one tag on the
registered model (``names.TAG_PROMOTION_PIN``), so every reader that
already talks to the registry (the promotion step, the inference API's
``/model``, the UI, the CLI) sees the same state without a new table.

While pinned, a training still registers and scores its version; the
promotion step records it as ``held_by_pin`` and gives it the challenger
alias instead of the champion alias.  Manual ``promote`` and ``rollback``
still work: the pin stops only automatic moves.  Setting and lifting the pin
take the promotion lock, so a training deciding at that moment sees either
the old or the new state, never half of it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from forestops.errors import ForestopsError
from forestops.names import TAG_PROMOTION_PIN
from forestops.training import history


class PinError(ForestopsError):
    """A pin that cannot be set or lifted; the message says why."""


@dataclass(frozen=True)
class Pin:
    version: str | None  # the champion when the pin was set
    by: str
    at: str
    reason: str = ""

    def describe(self) -> str:
        why = f" ({self.reason})" if self.reason else ""
        return f"automatic promotion paused since {self.at} by {self.by}, champion then v{self.version}{why}"

    @classmethod
    def from_tag(cls, text: str) -> Pin:
        """The tag's JSON; a tag set by hand with any other text still counts as a pin."""
        try:
            data = json.loads(text)
            version, by, at = str(data.get("version")), str(data.get("by", "")), str(data.get("at", ""))
            return cls(version, by, at, str(data.get("reason", "")))
        except (ValueError, AttributeError):
            return cls(None, "unknown", "", str(text))


def read_pin(client, model_name: str) -> Pin | None:
    """The model's pin, or None (also when the model is not registered yet)."""
    from mlflow.exceptions import MlflowException

    try:
        tags = client.get_registered_model(model_name).tags or {}
    except MlflowException as error:
        if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"):
            return None
        raise
    text = tags.get(TAG_PROMOTION_PIN)
    return Pin.from_tag(text) if text is not None else None


def pin(engine, client, model_name: str, by: str, reason: str = "") -> Pin:
    """Pause automatic promotion, holding the current champion."""
    from forestops.training import promotion

    with promotion.promotion_lock(engine, model_name) as connection:
        champion = promotion.current_champion(client, model_name)
        if champion is None:
            raise PinError(f"model {model_name!r} has no champion to hold; promote a version first")
        existing = read_pin(client, model_name)
        if existing is not None:
            raise PinError(f"{model_name!r} is already pinned: {existing.describe()}; `forestops unpin` lifts it")
        held = Pin(champion, by, datetime.now(UTC).isoformat(timespec="seconds"), reason)
        history.record(
            connection,
            model_name,
            history.AliasChange(
                "champion", history.ACTION_PIN, champion, champion, by, reason=reason or "automatic promotion paused"
            ),
        )
        client.set_registered_model_tag(model_name, TAG_PROMOTION_PIN, json.dumps(asdict(held)))
    return held


def unpin(engine, client, model_name: str, by: str = "unknown") -> Pin:
    """Resume automatic promotion; returns the pin that was lifted."""
    from forestops.training import promotion

    with promotion.promotion_lock(engine, model_name) as connection:
        existing = read_pin(client, model_name)
        if existing is None:
            raise PinError(f"{model_name!r} is not pinned: automatic promotion is already on")
        champion = promotion.current_champion(client, model_name)
        reason = f"automatic promotion resumed ({existing.describe()})"
        change = history.AliasChange("champion", history.ACTION_UNPIN, champion, champion, by, reason=reason)
        history.record(connection, model_name, change)
        client.delete_registered_model_tag(model_name, TAG_PROMOTION_PIN)
    return existing
