"""The in-memory reader of a declared dataset: every row into a :class:`RecDataset`.

:func:`load_declared` takes a :class:`~tfrs_recsys.data.declared.DatasetDeclaration`
(parsed, its files' headers checked) and reads every row with pandas, under the
canonical column names (``user_id``, ``item_id``, ``timestamp``, ``rating``,
``weight``), checking the values on the way: numbers, 0/1 labels, weights,
timestamps, empty and duplicate ids, ids missing from a feature table. Each
problem is one line naming the file, line and column (in a Parquet file the
"line" is the 1-based row number) and what was expected.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tfrs_recsys.data.dataset import RecDataset
from tfrs_recsys.data.declared import (
    LABEL,
    RATING,
    TIMESTAMP,
    WEIGHT,
    DatasetDeclaration,
    FileColumns,
    FileSet,
    InteractionSpec,
    TableSpec,
    canonical_id,
    read_declaration,
)
from tfrs_recsys.data.input_files import check_file
from tfrs_recsys.data.reader import ID, NUMBER, TEXT, Table, read_columns, shown_value
from tfrs_recsys.data.schema import ITEM_ID, USER_ID
from tfrs_recsys.data.validation import check_binary, check_ids, check_ids_present, check_numeric
from tfrs_recsys.errors import DataValidationError

logger = logging.getLogger(__name__)

_SHOWN_IDS = 5
_EPOCH = pd.Timestamp(0, tz="UTC")


@dataclasses.dataclass(frozen=True)
class DeclaredDataset(RecDataset):
    """A :class:`RecDataset` loaded from a declaration, with what the load dropped.

    Attributes:
        dropped_rows: With ``missing_features = "drop"``: interaction rows
            dropped because their user id (``user``) or, user known, their
            item id (``item``) is not in the feature table.
        repeated_pairs: Positive rows whose (user, item) pair came earlier.
    """

    dropped_rows: Mapping[str, int] | None = None
    repeated_pairs: int = 0

    def summary(self) -> dict[str, Any]:
        summary = super().summary()
        if self.dropped_rows is not None:
            summary["dropped_rows"] = {
                f"unknown {side}": int(n) for side, n in self.dropped_rows.items()
            }
        summary["repeated_pairs"] = self.repeated_pairs
        return summary


def load_declared(source: str | Path, *, min_rating: float = 4.0) -> DeclaredDataset:
    """Loads a declared dataset into memory.

    Args:
        source: The ``dataset.toml`` file, or a directory that holds one.
        min_rating: With a ``rating`` column and no ``min_rating`` in the
            TOML file: rows with ``rating >= min_rating`` are the positives.

    Returns:
        The dataset: the users of ``[users]`` (all rows, file order) or, without
        it, the user ids of the interactions in order of first appearance; the
        same for items; the positive interactions in shard and file order with
        ``user_id``, ``item_id`` and, when declared, ``timestamp`` (int64
        seconds since 1970), ``rating`` and ``weight`` (float64).

    Raises:
        ConfigError, DatasetNotFoundError: See :func:`read_declaration`.
        DataValidationError: A file or value does not fit its declaration (see
            the module docstring); the message names the file, line and column.
    """
    declaration = read_declaration(source)
    headers = declaration.check_files()
    spec = declaration.interactions
    shards = [_read_interactions(spec, file, headers[file]) for file in spec.source.files]
    rows = pd.concat(shards, ignore_index=True) if len(shards) > 1 else shards[0]
    n_raw = len(rows)

    tables: dict[str, pd.DataFrame | None] = {}
    dropped: dict[str, int] = {}
    for side in ("user", "item"):
        table_spec = declaration.table(side)  # type: ignore[arg-type]
        if table_spec is None:
            tables[side] = None
            continue
        frame = _read_feature_table(table_spec, headers[table_spec.path])
        tables[side] = frame
        known = rows[canonical_id(side)].isin(frame[canonical_id(side)]).to_numpy()
        if not known.all():
            unknown = rows[canonical_id(side)][~known]
            if declaration.missing_features == "error":
                raise _missing_features_error(declaration, table_spec, unknown)
            logger.warning(
                "%s: dropped %d interaction row(s) whose %s id is not in %s (%d distinct: %s)",
                declaration.path,
                int((~known).sum()),
                side,
                table_spec.path,
                unknown.nunique(),
                _shown_ids(unknown),
            )
            rows = rows[known].reset_index(drop=True)
        dropped[side] = int((~known).sum())

    positives = rows[_positive(spec, rows, min_rating)].reset_index(drop=True)
    if positives.empty:
        raise DataValidationError(
            f"no positive interactions: {_why_none(spec, n_raw, len(rows), min_rating)}",
            file=declaration.path,
        )
    positives = positives.drop(columns=[c for c in (LABEL,) if c in positives.columns])
    users = _side_frame("user", tables["user"], rows)
    items = _side_frame("item", tables["item"], rows)
    return DeclaredDataset(
        schema=declaration.schema(),
        users=users,
        items=items,
        interactions=positives,
        n_raw_interactions=n_raw,
        source=str(declaration.path),
        dropped_rows=dropped if declaration.missing_features == "drop" else None,
        repeated_pairs=int(positives.duplicated([USER_ID, ITEM_ID]).sum()),
    )


def _read_table(
    source: FileSet,
    file: Path,
    header: FileColumns,
    kinds: Mapping[str, str],
    renames: Mapping[str, str],
) -> Table:
    """One file's declared columns under their new names (``renames``: file -> new)."""
    if source.format == "csv":
        return read_columns(
            file, source.dialect, columns=dict(renames), kinds=kinds, header=list(header.columns)
        )
    import pyarrow.parquet as pq

    check_file(file)
    try:
        frame = pq.read_table(file, columns=list(renames)).to_pandas()
    except Exception as exc:  # pyarrow raises several unrelated types
        raise DataValidationError(
            f"cannot read the Parquet file: {' '.join(str(exc).split())}", file=file
        ) from exc
    return Table(file, frame, first_line=1).select(dict(renames))


def _read_interactions(spec: InteractionSpec, file: Path, header: FileColumns) -> pd.DataFrame:
    kinds = {USER_ID: ID, ITEM_ID: ID, WEIGHT: NUMBER, RATING: NUMBER, TIMESTAMP: TEXT}
    table = _read_table(spec.source, file, header, kinds, spec.renames())
    frame = table.frame
    for column in (USER_ID, ITEM_ID):
        frame[column] = _id_strings(frame[column])
        check_ids_present(table, column)
    if spec.weight is not None:
        frame[WEIGHT] = check_numeric(table, WEIGHT, minimum=0.0)
    if spec.rating is not None:
        frame[RATING] = check_numeric(table, RATING, minimum=None)
    if spec.timestamp is not None:
        frame[TIMESTAMP] = _timestamps(table, TIMESTAMP)
    if spec.label is not None:
        if pd.api.types.is_bool_dtype(frame[LABEL]):  # a Parquet boolean column
            frame[LABEL] = frame[LABEL].to_numpy(dtype=np.uint8)
        else:
            frame[LABEL] = check_binary(table, [LABEL])[:, 0]
    order = [c for c in (USER_ID, ITEM_ID, TIMESTAMP, RATING, WEIGHT, LABEL) if c in frame]
    return frame[order]


def _read_feature_table(spec: TableSpec, header: FileColumns) -> pd.DataFrame:
    id_name = canonical_id(spec.side)
    kinds = {id_name: ID}
    kinds.update({c.name: NUMBER if c.role == "numeric" else TEXT for c in spec.columns})
    table = _read_table(spec.source, spec.path, header, kinds, spec.renames())
    frame = table.frame
    frame[id_name] = _id_strings(frame[id_name])
    check_ids(table, id_name)
    for column in spec.columns:
        if column.role == "numeric":
            values = check_numeric(table, column.name, minimum=None)
            if column.log and (values < 0).any():
                row = int(np.flatnonzero((values < 0).to_numpy())[0])
                raise DataValidationError(
                    f"expected a number >= 0 (log = true takes log(1 + x)), got "
                    f"{values.iloc[row]:g}",
                    file=table.path,
                    line=table.line(row),
                    column=table.label(column.name),
                )
            frame[column.name] = values
        else:
            frame[column.name] = _text(frame[column.name])
    return frame[[f.name for f in spec.features()]]


def _id_strings(values: pd.Series) -> pd.Series:
    """Ids as strings (Parquet may store numbers); missing ids become ``""``."""
    return values.astype(object).where(values.notna(), "").astype(str)


def _text(values: pd.Series) -> pd.Series:
    """Categorical and text cells as strings; a missing cell is ``""``."""
    return values.astype(object).where(values.notna(), "").astype(str)


def _timestamps(table: Table, column: str) -> pd.Series:
    """Seconds since 1970 (int64) from numbers or ISO-8601 strings; fails at the first bad one."""
    raw = table.frame[column]
    expected = (
        "expected a timestamp (seconds since 1970, or an ISO-8601 date and time such as "
        "'2024-03-01T12:30:00Z')"
    )

    def fail(row: int, shown: str) -> DataValidationError:
        return DataValidationError(
            f"{expected}, got {shown}",
            file=table.path,
            line=table.line(row),
            column=table.label(column),
        )

    if pd.api.types.is_bool_dtype(raw):
        raise fail(0, shown_value(raw.iloc[0]))
    if pd.api.types.is_datetime64_any_dtype(raw):
        times = pd.to_datetime(raw, utc=True)
    else:
        numbers = pd.to_numeric(raw, errors="coerce")
        if pd.api.types.is_numeric_dtype(raw):
            numeric = True  # no string to look at (the blank mask cost seconds on large columns)
        else:
            blank = raw.isna() | (raw.astype(object).astype(str).str.strip() == "")
            numeric = bool((numbers.notna() | blank).all())
        if numeric:
            values = numbers.to_numpy(dtype=np.float64)
            bad = ~(np.abs(values) < 2.0**63)
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                shown = "nothing" if pd.isna(raw.iloc[row]) else shown_value(raw.iloc[row])
                raise fail(row, shown)
            return pd.Series(np.floor(values).astype(np.int64), index=raw.index)
        text = raw.astype(object).where(raw.notna(), "").astype(str).str.strip()
        times = pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce")
    bad = times.isna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        value = raw.iloc[row]
        blank = pd.isna(value) or not str(value).strip()
        raise fail(row, "nothing" if blank else shown_value(value))
    return ((times - _EPOCH) // pd.Timedelta(seconds=1)).astype(np.int64)


def _positive(spec: InteractionSpec, rows: pd.DataFrame, min_rating: float) -> np.ndarray:
    if spec.label is not None:
        return rows[LABEL].to_numpy() == 1
    if spec.rating is not None:
        threshold = spec.min_rating if spec.min_rating is not None else min_rating
        return rows[RATING].to_numpy() >= threshold
    return np.ones(len(rows), dtype=bool)


def _why_none(spec: InteractionSpec, n_raw: int, n_kept: int, min_rating: float) -> str:
    if n_kept == 0:
        return f'all {n_raw} row(s) were dropped by missing_features = "drop"'
    if spec.label is not None:
        return f"no row of {n_kept} has {spec.label} = 1"
    threshold = spec.min_rating if spec.min_rating is not None else min_rating
    return f"no row of {n_kept} has {spec.rating} >= {threshold:g} (min_rating)"


def _shown_ids(ids: pd.Series) -> str:
    distinct = pd.unique(ids.to_numpy(dtype=object))
    shown = ", ".join(shown_value(v) for v in distinct[:_SHOWN_IDS])
    return shown + (", ..." if len(distinct) > _SHOWN_IDS else "")


def _missing_features_error(
    declaration: DatasetDeclaration, spec: TableSpec, unknown: pd.Series
) -> DataValidationError:
    key = "user_id" if spec.side == "user" else "item_id"
    column = getattr(declaration.interactions, key)
    return DataValidationError(
        f"{unknown.nunique()} distinct {spec.side} id(s) of the interactions (column "
        f"{column!r}, {len(unknown)} row(s)) are not in {spec.path} (id column {spec.id!r}), "
        f"e.g. {_shown_ids(unknown)}; add them to {spec.path} or set "
        f'missing_features = "drop" to drop those interactions',
        file=declaration.path,
    )


def _side_frame(side: str, table: pd.DataFrame | None, rows: pd.DataFrame) -> pd.DataFrame:
    """The feature table, or the ids of the interactions in order of first appearance."""
    if table is not None:
        return table
    column = canonical_id(side)
    return pd.DataFrame({column: pd.unique(rows[column].to_numpy(dtype=object))}, dtype=object)
