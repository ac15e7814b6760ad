"""Start the batch data API: load and check everything first, then serve.

A data file or a state file that cannot be used stops the service before it
binds its port (``DataSetError`` or ``StateError``, both configuration errors
that the CLI edge turns into exit code 2 with the reason on stderr), so a
broken deployment fails loudly at start-up instead of serving half a data
set.  One process, one worker: the batch state lives in this process (and on
disk).
"""

from __future__ import annotations

import logging

import uvicorn

from forestops.datasource.app import create_app
from forestops.datasource.batches import BatchSchedule, exclusive_state_dir
from forestops.datasource.dataset import load_dataset
from forestops.logs import setup_logging
from forestops.settings import Settings

log = logging.getLogger(__name__)


def serve(settings: Settings) -> int:
    """Run the service until it is stopped; the exit code for the console script."""
    setup_logging()
    with exclusive_state_dir(settings.resolved_state_dir):
        dataset = load_dataset(settings)
        schedule = BatchSchedule.from_settings(settings, dataset.row_count)
        app = create_app(settings, dataset, schedule)
        config = uvicorn.Config(
            app, host=settings.datasource_host, port=settings.datasource_port, workers=1, log_config=None
        )
        server = uvicorn.Server(config)
        log.info("serving on http://%s:%d", settings.datasource_host, settings.datasource_port)
        server.run()
        return 0 if server.started else 1
