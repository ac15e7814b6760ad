"""The predict form's widgets, built from the data contract (domains, categories, example)."""

from __future__ import annotations

from typing import Any

import streamlit as st

from forestops import schema

KEY_PREFIX = "predict."


def key(column: str) -> str:
    return KEY_PREFIX + column


def _starting_value(feature: schema.NumericFeature) -> int:
    low, high = feature.typical
    return (low + high) // 2


def initialise() -> None:
    """Give every input a value once per session (the middle of its typical range)."""
    for feature in schema.NUMERIC_FEATURES:
        st.session_state.setdefault(key(feature.name), _starting_value(feature))
    st.session_state.setdefault(key(schema.WILDERNESS_AREA), schema.WILDERNESS_CODES[0])
    st.session_state.setdefault(key(schema.SOIL_TYPE), schema.SOIL_CODES[0])


def fill_example(database_url: str | None = None) -> None:
    """Button callback: runs before the widgets, so they show the example row.

    A random collected row when the raw-data database has one (its true class
    is kept to show next to the prediction), else the contract's example row.
    """
    drawn = None
    if database_url:
        from forestops.ui.clients.collection import random_stored_row

        drawn = random_stored_row(database_url)
    features, truth = drawn if drawn is not None else (schema.example_features(), None)
    for column, value in features.items():
        st.session_state[key(column)] = value
    st.session_state[TRUTH_KEY] = (features, truth)
    st.session_state.pop("predict.reply", None)


TRUTH_KEY = "predict.example_truth"


def true_class_of(current: dict[str, int | str]) -> int | None:
    """The true class of the row in the form, while it is still the example filled in."""
    kept = st.session_state.get(TRUTH_KEY)
    if not kept or kept[1] is None:
        return None
    features, truth = kept
    return truth if all(current.get(k) == v for k, v in features.items()) else None


def numeric_input(feature: schema.NumericFeature) -> None:
    low, high = feature.typical
    st.number_input(
        f"{feature.name} ({feature.unit})",
        min_value=feature.minimum,
        max_value=feature.maximum,
        step=1,
        format="%d",
        key=key(feature.name),
        help=f"{feature.description}. Allowed: {feature.domain_text()}; usual range {low}..{high}.",
    )


def category_inputs() -> None:
    st.selectbox(
        "Wilderness area",
        schema.WILDERNESS_CODES,
        key=key(schema.WILDERNESS_AREA),
        format_func=lambda code: f"{code} — {schema.WILDERNESS_AREAS[code]}",
    )
    st.selectbox(
        "Soil type",
        schema.SOIL_CODES,
        key=key(schema.SOIL_TYPE),
        format_func=lambda code: f"{code} — {schema.SOIL_TYPES[code]}",
    )


def features() -> dict[str, Any]:
    return {column: st.session_state[key(column)] for column in schema.FEATURE_COLUMNS}
