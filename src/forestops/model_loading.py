"""Loading a registered model without letting the model run code.

Whoever can write to the MLflow registry can register a version and move
``champion``.  MLflow's own ``mlflow.sklearn.load_model`` takes the
serialisation format *and* the list of types to trust from the model's
``MLmodel`` file, so a version logged as pickle (or as skops with a
generous trusted list) runs arbitrary code in whichever process loads it:
the inference service, or the Airflow worker re-scoring the champion.

The one loader here reads ``MLmodel`` only to find the model file, accepts
only the skops format, and always passes *our* list of trusted types
(``TRUSTED_TYPES``), never the one written in the model.  Both the serving
watcher and training's promotion use it.
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

from forestops.errors import DataError
from forestops.names import SERIALIZATION_FORMAT

# Everything our candidate pipelines contain beyond what skops trusts by
# default.  A unit test (tests/training) checks the list against what skops
# actually finds in each fitted candidate.
TRUSTED_TYPES: tuple[str, ...] = (
    "forestops.training.features.FeatureCoercer",
    # LightGBM: the sklearn wrapper and its booster (kept as a model string).
    "lightgbm.sklearn.LGBMClassifier",
    "lightgbm.basic.Booster",
    "collections.OrderedDict",
    # HistGradientBoosting: its tree predictors and the validation helper it stores.
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.utils.validation.check_array",
    "functools.partial",
    # RandomForest: the compiled tree structure.
    "sklearn.tree._tree.Tree",
)


# skops finds the module of each object it saves or loads by scanning the
# attributes of every imported module.  In an Airflow task that scan touches
# each of Airflow's deprecated import shims, and every touch is a
# FutureWarning that Airflow writes to the task log: about 1,100 lines
# (600 KB) per model saved or loaded, 99% of the task logs' volume.  The
# warnings are about the scan, never about our code, so they are dropped at
# their source (the filter matches warnings attributed to that skops module only).
warnings.filterwarnings("ignore", category=FutureWarning, module=r"skops\.io\._utils")


class UntrustedModel(DataError):
    """A registered version we refuse to load: not skops, or holding types we do not trust."""


def _sklearn_flavour(folder: Path) -> dict[str, Any]:
    import yaml

    mlmodel = folder / "MLmodel"
    if not mlmodel.is_file():
        raise UntrustedModel(f"{folder} has no MLmodel file: not an MLflow model")
    flavours = (yaml.safe_load(mlmodel.read_text()) or {}).get("flavors") or {}
    sklearn = flavours.get("sklearn")
    if not isinstance(sklearn, dict):
        raise UntrustedModel(
            f"the model has no sklearn flavor (flavors: {sorted(flavours) or 'none'}); "
            f"only scikit-learn models saved in the {SERIALIZATION_FORMAT} format are loaded"
        )
    return sklearn


def load_model_folder(folder: str | Path) -> Any:
    """The estimator of a downloaded MLflow sklearn model, loaded with skops and our trusted types.

    Raises ``UntrustedModel`` (and loads nothing) for any other format, for a
    model file outside the folder, and for a skops file holding a type that is
    not in ``TRUSTED_TYPES``.
    """
    import skops.io
    from skops.io.exceptions import UntrustedTypesFoundException

    folder = Path(folder).resolve()
    flavour = _sklearn_flavour(folder)
    declared = flavour.get("serialization_format")
    if declared != SERIALIZATION_FORMAT:
        raise UntrustedModel(
            f"refused: the model is saved as {declared!r}; only {SERIALIZATION_FORMAT!r} is loaded, because other "
            "formats (pickle, cloudpickle) run code from the file. Re-register it with `forestops train`."
        )
    model_file = (folder / str(flavour.get("pickled_model", ""))).resolve()
    if not model_file.is_file() or folder not in model_file.parents:
        raise UntrustedModel(f"refused: the model file {flavour.get('pickled_model')!r} is not a file in the model")
    try:
        # Our list, not flavour["skops_trusted_types"]: the model must not choose what we trust.
        return skops.io.load(model_file, trusted=list(TRUSTED_TYPES))
    except UntrustedTypesFoundException as error:
        raise UntrustedModel(f"refused: the skops file holds types forestops does not trust: {error}") from None


def load_registered_model(model_name: str, version: str, tracking_uri: str) -> Any:
    """Download version ``version`` of ``model_name`` and load it with ``load_model_folder``."""
    import mlflow.artifacts

    folder = tempfile.mkdtemp(prefix="forestops-model-")
    try:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{model_name}/{version}",
            dst_path=folder,
            tracking_uri=tracking_uri,
            registry_uri=tracking_uri,
        )
        return load_model_folder(local)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
