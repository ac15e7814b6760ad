"""The runtime database user cannot DROP: a leaked application password cannot destroy the data.

Provisioned the way ``forestops db-init`` does it (which then migrates the
schema to head *as that user*: the upgrades need no DROP), the application
user is refused ``DROP TABLE`` on every table; an account from before keeps
no DROP either once provisioning runs again.
"""

from __future__ import annotations

import secrets

import pytest
import sqlalchemy as sa

from forestops.storage.provision import drop_mysql_user, provision_mysql
from forestops.storage.tables import metadata
from tests.support import mysql

pytestmark = pytest.mark.integration


@pytest.fixture
def app_account(mysql_server_url):
    name = mysql.unique_name("fo_grants")
    user = f"fo_g_{secrets.token_hex(4)}"
    host = mysql_server_url.split("@", 1)[1]
    url = f"mysql+pymysql://{user}:{secrets.token_urlsafe(12)}@{host}/{name}"
    try:
        yield url, user, name
    finally:
        drop_mysql_user(mysql_server_url, user)
        mysql.drop_database(mysql_server_url, name)


def _refused_drops(url: str) -> list[str]:
    engine = sa.create_engine(url)
    refused = []
    try:
        for table in metadata.tables:
            with engine.connect() as connection:
                try:
                    connection.execute(sa.text(f"DROP TABLE `{table}`"))
                except sa.exc.OperationalError as error:
                    if error.orig.args[0] == 1142:  # command denied to user
                        refused.append(table)
                    else:
                        raise
    finally:
        engine.dispose()
    return refused


def test_the_application_user_cannot_drop_tables(mysql_server_url, app_account):
    url = app_account[0]
    provision_mysql(mysql_server_url, url)
    assert sorted(_refused_drops(url)) == sorted(metadata.tables)


def test_reprovisioning_takes_drop_from_an_older_account(mysql_server_url, app_account):
    url, user, database = app_account
    provision_mysql(mysql_server_url, url)
    admin = sa.create_engine(mysql_server_url)
    with admin.begin() as connection:
        connection.execute(sa.text(f"GRANT DROP ON `{database}`.* TO '{user}'@'%'"))
    admin.dispose()
    provision_mysql(mysql_server_url, url)
    assert sorted(_refused_drops(url)) == sorted(metadata.tables)
