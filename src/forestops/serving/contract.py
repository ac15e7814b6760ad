"""Request and response models of the inference API, generated from the data contract.

Nothing here restates a column: the instance model is built from
:mod:`forestops.schema` so a new feature or a changed domain reaches the API
(and its OpenAPI document) without an edit.  Numbers are checked by
pydantic-core itself (bounds included), which keeps 10,000-row requests
cheap; the categoricals go through the schema's normalisers so the variants
the data README lists ("Comanche Peak", "7745", "soil_type12") are accepted
and arrive canonical.
"""

from __future__ import annotations

from typing import Annotated, Any, cast

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model, model_validator
from pydantic.config import JsonDict

from forestops import schema

MAX_INSTANCES = 10_000
INSTANCES_DOMAIN = f"a list of 1 to {MAX_INSTANCES:,} objects with the {len(schema.FEATURE_COLUMNS)} feature fields"

CATEGORY_DOMAINS: dict[str, str] = {
    schema.WILDERNESS_AREA: f"one of {', '.join(schema.WILDERNESS_CODES)} (or the area's full name)",
    schema.SOIL_TYPE: "one of the 40 soil codes C2702..C8776 (the 'C' is optional)",
}
_NORMALISERS = {schema.WILDERNESS_AREA: schema.normalise_wilderness, schema.SOIL_TYPE: schema.normalise_soil}


# The model's frame holds int64: an open end of a domain stops there.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def allowed_domain(field: str) -> str | None:
    """What a field accepts, in words, for error messages."""
    if field in schema.NUMERIC_BY_NAME:
        feature = schema.NUMERIC_BY_NAME[field]
        open_ended = feature.minimum is None or feature.maximum is None
        return feature.domain_text() + (" (64-bit)" if open_ended else "")
    if field in CATEGORY_DOMAINS:
        return CATEGORY_DOMAINS[field]
    if field == "instances":
        return INSTANCES_DOMAIN
    return None


def _numeric_field(feature: schema.NumericFeature) -> tuple[Any, Any]:
    example = schema.example_features()[feature.name]
    annotated = Annotated[
        int,
        Field(
            ge=INT64_MIN if feature.minimum is None else feature.minimum,
            le=INT64_MAX if feature.maximum is None else feature.maximum,
            description=f"{feature.description} ({feature.unit}); {allowed_domain(feature.name)}.",
            examples=[example],
        ),
    ]
    return annotated, ...


def _category_field(column: str) -> tuple[Any, Any]:
    normaliser = _NORMALISERS[column]
    annotated = Annotated[
        str,
        BeforeValidator(normaliser),
        Field(
            description=f"{CATEGORY_DOMAINS[column]}; the variants the data README lists are accepted too.",
            examples=[schema.example_features()[column]],
            # Documented as the canonical codes (a dropdown in /docs, what
            # generated clients send); the validator is more lenient.
            json_schema_extra={"enum": list(schema.CATEGORIES[column])},
        ),
    ]
    return annotated, ...


class _InstanceBase(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _BooleanRefusingBase(_InstanceBase):
    @model_validator(mode="before")
    @classmethod
    def _refuse_booleans(cls, data: Any) -> Any:
        """pydantic's lax integers take ``true`` as 1; the data contract does not."""
        if isinstance(data, dict):
            for name, value in data.items():
                if isinstance(value, bool) and name in schema.NUMERIC_BY_NAME:
                    raise schema.ValueProblem(name, value, allowed_domain(name) or "an integer")
        return data


def _instance_model(name: str, base: type[BaseModel]) -> type[BaseModel]:
    # pydantic's create_model overloads do not accept field definitions passed as **dict.
    return create_model(  # type: ignore[call-overload]
        name,
        __base__=base,
        __doc__="One row of the 12 features; numbers as JSON numbers or numeric strings.",
        **{f.name: _numeric_field(f) for f in schema.NUMERIC_FEATURES},
        **{c: _category_field(c) for c in schema.CATEGORICAL_COLUMNS},
    )


def _request_model(name: str, instance: type[BaseModel]) -> type[BaseModel]:
    return create_model(
        name,
        __config__=ConfigDict(
            extra="forbid", json_schema_extra={"examples": [{"instances": [cast(JsonDict, schema.example_features())]}]}
        ),
        __doc__="Rows to classify, in one request.",
        instances=(
            list[instance],  # type: ignore[valid-type]
            Field(min_length=1, max_length=MAX_INSTANCES, description=INSTANCES_DOMAIN),
        ),
    )


# The documented model: refuses JSON booleans in number fields.  Checking
# that in Python costs about as much as all of pydantic-core's validation,
# so bodies without a ``true``/``false`` token anywhere take the twin below,
# which differs only in not looking for booleans (see ``parse_request``).
Instance = _instance_model("Instance", _BooleanRefusingBase)
PredictRequest = _request_model("PredictRequest", Instance)
_FastInstance = _instance_model("Instance", _InstanceBase)
_FastPredictRequest = _request_model("PredictRequest", _FastInstance)


def parse_request(body: bytes) -> BaseModel:
    """Validate a JSON body (raises pydantic's ValidationError)."""
    model = PredictRequest if (b"true" in body or b"false" in body) else _FastPredictRequest
    return model.model_validate_json(body or b"null")


class ModelRef(BaseModel):
    name: str
    version: str
    alias: str


class Prediction(BaseModel):
    cover_type: int = Field(description="Class id 0..6.")
    cover_type_name: str
    probabilities: dict[str, float] = Field(description="Probability per class name (all 7 classes).")


class PredictResponse(BaseModel):
    model: ModelRef
    predictions: list[Prediction]


class LoadFailureInfo(BaseModel):
    version: str
    error: str
    at: str
    refused: bool = Field(
        default=False, description="True when the version was refused for safety (not skops, or untrusted types)."
    )


class ModelInfo(BaseModel):
    name: str
    alias: str
    version: str | None
    run_id: str | None
    metrics: dict[str, float]
    loaded_at: str | None
    predictor: str | None = Field(
        default=None,
        description="What answers /predict: a fast path checked against the logged pipeline at load time "
        "('lightgbm-forest', 'lightgbm-booster', 'sklearn-hgb-forest', 'sklearn-hgb-predictors', 'onehot-array') "
        "or 'pipeline'.",
    )
    predictor_fallback: str | None = Field(
        default=None,
        description="Why a faster path than the one serving was not used (it could not be built or did not match).",
    )
    checked_at: str | None = Field(description="When the registry was last asked for the alias.")
    registry_error: str | None = Field(description="Why the last check of the registry failed, if it did.")
    load_failure: LoadFailureInfo | None = Field(description="The last version that could not be loaded.")
    promotion_pin: dict[str, str | None] | None = Field(
        default=None,
        description="Set while automatic promotion is paused (`forestops pin`): the champion then (version), "
        "by, at, reason and a description; null when trainings may replace the champion.",
    )
