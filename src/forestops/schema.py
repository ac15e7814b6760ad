"""The data contract: the one place that knows the Forest Cover Type columns.

Ingestion, training, serving and the UI import their column lists, domains,
category sets and label names from here, so a change to the data contract is
a change to this file alone.  The "raw" format is the one the course's data
API serves: 13 columns, categoricals as names, values as strings in JSON.

Normalisation accepts the variants seen in the wild (see the data README):
"Commanche Peak" / "Comanche" / "Cache la Poudre" for wilderness areas, soil
codes without their "C" prefix, and labels numbered 1..7 (UCI) when the
source is configured that way.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from forestops.errors import DataError

LabelBase = Literal[0, 1]


@dataclass(frozen=True)
class NumericFeature:
    """An integer feature with the domain a value must lie in.

    ``minimum``/``maximum`` are the hard bounds used for validation (physical
    limits, generous on purpose); ``typical`` is the range seen in the data,
    used by the UI for sensible input widgets.
    """

    name: str
    description: str
    unit: str
    minimum: int | None
    maximum: int | None
    typical: tuple[int, int]

    def domain_text(self) -> str:
        low = "-inf" if self.minimum is None else str(self.minimum)
        high = "+inf" if self.maximum is None else str(self.maximum)
        return f"an integer in [{low}, {high}]"


NUMERIC_FEATURES: tuple[NumericFeature, ...] = (
    NumericFeature("Elevation", "Elevation", "m", 0, 9000, (1850, 3860)),
    NumericFeature("Aspect", "Aspect (azimuth)", "degrees", 0, 360, (0, 360)),
    NumericFeature("Slope", "Slope", "degrees", 0, 90, (0, 66)),
    NumericFeature(
        "Horizontal_Distance_To_Hydrology",
        "Horizontal distance to nearest surface water",
        "m",
        0,
        None,
        (0, 1400),
    ),
    NumericFeature(
        "Vertical_Distance_To_Hydrology",
        "Vertical distance to nearest surface water",
        "m",
        None,
        None,
        (-175, 605),
    ),
    NumericFeature(
        "Horizontal_Distance_To_Roadways",
        "Horizontal distance to nearest roadway",
        "m",
        0,
        None,
        (0, 7120),
    ),
    NumericFeature("Hillshade_9am", "Hillshade index at 9am, summer solstice", "0-255", 0, 255, (0, 255)),
    NumericFeature("Hillshade_Noon", "Hillshade index at noon, summer solstice", "0-255", 0, 255, (0, 255)),
    NumericFeature("Hillshade_3pm", "Hillshade index at 3pm, summer solstice", "0-255", 0, 255, (0, 255)),
    NumericFeature(
        "Horizontal_Distance_To_Fire_Points",
        "Horizontal distance to nearest wildfire ignition point",
        "m",
        0,
        None,
        (0, 7180),
    ),
)

WILDERNESS_AREA = "Wilderness_Area"
SOIL_TYPE = "Soil_Type"
LABEL = "Cover_Type"

NUMERIC_COLUMNS: tuple[str, ...] = tuple(f.name for f in NUMERIC_FEATURES)
CATEGORICAL_COLUMNS: tuple[str, ...] = (WILDERNESS_AREA, SOIL_TYPE)
FEATURE_COLUMNS: tuple[str, ...] = NUMERIC_COLUMNS + CATEGORICAL_COLUMNS
RAW_COLUMNS: tuple[str, ...] = (*FEATURE_COLUMNS, LABEL)
NUMERIC_BY_NAME: dict[str, NumericFeature] = {f.name: f for f in NUMERIC_FEATURES}

# Wilderness_Area1..4 of the UCI one-hot file, in that order ("Commanche" is
# the data's own spelling).
WILDERNESS_AREAS: dict[str, str] = {
    "Rawah": "Rawah Wilderness Area",
    "Neota": "Neota Wilderness Area",
    "Commanche": "Comanche Peak Wilderness Area",
    "Cache": "Cache la Poudre Wilderness Area",
}

# Soil_Type1..40 of the UCI one-hot file, in that order: "C" + the USFS
# Ecological Landtype Unit code, with the survey's family description.
SOIL_TYPES: dict[str, str] = {
    "C2702": "Cathedral family - Rock outcrop complex, extremely stony",
    "C2703": "Vanet - Ratake families complex, very stony",
    "C2704": "Haploborolis - Rock outcrop complex, rubbly",
    "C2705": "Ratake family - Rock outcrop complex, rubbly",
    "C2706": "Vanet family - Rock outcrop complex, rubbly",
    "C2717": "Vanet - Wetmore families - Rock outcrop complex, stony",
    "C3501": "Gothic family",
    "C3502": "Supervisor - Limber families complex",
    "C4201": "Troutville family, very stony",
    "C4703": "Bullwark - Catamount families - Rock outcrop complex, rubbly",
    "C4704": "Bullwark - Catamount families - Rock land complex, rubbly",
    "C4744": "Legault family - Rock land complex, stony",
    "C4758": "Catamount family - Rock land - Bullwark family complex, rubbly",
    "C5101": "Pachic Argiborolis - Aquolis complex",
    "C5151": "Unspecified in the USFS Soil and ELU Survey",
    "C6101": "Cryaquolis - Cryoborolis complex",
    "C6102": "Gateview family - Cryaquolis complex",
    "C6731": "Rogert family, very stony",
    "C7101": "Typic Cryaquolis - Borohemists complex",
    "C7102": "Typic Cryaquepts - Typic Cryaquolls complex",
    "C7103": "Typic Cryaquolls - Leighcan family, till substratum complex",
    "C7201": "Leighcan family, till substratum, extremely bouldery",
    "C7202": "Leighcan family, till substratum - Typic Cryaquolls complex",
    "C7700": "Leighcan family, extremely stony",
    "C7701": "Leighcan family, warm, extremely stony",
    "C7702": "Granile - Catamount families complex, very stony",
    "C7709": "Leighcan family, warm - Rock outcrop complex, extremely stony",
    "C7710": "Leighcan family - Rock outcrop complex, extremely stony",
    "C7745": "Como - Legault families complex, extremely stony",
    "C7746": "Como family - Rock land - Legault family complex, extremely stony",
    "C7755": "Leighcan - Catamount families complex, extremely stony",
    "C7756": "Catamount family - Rock outcrop - Leighcan family complex, extremely stony",
    "C7757": "Leighcan - Catamount families - Rock outcrop complex, extremely stony",
    "C7790": "Cryorthents - Rock land complex, extremely stony",
    "C8703": "Cryumbrepts - Rock outcrop - Cryaquepts complex",
    "C8707": "Bross family - Rock land - Cryumbrepts complex, extremely stony",
    "C8708": "Rock outcrop - Cryumbrepts - Cryorthents complex, extremely stony",
    "C8771": "Leighcan - Moran families - Cryaquolls complex, extremely stony",
    "C8772": "Moran family - Cryorthents - Leighcan family complex, extremely stony",
    "C8776": "Moran family - Cryorthents - Rock land complex, extremely stony",
}

WILDERNESS_CODES: tuple[str, ...] = tuple(WILDERNESS_AREAS)
SOIL_CODES: tuple[str, ...] = tuple(SOIL_TYPES)
CATEGORIES: dict[str, tuple[str, ...]] = {WILDERNESS_AREA: WILDERNESS_CODES, SOIL_TYPE: SOIL_CODES}

# Cover_Type 0..6 as the course serves it (UCI class minus one).
COVER_TYPES: tuple[str, ...] = (
    "Spruce/Fir",
    "Lodgepole Pine",
    "Ponderosa Pine",
    "Cottonwood/Willow",
    "Aspen",
    "Douglas-fir",
    "Krummholz",
)
N_CLASSES = len(COVER_TYPES)
CLASS_IDS: tuple[int, ...] = tuple(range(N_CLASSES))

_WILDERNESS_ALIASES: dict[str, str] = {
    **{name.casefold(): name for name in WILDERNESS_CODES},
    **{desc.casefold(): name for name, desc in WILDERNESS_AREAS.items()},
    "comanche": "Commanche",
    "comanche peak": "Commanche",
    "commanche peak": "Commanche",
    "cache la poudre": "Cache",
    **{f"wilderness_area{i}": name for i, name in enumerate(WILDERNESS_CODES, start=1)},
}
_SOIL_ALIASES: dict[str, str] = {
    **{code.casefold(): code for code in SOIL_CODES},
    **{code[1:]: code for code in SOIL_CODES},
    **{f"soil_type{i}": code for i, code in enumerate(SOIL_CODES, start=1)},
}


class ValueProblem(DataError, ValueError):
    """A value that does not fit its column; the message names both."""

    def __init__(self, column: str, value: Any, allowed: str) -> None:
        self.column = column
        self.value = value
        self.allowed = allowed
        super().__init__(f"{column}: {value!r} is not valid; expected {allowed}")


def _clean(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


# The one number format both ingestion and the inference API accept (the
# inference API's pydantic ``int`` in lax mode reads the same texts): ASCII
# digits with an optional sign, ``_`` between digits, an all-zero fraction
# ("12.0") and surrounding spaces.  Not accepted: exponents ("1e3"), a bare
# point ("12.", ".5"), non-ASCII digits ("\u0663"), booleans.  See
# docs/ingestion.md, "Number formats".
INTEGER_TEXT = re.compile(r"[ \t\n\r]*([+-]?[0-9](?:_?[0-9])*)(?:\.0+)?[ \t\n\r]*")


def parse_int(column: str, value: Any) -> int:
    """Parse an integer that may arrive as int, integral float or string (see ``INTEGER_TEXT``)."""
    if isinstance(value, bool) or value is None:
        raise ValueProblem(column, value, "an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise ValueProblem(column, value, "an integer")
        return int(value)
    match = INTEGER_TEXT.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise ValueProblem(column, value, "an integer")
    return int(match.group(1))


def normalise_numeric(column: str, value: Any) -> int:
    feature = NUMERIC_BY_NAME[column]
    number = parse_int(column, value)
    if (feature.minimum is not None and number < feature.minimum) or (
        feature.maximum is not None and number > feature.maximum
    ):
        raise ValueProblem(column, value, feature.domain_text())
    return number


def normalise_wilderness(value: Any) -> str:
    key = str(_clean(value)).casefold() if value is not None else ""
    try:
        return _WILDERNESS_ALIASES[key]
    except KeyError:
        raise ValueProblem(WILDERNESS_AREA, value, f"one of {', '.join(WILDERNESS_CODES)}") from None


def normalise_soil(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    key = str(_clean(value)).casefold() if value is not None else ""
    try:
        return _SOIL_ALIASES[key]
    except KeyError:
        raise ValueProblem(SOIL_TYPE, value, "one of the 40 soil codes C2702..C8776 (the 'C' is optional)") from None


def normalise_label(value: Any, label_base: LabelBase = 0) -> int:
    """Map a label to 0..6; ``label_base=1`` reads UCI numbering 1..7."""
    label = parse_int(LABEL, value) - label_base
    if not 0 <= label < N_CLASSES:
        low, high = label_base, label_base + N_CLASSES - 1
        raise ValueProblem(LABEL, value, f"an integer in [{low}, {high}]")
    return label


def normalise_value(column: str, value: Any, label_base: LabelBase = 0) -> int | str:
    if column in NUMERIC_BY_NAME:
        return normalise_numeric(column, value)
    if column == WILDERNESS_AREA:
        return normalise_wilderness(value)
    if column == SOIL_TYPE:
        return normalise_soil(value)
    if column == LABEL:
        return normalise_label(value, label_base)
    raise KeyError(f"unknown column {column!r}")


def normalise_features(record: Mapping[str, Any]) -> dict[str, int | str]:
    """Validate a mapping of the 12 features; unknown or missing keys fail."""
    unknown = set(record) - set(FEATURE_COLUMNS)
    if unknown:
        raise ValueProblem(sorted(unknown)[0], record[sorted(unknown)[0]], "no such field")
    missing = [c for c in FEATURE_COLUMNS if c not in record]
    if missing:
        raise ValueProblem(missing[0], None, "a value (the field is required)")
    return {c: normalise_value(c, record[c]) for c in FEATURE_COLUMNS}


def normalise_raw_row(values: Sequence[Any], label_base: LabelBase = 0) -> dict[str, int | str]:
    """Validate one raw row (13 values in ``RAW_COLUMNS`` order)."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise ValueProblem("row", values, f"a list of {len(RAW_COLUMNS)} values")
    if len(values) != len(RAW_COLUMNS):
        raise ValueProblem(
            "row", f"{len(values)} fields", f"{len(RAW_COLUMNS)} fields in the order {', '.join(RAW_COLUMNS)}"
        )
    return {c: normalise_value(c, v, label_base) for c, v in zip(RAW_COLUMNS, values, strict=True)}


class MemoNormaliser:
    """``normalise_raw_row`` that remembers each column's answer to each distinct text.

    A data file or a served portion repeats most values (categories,
    hillshades, labels, common distances): a column of 180,000 rows holds a
    few thousand distinct strings, so asking this module once per distinct
    value gives its exact verdict at a fraction of the cost.  Only strings are
    remembered (1, 1.0 and True are equal dict keys but not equally valid);
    any problem is re-raised by ``normalise_raw_row``, so the reason is the
    contract's own message.  One instance per file or portion (the memo grows
    with the distinct values it sees).
    """

    def __init__(self, label_base: LabelBase = 0) -> None:
        self.label_base = label_base
        self._answers: list[dict[str, int | str]] = [{} for _ in RAW_COLUMNS]

    def __call__(self, values: Sequence[Any]) -> tuple[int | str, ...]:
        try:
            if isinstance(values, (str, bytes)) or len(values) != len(RAW_COLUMNS):
                raise TypeError
            row = []
            for column, answers, value in zip(RAW_COLUMNS, self._answers, values, strict=True):
                if type(value) is not str:
                    row.append(normalise_value(column, value, self.label_base))
                elif value in answers:
                    row.append(answers[value])
                else:
                    answer = answers[value] = normalise_value(column, value, self.label_base)
                    row.append(answer)
            return tuple(row)
        except (TypeError, ValueError):  # off-contract shape or a bad value: the canonical message
            return tuple(normalise_raw_row(values, self.label_base).values())


def row_digest(row: Mapping[str, Any]) -> str:
    """A content hash of a normalised raw row (all 13 columns).

    It is what makes a row unique in storage (resamples and retries collapse
    onto one row) and what assigns a row to its train/evaluation split, so
    it must only ever change together with a storage migration.
    """
    canonical = "|".join(str(row[c]) for c in RAW_COLUMNS)
    return hashlib.sha256(canonical.encode()).hexdigest()


def digest_bucket(digest: str, buckets: int = 100) -> int:
    """A stable bucket 0..buckets-1 derived from a row digest."""
    return int(digest[:12], 16) % buckets


def label_name(label: int) -> str:
    return COVER_TYPES[label]


def example_features() -> dict[str, int | str]:
    """A real row of the data set (class 1, Lodgepole Pine), for docs and forms."""
    return {
        "Elevation": 3020,
        "Aspect": 101,
        "Slope": 16,
        "Horizontal_Distance_To_Hydrology": 67,
        "Vertical_Distance_To_Hydrology": 6,
        "Horizontal_Distance_To_Roadways": 4621,
        "Hillshade_9am": 245,
        "Hillshade_Noon": 216,
        "Hillshade_3pm": 95,
        "Horizontal_Distance_To_Fire_Points": 2024,
        "Wilderness_Area": "Rawah",
        "Soil_Type": "C7745",
    }


def feature_frame(records: Iterable[Mapping[str, Any]] | Any):
    """A pandas frame of normalised features with the dtypes models expect.

    Categoricals get the full, fixed category list so that a model trained
    on data that happened to miss a soil code still sees the same encoding.
    Accepts a list of dicts or an existing DataFrame.
    """
    import pandas as pd

    frame = records if isinstance(records, pd.DataFrame) else pd.DataFrame.from_records(list(records))
    frame = frame.loc[:, list(FEATURE_COLUMNS)].copy()
    for column in NUMERIC_COLUMNS:
        frame[column] = frame[column].astype("int64")
    for column, categories in CATEGORIES.items():
        frame[column] = pd.Categorical(frame[column].astype(str), categories=list(categories))
    return frame
