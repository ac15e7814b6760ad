"""Secret files under FORESTOPS_HOME are private when created, not chmod'ed afterwards.

The umask is opened wide (0) and ``chmod`` is made a no-op, as if the process
died between writing a secret and fixing its mode: files must still be 0600
and their folders 0700, because the mode was given at creation.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from forestops.local import airflow, stack
from forestops.private_files import private_dir, write_private
from forestops.settings import load_settings

pytestmark = pytest.mark.unit


@pytest.fixture
def open_umask_and_no_chmod(monkeypatch):
    previous = os.umask(0)
    monkeypatch.setattr(Path, "chmod", lambda self, mode, **kwargs: None)
    monkeypatch.setattr(os, "chmod", lambda *args, **kwargs: None)
    try:
        yield
    finally:
        os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_write_private_creates_0600_in_0700_folders(tmp_path, open_umask_and_no_chmod):
    target = write_private(tmp_path / "a" / "b" / "secret.json", "{}")
    assert _mode(target) == 0o600
    assert _mode(tmp_path / "a") == 0o700 and _mode(tmp_path / "a" / "b") == 0o700
    write_private(target, '{"again": 1}')  # replacing keeps it private and leaves no temporary file
    assert _mode(target) == 0o600 and sorted(p.name for p in target.parent.iterdir()) == ["secret.json"]
    assert _mode(private_dir(tmp_path / "c" / "d")) == 0o700


def test_local_airflow_secrets_are_private_from_creation(tmp_path, open_umask_and_no_chmod):
    setup = airflow.prepare(load_settings(home=tmp_path / "home"), tmp_path / "logs")
    assert _mode(setup.home) == 0o700
    assert _mode(setup.home / "forestops-secrets.json") == 0o600
    assert _mode(setup.password_file) == 0o600


def test_local_stack_database_user_file_is_private_from_creation(tmp_path, open_umask_and_no_chmod):
    home = tmp_path / "home"
    stack.raw_database(load_settings(home=home, mysql_url="mysql+pymysql://root@127.0.0.1:1"), home)
    assert _mode(home / "stack" / "db-user.json") == 0o600
    assert _mode(home / "stack") == 0o700
