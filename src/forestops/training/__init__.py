"""Training: candidate pipelines, evaluation, MLflow tracking, registry and promotion.

Modules import their heavy libraries (scikit-learn, LightGBM, MLflow) lazily
where they can, so that ``import forestops.training`` stays cheap for the
CLI and the DAG parser.
"""
