"""422 bodies that name the field, the value and what the field accepts.

pydantic's errors already carry the location and the input; this adds the
allowed domain from the data contract and one readable sentence, and keeps
echoed inputs short (a 10,001-row list is not repeated back).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from forestops import schema
from forestops.serving.contract import INT64_MAX, INT64_MIN, allowed_domain

_MAX_VALUE_CHARS = 120
_FIELDS_TEXT = f"only the fields {', '.join(schema.FEATURE_COLUMNS)}"


def _path(loc: Sequence[Any]) -> str:
    parts = [p for p in loc if p != "body"]
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "body"


def _short(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool) and not INT64_MIN <= value <= INT64_MAX:
        return str(value)  # JSON encoders stop at 64 bits
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return value if len(value) <= _MAX_VALUE_CHARS else value[:_MAX_VALUE_CHARS] + "..."
    if isinstance(value, (list, tuple)):
        return f"a list of {len(value)} items"
    if isinstance(value, dict):
        return f"an object with {len(value)} fields"
    text = repr(value)
    return text if len(text) <= _MAX_VALUE_CHARS else text[:_MAX_VALUE_CHARS] + "..."


def _field_and_allowed(loc: Sequence[Any], kind: str) -> tuple[str | None, str]:
    names = [p for p in loc if isinstance(p, str) and p != "body"]
    field = names[-1] if names else None
    if kind == "extra_forbidden":
        return field, _FIELDS_TEXT if len(names) > 1 else "only the field 'instances'"
    allowed = allowed_domain(field) if field else None
    if allowed is None:
        # One object holding the list; "an object, a list of ..." read as if a bare list were allowed too.
        allowed = f'a JSON object {{"instances": [...]}} whose "instances" is {_short(allowed_domain("instances"))}'
    return field, allowed


def _reason(error: dict[str, Any]) -> str:
    message = str(error.get("msg", "invalid"))
    return message.removeprefix("Value error, ")


def describe(errors: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """FastAPI-style ``detail`` items with ``field``, ``allowed`` and ``message`` added."""
    described = []
    for error in errors:
        loc = list(error.get("loc", ()))
        kind = str(error.get("type", ""))
        raw_value = error.get("input")
        problem = (error.get("ctx") or {}).get("error")
        if isinstance(problem, schema.ValueProblem) and (not loc or loc[-1] != problem.column):
            # raised for a whole row (see contract._BooleanRefusingBase): point at the field
            loc.append(problem.column)
            raw_value = problem.value
        field, allowed = _field_and_allowed(loc, kind)
        value = _short(raw_value)
        path = _path(loc)
        reason = _reason(error)
        if kind == "extra_forbidden" and field == schema.LABEL:
            message = f"{path}: the label is what /predict answers, not an input: drop {field} from each instance"
        elif kind == "missing":
            message = f"{path} is missing; expected {allowed}"
        elif isinstance(problem, schema.ValueProblem):  # its text already says what is wrong
            message = f"{path}: {value!r} is not valid; expected {allowed}"
        else:
            message = f"{path}: {value!r} is not valid ({reason}); expected {allowed}"
        described.append(
            {
                "loc": loc,
                "type": kind,
                "msg": reason,
                "input": value,
                "field": field,
                "allowed": allowed,
                "message": message,
            }
        )
    return described
