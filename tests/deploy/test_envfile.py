"""`make up`'s .env: fresh secrets on first use, never overwritten, nothing secret committed."""

from __future__ import annotations

import os
import re
import stat
import subprocess

import pytest
from cryptography.fernet import Fernet

from forestops.deploy.envfile import EnvFileError, create_env_file, parse_env, render
from tests.deploy import compose
from tests.support.processes import forestops_argv

pytestmark = pytest.mark.unit

SECRET_NAME = re.compile(r"(PASSWORD|SECRET_KEY|SECRET$|TOKEN|FERNET_KEY)")


def test_example_has_a_placeholder_for_every_secret_and_no_value() -> None:
    pairs = parse_env(compose.ENV_EXAMPLE.read_text())
    secret_names = sorted(name for name in pairs if SECRET_NAME.search(name))
    assert secret_names, "no secret in .env.example: the pattern no longer matches its names"
    literal = {
        name: value for name, value in pairs.items() if name in secret_names and not value.startswith("generate:")
    }
    assert literal == {}, f"secrets with a committed value in .env.example: {literal}"


def test_render_replaces_each_placeholder_with_a_new_value() -> None:
    template = compose.ENV_EXAMPLE.read_text()
    first, second = parse_env(render(template)), parse_env(render(template))
    placeholders = {k for k, v in parse_env(template).items() if v.startswith("generate:")}
    assert not [k for k, v in first.items() if v.startswith("generate:")]
    for name in placeholders:
        assert len(first[name]) >= 24, name
        assert first[name] != second[name], f"{name} is not random"
    generated = [first[name] for name in placeholders]
    assert len(set(generated)) == len(generated), "two secrets got the same value"
    # everything that is not a placeholder is kept as written
    assert {k: v for k, v in first.items() if k not in placeholders} == {
        k: v for k, v in parse_env(template).items() if k not in placeholders
    }


def test_fernet_key_is_accepted_by_cryptography_and_passwords_are_url_safe() -> None:
    values = parse_env(render(compose.ENV_EXAMPLE.read_text()))
    token = Fernet(values["AIRFLOW_FERNET_KEY"].encode()).encrypt(b"connection password")
    assert Fernet(values["AIRFLOW_FERNET_KEY"].encode()).decrypt(token) == b"connection password"
    for name, value in values.items():
        if name.endswith("PASSWORD"):
            # embedded in SQLAlchemy URLs and SQL literals without quoting
            assert re.fullmatch(r"[A-Za-z0-9_-]+", value), name


def test_unknown_kind_is_an_error_naming_the_line_and_variable() -> None:
    with pytest.raises(EnvFileError, match=r"line 2: DB_PASSWORD asks for unknown kind 'pasword'"):
        render("# comment\nDB_PASSWORD=generate:pasword\n")


def test_existing_env_file_is_never_overwritten(tmp_path) -> None:
    target = tmp_path / ".env"
    assert create_env_file(compose.ENV_EXAMPLE, target)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    before = target.read_bytes()
    assert not create_env_file(compose.ENV_EXAMPLE, target)
    assert target.read_bytes() == before


def test_gen_env_command_creates_then_keeps(tmp_path) -> None:
    target = tmp_path / ".env"
    argv = forestops_argv("gen-env", "--example", str(compose.ENV_EXAMPLE), "--target", str(target))
    first = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert first.returncode == 0, first.stderr
    assert "created" in first.stdout
    content = target.read_text()
    second = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert second.returncode == 0, second.stderr
    assert "kept existing" in second.stdout
    assert target.read_text() == content


def test_standalone_script_runs_without_the_package(tmp_path) -> None:
    """`make up` runs the module file with a bare python3 on a VM: it must need only the standard library."""
    target = tmp_path / ".env"
    script = compose.SRC / "forestops" / "deploy" / "envfile.py"
    result = subprocess.run(
        ["python3", "-I", "-S", str(script), str(compose.ENV_EXAMPLE), str(target)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert not [k for k, v in parse_env(target.read_text()).items() if v.startswith("generate:")]


def test_every_variable_the_compose_files_use_is_documented_in_the_example() -> None:
    documented = set(parse_env(compose.ENV_EXAMPLE.read_text()))
    for path in (compose.COMPOSE_FILE, compose.CELERY_OVERRIDE):
        # ${NAME}, ${NAME:-default}, ${NAME:?message}; $${NAME} is an escaped shell variable
        used = set(re.findall(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)", path.read_text()))
        assert used - documented == set(), f"{path.name} uses variables .env.example does not list"
        if path == compose.COMPOSE_FILE:
            assert {"MYSQL_ROOT_PASSWORD", "AIRFLOW_JWT_SECRET", "FORESTOPS_DATASOURCE_URL"} <= used


def test_make_creates_env_once(tmp_path) -> None:
    """The Makefile recipe `make up` depends on, run in a copy of the files it needs."""
    (tmp_path / "src/forestops/deploy").mkdir(parents=True)
    for relative in ("Makefile", ".env.example", "src/forestops/deploy/envfile.py"):
        (tmp_path / relative).write_text((compose.REPO / relative).read_text())
    first = subprocess.run(
        ["make", "-s", ".env"], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
    )
    assert first.returncode == 0, first.stderr
    content = (tmp_path / ".env").read_text()
    assert not [k for k, v in parse_env(content).items() if v.startswith("generate:")]
    (tmp_path / ".env.example").touch()  # a newer template must not regenerate the secrets
    second = subprocess.run(
        ["make", "-s", ".env"], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
    )
    assert second.returncode == 0, second.stderr
    assert (tmp_path / ".env").read_text() == content


def test_upgrade_appends_new_keys_with_fresh_secrets_and_keeps_every_existing_byte(tmp_path) -> None:
    """An .env from an older version (no AIRFLOW_API_SECRET_KEY, a value the user edited, no final newline)."""
    target = tmp_path / ".env"
    assert create_env_file(compose.ENV_EXAMPLE, target)
    lines = [line for line in target.read_text().splitlines() if not line.startswith("AIRFLOW_API_SECRET_KEY=")]
    lines = [
        ("FORESTOPS_GROUP_NUMBER=7  # ours" if line.startswith("FORESTOPS_GROUP_NUMBER=") else line) for line in lines
    ]
    old = "\n".join(lines).encode()
    target.write_bytes(old)

    argv = forestops_argv("gen-env", "--example", str(compose.ENV_EXAMPLE), "--target", str(target))
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert "added the new keys AIRFLOW_API_SECRET_KEY" in result.stdout
    upgraded = target.read_bytes()
    assert upgraded.startswith(old), "an existing byte changed"
    values = parse_env(upgraded.decode())
    assert len(values["AIRFLOW_API_SECRET_KEY"]) >= 24 and not values["AIRFLOW_API_SECRET_KEY"].startswith("generate:")
    assert values["FORESTOPS_GROUP_NUMBER"] == "7  # ours"
    assert set(values) == set(parse_env(compose.ENV_EXAMPLE.read_text()))

    again = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert again.returncode == 0 and "kept existing" in again.stdout and "added" not in again.stdout
    assert target.read_bytes() == upgraded


def test_make_env_adds_keys_a_newer_example_brings(tmp_path) -> None:
    (tmp_path / "src/forestops/deploy").mkdir(parents=True)
    for relative in ("Makefile", ".env.example", "src/forestops/deploy/envfile.py"):
        (tmp_path / relative).write_text((compose.REPO / relative).read_text())
    example = tmp_path / ".env.example"
    example.write_text(example.read_text().replace("AIRFLOW_API_SECRET_KEY=generate:jwt-secret\n", ""))
    first = subprocess.run(["make", "-s", ".env"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    before = (tmp_path / ".env").read_bytes()
    assert b"AIRFLOW_API_SECRET_KEY" not in before
    (tmp_path / ".env.example").write_text((compose.REPO / ".env.example").read_text())  # the upgrade
    second = subprocess.run(["make", "-s", ".env"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert second.returncode == 0, second.stderr
    after = (tmp_path / ".env").read_bytes()
    assert after.startswith(before) and "AIRFLOW_API_SECRET_KEY" in parse_env(after.decode())


def test_make_exports_telemetry_off_to_everything_it_starts(tmp_path) -> None:
    """`make test`, `make demo` and `make bench` (and CI, which runs make test) inherit these."""
    (tmp_path / "Makefile").write_text(
        (compose.REPO / "Makefile").read_text() + '\nprobe-env:\n\t@echo "$$MLFLOW_DISABLE_TELEMETRY $$DO_NOT_TRACK"\n'
    )
    env = {k: v for k, v in os.environ.items() if k not in {"MLFLOW_DISABLE_TELEMETRY", "DO_NOT_TRACK"}}
    result = subprocess.run(
        ["make", "-s", "probe-env"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "true 1", result.stdout + result.stderr
