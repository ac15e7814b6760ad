#!/usr/bin/env bash
# Give the Airflow admin the password from .env (SimpleAuthManager reads its
# users' passwords from a JSON file), then hand over to the image's entrypoint.
set -euo pipefail
if [[ -n "${AIRFLOW_ADMIN_PASSWORD:-}" && -n "${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE:-}" ]]; then
    python - <<'PY'
import json, os
path = os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]
user = os.environ.get("AIRFLOW_ADMIN_USERNAME", "admin")
with open(path, "w") as handle:
    json.dump({user: os.environ["AIRFLOW_ADMIN_PASSWORD"]}, handle)
os.chmod(path, 0o600)
PY
fi
exec /entrypoint "$@"
