"""Collect portions from the batch data API into the raw data store.

``client`` talks HTTP (retries, end of collection, configuration errors),
``rows`` validates and quarantines, ``store`` writes one fetch in one
transaction, and ``pipeline.ingest_once`` ties them together for the DAG and
the ``forestops ingest-once`` command.
"""
