#!/usr/bin/env bash
# Databases and one user per service, each with only the grants it needs.
#
# The official MySQL image runs this once, when the data volume is empty, from
# /docker-entrypoint-initdb.d. It is a shell script rather than plain SQL
# because SQL files cannot read the passwords from the environment (.env).
# Sourced by the image's entrypoint, which provides docker_process_sql; the
# tests run it with MYSQL_CLIENT set to a client command instead.
set -euo pipefail

: "${MYSQL_APP_PASSWORD:?MYSQL_APP_PASSWORD is not set (make up writes it to .env)}"
: "${MYSQL_READER_PASSWORD:?MYSQL_READER_PASSWORD is not set (make up writes it to .env)}"
: "${MYSQL_MLFLOW_PASSWORD:?MYSQL_MLFLOW_PASSWORD is not set (make up writes it to .env)}"
raw_db="${FORESTOPS_RAW_DATABASE:-covertype}"
mlflow_db="${FORESTOPS_MLFLOW_DATABASE:-mlflow}"
app_user="${MYSQL_APP_USER:-forestops}"
reader_user="${MYSQL_READER_USER:-forestops_reader}"
mlflow_user="${MYSQL_MLFLOW_USER:-mlflow}"

for name in "$raw_db" "$mlflow_db" "$app_user" "$reader_user" "$mlflow_user"; do
    [[ "$name" =~ ^[A-Za-z0-9_]+$ ]] || { echo "refusing unsafe database or user name: $name" >&2; exit 1; }
done

# A password as a SQL string literal: double the quotes and backslashes.
literal() {
    local value="${1//\\/\\\\}"
    printf "'%s'" "${value//\'/\'\'}"
}

run_sql() {
    if [[ -n "${MYSQL_CLIENT:-}" ]]; then
        $MYSQL_CLIENT
    else
        docker_process_sql
    fi
}

run_sql <<SQL
CREATE DATABASE IF NOT EXISTS \`${raw_db}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
CREATE DATABASE IF NOT EXISTS \`${mlflow_db}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;

-- The application (ingestion, training, db-init): owns the raw data schema.
CREATE USER IF NOT EXISTS '${app_user}'@'%' IDENTIFIED BY $(literal "$MYSQL_APP_PASSWORD");
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, DROP, INDEX, REFERENCES
    ON \`${raw_db}\`.* TO '${app_user}'@'%';

-- The Streamlit UI: reads collection progress, changes nothing.
CREATE USER IF NOT EXISTS '${reader_user}'@'%' IDENTIFIED BY $(literal "$MYSQL_READER_PASSWORD");
GRANT SELECT ON \`${raw_db}\`.* TO '${reader_user}'@'%';

-- The MLflow server: creates and migrates its own tables.
CREATE USER IF NOT EXISTS '${mlflow_user}'@'%' IDENTIFIED BY $(literal "$MYSQL_MLFLOW_PASSWORD");
GRANT ALL PRIVILEGES ON \`${mlflow_db}\`.* TO '${mlflow_user}'@'%';

FLUSH PRIVILEGES;
SQL
echo "forestops: databases ${raw_db}, ${mlflow_db} and users ${app_user}, ${reader_user}, ${mlflow_user} ready"
