"""Checks on the values of input tables, failing with the file, line and column at fault.

Every loader runs these on the :class:`~tfrs_recsys.data.reader.Table` of a
file it read: ids (present, unique, known to another file), numbers, text,
0/1 flags and fixed choices. Each check reports the first bad row in file
order, by its 1-based file line (a header is line 1) and the column's name in
the file, then says what was expected and what was found.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from tfrs_recsys.data.reader import Table
from tfrs_recsys.errors import DatasetNotFoundError, DataValidationError


def require_files(directory: Path, names: Iterable[str], *, dataset: str) -> None:
    """Raises DatasetNotFoundError naming every missing file."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DatasetNotFoundError(f"{directory}: not a directory (expected the {dataset} files)")
    missing = [name for name in names if not (directory / name).is_file()]
    if missing:
        raise DatasetNotFoundError(
            f"{directory}: missing {', '.join(missing)} (expected the {dataset} files)"
        )


def shown_value(value: object) -> str:
    """A cell value as a user reads it (``2``, ``'x'``), not a numpy repr."""
    if isinstance(value, np.generic):
        value = value.item()
    return repr(value)


def _blank(values: pd.Series) -> np.ndarray:
    """Missing, or only spaces once written as text."""
    return (values.isna() | (values.astype(str).str.strip() == "")).to_numpy()


def _fail(table: Table, row: int, column: str, problem: str) -> DataValidationError:
    return DataValidationError(
        problem, file=table.path, line=table.line(row), column=table.label(column)
    )


def check_ids_present(table: Table, column: str) -> None:
    """Every id of ``column`` is set (not missing, not blank)."""
    blank = _blank(table.frame[column])
    if blank.any():
        raise _fail(table, int(np.flatnonzero(blank)[0]), column, "empty id")


def check_unique(table: Table, column: str) -> None:
    """No id of ``column`` appears twice; the message names both lines."""
    values = table.frame[column]
    duplicated = values.duplicated().to_numpy()
    if duplicated.any():
        row = int(np.flatnonzero(duplicated)[0])
        value = values.iloc[row]
        first = int(np.flatnonzero((values == value).to_numpy())[0])
        raise _fail(
            table,
            row,
            column,
            f"duplicate id {value!r} (first seen on line {table.line(first)}); ids must be unique",
        )


def check_ids(table: Table, column: str) -> None:
    """The ids of a user or item table: all present and unique."""
    check_ids_present(table, column)
    check_unique(table, column)


def check_known(
    table: Table, column: str, known: pd.Series, *, known_file: Path | str, what: str
) -> None:
    """Every id of ``column`` is one of ``known``, the ids of ``known_file``.

    Args:
        table: The table that refers to the ids (ratings, interactions...).
        column: Its id column.
        known: The ids that exist.
        known_file: Where ``known`` comes from, for the message.
        what: ``user`` or ``item``.
    """
    unknown = (~table.frame[column].isin(known)).to_numpy()
    if unknown.any():
        row = int(np.flatnonzero(unknown)[0])
        value = table.frame[column].iloc[row]
        raise _fail(
            table,
            row,
            column,
            f"{what} id {value!r} is not in {known_file} "
            f"({int(unknown.sum())} row(s) refer to unknown {what}s)",
        )


def check_numeric(table: Table, column: str, *, minimum: float | None = 0.0) -> pd.Series:
    """The column as float64; fails at the first non-number, infinity or value < ``minimum``.

    Text cells may have spaces around the number.
    """
    raw = table.frame[column]
    values = pd.to_numeric(raw, errors="coerce").astype(np.float64)
    numbers = values.to_numpy()
    bad = ~np.isfinite(numbers)
    if minimum is not None:
        bad |= numbers < minimum
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        shown = raw.iloc[row]
        if _blank(raw.iloc[row : row + 1])[0]:
            problem = "expected a number, got nothing"
        elif np.isnan(numbers[row]):
            problem = f"expected a number, got {shown_value(shown)}"
        elif np.isinf(numbers[row]):
            problem = f"expected a finite number, got {shown_value(shown)}"
        else:
            problem = f"expected a number >= {minimum:g}, got {numbers[row]:g}"
        raise _fail(table, row, column, problem)
    return values


def check_text(table: Table, column: str) -> None:
    """Fails on missing or blank text."""
    blank = _blank(table.frame[column])
    if blank.any():
        row = int(np.flatnonzero(blank)[0])
        raise _fail(table, row, column, "empty text (expected a non-blank string)")


def check_binary(table: Table, columns: Sequence[str]) -> np.ndarray:
    """The 0/1 cells of ``columns`` as uint8 ``[rows, len(columns)]``.

    ``1.0`` counts as 1. Columns are checked in the given order, so the first
    bad cell of the first bad column is the one reported.
    """
    cells = table.frame[list(columns)]
    if all(pd.api.types.is_integer_dtype(t) for t in cells.dtypes):
        values = cells.to_numpy()
        if not ((values != 0) & (values != 1)).any():
            return values.astype(np.uint8)
    for column in columns:
        raw = table.frame[column]
        bad = ~pd.to_numeric(raw, errors="coerce").isin([0, 1]).to_numpy()
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            shown = raw.iloc[row]
            raise _fail(
                table,
                row,
                column,
                f"expected 0 or 1, got {'an empty cell' if pd.isna(shown) else shown_value(shown)}",
            )
    # Every cell is 0 or 1 written another way (e.g. "1.0").
    return cells.apply(pd.to_numeric).to_numpy().astype(np.uint8)


def check_choice(
    table: Table, column: str, choices: Collection[str], *, expected: str
) -> pd.Series:
    """The column's text (spaces stripped), which must be one of ``choices``.

    Args:
        table: The table.
        column: A text column.
        choices: The allowed values.
        expected: What the message says was expected (``a genre flag 0 or 1``).
    """
    values = table.frame[column].str.strip()
    bad = ~values.isin(list(choices)).to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise _fail(table, row, column, f"expected {expected}, got {values.iloc[row]!r}")
    return values
