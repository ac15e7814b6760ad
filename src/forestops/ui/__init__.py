"""The Streamlit app: predict, watch and drive the pipeline, compare models.

Pages (``ui/screens``) stay thin; every call to a service goes through a small
client in ``ui/clients`` that returns data or a ``ServiceError`` saying what
went wrong and what to do, so a service that is down never shows a traceback.
"""
