"""Start the app with ``streamlit run`` and headless settings (used by ``forestops ui``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from forestops.settings import Settings

APP = Path(__file__).with_name("app.py")


def streamlit_argv(settings: Settings) -> list[str]:
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP),
        "--server.address",
        settings.ui_host,
        "--server.port",
        str(settings.ui_port),
        "--server.headless",
        "true",
        "--server.fileWatcherType",
        "none",
        "--browser.gatherUsageStats",
        "false",
        "--client.toolbarMode",
        "viewer",
        "--client.showErrorDetails",
        "none",
        # Streamlit's default is 200 MB; the batch screen's row limit needs about 8.
        "--server.maxUploadSize",
        str(settings.ui_max_upload_mb),
    ]


def serve(settings: Settings) -> int:
    """Replace this process with Streamlit's, so signals reach it directly."""
    argv = streamlit_argv(settings)
    os.execv(argv[0], argv)
    return 0  # not reached
