"""The relational store of the raw data, shared by ingestion and training."""
