"""The first step of every logged pipeline: raw columns in, model dtypes out.

Serving, the UI and MLflow's pyfunc wrapper may hand the model frames whose
categoricals are plain strings or whose numbers are strings; this step turns
any of them into the fixed dtypes of ``schema.feature_frame`` so the logged
model needs nothing but itself.
"""

from __future__ import annotations

import functools

from sklearn.base import BaseEstimator, TransformerMixin

from forestops import schema


@functools.cache
def _contract_dtypes() -> dict:
    """The dtype of every feature column as ``schema.feature_frame`` makes it."""
    frame = schema.feature_frame([schema.example_features()])
    return dict(frame.dtypes.items())


def matches_contract(X) -> bool:
    """Whether ``X`` is already what ``schema.feature_frame`` would return for it.

    Same columns in the same order, int64 numbers, and categoricals with the
    contract's categories in the contract's order (the codes the models
    learnt); an unordered ``CategoricalDtype`` compares equal whatever the
    order of its categories, so the order is checked on its own.
    """
    import pandas as pd

    if not isinstance(X, pd.DataFrame) or tuple(X.columns) != schema.FEATURE_COLUMNS:
        return False
    expected = _contract_dtypes()
    for column, dtype in X.dtypes.items():
        want = expected[column]
        if isinstance(want, pd.CategoricalDtype):
            if not (
                isinstance(dtype, pd.CategoricalDtype)
                and dtype.ordered == want.ordered
                and dtype.categories.dtype == want.categories.dtype
                and dtype.categories.equals(want.categories)
            ):
                return False
        elif dtype != want:
            return False
    return True


class FeatureCoercer(TransformerMixin, BaseEstimator):
    """Select the 12 features and give them the data contract's dtypes.

    Stateless on purpose: the category lists come from ``forestops.schema``,
    so a model trained on data that missed a soil code encodes it all the same.
    """

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        # Serving already builds the contract's frame; rebuilding it took
        # about 40% of a one-row prediction.  Estimators do not modify their
        # input, so the frame is passed on as it is.
        if matches_contract(X):
            return X
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
