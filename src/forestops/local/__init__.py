"""The local stack: every service as a background process on this machine.

``forestops stack up`` starts the data API, an MLflow server, Airflow 3
(api-server, scheduler, dag-processor, triggerer), the inference API and the
Streamlit UI, waits until each answers, unpauses the DAGs and prints the
URLs; ``stack down`` stops exactly the processes it recorded; ``stack status``
reports each one.  See ``stack.py`` for why this is a thin supervisor of its
own rather than a foreground process runner.
"""
