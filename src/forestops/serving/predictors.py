"""Fast predictors built once when a champion loads, checked against the logged pipeline.

The logged model is a scikit-learn Pipeline (``FeatureCoercer`` then the
family's own encoding and estimator, see ``forestops.training.candidates``).
Calling it costs a DataFrame, the coercer's dtype checks, sklearn's input
validation and, for the forests, a joblib dispatch: for one row that is most
of the time.  Requests reach the model here as two NumPy arrays (the ten
numbers as int64 and the two categoricals as codes into the schema's category
lists, see ``RowBlock``), so each family gets a predictor that feeds its
fitted estimator straight from them:

- LightGBM: the fitted forest flattened and walked by a compiled kernel
  (``forest.Forest``: tree by tree over the whole block, 3-4x less CPU per
  row than the booster's own predict from about 64 rows), on a float matrix
  with the categoricals as the codes the pipeline itself hands LightGBM (its
  ``pandas_categorical`` lists), unknown categories as NaN, as
  ``_data_from_pandas`` does.  The ``Booster``'s own predict on the same
  matrix is the next choice when the kernel does not support the model.
- HistGradientBoosting: the same compiled forest kernel, built from
  scikit-learn's tree predictors, on the float matrix its internal
  ``OrdinalEncoder`` would produce (categoricals first, as that encoder's
  ColumnTransformer orders them), probabilities through the model's own
  loss; next, scikit-learn's own compiled tree predictors called tree by tree
  (one call per tree: 2,800 for the default model, which is what the kernel
  saves on small requests).  Both use private attributes (``_predictors``,
  ``_bin_mapper``, ``_baseline_prediction``, ``_loss``), so the structure is
  checked and any mismatch falls back.
- Random forest and the logistic-regression baseline: the pipeline's one-hot
  step done in NumPy, then the rest of the pipeline (public API) on the array.

Large blocks use every CPU this process may run on (LightGBM's and
scikit-learn's tree predictors split rows across OpenMP threads; rows are
independent, so the answers are the same): the batcher makes one model call
at a time, so a 1,000-row request on one thread left a 2-core machine half
idle, and MLflow's scoring server, which runs two such requests at once,
out-ran us.  Small blocks stay on one thread, where starting threads costs
more than it saves.

Every predictor must reproduce the pipeline's own ``predict_proba`` on a
fixed set of rows (all categories, numbers across their domains) to 1e-6
before it serves; if it cannot be built or does not match, the next one is
tried, down to the pipeline itself, and the reasons are reported
(``/model``: ``predictor``, ``predictor_fallback``).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd

from forestops import schema

log = logging.getLogger(__name__)

PARITY_TOLERANCE = 1e-6
PIPELINE = "pipeline"
LIGHTGBM_FOREST = "lightgbm-forest"
LIGHTGBM_BOOSTER = "lightgbm-booster"
HGB_FOREST = "sklearn-hgb-forest"
HGB_PREDICTORS = "sklearn-hgb-predictors"
ONE_HOT_ARRAY = "onehot-array"

# Up to about 4 ms of the benchmark's 4,200-tree model, the most a request on the event loop waits for.
INLINE_FOREST_ROWS = 16

_N_NUMERIC = len(schema.NUMERIC_COLUMNS)
_DTYPES = {c: pd.CategoricalDtype(list(cats)) for c, cats in schema.CATEGORIES.items()}


@dataclass(frozen=True)
class RowBlock:
    """Validated rows as arrays: ``numbers`` (n, 10) int64 in ``schema.NUMERIC_COLUMNS``
    order and ``codes`` (n, 2) int16, each the index into ``schema.CATEGORIES`` of
    ``schema.CATEGORICAL_COLUMNS``."""

    numbers: np.ndarray
    codes: np.ndarray

    def __len__(self) -> int:
        return self.numbers.shape[0]

    @staticmethod
    def concat(blocks: list[RowBlock]) -> RowBlock:
        if len(blocks) == 1:
            return blocks[0]
        return RowBlock(np.concatenate([b.numbers for b in blocks]), np.concatenate([b.codes for b in blocks]))

    @staticmethod
    def from_frame(frame: pd.DataFrame) -> RowBlock:
        """The arrays of a ``schema.feature_frame`` (categoricals with the contract's category lists)."""
        numbers = frame[list(schema.NUMERIC_COLUMNS)].to_numpy(dtype=np.int64)
        codes = np.column_stack([frame[c].cat.codes.to_numpy() for c in schema.CATEGORICAL_COLUMNS]).astype(np.int16)
        return RowBlock(numbers, codes)

    def frame(self) -> pd.DataFrame:
        """The frame ``schema.feature_frame`` would build for the same rows (what the pipeline was fitted on)."""
        data: dict[str, Any] = {c: self.numbers[:, i] for i, c in enumerate(schema.NUMERIC_COLUMNS)}
        for j, column in enumerate(schema.CATEGORICAL_COLUMNS):
            data[column] = pd.Categorical.from_codes(self.codes[:, j], dtype=_DTYPES[column])
        return pd.DataFrame(data, columns=list(schema.FEATURE_COLUMNS), copy=False)


class Predictor(Protocol):
    kind: str
    # Batches of up to this many rows are predicted on the event loop (``batching``): for the compiled
    # forests a small batch costs less than handing it to a worker thread and back.  0 for the others,
    # whose calls can take long enough to hold up every other request.
    inline_rows: int

    def predict_proba(self, rows: RowBlock) -> np.ndarray: ...


class PipelinePredictor:
    """The logged model itself, on the contract's frame."""

    kind = PIPELINE
    inline_rows = 0

    def __init__(self, pipeline: Any) -> None:
        self.pipeline = pipeline

    def predict_proba(self, rows: RowBlock) -> np.ndarray:
        return np.asarray(self.pipeline.predict_proba(rows.frame()), dtype=np.float64)


class NotApplicable(Exception):
    """The pipeline does not have the shape a fast predictor was written for."""


def _final_step(pipeline: Any) -> Any:
    steps = getattr(pipeline, "steps", None)
    if not steps:
        raise NotApplicable(f"{type(pipeline).__name__} is not a Pipeline")
    from forestops.training.features import FeatureCoercer

    if not isinstance(steps[0][1], FeatureCoercer):
        raise NotApplicable("the pipeline does not start with FeatureCoercer")
    return steps[-1][1]


def _category_lookup(column: str, known: list[Any]) -> np.ndarray:
    """Schema code index -> the estimator's own code for that category (NaN when it does not know it)."""
    position = {value: float(i) for i, value in enumerate(known)}
    return np.array([position.get(code, np.nan) for code in schema.CATEGORIES[column]], dtype=np.float64)


# From this many rows a model call is split across threads (below it, thread start-up costs more).
PARALLEL_FROM_ROWS = 128


def _usable_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def threads_for(rows: int) -> int:
    """OpenMP threads for a model call on ``rows`` rows."""
    return _usable_cpus() if rows >= PARALLEL_FROM_ROWS else 1


class LightGBMPredictor:
    kind = LIGHTGBM_BOOSTER
    inline_rows = 0

    def __init__(self, pipeline: Any) -> None:
        model = _final_step(pipeline)
        if type(model).__name__ != "LGBMClassifier" or len(pipeline.steps) != 2:
            raise NotApplicable("not FeatureCoercer + LGBMClassifier")
        booster = model.booster_
        if booster.feature_name() != list(schema.FEATURE_COLUMNS):
            raise NotApplicable(f"booster features {booster.feature_name()} are not the contract's columns")
        categorical = booster.pandas_categorical
        if categorical is None or len(categorical) != len(schema.CATEGORICAL_COLUMNS):
            raise NotApplicable("the booster was not fitted on the contract's two categoricals")
        self.booster = booster
        self.lookups = [
            _category_lookup(c, list(k)) for c, k in zip(schema.CATEGORICAL_COLUMNS, categorical, strict=True)
        ]

    def matrix(self, rows: RowBlock) -> np.ndarray:
        """The float matrix LightGBM gets from the pipeline's frame for the same rows."""
        matrix = np.empty((len(rows), len(schema.FEATURE_COLUMNS)), dtype=np.float64)
        matrix[:, :_N_NUMERIC] = rows.numbers
        for j, lookup in enumerate(self.lookups):
            matrix[:, _N_NUMERIC + j] = lookup[rows.codes[:, j]]
        return matrix

    def predict_proba(self, rows: RowBlock) -> np.ndarray:
        proba = self.booster.predict(self.matrix(rows), num_threads=threads_for(len(rows)))
        return np.asarray(proba, dtype=np.float64).reshape(len(rows), -1)


class LightGBMForestPredictor(LightGBMPredictor):
    kind = LIGHTGBM_FOREST
    inline_rows = INLINE_FOREST_ROWS

    def __init__(self, pipeline: Any) -> None:
        super().__init__(pipeline)
        from forestops.serving.forest import Forest, Unsupported

        try:
            self.forest = Forest.from_lightgbm(self.booster)
        except Unsupported as error:
            raise NotApplicable(f"the forest kernel does not support this booster: {error}") from None

    def predict_proba(self, rows: RowBlock) -> np.ndarray:
        return self.forest.predict_proba(self.matrix(rows), threads=threads_for(len(rows)))


class HistGradientBoostingPredictor:
    kind = HGB_PREDICTORS
    inline_rows = 0

    def __init__(self, pipeline: Any) -> None:
        model = _final_step(pipeline)
        if type(model).__name__ != "HistGradientBoostingClassifier" or len(pipeline.steps) != 2:
            raise NotApplicable("not FeatureCoercer + HistGradientBoostingClassifier")
        preprocessor = getattr(model, "_preprocessor", None)
        if preprocessor is None or list(model.feature_names_in_) != list(schema.FEATURE_COLUMNS):
            raise NotApplicable("the estimator was not fitted on the contract's frame with categoricals")
        is_categorical = np.asarray(model.is_categorical_, dtype=bool)
        expected = np.array([c in schema.CATEGORIES for c in schema.FEATURE_COLUMNS])
        if not np.array_equal(is_categorical, expected):
            raise NotApplicable("the estimator's categorical features are not the contract's")
        encoder = preprocessor.named_transformers_["encoder"]
        # The encoder's ColumnTransformer puts the categoricals first, then the numbers.
        self.lookups = [
            _category_lookup(c, list(k)) for c, k in zip(schema.CATEGORICAL_COLUMNS, encoder.categories_, strict=True)
        ]
        self.predictors = model._predictors
        self.bitsets, self.feature_map = model._bin_mapper.make_known_categories_bitsets()
        self.baseline = model._baseline_prediction
        self.loss = model._loss
        self.n_trees_per_iteration = model.n_trees_per_iteration_

    def matrix(self, rows: RowBlock) -> np.ndarray:
        """The float matrix the estimator's own encoder makes of the pipeline's frame: categoricals first."""
        n_categorical = len(self.lookups)
        matrix = np.empty((len(rows), len(schema.FEATURE_COLUMNS)), dtype=np.float64)
        for j, lookup in enumerate(self.lookups):
            matrix[:, j] = lookup[rows.codes[:, j]]
        matrix[:, n_categorical:] = rows.numbers
        return matrix

    def predict_proba(self, rows: RowBlock) -> np.ndarray:
        matrix = self.matrix(rows)
        raw = np.zeros((len(rows), self.n_trees_per_iteration), dtype=self.baseline.dtype, order="F")
        raw += self.baseline
        bitsets, feature_map = self.bitsets, self.feature_map
        threads = threads_for(len(rows))
        for iteration in self.predictors:
            for k, tree in enumerate(iteration):
                raw[:, k] += tree.predict(matrix, bitsets, feature_map, threads)
        return np.asarray(self.loss.predict_proba(raw), dtype=np.float64)


class HistGradientBoostingForestPredictor(HistGradientBoostingPredictor):
    kind = HGB_FOREST
    inline_rows = INLINE_FOREST_ROWS

    def __init__(self, pipeline: Any) -> None:
        super().__init__(pipeline)
        from forestops.serving.forest import Forest, Unsupported

        try:
            self.forest = Forest.from_hist_gradient_boosting(_final_step(pipeline))
        except Unsupported as error:
            raise NotApplicable(f"the forest kernel does not support this model: {error}") from None

    def predict_proba(self, rows: RowBlock) -> np.ndarray:
        raw = self.forest.raw_scores(self.matrix(rows), threads=threads_for(len(rows)))
        return np.asarray(self.loss.predict_proba(raw), dtype=np.float64)


class OneHotArrayPredictor:
    """Pipelines whose second step is the candidates' one-hot ColumnTransformer (random forest, baseline)."""

    kind = ONE_HOT_ARRAY
    inline_rows = 0

    def __init__(self, pipeline: Any) -> None:
        _final_step(pipeline)
        if len(pipeline.steps) < 3:
            raise NotApplicable("no encoding step after FeatureCoercer")
        encode = pipeline.steps[1][1]
        if type(encode).__name__ != "ColumnTransformer":
            raise NotApplicable("the second step is not a ColumnTransformer")
        names = list(encode.get_feature_names_out())
        expected = [f"{c}_{code}" for c in schema.CATEGORICAL_COLUMNS for code in schema.CATEGORIES[c]]
        expected += list(schema.NUMERIC_COLUMNS)
        if names != expected:
            raise NotApplicable("the one-hot step's output columns are not the contract's categories then numbers")
        self.offsets = []
        offset = 0
        for column in schema.CATEGORICAL_COLUMNS:
            self.offsets.append(offset)
            offset += len(schema.CATEGORIES[column])
        self.width = offset + _N_NUMERIC
        self.rest = pipeline[2:]

    def predict_proba(self, rows: RowBlock) -> np.ndarray:
        n = len(rows)
        matrix = np.zeros((n, self.width), dtype=np.float64)
        index = np.arange(n)
        for j, offset in enumerate(self.offsets):
            matrix[index, offset + rows.codes[:, j]] = 1.0
        matrix[:, self.width - _N_NUMERIC :] = rows.numbers
        return np.asarray(self.rest.predict_proba(matrix), dtype=np.float64)


FAST_PREDICTORS = (
    LightGBMForestPredictor,
    LightGBMPredictor,
    HistGradientBoostingForestPredictor,
    HistGradientBoostingPredictor,
    OneHotArrayPredictor,
)


def parity_rows(n: int = 96, seed: int = 7) -> RowBlock:
    """Fixed rows for the load-time check: every category code, numbers spread over typical ranges and edges."""
    rng = np.random.default_rng(seed)
    numbers = np.empty((n, _N_NUMERIC), dtype=np.int64)
    for i, feature in enumerate(schema.NUMERIC_FEATURES):
        low, high = feature.typical
        numbers[:, i] = rng.integers(low, high + 1, size=n)
        numbers[0, i], numbers[1, i] = low, high
    codes = np.empty((n, len(schema.CATEGORICAL_COLUMNS)), dtype=np.int16)
    for j, column in enumerate(schema.CATEGORICAL_COLUMNS):
        size = len(schema.CATEGORIES[column])
        codes[:, j] = np.arange(n) % size
        rng.shuffle(codes[:, j])
    return RowBlock(numbers, codes)


def parity_problem(fast: Predictor, reference: Predictor, rows: RowBlock) -> str | None:
    """Why ``fast`` does not reproduce ``reference`` on ``rows`` (None when it does)."""
    want = reference.predict_proba(rows)
    got = fast.predict_proba(rows)
    if got.shape != want.shape:
        return f"probabilities of shape {got.shape}, the pipeline's are {want.shape}"
    gap = float(np.max(np.abs(got - want))) if got.size else 0.0
    if not gap <= PARITY_TOLERANCE:
        return f"probabilities differ from the pipeline's by up to {gap:.3g} (tolerance {PARITY_TOLERANCE:g})"
    if not np.array_equal(np.argmax(got, axis=1), np.argmax(want, axis=1)):
        return "predicted classes differ from the pipeline's"
    return None


@dataclass(frozen=True)
class Choice:
    predictor: Predictor
    fallback: str | None  # why a faster predictor than the one chosen does not serve


def build_predictor(pipeline: Any, rows: RowBlock | None = None) -> Choice:
    """The fastest predictor that matches the pipeline on ``rows``, else the pipeline itself.

    Predictors are tried fastest first; ``fallback`` names each one tried before
    the chosen one and why it does not serve.
    """
    reference = PipelinePredictor(pipeline)
    rows = rows if rows is not None else parity_rows()
    reasons = []
    for factory in FAST_PREDICTORS:
        try:
            candidate = factory(pipeline)
        except NotApplicable:
            continue
        except Exception as error:  # a private attribute moved in a new release, ...
            reasons.append(f"{factory.kind}: cannot be built ({type(error).__name__}: {error})")
            continue
        try:
            problem = parity_problem(candidate, reference, rows)
        except Exception as error:
            problem = f"failed on the parity rows ({type(error).__name__}: {error})"
        if problem is None:
            return _chosen(candidate, reasons)
        reasons.append(f"{factory.kind}: {problem}")
    return _chosen(reference, reasons)


def _chosen(predictor: Predictor, skipped: list[str]) -> Choice:
    """``predictor`` serves; ``skipped`` says why each faster one does not (logged, and kept for /model)."""
    fallback = "; ".join(skipped) or None
    if fallback:
        log.warning("serving through %s: %s", predictor.kind, fallback)
    return Choice(predictor, fallback)
