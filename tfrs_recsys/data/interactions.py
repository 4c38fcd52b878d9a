"""Long-format interaction files: one ``(user_id, item_id)`` pair a row.

Large datasets keep their interactions as a file or a directory of shards
(``part-00000.parquet``, ``part-00001.parquet``... or ``.csv``), never as a wide
matrix. Columns: ``user_id``, ``item_id`` and optionally ``label`` (0/1; only
rows with 1 are positives), ``rating`` and ``timestamp``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from tfrs_recsys.data.schema import ITEM_ID, USER_ID
from tfrs_recsys.data.validation import check_ids_present, line_of, read_csv, require_columns
from tfrs_recsys.errors import ConfigError, DataValidationError, DatasetNotFoundError

SHARD_FORMATS: tuple[str, ...] = ("parquet", "csv")
_SUFFIXES = (".parquet", ".csv", ".csv.gz")


def shard_files(path: Path) -> list[Path]:
    """The interaction files at ``path``: the file itself or a directory's shards."""
    path = Path(path)
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.name.endswith(_SUFFIXES))
        if not files:
            raise DatasetNotFoundError(
                f"{path}: no interaction files (expected *.parquet, *.csv or *.csv.gz)"
            )
        return files
    raise DatasetNotFoundError(f"{path}: no such interaction file or directory")


def write_shards(
    directory: Path, frames: Iterable[pd.DataFrame], *, fmt: str = "parquet"
) -> list[Path]:
    """Writes each frame as one shard ``part-NNNNN.<fmt>`` under ``directory``."""
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
    frames = [_read_one(file) for file in shard_files(path)]
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def _read_one(file: Path) -> pd.DataFrame:
    if file.name.endswith(".parquet"):
        try:
            frame = pd.read_parquet(file)
        except Exception as exc:  # pyarrow raises several unrelated types
            raise DataValidationError(f"cannot read the Parquet file: {exc}", file=file) from exc
        if frame.empty:
            raise DataValidationError("the file has no rows", file=file)
        header_lines = 0  # Parquet rows: "line" means 1-based row number
    else:
        frame = read_csv(file, dtype={USER_ID: str, ITEM_ID: str})
        header_lines = 1
    require_columns(frame, [USER_ID, ITEM_ID], file=file)
    for column in (USER_ID, ITEM_ID):
        frame[column] = frame[column].astype(str).where(frame[column].notna(), "")
        check_ids_present(frame, column, file=file)
    if "label" in frame.columns:
        labels = pd.to_numeric(frame["label"], errors="coerce")
        bad = ~labels.isin([0, 1]).to_numpy()
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataValidationError(
                f"expected 0 or 1, got {frame['label'].iloc[row]!r}",
                file=file,
                line=line_of(row, header_lines) if header_lines else row + 1,
                column="label",
            )
        frame = frame[labels.to_numpy() == 1].drop(columns="label").reset_index(drop=True)
    return frame
