"""The rows the data API serves: loaded, validated and serialised once.

The file is read a single time at start-up.  Every value goes through the
data contract's own normalisation (``forestops.schema``), so the service
refuses exactly what ingestion would refuse, and the first bad value stops
the load with the file, line and column in the message.  Each served row is
kept only as its JSON fragment (``["3118","183",...]``), which keeps memory
low (about 110 bytes a row) and makes a response a join of bytes.

Without a data file the rows are built from the public UCI one-hot file via
scikit-learn's ``fetch_covtype`` (downloaded once), converted to the raw
format, shuffled with a fixed seed and cached as a raw CSV.gz, so later starts
skip the download and the conversion.
"""

from __future__ import annotations

import csv
import gzip
import json
import logging
import os
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

from forestops import schema
from forestops.errors import ConfigurationError
from forestops.settings import Settings

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

# The order of the rows built from the UCI file; it fixes which rows fall in
# which batch, so it must not change between releases.
UCI_SHUFFLE_SEED = 20_240_601
# Holdout membership is decided in steps of 1 / HOLDOUT_RESOLUTION.
HOLDOUT_RESOLUTION = 10_000

Row = TypeVar("Row")
Normalised = tuple[int | str, ...]


class DataSetError(ConfigurationError, ValueError):
    """The data set cannot be served; the message says where and why."""

    def __init__(self, path: Path | str, problem: str, *, line: int | None = None, column: str | None = None) -> None:
        self.path = Path(path)
        self.problem = problem
        self.line = line
        self.column = column
        where = str(path)
        if line is not None:
            where += f", line {line}"
        if column is not None:
            where += f", column {column}"
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True)
class ServedDataset:
    """The rows the API serves, in file order, each as a ready JSON array."""

    source: Path
    fragments: tuple[bytes, ...]
    holdout_rows: int = 0

    @property
    def row_count(self) -> int:
        return len(self.fragments)


def _open_text(path: Path) -> TextIO:
    """Open a CSV or a gzip-compressed CSV, recognised by content rather than name."""
    with path.open("rb") as probe:
        compressed = probe.read(2) == b"\x1f\x8b"
    if compressed:
        return gzip.open(path, "rt", encoding="utf-8-sig", newline="")
    return path.open("r", encoding="utf-8-sig", newline="")


def _check_header(path: Path, header: list[str] | None) -> None:
    expected = list(schema.RAW_COLUMNS)
    if header is None:
        raise DataSetError(path, f"the file is empty; expected the header line {','.join(expected)}")
    if header == expected:
        return
    for position, (found, wanted) in enumerate(zip(header, expected, strict=False), start=1):
        if found != wanted:
            raise DataSetError(
                path,
                f"header {found!r} should be {wanted!r}; the header must be exactly {','.join(expected)}",
                line=1,
                column=f"{position} ({wanted})",
            )
    raise DataSetError(
        path, f"the header has {len(header)} columns, expected {len(expected)}: {','.join(expected)}", line=1
    )


def read_data_file(path: Path | str) -> Iterator[Normalised]:
    """Yield each data row of a raw CSV / CSV.gz, normalised; raise at the first bad one.

    Lines are numbered from 1 (the header), as an editor shows them.  Empty
    lines carry no data and are skipped.
    """
    path = Path(path)
    if not path.is_file():
        raise DataSetError(path, "no such file (check FORESTOPS_DATA_PATH)")
    normalise = schema.MemoNormaliser()
    with _open_text(path) as handle:
        reader = csv.reader(handle, strict=True)
        try:
            _check_header(path, next(reader, None))
            for fields in reader:
                if not fields:
                    continue
                if len(fields) != len(schema.RAW_COLUMNS):
                    raise DataSetError(
                        path,
                        f"{len(fields)} fields, expected {len(schema.RAW_COLUMNS)} ({','.join(schema.RAW_COLUMNS)})",
                        line=reader.line_num,
                    )
                try:
                    yield normalise(fields)
                except schema.ValueProblem as problem:
                    raise DataSetError(
                        path,
                        f"{problem.value!r} is not valid; expected {problem.allowed}",
                        line=reader.line_num,
                        column=problem.column,
                    ) from None
        except csv.Error as error:
            raise DataSetError(path, f"not valid CSV ({error})", line=reader.line_num) from None
        except (OSError, EOFError, UnicodeDecodeError) as error:
            raise DataSetError(path, f"cannot be read ({error})", line=reader.line_num + 1) from None


def _digest(row: Normalised) -> str:
    return schema.row_digest(dict(zip(schema.RAW_COLUMNS, row, strict=True)))


def in_holdout(digest: str, fraction: float) -> bool:
    """Whether a row (by its ``schema.row_digest``) belongs to the holdout.

    It reads the digest's last hex digits: ``schema.digest_bucket`` reads the
    first ones for training's evaluation split, and the two must not be
    correlated, or the holdout would empty part of the evaluation buckets.
    """
    return int(digest[-12:], 16) % HOLDOUT_RESOLUTION < round(fraction * HOLDOUT_RESOLUTION)


def split_holdout(rows: Iterable[Row], fraction: float) -> tuple[list[Row], list[Row]]:
    """Split rows into (served, holdout) the way the data API does.

    Membership depends on a row's content only (its ``schema.row_digest``),
    so it is the same whatever the order or the batch of the rows, and a
    benchmark can evaluate on rows that FORESTOPS_HOLDOUT_FRACTION kept out
    of the API.  Rows are 13 values in ``schema.RAW_COLUMNS`` order (strings
    or normalised values) or mappings with those keys; they are returned
    unchanged.
    """
    if not 0 <= fraction < 1:
        raise ValueError(f"fraction must be in [0, 1), got {fraction}")
    normalise = schema.MemoNormaliser()
    served: list[Row] = []
    holdout: list[Row] = []
    for row in rows:
        values = [row[c] for c in schema.RAW_COLUMNS] if isinstance(row, Mapping) else row
        digest = _digest(normalise(values))  # type: ignore[arg-type]
        (holdout if fraction and in_holdout(digest, fraction) else served).append(row)
    return served, holdout


def load_raw_file(path: Path | str, holdout_fraction: float = 0.0, min_rows: int = 1) -> ServedDataset:
    """Validate a raw file and keep the served rows as JSON fragments."""
    path = Path(path)
    started = time.perf_counter()
    fragments: list[bytes] = []
    held = 0
    for row in read_data_file(path):
        if holdout_fraction and in_holdout(_digest(row), holdout_fraction):
            held += 1
            continue
        # Not orjson here: its bytes keep a multi-kilobyte buffer each, which
        # for 180,000 small rows costs 700 MB instead of 20.
        fragments.append(json.dumps([str(value) for value in row], separators=(",", ":")).encode())
    if len(fragments) < min_rows:
        raise DataSetError(
            path,
            f"{len(fragments)} rows to serve ({held} held out); at least {min_rows} are needed "
            "(one per batch, FORESTOPS_BATCH_COUNT)",
        )
    log.info(
        "loaded %d rows to serve from %s (%d held out) in %.1f s",
        len(fragments),
        path,
        held,
        time.perf_counter() - started,
    )
    return ServedDataset(source=path, fragments=tuple(fragments), holdout_rows=held)


def load_dataset(settings: Settings) -> ServedDataset:
    """The served rows: FORESTOPS_DATA_PATH, or the cached conversion of the UCI file."""
    path = settings.data_path if settings.data_path is not None else build_from_uci(settings)
    return load_raw_file(path, settings.holdout_fraction, min_rows=settings.batch_count)


# -- the UCI one-hot layout ------------------------------------------------------


def _onehot_columns(frame: pd.DataFrame, prefix: str, count: int) -> list[str]:
    """The one-hot columns of a group: sklearn's ``X_0..`` or UCI's ``X1..``."""
    layouts = ([f"{prefix}_{i}" for i in range(count)], [f"{prefix}{i}" for i in range(1, count + 1)])
    for columns in layouts:
        if all(column in frame.columns for column in columns):
            return columns
    raise ValueError(
        f"the one-hot frame lacks the {prefix} columns: expected {layouts[0][0]}..{layouts[0][-1]} "
        f"or {layouts[1][0]}..{layouts[1][-1]}"
    )


def _integers(frame: pd.DataFrame, column: str) -> Any:
    import numpy as np
    import pandas as pd

    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype="float64")
    bad = ~np.isfinite(values) | (values != np.round(values))
    if bad.any():
        first = int(np.argmax(bad))
        raise ValueError(f"row {frame.index[first]}, column {column}: {frame[column].iloc[first]!r} is not an integer")
    return values.astype("int64")


def _decode_onehot(frame: pd.DataFrame, prefix: str, codes: Sequence[str]) -> Any:
    import numpy as np

    columns = _onehot_columns(frame, prefix, len(codes))
    values = frame[columns].to_numpy(dtype="float64")
    ones = values == 1
    not_binary = ~(ones | (values == 0))
    if not_binary.any():
        row, col = np.argwhere(not_binary)[0]
        raise ValueError(f"row {frame.index[row]}, column {columns[col]}: {values[row, col]!r} is not 0 or 1")
    counts = ones.sum(axis=1)
    if (counts != 1).any():
        row = int(np.argmax(counts != 1))
        raise ValueError(f"row {frame.index[row]}: {counts[row]} of the {prefix} columns are 1; expected exactly one")
    return np.asarray(codes, dtype=object)[ones.argmax(axis=1)]


def onehot_to_raw(frame: pd.DataFrame, label_base: int = 1) -> pd.DataFrame:
    """Convert the UCI one-hot layout (54 features + Cover_Type) to the raw format.

    Accepts scikit-learn's ``fetch_covtype(as_frame=True)`` names
    (``Wilderness_Area_0..3``, ``Soil_Type_0..39``) and UCI's 1-based ones
    (``Wilderness_Area1..4``, ``Soil_Type1..40``); labels are read with
    ``label_base`` (UCI: 1..7) and written 0..6.
    """
    import pandas as pd

    missing = [c for c in (*schema.NUMERIC_COLUMNS, schema.LABEL) if c not in frame.columns]
    if missing:
        raise ValueError(f"the one-hot frame lacks the columns {', '.join(missing)}")
    raw: dict[str, Any] = {column: _integers(frame, column) for column in schema.NUMERIC_COLUMNS}
    raw[schema.WILDERNESS_AREA] = _decode_onehot(frame, schema.WILDERNESS_AREA, schema.WILDERNESS_CODES)
    raw[schema.SOIL_TYPE] = _decode_onehot(frame, schema.SOIL_TYPE, schema.SOIL_CODES)
    labels = _integers(frame, schema.LABEL) - label_base
    bad = (labels < 0) | (labels >= schema.N_CLASSES)
    if bad.any():
        first = int(bad.argmax())
        raise ValueError(
            f"row {frame.index[first]}, column {schema.LABEL}: {labels[first] + label_base} is not in "
            f"[{label_base}, {label_base + schema.N_CLASSES - 1}]"
        )
    raw[schema.LABEL] = labels
    return pd.DataFrame(raw, columns=list(schema.RAW_COLUMNS))


def write_raw_csv(frame: pd.DataFrame, path: Path) -> Path:
    """Write a raw-format frame as CSV (gzip when the name ends in .gz), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        frame.to_csv(
            temporary,
            index=False,
            columns=list(schema.RAW_COLUMNS),
            compression="gzip" if path.suffix == ".gz" else None,
        )
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def uci_cache_path(settings: Settings) -> Path:
    rows = "all" if settings.uci_sample_rows is None else str(settings.uci_sample_rows)
    return settings.resolved_cache_dir / f"covertype-raw-{rows}-seed{UCI_SHUFFLE_SEED}.csv.gz"


def build_from_uci(settings: Settings, *, download: bool = True) -> Path:
    """The raw file built from the UCI data; converted once, then reused from the cache.

    scikit-learn keeps its own download under ``<cache>/sklearn``, so even a
    new sample size (FORESTOPS_UCI_SAMPLE_ROWS) does not download again.
    """
    target = uci_cache_path(settings)
    if target.is_file():
        log.info("using the converted UCI data cached at %s", target)
        return target
    from sklearn.datasets import fetch_covtype

    data_home = settings.resolved_cache_dir / "sklearn"
    log.info("building the data set from the UCI covertype file (scikit-learn cache: %s)", data_home)
    try:
        bunch = fetch_covtype(data_home=str(data_home), download_if_missing=download, as_frame=True)
    except Exception as error:  # network, disk or a broken cache: all mean "no data"
        raise DataSetError(
            data_home,
            f"cannot get the UCI covertype file ({error}); set FORESTOPS_DATA_PATH to a raw CSV or CSV.gz instead",
        ) from None
    try:
        raw = onehot_to_raw(bunch.frame)
    except ValueError as error:
        raise DataSetError(data_home, f"the UCI file does not convert: {error}") from None
    del bunch
    raw = raw.sample(frac=1.0, random_state=UCI_SHUFFLE_SEED, ignore_index=True)
    if settings.uci_sample_rows is not None:
        raw = raw.head(settings.uci_sample_rows)
    write_raw_csv(raw, target)
    log.info("wrote %d converted rows to %s", len(raw), target)
    return target
