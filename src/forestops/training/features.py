"""The first step of every logged pipeline: raw columns in, model dtypes out.

Serving, the UI and MLflow's pyfunc wrapper may hand the model frames whose
categoricals are plain strings or whose numbers are strings; this step turns
any of them into the fixed dtypes of ``schema.feature_frame`` so the logged
model needs nothing but itself.
"""

from __future__ import annotations

from sklearn.base import BaseEstimator, TransformerMixin

from forestops import schema


class FeatureCoercer(TransformerMixin, BaseEstimator):
    """Select the 12 features and give them the data contract's dtypes.

    Stateless on purpose: the category lists come from ``forestops.schema``,
    so a model trained on data that missed a soil code encodes it all the same.
    """

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return schema.feature_frame(X)

    def get_feature_names_out(self, input_features=None):
        import numpy as np

        return np.asarray(schema.FEATURE_COLUMNS, dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.categorical = True
        tags.requires_fit = False
        return tags
