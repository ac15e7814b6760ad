"""Helpers for the Docker Compose deployment (secrets for ``.env``)."""
