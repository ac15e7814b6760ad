"""Masking secrets before text leaves the process: one rule for every output.

Error messages, log records, the UI, MLflow tags and params and process
command lines all pass text through :func:`redact` (or a value through
:func:`redact_value` when its name is known), so a password is hidden the
same way wherever it would otherwise appear.  What counts as secret:

* the ``user:password@`` part of any URL (``scheme://user:password@host``):
  the password is replaced, the user name kept (it helps diagnose a
  permission error and is not a credential on its own);
* a value whose *name* looks secret (``password``, ``passwd``, ``token``,
  ``secret``, ``key``, ``credential``, ``auth``, ``cookie``), whether given
  as ``name=value``, ``name: value`` or ``--name value``;
* any :class:`pydantic.SecretStr`.

Masking is deliberately over-eager: hiding a harmless value costs a little
diagnosis, printing a password costs a rotation.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import SecretBytes, SecretStr

MASK = "***"

# Names whose values are secret.  Matched as a word part, so "db_password",
# "FORESTOPS_ADMIN_TOKEN", "AWS_SECRET_ACCESS_KEY", "api-key" all count.
_SECRET_NAME = re.compile(
    r"passw(or)?d|passwd|pwd|token|secret|(^|[_\-.])(api)?key(s)?($|[_\-.])|credential|auth|cookie|session", re.I
)

# scheme://user:password@host  (password may contain anything but '@' and '/',
# and also the greedy case of an '@' inside an unencoded password: take the
# last '@' before the host part).
_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<user>[^:/@\s'\"]*):(?P<password>[^\s'\"/]*)@")

# name=value / name: value / "name": "value" / --name value, for secret-looking names.
_NAME_CHARS = r"[A-Za-z0-9_.\-]*"
_ASSIGNMENT = re.compile(
    r"(?P<name>[\"']?" + _NAME_CHARS + r"(?:passw(?:or)?d|passwd|pwd|token|secret|key|credential|auth|cookie)"
    r"[A-Za-z0-9_.\-]*[\"']?)(?P<sep>\s*[=:]\s*|\s+)(?P<quote>[\"']?)(?P<value>[^\s\"',;&]+)",
    re.I,
)
_BEARER = re.compile(r"(?P<kind>\b(?:Bearer|Basic|Token)\s+)(?P<value>[A-Za-z0-9+/=._\-~]{6,})")


def is_secret_name(name: str) -> bool:
    """True when a setting, parameter or header of this name holds a secret."""
    return bool(_SECRET_NAME.search(name))


def redact(text: Any) -> str:
    """``text`` (or ``str(text)``) with every recognisable secret replaced by ``***``."""
    if isinstance(text, SecretStr | SecretBytes):
        return MASK
    text = str(text)
    text = _URL_USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    text = _BEARER.sub(lambda m: f"{m['kind']}{MASK}", text)

    def assignment(match: re.Match[str]) -> str:
        name = match["name"]
        sep = match["sep"]
        if not is_secret_name(name.strip("\"'").lstrip("-")):
            return match[0]
        if sep.strip() == "" and not name.lstrip("\"'").startswith("-"):
            # "--password x" is an option with its value; "api key rotation" is prose.
            return match[0]
        if match["value"] == MASK or match["value"].startswith(MASK):
            return match[0]
        return f"{name}{sep}{match['quote']}{MASK}"

    return _ASSIGNMENT.sub(assignment, text)


def redact_value(name: str, value: Any) -> Any:
    """A value fit to show under ``name``: masked when the name or the value is secret."""
    if value is None:
        return None
    if isinstance(value, SecretStr | SecretBytes) or is_secret_name(name):
        return MASK
    if isinstance(value, str):
        return redact(value)
    return value


def redact_mapping(values: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``values`` (params, tags, settings) with each secret masked."""
    return {key: redact_value(str(key), value) for key, value in values.items()}


def redact_argv(argv: Iterable[str]) -> list[str]:
    """A command line fit to log: values of secret options and URL passwords masked."""
    shown: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            shown.append(MASK)
            hide_next = False
            continue
        if arg.startswith("-") and "=" not in arg and is_secret_name(arg.lstrip("-")):
            hide_next = True
            shown.append(arg)
            continue
        shown.append(redact(arg))
    return shown


class RedactingFilter(logging.Filter):
    """A logging filter that masks secrets in every record's final message.

    Installed on the root handlers by :func:`install_log_redaction`, so a
    library that logs a connection URL (SQLAlchemy, MLflow, httpx) cannot
    leak its password either.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it to the handler to report
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = None
        if record.exc_info and not record.exc_text:
            # Format the traceback once, redacted, so the handler prints that text.
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def install_log_redaction(logger: logging.Logger | None = None) -> None:
    """Add :class:`RedactingFilter` to every handler of ``logger`` (root by default); idempotent."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
