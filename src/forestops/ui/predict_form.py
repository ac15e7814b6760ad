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


def fill_example() -> None:
    """Button callback: runs before the widgets, so they show the example row."""
    for column, value in schema.example_features().items():
        st.session_state[key(column)] = value


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
