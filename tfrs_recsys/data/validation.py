"""Checks on the values of input tables, failing with the file, line and column at fault.

Every loader runs these on the :class:`~tfrs_recsys.data.reader.Table` of a
file it read: ids (present, unique, known to another file), numbers, text,
0/1 flags, fixed choices, ratings on a format's scale and timestamps. Each check reports the first bad row in file
order, by its 1-based file line (a header is line 1) and the column's name in
the file, then says what was expected and what was found.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from tfrs_recsys.data.input_files import check_file
from tfrs_recsys.data.reader import Table, shown_value
from tfrs_recsys.errors import DatasetNotFoundError, DataValidationError


def require_files(directory: Path, names: Iterable[str], *, dataset: str) -> None:
    """Each of ``names`` is a readable file of ``directory``.

    Raises:
        DatasetNotFoundError: ``directory`` is not a directory, or files are
            missing (all of them named).
        DataValidationError: A file is there but is not a readable regular file
            (a directory, a symbolic link loop...).
    """
    directory = Path(directory)
    if not os.path.isdir(directory):
        raise DatasetNotFoundError(f"{directory}: not a directory (expected the {dataset} files)")
    names = list(names)
    missing = [name for name in names if not os.path.lexists(directory / name)]
    if missing:
        raise DatasetNotFoundError(
            f"{directory}: missing {', '.join(missing)} (expected the {dataset} files)"
        )
    for name in names:
        check_file(directory / name)


def optional_file(path: Path) -> bool:
    """Whether an optional file is there; one that is there must be a readable file."""
    if not os.path.lexists(path):
        return False
    check_file(path)
    return True


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


def _first_repeat(frame: pd.DataFrame) -> tuple[int, int] | None:
    """``(row, first)``: the first row whose values appeared before, and that earlier
    row; None when no row repeats another."""
    repeated = frame.duplicated().to_numpy()
    if not repeated.any():
        return None
    row = int(np.flatnonzero(repeated)[0])
    same = (frame == frame.iloc[row]).all(axis=1).to_numpy()
    return row, int(np.flatnonzero(same)[0])


def check_unique(table: Table, column: str) -> None:
    """No id of ``column`` appears twice; the message names both lines."""
    repeat = _first_repeat(table.frame[[column]])
    if repeat is not None:
        row, first = repeat
        raise _fail(
            table,
            row,
            column,
            f"duplicate id {shown_value(table.frame[column].iloc[row])} "
            f"(first seen on line {table.line(first)}); ids must be unique",
        )


def check_unique_pairs(table: Table, user_column: str, item_column: str) -> None:
    """No (user, item) pair is rated twice; the message names both lines.

    A repeated pair would count as two positives and could land in both the
    train split and the holdout.
    """
    pairs = table.frame[[user_column, item_column]]
    repeat = _first_repeat(pairs)
    if repeat is not None:
        row, first = repeat
        user, item = pairs.iloc[row]
        raise _fail(
            table,
            row,
            item_column,
            f"user {shown_value(user)} rates item {shown_value(item)} a second time "
            f"(first on line {table.line(first)}); keep one rating per pair",
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
            f"{what} id {shown_value(value)} is not in {known_file} "
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

    A cell is a number equal to 0 or 1: ``0``, ``1``, and the same numbers as
    numeric exports write them (``0.0``, ``1.0``, ``1e0``). Anything else
    (``yes``, ``True``, ``0.5``, ``2``, ``nan``, an empty cell) is an error.
    Columns are checked in the given order, so the first bad cell of the first
    bad column is the one reported.
    """
    cells = table.frame[list(columns)]
    if all(pd.api.types.is_integer_dtype(t) for t in cells.dtypes):
        values = cells.to_numpy()
        if not ((values != 0) & (values != 1)).any():
            return values.astype(np.uint8)
    for column in columns:
        raw = table.frame[column]
        bad = ~pd.to_numeric(raw, errors="coerce").isin([0, 1]).to_numpy()
        if pd.api.types.is_bool_dtype(raw):
            bad[:] = True
        elif raw.dtype == object:
            bad |= raw.map(lambda v: isinstance(v, (bool, np.bool_))).to_numpy(dtype=bool)
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


@dataclasses.dataclass(frozen=True)
class RatingScale:
    """The ratings a file format allows.

    Attributes:
        name: The format, for messages (``ML-100K``).
        minimum: The lowest rating.
        maximum: The highest rating.
        step: Ratings are ``minimum + k * step``.
    """

    name: str
    minimum: float
    maximum: float
    step: float

    def describe(self) -> str:
        """``whole numbers 1 to 5``, ``0.5 to 5.0 in steps of 0.5``: for messages."""
        if self.step == 1 and self.minimum == int(self.minimum):
            return f"whole numbers {self.minimum:g} to {self.maximum:g}"
        return f"{self.minimum:g} to {self.maximum:.1f} in steps of {self.step:g}"


def check_rating_scale(table: Table, column: str, scale: RatingScale) -> None:
    """Every rating of ``column`` (finite floats) is on ``scale``; fails at the first that is not."""
    values = table.frame[column].to_numpy(dtype=np.float64)
    steps = (values - scale.minimum) / scale.step
    bad = (values < scale.minimum) | (values > scale.maximum)
    bad |= np.abs(steps - np.round(steps)) > 1e-9
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise _fail(
            table,
            row,
            column,
            f"rating {values[row]:g} is not on the {scale.name} rating scale "
            f"({scale.describe()}); fix or remove the line",
        )


def check_timestamps(table: Table, column: str) -> None:
    """Every timestamp of ``column`` (finite floats) fits a 64-bit integer of seconds."""
    values = table.frame[column].to_numpy(dtype=np.float64)
    bad = ~(np.abs(values) < 2.0**63)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise _fail(
            table,
            row,
            column,
            f"timestamp {values[row]:g} is out of range (expected seconds since 1970, "
            "a 64-bit integer)",
        )


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
        raise _fail(table, row, column, f"expected {expected}, got {shown_value(values.iloc[row])}")
    return values
