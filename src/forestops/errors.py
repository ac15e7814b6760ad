"""The one error hierarchy of forestops and the exit code each kind means.

Every failure a user can meet in normal operation derives from
:class:`ForestopsError`.  Its message is meant for a person: it names the
cause and the fix, and never carries a secret (build messages with
:func:`forestops.redaction.redact` where user input is echoed).  The CLI
edge catches this one base class, prints the message, and exits with the
class's code; anything else is a bug and keeps its traceback.

Exit codes (documented in docs/configuration.md):

* 0 success
* 1 an operation failed (a server did not answer, a check failed)
* 2 configuration or usage that cannot work (fix the settings, then retry)
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILURE = 1
    CONFIGURATION = 2


class ForestopsError(RuntimeError):
    """A failure with a message for a person; the CLI exits with ``exit_code``."""

    exit_code: ExitCode = ExitCode.FAILURE


class ConfigurationError(ForestopsError):
    """Settings or arguments that cannot work; retrying unchanged will not help."""

    exit_code = ExitCode.CONFIGURATION


class ServiceUnavailable(ForestopsError):
    """A server this step needs did not answer; retrying later may help."""


class DataError(ForestopsError):
    """Data that breaks the contract (rows, files, answers of the data API)."""
