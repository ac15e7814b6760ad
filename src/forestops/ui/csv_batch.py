"""Reading an uploaded CSV in the raw format, row by row, with the data contract.

A file is accepted whole only when every row is valid, and each problem names
its line and column, so a person can fix the file rather than guess.  When
only some rows are bad, the refusal keeps the valid rows with their line
numbers (``CsvRejected.valid``), so the page can offer to predict those and
list the others.  A problem with the file itself (not UTF-8, not CSV, a bad
header, too many rows) keeps nothing.  The label column is optional; when
present it is validated too and kept, so the page can show how many
predictions match it.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

from forestops import schema

MAX_ROWS = 100_000
MAX_PROBLEMS = 1_000  # kept for the table of bad lines; the count covers them all


@dataclass(frozen=True)
class CsvProblem:
    line: int
    column: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}, column {self.column}: {self.message}"


@dataclass(frozen=True)
class CsvBatch:
    records: list[dict[str, int | str]]
    labels: list[int] | None
    lines: list[int] = field(default_factory=list)  # the file's line number of each record


@dataclass(frozen=True)
class CsvRejected:
    problems: list[CsvProblem]
    total: int  # problems found, of which the first MAX_PROBLEMS are kept
    valid: CsvBatch | None = None  # the rows without a problem, when only rows (not the file) are bad
    bad_lines: int = 0  # rows with at least one problem (when ``valid`` is set)

    @property
    def summary(self) -> str:
        more = f" (showing the first {len(self.problems)})" if self.total > len(self.problems) else ""
        if self.valid is not None:
            rows = self.bad_lines + len(self.valid.records)
            return (
                f"{self.bad_lines:,} of {rows:,} rows have problems: {self.total} problem(s){more}. "
                f"First: {self.problems[0]}"
            )
        return f"The file was not accepted: {self.total} problem(s){more}. First: {self.problems[0]}"


def _header_columns(cells: list[str]) -> list[str] | None:
    """The column order when ``cells`` is a header row, else ``None``."""
    by_name = {c.casefold(): c for c in schema.RAW_COLUMNS}
    named = [by_name.get(cell.strip().casefold()) for cell in cells]
    return None if not any(named) else [n or cell.strip() for n, cell in zip(named, cells, strict=True)]


def parse_csv(content: bytes) -> CsvBatch | CsvRejected:
    """Validate every row; a header is optional (without one, columns are in the raw order)."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = content[: error.start].count(b"\n") + 1
        return CsvRejected([CsvProblem(line, "-", "the file is not UTF-8 text")], 1)
    reader = csv.reader(io.StringIO(text, newline=""))
    problems: list[CsvProblem] = []
    total = 0

    def problem(line: int, column: str, message: str) -> None:
        nonlocal total
        total += 1
        if len(problems) < MAX_PROBLEMS:
            problems.append(CsvProblem(line, column, message))

    try:
        first = next(reader)
    except StopIteration:
        return CsvRejected([CsvProblem(1, "-", "the file is empty")], 1)
    except csv.Error as error:
        return CsvRejected([CsvProblem(1, "-", f"not a CSV file ({error})")], 1)

    header = _header_columns(first)
    pending: list[tuple[int, list[str]]] = []
    if header is None:
        columns = list(schema.RAW_COLUMNS if len(first) == len(schema.RAW_COLUMNS) else schema.FEATURE_COLUMNS)
        pending.append((reader.line_num, first))
    else:
        columns = header
        unknown = [c for c in columns if c not in schema.RAW_COLUMNS]
        missing = [c for c in schema.FEATURE_COLUMNS if c not in columns]
        for name in unknown:
            problem(1, name, f"unknown column; expected the columns {', '.join(schema.RAW_COLUMNS)}")
        for name in missing:
            problem(1, name, "missing column (every feature is required; Cover_Type is optional)")
        if len(set(columns)) != len(columns):
            problem(1, "-", "a column appears twice in the header")
        if total:
            return CsvRejected(problems, total)
    has_label = schema.LABEL in columns

    records: list[dict[str, int | str]] = []
    labels: list[int] = []
    lines: list[int] = []
    rows = 0
    bad_lines = 0
    file_problem = False  # a problem that leaves the rows unknown: nothing of the file is kept
    try:
        for line, cells in _rows(reader, pending):
            if not any(cell.strip() for cell in cells):
                continue  # blank lines are not rows
            rows += 1
            if rows > MAX_ROWS:
                problem(line, "-", f"more than {MAX_ROWS} rows; split the file")
                file_problem = True
                break
            if len(cells) != len(columns):
                problem(line, "-", f"{len(cells)} fields, expected {len(columns)} ({', '.join(columns)})")
                bad_lines += 1
                continue
            record: dict[str, int | str] = {}
            label: int | None = None
            valid = True
            for column, cell in zip(columns, cells, strict=True):
                try:
                    value = schema.normalise_value(column, cell)
                except schema.ValueProblem as error:
                    problem(line, column, f"{cell!r} is not valid; expected {error.allowed}")
                    valid = False
                    continue
                if column == schema.LABEL:
                    label = int(value)
                else:
                    record[column] = value
            if not valid:
                bad_lines += 1
                continue
            records.append(record)
            lines.append(line)
            if label is not None:
                labels.append(label)
    except csv.Error as error:
        problem(reader.line_num, "-", f"unreadable CSV ({error})")
        file_problem = True
    if total:
        valid_rows = None if file_problem or not records else CsvBatch(records, labels if has_label else None, lines)
        return CsvRejected(problems, total, valid_rows, bad_lines if valid_rows else 0)
    if not records:
        return CsvRejected([CsvProblem(2 if header else 1, "-", "the file has no data rows")], 1)
    return CsvBatch(records, labels if has_label else None, lines)


def _rows(reader, pending: list[tuple[int, list[str]]]):
    yield from pending
    for cells in reader:
        yield reader.line_num, cells


def predictions_csv(
    records: list[dict[str, int | str]], rows: list[dict[str, object]], lines: list[int] | None = None
) -> bytes:
    """The input rows with their predictions appended, as CSV bytes for download.

    With ``lines`` (some rows of the file were left out), each row starts with
    its line number in the uploaded file.
    """
    buffer = io.StringIO()
    extra = list(rows[0]) if rows else []
    leading = ["line"] if lines is not None else []
    writer = csv.DictWriter(buffer, fieldnames=[*leading, *schema.FEATURE_COLUMNS, *extra], lineterminator="\n")
    writer.writeheader()
    numbers = lines if lines is not None else [None] * len(records)
    for number, record, row in zip(numbers, records, rows, strict=True):
        writer.writerow({**({"line": number} if lines is not None else {}), **record, **row})
    return buffer.getvalue().encode()
