#!/usr/bin/env bash
# Databases and one user per service, each with only the grants it needs.
#
# The official MySQL image runs this once, when the data volume is empty, from
# /docker-entrypoint-initdb.d. It is a shell script rather than plain SQL
# because SQL files cannot read the passwords from the environment (.env).
# It is executable, so the image runs it in its own shell (a non-executable
# one would be sourced into the entrypoint); it then talks to the temporary
# init server over the socket as root. The tests point MYSQL_CLIENT at their
# own server instead.
set -euo pipefail

: "${MYSQL_APP_PASSWORD:?MYSQL_APP_PASSWORD is not set (make up writes it to .env)}"
: "${MYSQL_READER_PASSWORD:?MYSQL_READER_PASSWORD is not set (make up writes it to .env)}"
: "${MYSQL_MLFLOW_PASSWORD:?MYSQL_MLFLOW_PASSWORD is not set (make up writes it to .env)}"
raw_db="${FORESTOPS_RAW_DATABASE:-covertype}"
mlflow_db="${FORESTOPS_MLFLOW_DATABASE:-mlflow}"
app_user="${MYSQL_APP_USER:-forestops}"
reader_user="${MYSQL_READER_USER:-forestops_reader}"
mlflow_user="${MYSQL_MLFLOW_USER:-mlflow}"

# Tables the application may UPDATE/DELETE: every table but alias_history
# (forestops.storage.provision.mutable_tables; a test keeps the two equal).
mutable_tables="alembic_version batch_monitoring fetch_log raw_rows rejected_rows shadow_tallies training_log"

for name in "$raw_db" "$mlflow_db" "$app_user" "$reader_user" "$mlflow_user"; do
    [[ "$name" =~ ^[A-Za-z0-9_]+$ ]] || { echo "refusing unsafe database or user name: $name" >&2; exit 1; }
done

# A password as a SQL string literal: double the quotes and backslashes.
literal() {
    local value="${1//\\/\\\\}"
    printf "'%s'" "${value//\'/\'\'}"
}

if [[ -z "${MYSQL_CLIENT:-}" ]]; then
    MYSQL_CLIENT="mysql --protocol=socket --user=root"
    export MYSQL_PWD="${MYSQL_ROOT_PASSWORD:?MYSQL_ROOT_PASSWORD is not set}"
fi

run_sql() {
    $MYSQL_CLIENT
}

run_sql <<SQL
CREATE DATABASE IF NOT EXISTS \`${raw_db}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
CREATE DATABASE IF NOT EXISTS \`${mlflow_db}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;

-- The application (ingestion, training, db-init): owns the raw data schema.
-- UPDATE and DELETE only table by table: alias_history stays append-only.
-- No DROP: upgrades never drop, and a leaked password must not drop the data.
CREATE USER IF NOT EXISTS '${app_user}'@'%' IDENTIFIED BY $(literal "$MYSQL_APP_PASSWORD");
GRANT SELECT, INSERT, CREATE, ALTER, INDEX, REFERENCES
    ON \`${raw_db}\`.* TO '${app_user}'@'%';
$(for table in $mutable_tables; do
    echo "GRANT UPDATE, DELETE, CREATE ON \`${raw_db}\`.\`${table}\` TO '${app_user}'@'%';"
done)

-- The Streamlit UI: reads collection progress, changes nothing.
CREATE USER IF NOT EXISTS '${reader_user}'@'%' IDENTIFIED BY $(literal "$MYSQL_READER_PASSWORD");
GRANT SELECT ON \`${raw_db}\`.* TO '${reader_user}'@'%';

-- The MLflow server: creates and migrates its own tables.
CREATE USER IF NOT EXISTS '${mlflow_user}'@'%' IDENTIFIED BY $(literal "$MYSQL_MLFLOW_PASSWORD");
GRANT ALL PRIVILEGES ON \`${mlflow_db}\`.* TO '${mlflow_user}'@'%';

FLUSH PRIVILEGES;
SQL
echo "forestops: databases ${raw_db}, ${mlflow_db} and users ${app_user}, ${reader_user}, ${mlflow_user} ready"
