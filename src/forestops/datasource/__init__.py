"""The batch data API: the course's data API, reproduced.

``dataset`` loads and validates the rows once (or builds them from the UCI
file), ``batches`` keeps each group's progress through the batches on disk,
``app`` is the FastAPI application and ``server`` starts it.
"""
