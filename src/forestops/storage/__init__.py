"""The relational store of the raw data, shared by ingestion and training."""

# The Airflow Asset that the ingest DAG emits when new rows were stored and
# the training DAG is scheduled on.  Defined here (not in a DAG file) so both
# DAGs and the UI name the same thing.
RAW_DATA_ASSET_NAME = "covertype_raw_rows"
RAW_DATA_ASSET_URI = "forestops://covertype/raw_rows"
