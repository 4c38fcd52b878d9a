"""Long-format interaction files: one ``(user_id, item_id)`` pair a row.

Large datasets keep their interactions as a file or a directory of shards
(``part-00000.parquet``, ``part-00001.parquet``... or ``.csv``), never as a wide
matrix. Columns: ``user_id``, ``item_id`` and optionally ``label`` (0/1; only
rows with 1 are positives), ``rating`` and ``timestamp``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from tfrs_recsys.data.input_files import check_file
from tfrs_recsys.data.reader import ID, Dialect, Table, read_columns, read_parquet
from tfrs_recsys.data.schema import ITEM_ID, USER_ID
from tfrs_recsys.data.validation import check_binary, check_ids_present
from tfrs_recsys.errors import ConfigError, DatasetNotFoundError

SHARD_FORMATS: tuple[str, ...] = ("parquet", "csv")
_SUFFIXES = (".parquet", ".csv", ".csv.gz")
#: CSV shards as pandas writes them; pandas' usual missing-value markers apply.
SHARD_DIALECT = Dialect(sep=",", quoted=True, strip_header=False, na_values=None)


def shard_files(path: Path) -> list[Path]:
    """The interaction files at ``path``: the file itself or a directory's shards."""
    path = Path(path)
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.name.endswith(_SUFFIXES))
        if not files:
            raise DatasetNotFoundError(
                f"{path}: no interaction files (expected *.parquet, *.csv or *.csv.gz)"
            )
        for file in files:  # a shard that is a directory (or a link loop) is not skipped silently
            check_file(file)
        return files
    raise DatasetNotFoundError(f"{path}: no such interaction file or directory")


def write_shards(
    directory: Path, frames: Iterable[pd.DataFrame], *, fmt: str = "parquet"
) -> list[Path]:
    """Writes each frame as one shard ``part-NNNNN.<fmt>`` under ``directory``.

    The shards are written in place: call it inside
    :func:`tfrs_recsys.atomic.atomic_directory` for an atomic result.
    """
    if fmt not in SHARD_FORMATS:
        raise ConfigError(f"shard format must be one of {', '.join(SHARD_FORMATS)}, got {fmt!r}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for n, frame in enumerate(frames):
        path = directory / f"part-{n:05d}.{fmt}"
        if fmt == "parquet":
            frame.to_parquet(path, index=False)
        else:
            frame.to_csv(path, index=False)
        written.append(path)
    return written


def read_interactions(path: Path) -> pd.DataFrame:
    """Reads long-format interactions (a file or a directory of shards).

    Returns:
        The positive pairs in file order, with ``user_id`` and ``item_id`` as
        strings and any ``rating`` / ``timestamp`` columns; a ``label`` column is
        validated (0 or 1) and used to drop the zeros.

    Raises:
        DatasetNotFoundError: No such file or no shard in the directory.
        DataValidationError: A required column is missing, an id is empty or a
            label is not 0/1 (naming the shard, line and column).
    """
    return concat_interactions(read_interaction_tables(path))


def read_interaction_tables(path: Path) -> list[Table]:
    """Like :func:`read_interactions`, one table per shard, which remember their lines."""
    return [_read_one(file) for file in shard_files(path)]


def concat_interactions(tables: list[Table]) -> pd.DataFrame:
    """The shards' rows, one frame in shard order."""
    frames = [table.frame for table in tables]
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def _read_one(file: Path) -> Table:
    if file.name.endswith(".parquet"):
        table = read_parquet(file, required=[USER_ID, ITEM_ID])
    else:
        table = read_columns(
            file, SHARD_DIALECT, kinds={USER_ID: ID, ITEM_ID: ID}, required=[USER_ID, ITEM_ID]
        )
    frame = table.frame
    for column in (USER_ID, ITEM_ID):
        frame[column] = frame[column].astype(str).where(frame[column].notna(), "")
        check_ids_present(table, column)
    if "label" in frame.columns:
        positive = check_binary(table, ["label"])[:, 0] == 1
        table = table.take(positive)
        table.frame = table.frame.drop(columns="label")
    return table
