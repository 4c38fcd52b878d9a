"""The one reader of input files: every format's files become tables that remember their lines.

Tech-products CSV files, long interaction shards, MovieLens ML-100K / ML-1M /
ml-latest and RecBole atomic files are all read here:

- :class:`Dialect` (from :mod:`~tfrs_recsys.data.input_files`, which opens
  and decodes every file): how a format writes its files;
- :class:`Table`: a parsed file with the file line of every row and the
  columns' names in the file, so that the checks of
  :mod:`tfrs_recsys.data.validation` can name file, line and column;
- :func:`read_columns`: any file, through pandas' C parser; if the parser
  fails or finds a hole, a line-by-line pass names the first bad line;
- :func:`read_records`: small files line by line (exact field counts; ``::``
  fields may themselves hold a ``:``); :func:`read_header`, :func:`read_parquet`.

Structural problems (an empty file, a missing or repeated column, a blank line
between data rows, a wrong field count, undecodable bytes) fail here, values are checked
by :mod:`~tfrs_recsys.data.validation`. Lines are 1-based (a header is line 1);
blank lines at the very end of a file are ignored.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from tfrs_recsys.data.input_files import Dialect, check_file, first_nul, iter_records, reading
from tfrs_recsys.errors import DataValidationError

#: Column kinds of :func:`read_columns`. ``ID``: a string that must not be
#: empty; ``NUMBER``: float64, must be finite; ``TEXT``: a string, may be
#: empty. Columns without a kind get the type pandas infers.
ID, NUMBER, TEXT = "id", "number", "text"

_EMPTY_FILE = "the file is empty (expected a header and data rows)"
_SHOWN_CELLS = 12


@dataclasses.dataclass
class Table:
    """A parsed file: the frame plus what is needed to name lines and columns.

    Attributes:
        path: The file.
        frame: One row per data record, in file order.
        first_line: File line (1-based) of data record 0.
        lines: File line of each data record when they are not consecutive
            (records spanning lines); None: record ``r`` is on line
            ``first_line + r`` (for quoted files the true lines are found when
            a message needs one).
        labels: Frame column -> column name to show in messages.
        dialect: How the file was read.
        records: Data record of each frame row after :meth:`take`; None: row
            ``r`` is record ``r``.
    """

    path: Path
    frame: pd.DataFrame
    first_line: int
    lines: np.ndarray | None = None
    labels: dict[str, str] = dataclasses.field(default_factory=dict)
    dialect: Dialect | None = None
    records: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.frame)

    def line(self, row: int) -> int:
        """The file line (1-based) where frame row ``row`` starts."""
        record = int(self.records[row]) if self.records is not None else int(row)
        if self.lines is None and self.dialect is not None and self.dialect.quoted:
            self.lines = _record_lines(self.path, self.dialect)
        if self.lines is not None and record < len(self.lines):
            return int(self.lines[record])
        return self.first_line + record

    def label(self, column: str) -> str:
        """The name of ``column`` in the file (a header cell), for messages."""
        return self.labels.get(column, column)

    def take(self, keep: np.ndarray) -> Table:
        """The rows where the boolean ``keep`` is true (index reset), lines kept."""
        keep = np.asarray(keep, dtype=bool)
        records = self.records if self.records is not None else np.arange(len(self.frame))
        return dataclasses.replace(
            self, frame=self.frame[keep].reset_index(drop=True), records=records[keep]
        )

    def select(self, columns: Mapping[str, str]) -> Table:
        """Only ``columns`` (frame column -> new name), renamed; labels follow."""
        labels = {new: self.label(old) for old, new in columns.items()}
        frame = self.frame[list(columns)].rename(columns=dict(columns))
        return dataclasses.replace(self, frame=frame, labels=labels)


def _record_lines(path: Path, dialect: Dialect) -> np.ndarray:
    """The first line of every data record of a quoted file (none if it cannot be read)."""
    try:
        starts = [start for start, _ in iter_records(path, dialect, strict=False)]
    except (DataValidationError, OSError, csv.Error):
        return np.zeros(0, dtype=np.int64)
    return np.asarray(starts[dialect.header_lines :], dtype=np.int64)


def read_header(path: Path, dialect: Dialect) -> list[str]:
    """The header cells (line 1) of a file; fails on an empty file or blank line 1."""
    for _, fields in iter_records(path, dialect):
        if not fields or all(not f.strip() for f in fields):
            raise DataValidationError("line 1 is blank (expected a header)", file=path, line=1)
        return [f.strip() for f in fields] if dialect.strip_header else list(fields)
    raise DataValidationError(_EMPTY_FILE, file=path)


def _require_columns(cells: Sequence[str], required: Sequence[str], path: Path) -> None:
    """Each of ``required`` is a header cell, exactly once."""
    missing = [c for c in required if c not in cells]
    if missing:
        shown = ", ".join(shown_value(c) for c in cells[:_SHOWN_CELLS])
        more = f" and {len(cells) - _SHOWN_CELLS} more" if len(cells) > _SHOWN_CELLS else ""
        raise DataValidationError(
            f"missing column(s) {', '.join(repr(c) for c in missing)}; the header has "
            f"{shown}{more}",
            file=path,
            line=1,
        )
    for column in required:
        positions = [p + 1 for p, cell in enumerate(cells) if cell == column]
        if len(positions) > 1:
            raise DataValidationError(
                f"the header names column {column!r} more than once (fields "
                f"{', '.join(map(str, positions))}); rename or remove the extra one(s)",
                file=path,
                line=1,
                column=column,
            )


def shown_value(value: object, limit: int = 60) -> str:
    """A cell value as a user reads it (``2``, ``'x'``), not a numpy repr; long text cut."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit]!r}... ({len(value)} characters)"
    return repr(value)


def _no_rows(dialect: Dialect) -> str:
    return "the file has a header but no data rows" if dialect.header else "the file is empty"


def read_records(
    path: Path,
    dialect: Dialect,
    *,
    names: Sequence[str] | None = None,
    required: Sequence[str] = (),
) -> Table:
    """Reads a small file line by line with exact checks of the field counts.

    Args:
        path: The file.
        dialect: Separator (may be several characters, e.g. ``::``), encoding,
            quoting (``sep`` must then be one character) and header.
        names: Column names; for files with a header, the default is the
            header (and names, if given, must have the header's length).
        required: Header columns that must be present.

    Returns:
        A table of string columns (empty fields are ``""``, never missing).
    """
    path = Path(path)
    records = iter_records(path, dialect, names=names)
    header_cells: list[str] | None = None
    if dialect.header:
        first = next(records, None)
        if first is None:
            raise DataValidationError(_EMPTY_FILE, file=path)
        if not first[1]:
            raise DataValidationError("line 1 is blank (expected a header)", file=path, line=1)
        header_cells = [c.strip() for c in first[1]] if dialect.strip_header else first[1]
        _require_columns(header_cells, required, path)
    columns = list(names) if names is not None else list(header_cells or [])
    n_fields = len(columns) if columns else None
    rows: list[list[str]] = []
    lines: list[int] = []
    blank_line: int | None = None
    for number, fields in records:
        if not fields:
            blank_line = blank_line or number
            continue
        if blank_line is not None:
            raise DataValidationError(
                f"blank line (expected {n_fields or 'the same number of'} fields)",
                file=path,
                line=blank_line,
            )
        if n_fields is None:
            n_fields = len(fields)
            columns = list(range(n_fields))  # type: ignore[arg-type]
        if len(fields) != n_fields:
            raise DataValidationError(
                dialect.field_count_problem(n_fields, len(fields)), file=path, line=number
            )
        rows.append(fields)
        lines.append(number)
    if not rows:
        raise DataValidationError(_no_rows(dialect), file=path)
    frame = pd.DataFrame(rows, columns=columns, dtype=str)
    line_numbers = np.asarray(lines, dtype=np.int64)
    first_line = dialect.header_lines + 1
    contiguous = bool(np.array_equal(line_numbers, np.arange(first_line, first_line + len(rows))))
    lines_kept = None if contiguous and not dialect.quoted else line_numbers
    return Table(path, frame, first_line, lines_kept, dialect=dialect)


def read_columns(
    path: Path,
    dialect: Dialect,
    *,
    columns: Sequence[str] | Mapping[str, str] | None = None,
    kinds: Mapping[str, str] | None = None,
    header: Sequence[str] | None = None,
    required: Sequence[str] = (),
) -> Table:
    """Reads a delimited file with pandas' C parser, typed by column kind.

    A file that does not parse, or that has a hole where a value must be (a
    short line leaves its last fields empty; an empty ``ID``; a ``NUMBER``
    that is not a finite number), is scanned line by line and the first bad
    line is reported (field count, blank line, empty id, not a number).

    Args:
        path: The file (``.gz`` is decompressed).
        dialect: How the file is written; ``::`` (without quoting) is read as
            ``:`` with empty gap columns.
        columns: Headerless files: the column names in file order. Files
            with a header: header cell -> name of the columns to keep
            (default: every column, under its header cell).
        kinds: Column name (after renaming) -> :data:`ID`, :data:`NUMBER` or
            :data:`TEXT`; other kept columns get the type pandas infers, and
            columns that are not kept are read as text.
        header: The header cells, if already read (and normalised) by the
            caller; by default :func:`read_header`.
        required: Header cells that must be present (with a mapping
            ``columns``, its keys always are).

    Returns:
        A table of the kept columns under their names, labelled with their
        header cells.
    """
    path = Path(path)
    kinds = dict(kinds or {})
    if dialect.header:
        cells = list(header) if header is not None else read_header(path, dialect)
        if isinstance(columns, Mapping):
            _require_columns(cells, [*required, *(c for c in columns if c not in required)], path)
            rename = {cells.index(source): target for source, target in columns.items()}
        else:  # every column, under its header cell (even a repeated one)
            _require_columns(cells, required, path)
            rename = dict(enumerate(cells))
        labels = {target: cells[position] for position, target in rename.items()}
    else:
        if columns is None or isinstance(columns, Mapping):
            raise TypeError("a file without a header needs the sequence of its column names")
        cells = list(columns)
        rename = dict(enumerate(cells))
        labels = {}
    field_kinds = tuple(kinds.get(rename[p]) if p in rename else TEXT for p in range(len(cells)))
    spec = _Spec(path, dialect, field_kinds, tuple(cells))
    step = 2 if dialect.sep == "::" else 1  # "::" is read as ":" with empty gap columns
    check_file(path)
    try:
        with reading(path), warnings.catch_warnings():
            # Mixed types in a column come from bad cells, which the checks report by line.
            warnings.simplefilter("ignore", pd.errors.DtypeWarning)
            frame = pd.read_csv(
                path,
                sep=":" if step == 2 else dialect.sep,
                header=None,
                skiprows=dialect.header_lines,
                dtype=_dtypes(field_kinds, step),
                quoting=csv.QUOTE_MINIMAL if dialect.quoted else csv.QUOTE_NONE,
                skip_blank_lines=False,
                encoding=dialect.encoding,
                engine="c",
                **(
                    {"keep_default_na": True}
                    if dialect.na_values is None
                    else {"keep_default_na": False, "na_values": list(dialect.na_values)}
                ),
            )
    except DataValidationError:  # an OS error while reading, already named
        raise
    except pd.errors.EmptyDataError:  # nothing, or a blank line, after the header
        _diagnose(spec)
        raise DataValidationError(_no_rows(dialect), file=path) from None
    except (ValueError, pd.errors.ParserError) as exc:  # UnicodeDecodeError is a ValueError
        _diagnose(spec)
        raise DataValidationError(f"cannot parse the file: {_one_line(exc)}", file=path) from exc
    if first_nul(path) is not None:  # pandas keeps NUL bytes inside values
        _diagnose(spec)

    # Blank lines at the very end are tolerated.
    filled = frame.notna().any(axis=1).to_numpy()
    if filled.size and not filled[-1]:
        frame = frame.iloc[: int(np.flatnonzero(filled)[-1]) + 1 if filled.any() else 0]
    if frame.empty:
        raise DataValidationError(_no_rows(dialect), file=path)
    n_positions = len(cells) * step - (step - 1)
    if frame.shape[1] != n_positions:
        _diagnose(spec)
        raise DataValidationError(
            f"expected {len(cells)} fields per line, the parser found {frame.shape[1]} column(s)",
            file=path,
        )
    if _has_holes(frame, field_kinds, step):
        _diagnose(spec)  # raises at the first bad line, if there is one

    kept = {position * step: target for position, target in rename.items()}
    frame = frame[list(kept)].rename(columns=kept).reset_index(drop=True)
    return Table(path, frame, dialect.header_lines + 1, labels=labels, dialect=dialect)


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


def _dtypes(kinds: Sequence[str | None], step: int) -> dict[int, object]:
    """pandas dtypes by position; with ``step`` 2 the odd positions are ``::`` gaps."""
    dtypes: dict[int, object] = {}
    for position in range(len(kinds) * step - (step - 1)):
        if position % step:
            dtypes[position] = np.float64  # the empty column between the two colons
        elif kinds[position // step] == NUMBER:
            dtypes[position] = np.float64
        elif kinds[position // step] in (ID, TEXT):
            dtypes[position] = str
    return dtypes


def _has_holes(frame: pd.DataFrame, kinds: Sequence[str | None], step: int) -> bool:
    """Whether a value is missing where the fast read cannot tell why (see read_columns)."""
    if frame[frame.columns[-1]].isna().any():  # a short line leaves its last field(s) empty
        return True
    for position in frame.columns:
        column = frame[position]
        kind = kinds[position // step]
        if position % step:
            if column.notna().any():
                return True
        elif kind == NUMBER and not np.isfinite(column.to_numpy(dtype=np.float64)).all():
            return True
        elif kind == ID and column.isna().any():
            return True
    return False


@dataclasses.dataclass(frozen=True)
class _Spec:
    path: Path
    dialect: Dialect
    kinds: tuple[str | None, ...]  # per field
    columns: tuple[str, ...]  # per field: the name to show in messages


def _diagnose(spec: _Spec) -> None:
    """Scans a file line by line and raises at the first bad record, if any.

    Checks what the fast reader assumes: the field count, non-blank ids and
    finite numbers. Blank lines are errors unless only blank lines follow.
    """
    n_fields = len(spec.kinds)
    blank_line: int | None = None
    for number, fields in iter_records(spec.path, spec.dialect, names=spec.columns):
        if number <= spec.dialect.header_lines:
            continue
        if not fields:
            blank_line = blank_line or number
            continue
        if blank_line is not None:
            raise DataValidationError(
                f"blank line (expected {n_fields} fields)", file=spec.path, line=blank_line
            )
        if len(fields) != n_fields:
            raise DataValidationError(
                spec.dialect.field_count_problem(n_fields, len(fields)),
                file=spec.path,
                line=number,
            )
        for position, (kind, value) in enumerate(zip(spec.kinds, fields, strict=True)):
            column = spec.columns[position]
            if kind == ID and not value.strip():
                raise DataValidationError("empty id", file=spec.path, line=number, column=column)
            if kind == NUMBER:
                try:
                    ok = math.isfinite(float(value))
                except ValueError:
                    ok = False
                if not ok:
                    shown = shown_value(value) if value.strip() else "nothing"
                    raise DataValidationError(
                        f"expected a number, got {shown}",
                        file=spec.path,
                        line=number,
                        column=column,
                    )


def read_parquet(path: Path, *, required: Sequence[str] = ()) -> Table:
    """Reads a Parquet file; a message's "line" is the 1-based row number."""
    path = Path(path)
    check_file(path)
    try:
        with reading(path):
            frame = pd.read_parquet(path)
    except DataValidationError:
        raise
    except Exception as exc:  # pyarrow raises several unrelated types
        raise DataValidationError(
            f"cannot read the Parquet file: {_one_line(exc)}", file=path
        ) from exc
    if frame.empty:
        raise DataValidationError("the file has no rows", file=path)
    _require_columns([str(c) for c in frame.columns], required, path)
    return Table(path, frame, first_line=1)
