#!/usr/bin/env bash
# Give the Airflow admin and the UI's user (forestops_ui) their passwords from
# .env (SimpleAuthManager reads them from a JSON file, created 0600), then hand
# over to the image's entrypoint.
set -euo pipefail
if [[ -n "${AIRFLOW_ADMIN_PASSWORD:-}" && -n "${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE:-}" ]]; then
    python - <<'PY'
import json, os
path = os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]
user = os.environ.get("AIRFLOW_ADMIN_USERNAME", "admin")
passwords = {user: os.environ["AIRFLOW_ADMIN_PASSWORD"]}
if os.environ.get("AIRFLOW_UI_PASSWORD"):
    passwords["forestops_ui"] = os.environ["AIRFLOW_UI_PASSWORD"]
if os.path.exists(path):
    os.unlink(path)
with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as handle:
    json.dump(passwords, handle)
PY
fi
# The image's entrypoint runs everything else as an `airflow` subcommand; ours are forestops's own.
if [[ "${1:-}" == "forestops" ]]; then
    exec "$@"
fi
exec /entrypoint "$@"
