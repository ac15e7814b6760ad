"""Create the compose deployment's ``.env`` from ``.env.example`` with fresh secrets.

``.env.example`` is committed and holds no secret: a value written as
``generate:<kind>`` is a placeholder that this module replaces with a new
random value of that kind.  An existing ``.env`` keeps every byte it has,
because the databases keep the passwords they were initialised with: a
second set of passwords would lock the services out of their own data.  A
newer ``.env.example`` may bring keys the existing file lacks (a new secret,
a new switch): those, and only those, are appended, with fresh secrets.

The module uses only the standard library so that ``make up`` can run it with
any ``python3`` on a fresh VM (or in a throwaway Python container) without
installing the package.  The Fernet key is made exactly as
``cryptography.fernet.Fernet.generate_key`` makes it: 32 random bytes,
URL-safe base64.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import secrets
import sys
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

PLACEHOLDER = re.compile(r"^generate:(?P<kind>[a-z-]+)$")


def _password() -> str:
    # URL-safe characters only: the value is embedded in SQLAlchemy URLs and SQL literals.
    return secrets.token_urlsafe(24)


def _fernet_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode("ascii")


def _jwt_secret() -> str:
    return secrets.token_urlsafe(48)


def _token() -> str:
    return secrets.token_hex(24)


GENERATORS: dict[str, Callable[[], str]] = {
    "password": _password,
    "fernet-key": _fernet_key,
    "jwt-secret": _jwt_secret,
    "token": _token,
}


class EnvFileError(ValueError):
    """The template asks for something this module cannot make."""


def render(template: str) -> str:
    """Return ``template`` with every ``KEY=generate:<kind>`` line given a fresh value."""
    lines = []
    for number, line in enumerate(template.splitlines(), start=1):
        key, sep, value = line.partition("=")
        match = PLACEHOLDER.match(value.strip()) if sep and not line.lstrip().startswith("#") else None
        if match:
            kind = match["kind"]
            if kind not in GENERATORS:
                known = ", ".join(sorted(GENERATORS))
                raise EnvFileError(f"line {number}: {key.strip()} asks for unknown kind {kind!r} (known: {known})")
            line = f"{key.strip()}={GENERATORS[kind]()}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def create_env_file(example: Path, target: Path) -> bool:
    """Write ``target`` from ``example`` unless it exists; return whether it was written.

    The file is created with mode 0600 and exclusively, so two concurrent
    ``make up`` runs cannot both write it.
    """
    if target.exists():
        log.info("%s exists; keeping its secrets", target)
        return False
    content = render(example.read_text())
    try:
        descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(descriptor, "w") as handle:
        handle.write(content)
    log.info("wrote %s with fresh secrets", target)
    return True


def missing_lines(template: str, existing: str) -> list[str]:
    """The rendered ``KEY=value`` lines of ``template`` whose key ``existing`` does not set, in template order."""
    present = set(parse_env(existing))
    wanted = [line for line in template.splitlines() if _key_of(line) and _key_of(line) not in present]
    return render("\n".join(wanted)).splitlines() if wanted else []


def _key_of(line: str) -> str | None:
    if not line.strip() or line.lstrip().startswith("#") or "=" not in line:
        return None
    return line.partition("=")[0].strip()


def add_missing_keys(example: Path, target: Path) -> list[str]:
    """Append to ``target`` the keys of ``example`` it lacks; return their names.

    Existing lines are never rewritten: the file is only opened for appending
    (after a newline when its last line has none).
    """
    existing = target.read_text()
    lines = missing_lines(example.read_text(), existing)
    if not lines:
        return []
    with target.open("a") as handle:
        if existing and not existing.endswith("\n"):
            handle.write("\n")
        handle.write(f"\n# Added from {example.name} by a newer version (existing values above are unchanged).\n")
        handle.write("\n".join(lines) + "\n")
    names = [line.partition("=")[0] for line in lines]
    log.info("added %s to %s", ", ".join(names), target)
    return names


def parse_env(text: str) -> dict[str, str]:
    """The KEY=VALUE pairs of an env file (comments and blank lines ignored)."""
    pairs = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        pairs[key.strip()] = value.strip()
    return pairs


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    example = Path(args[0]) if args else Path(".env.example")
    target = Path(args[1]) if len(args) > 1 else Path(".env")
    try:
        written = create_env_file(example, target)
        added = [] if written else add_missing_keys(example, target)
    except (OSError, EnvFileError) as error:
        print(f"cannot create or update {target}: {error}", file=sys.stderr)
        return 1
    if written:
        print(f"created {target}")
    elif added:
        print(f"kept existing {target}; added the new keys {', '.join(added)}")
    else:
        print(f"kept existing {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
