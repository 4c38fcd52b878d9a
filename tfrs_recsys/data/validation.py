"""Checks on input tables that fail with the file, line and column at fault.

Line numbers are 1-based file lines with the header on line 1, so data row
``r`` (0-based, in file order) is line ``r + 2``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from tfrs_recsys.errors import DataValidationError, DatasetNotFoundError


def line_of(row: int, header_lines: int = 1) -> int:
    """File line (1-based) of the 0-based data row ``row``."""
    return int(row) + 1 + header_lines


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


def read_csv(path: Path, **kwargs) -> pd.DataFrame:
    """``pandas.read_csv`` that fails with a DataValidationError naming the file.

    Empty files, header-only files, unparsable files and blank lines between
    data rows are errors (blank lines are kept while reading, so that line
    numbers in later errors stay true); trailing blank lines are ignored.
    """
    kwargs.setdefault("skip_blank_lines", False)
    try:
        frame = pd.read_csv(path, **kwargs)
    except pd.errors.EmptyDataError as exc:
        raise DataValidationError("the file is empty (expected a header and data rows)", file=path) from exc
    except pd.errors.ParserError as exc:
        raise DataValidationError(f"cannot parse the file: {exc}", file=path) from exc
    except UnicodeDecodeError as exc:
        raise DataValidationError(f"not valid {kwargs.get('encoding', 'utf-8')} text: {exc}", file=path) from exc
    except ValueError as exc:  # e.g. a dtype that does not fit a column
        raise DataValidationError(f"cannot read the file: {exc}", file=path) from exc
    blank = frame.isna().all(axis=1).to_numpy() if len(frame.columns) > 1 else np.zeros(len(frame), bool)
    if blank.any():
        # Trailing blank lines are harmless; drop them.
        last = len(blank) - int(np.argmax(~blank[::-1])) if (~blank).any() else 0
        if blank[:last].any():
            row = int(np.flatnonzero(blank[:last])[0])
            raise DataValidationError("blank line between data rows", file=path, line=line_of(row))
        frame = frame.iloc[:last]
    if frame.empty:
        raise DataValidationError("the file has a header but no data rows", file=path)
    return frame


def require_columns(frame: pd.DataFrame, columns: Sequence[str], *, file: Path | str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataValidationError(
            f"missing column(s) {', '.join(repr(c) for c in missing)}; the header has "
            f"{', '.join(repr(str(c)) for c in frame.columns)}",
            file=file,
            line=1,
        )


def check_unique(frame: pd.DataFrame, column: str, *, file: Path | str) -> None:
    duplicated = frame[column].duplicated()
    if duplicated.any():
        row = int(np.flatnonzero(duplicated.to_numpy())[0])
        value = frame[column].iloc[row]
        first = int(np.flatnonzero((frame[column] == value).to_numpy())[0])
        raise DataValidationError(
            f"duplicate id {value!r} (first seen on line {line_of(first)}); ids must be unique",
            file=file,
            line=line_of(row),
            column=column,
        )


def check_ids_present(frame: pd.DataFrame, column: str, *, file: Path | str) -> None:
    values = frame[column]
    bad = values.isna() | (values.astype(str).str.strip() == "")
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataValidationError("empty id", file=file, line=line_of(row), column=column)


def check_numeric(
    frame: pd.DataFrame,
    column: str,
    *,
    file: Path | str,
    minimum: float | None = 0.0,
    header_lines: int = 1,
) -> pd.Series:
    """Returns the column as float64; fails on non-numbers, NaN or values < minimum."""
    raw = frame[column]
    values = pd.to_numeric(raw, errors="coerce")
    bad = values.isna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        shown = raw.iloc[row]
        raise DataValidationError(
            f"expected a number, got {'nothing' if pd.isna(shown) else shown_value(shown)}",
            file=file,
            line=line_of(row, header_lines),
            column=column,
        )
    infinite = ~np.isfinite(values.to_numpy(dtype=np.float64))
    if infinite.any():
        row = int(np.flatnonzero(infinite)[0])
        raise DataValidationError(
            f"expected a finite number, got {shown_value(raw.iloc[row])}",
            file=file,
            line=line_of(row, header_lines),
            column=column,
        )
    if minimum is not None:
        low = (values < minimum).to_numpy()
        if low.any():
            row = int(np.flatnonzero(low)[0])
            raise DataValidationError(
                f"expected a number >= {minimum:g}, got {values.iloc[row]:g}",
                file=file,
                line=line_of(row, header_lines),
                column=column,
            )
    return values.astype(np.float64)


def check_text(frame: pd.DataFrame, column: str, *, file: Path | str, header_lines: int = 1) -> None:
    """Fails on missing or blank text."""
    values = frame[column]
    bad = (values.isna() | (values.astype(str).str.strip() == "")).to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataValidationError(
            "empty text (expected a non-blank string)",
            file=file,
            line=line_of(row, header_lines),
            column=column,
        )
