"""The covertype schema: migrations that match the tables, provisioning with least privilege."""

from __future__ import annotations

import secrets
import subprocess

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import make_url

from forestops.storage.db import current_revision, ensure_schema, head_revision, make_engine
from forestops.storage.provision import (
    APP_GRANTS,
    ProvisioningError,
    drop_mysql_user,
    provision_mysql,
)
from forestops.storage.tables import metadata
from tests.support import mysql
from tests.support.processes import forestops_argv

pytestmark = pytest.mark.integration


def _differences(engine: sa.Engine) -> list:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return [d for d in compare_metadata(context, metadata) if d[0] != "remove_table"]


@pytest.mark.parametrize("backend", ["mysql", "sqlite"])
def test_migrations_build_exactly_the_tables_and_are_idempotent(backend, fresh_database_url, tmp_path):
    url = fresh_database_url if backend == "mysql" else f"sqlite:///{tmp_path / 'covertype.db'}"
    engine = make_engine(url)
    try:
        assert ensure_schema(engine) == head_revision()
        assert ensure_schema(engine) == head_revision()  # second call: nothing to do
        assert _differences(engine) == []
        with engine.connect() as connection:
            assert current_revision(connection) == head_revision()
    finally:
        engine.dispose()


def test_a_database_made_before_migrations_is_adopted(fresh_database_url):
    engine = make_engine(fresh_database_url)
    try:
        # how the schema was created before Alembic: the tables of revision 0001
        before = ("fetch_log", "raw_rows", "rejected_rows", "training_log")
        metadata.create_all(engine, tables=[metadata.tables[name] for name in before])
        assert ensure_schema(engine) == head_revision()
        assert _differences(engine) == []
    finally:
        engine.dispose()


@pytest.fixture
def app_account(mysql_server_url):
    name = mysql.unique_name("fo_prov")
    user = f"fo_prov_{secrets.token_hex(4)}"
    host = mysql_server_url.split("@", 1)[1]
    url = f"mysql+pymysql://{user}:{secrets.token_urlsafe(12)}@{host}/{name}"
    yield url
    drop_mysql_user(mysql_server_url, user)
    mysql.drop_database(mysql_server_url, name)


def test_provisioning_gives_the_app_user_only_its_own_database(mysql_server_url, app_account, fresh_database_url):
    provisioned = provision_mysql(mysql_server_url, app_account)
    assert provisioned.revision == head_revision() and provisioned.grants == APP_GRANTS
    app = sa.create_engine(app_account)
    try:
        with app.connect() as connection:
            grants = [row[0] for row in connection.execute(sa.text("SHOW GRANTS"))]
            assert "USAGE ON *.*" in grants[0]  # nothing server-wide
            assert all(f"ON `{provisioned.database}`." in grant for grant in grants[1:])
            assert not any("alias_history" in grant for grant in grants)  # append-only: no UPDATE/DELETE
            assert connection.execute(sa.text("SELECT COUNT(*) FROM raw_rows")).scalar_one() == 0
            other = make_url(fresh_database_url).database
            with pytest.raises(sa.exc.OperationalError, match="denied"):
                connection.execute(sa.text(f"CREATE TABLE `{other}`.intruder (x INT)"))
            with pytest.raises(sa.exc.OperationalError, match="denied"):
                connection.execute(sa.text("CREATE USER 'fo_nobody'@'%'"))
    finally:
        app.dispose()
    # Running it again is harmless (the deployment's init may run on every start).
    assert provision_mysql(mysql_server_url, app_account).revision == head_revision()


def test_provisioning_refuses_unsafe_input(mysql_server_url):
    with pytest.raises(ProvisioningError, match="no password"):
        provision_mysql(mysql_server_url, "mysql+pymysql://app@127.0.0.1:3306/covertype")
    with pytest.raises(ProvisioningError, match="database name"):
        provision_mysql(mysql_server_url, "mysql+pymysql://app:pw@127.0.0.1:3306/bad`name")
    with pytest.raises(ProvisioningError, match="must differ"):
        provision_mysql(mysql_server_url, f"{mysql_server_url}/covertype".replace("root@", "root:pw@"))


def test_db_init_command(mysql_server_url, app_account):
    env = {"FORESTOPS_DATABASE_URL": app_account, "FORESTOPS_DB_ADMIN_URL": mysql_server_url, "PATH": "/usr/bin:/bin"}
    done = subprocess.run(forestops_argv("db-init"), env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "granted SELECT, INSERT, CREATE" in done.stdout and f"revision {head_revision()}" in done.stdout
    without_admin = {k: v for k, v in env.items() if k != "FORESTOPS_DB_ADMIN_URL"}
    done = subprocess.run(forestops_argv("db-init"), env=without_admin, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "FORESTOPS_DB_ADMIN_URL" in done.stderr
