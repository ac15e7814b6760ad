"""The relational store of the raw data, shared by ingestion and training."""

import logging

# Alembic announces each plugin (on import) and each step at INFO: pages of
# lines in every command's output.  forestops.storage.db logs one line per
# migration itself, so alembic's own are kept to warnings.
logging.getLogger("alembic").setLevel(logging.WARNING)
