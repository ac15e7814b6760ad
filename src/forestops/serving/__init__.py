"""The inference API: serve the model holding the ``champion`` alias, swap it without downtime.

``forestops inference`` runs :func:`forestops.serving.app.create_app` under
uvicorn.  The pieces, one job each: ``contract`` (request and response
models generated from :mod:`forestops.schema`), ``frames`` (validated rows to
the DataFrame the model expects), ``champion`` (the model holder and the
registry watcher), ``batching`` (concurrent requests share one model call),
``telemetry`` (Prometheus), ``app`` (the FastAPI routes) and ``server``.
"""
