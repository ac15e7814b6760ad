"""The shell scripts the containers run: shellcheck, modes, and the MinIO setup's own logic."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from tests.deploy import compose

pytestmark = pytest.mark.unit

SCRIPTS = sorted(compose.DOCKER_DIR.glob("*/*.sh"))
SHELLCHECK = compose.VENV_BIN / "shellcheck"


def _shellcheck(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(SHELLCHECK), "--severity=style", "--format=gcc", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_shellcheck_finds_nothing(path) -> None:
    result = _shellcheck(path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_shellcheck_reports_what_it_should(tmp_path) -> None:
    bad = tmp_path / "bad.sh"
    bad.write_text("#!/bin/sh\nrm -rf $DIR/*\ncd /tmp\n")
    result = _shellcheck(bad)
    assert result.returncode != 0
    assert "SC2086" in result.stdout or "SC2115" in result.stdout


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_scripts_are_executable_in_git(path) -> None:
    """MySQL's image executes an init script only when it is executable (else it sources it into its entrypoint)."""
    assert os.access(path, os.X_OK), path
    listed = subprocess.run(
        ["git", "ls-files", "--stage", str(path.relative_to(compose.REPO))],
        cwd=compose.REPO,
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    if listed:  # committed files keep the mode on a fresh clone
        assert listed.startswith("100755"), listed


def _fake_mc(folder: Path, attach_error: str = "") -> Path:
    """A recording stand-in for MinIO's `mc` (no MinIO server can run here): logs its arguments, keeps the
    policy file, and answers `admin policy attach` with ``attach_error`` (and exit 1) when given one."""
    mc = folder / "mc"
    mc.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> "{folder}/calls"\n'
        'if [ "$1 $2 $3" = "admin policy create" ]; then cp "$6" "'
        + str(folder)
        + '/policy.json"; fi\n'
        + (
            f'if [ "$1 $2 $3" = "admin policy attach" ]; then echo "{attach_error}" >&2; exit 1; fi\n'
            if attach_error
            else ""
        )
    )
    mc.chmod(mc.stat().st_mode | stat.S_IEXEC)
    return mc


def _minio_env() -> dict[str, str]:
    return {
        "MINIO_ROOT_USER": "root",
        "MINIO_ROOT_PASSWORD": "rootpw",
        "MLFLOW_S3_ACCESS_KEY": "mlflow-artifacts",
        "MLFLOW_S3_SECRET_KEY": "secretpw",
        "MLFLOW_BUCKET": "mlflow",
    }


ALREADY = "mc: <ERROR> Unable to make user/group policy association. The specified policy change is already in effect."


@pytest.mark.parametrize("attach_error", ["", ALREADY], ids=["first-run", "second-run"])
def test_minio_setup_creates_bucket_policy_and_user_idempotently(tmp_path, attach_error) -> None:
    _fake_mc(tmp_path, attach_error)
    env = {**_minio_env(), "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    script = compose.DOCKER_DIR / "minio" / "create-bucket.sh"
    result = subprocess.run(["sh", str(script)], env=env, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    calls = (tmp_path / "calls").read_text().splitlines()
    assert "mb --ignore-existing local/mlflow" in calls
    assert "admin user add local mlflow-artifacts secretpw" in calls
    assert "admin policy attach local mlflow-bucket-rw --user mlflow-artifacts" in calls
    policy = json.loads((tmp_path / "policy.json").read_text())
    resources = {resource for statement in policy["Statement"] for resource in statement["Resource"]}
    assert resources == {"arn:aws:s3:::mlflow", "arn:aws:s3:::mlflow/*"}, "the MLflow user must reach its bucket only"


def test_minio_setup_fails_on_any_other_attach_error(tmp_path) -> None:
    _fake_mc(tmp_path, "mc: <ERROR> Unable to make user/group policy association. Access Denied.")
    env = {**_minio_env(), "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    script = compose.DOCKER_DIR / "minio" / "create-bucket.sh"
    result = subprocess.run(["sh", str(script)], env=env, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode != 0
    assert "Access Denied" in result.stderr


def test_minio_setup_refuses_to_run_without_credentials(tmp_path) -> None:
    _fake_mc(tmp_path)
    script = compose.DOCKER_DIR / "minio" / "create-bucket.sh"
    env = {"PATH": f"{tmp_path}:{os.environ['PATH']}"}
    result = subprocess.run(["sh", str(script)], env=env, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode != 0
    assert not (tmp_path / "calls").exists()
