"""The local stack (``forestops stack``) at demo settings, in a home of its own, for the stack benchmarks.

``stack_environment`` is what ``forestops stack up`` runs with: none of the
caller's own ``FORESTOPS_*`` / ``AIRFLOW*`` variables (a developer's stack
settings must not leak in), the demo defaults, the shared data set, no usage
telemetry, a port for every service and the URL settings that point at them,
so a running ``make demo`` is not disturbed and clients in the benchmark
process reach this stack.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from .data import SHARED_DATA
from .processes import forestops_argv, free_port
from .servers import TELEMETRY_OFF

if TYPE_CHECKING:
    from forestops.settings import Settings

# Every service of the stack with a port setting (FORESTOPS_<NAME>_PORT).
SERVICES = ("DATASOURCE", "MLFLOW", "AIRFLOW", "INFERENCE", "UI", "PROMETHEUS")
# The URL settings the stack's clients read, by the service they point at.
URL_SETTINGS = {
    "DATASOURCE": "DATASOURCE_URL",
    "MLFLOW": "MLFLOW_TRACKING_URI",
    "INFERENCE": "INFERENCE_URL",
    "AIRFLOW": "AIRFLOW_URL",
}


def stack_environment(home: Path, ports: Mapping[str, int] | None = None, **settings: str) -> dict[str, str]:
    """The environment of a demo stack in ``home``: ``ports`` by service name where given, free ones elsewhere.

    ``settings`` (``FORESTOPS_...=value``, any variable) come last and win.
    """
    from forestops.local.demo import DEMO_DEFAULTS

    env = {k: v for k, v in os.environ.items() if not k.startswith(("FORESTOPS_", "AIRFLOW"))}
    env.update(DEMO_DEFAULTS)
    env.update(TELEMETRY_OFF)
    env.update(FORESTOPS_HOME=str(home), FORESTOPS_DATA_PATH=str(SHARED_DATA))
    ports = ports or {}
    for name in SERVICES:
        env[f"FORESTOPS_{name}_PORT"] = str(ports.get(name) or free_port())
    for name, url_setting in URL_SETTINGS.items():
        env[f"FORESTOPS_{url_setting}"] = f"http://127.0.0.1:{env[f'FORESTOPS_{name}_PORT']}"
    env.update(settings)
    return env


def stack_settings(env: Mapping[str, str]) -> Settings:
    """The package's settings as a process with ``env`` sees them."""
    from forestops.settings import load_settings

    ours = {k.removeprefix("FORESTOPS_").lower(): v for k, v in env.items() if k.startswith("FORESTOPS_")}
    return load_settings(**ours)


def forestops(env: Mapping[str, str], *args: str, timeout: float) -> subprocess.CompletedProcess:
    """``forestops <args>`` with ``env`` as its whole environment, its output captured."""
    return subprocess.run(forestops_argv(*args), env=dict(env), capture_output=True, text=True, timeout=timeout)
