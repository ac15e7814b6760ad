"""Data for tests: real rows from ../shared when present, else generated ones.

The generated rows follow the data contract and carry a learnable signal
(the label depends on elevation, wilderness and soil the way it roughly does
in the real data), so model tests mean something on a fresh clone too.
"""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

import numpy as np

from forestops import schema

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "covertype.csv.gz"


def real_data_available() -> bool:
    return SHARED_DATA.is_file()


def read_real_rows(limit: int) -> list[list[str]]:
    rows: list[list[str]] = []
    with gzip.open(SHARED_DATA, "rt", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        assert tuple(header) == schema.RAW_COLUMNS, header
        for row in reader:
            rows.append(row)
            if len(rows) >= limit:
                break
    return rows


def generate_rows(count: int, seed: int = 7) -> list[list[str]]:
    rng = np.random.default_rng(seed)
    elevation = rng.integers(1900, 3800, count)
    wilderness = rng.choice(schema.WILDERNESS_CODES, count, p=[0.45, 0.05, 0.43, 0.07])
    soil_index = np.clip((elevation - 1900) / 1900 * 40 + rng.normal(0, 4, count), 0, 39).astype(int)
    # Elevation bands decide most of the class, as in the real data.
    bands = np.digitize(elevation + rng.normal(0, 60, count), [2200, 2450, 2700, 3000, 3300, 3550])
    band_to_class = np.array([3, 2, 5, 4, 1, 0, 6])
    label = band_to_class[bands]
    label = np.where((wilderness == "Cache") & (label == 1), 2, label)
    rows = []
    for i in range(count):
        rows.append(
            [
                str(elevation[i]),
                str(rng.integers(0, 361)),
                str(rng.integers(0, 50)),
                str(rng.integers(0, 1200)),
                str(rng.integers(-150, 550)),
                str(rng.integers(0, 7000)),
                str(rng.integers(0, 256)),
                str(rng.integers(0, 256)),
                str(rng.integers(0, 256)),
                str(rng.integers(0, 7000)),
                str(wilderness[i]),
                schema.SOIL_CODES[soil_index[i]],
                str(label[i]),
            ]
        )
    return rows


def sample_rows(count: int) -> list[list[str]]:
    """``count`` raw rows as strings: real ones when the shared file exists."""
    return read_real_rows(count) if real_data_available() else generate_rows(count)


def write_csv(path: Path, rows: list[list[str]], compress: bool | None = None) -> Path:
    compress = path.suffix == ".gz" if compress is None else compress
    opener = gzip.open if compress else open
    with opener(path, "wt", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(schema.RAW_COLUMNS)
        writer.writerows(rows)
    return path
