"""Train statistics in one streaming pass over train shards.

:func:`compute_stream_stats` reads the train part files of a split
(:func:`tfrs_recsys.data.stream_split.split_declared`), one record batch at a
time, and counts the rows of every user and item id: the vocabularies (ordered
by count, most frequent first, ties by id), the item counts for the logQ
correction, the numbers of rows, users and items. With the declaration, it also
reads the feature tables (whole: one row per user or item) and gives the mean
and variance of every numeric feature column over the train entities, after
the column's transform (``log = true``: ``log(1 + max(x, 0))``), as
:func:`tfrs_recsys.features.preprocessing.fit_side` normalises them.

Memory: one record batch plus the id counts (O(users + items)). The result is a
small dataclass with a JSON round trip (:meth:`StreamStats.save`,
:meth:`StreamStats.load`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tfrs_recsys.atomic import write_json_atomic
from tfrs_recsys.data.declared import DatasetDeclaration, canonical_id, read_declaration
from tfrs_recsys.data.input_files import check_file
from tfrs_recsys.data.schema import ITEM_ID, USER_ID
from tfrs_recsys.data.stream_split import BATCH_ROWS, StreamSplit
from tfrs_recsys.errors import ConfigError, DataValidationError

__all__ = ["NumericStats", "StreamStats", "compute_stream_stats", "train_files"]

FORMAT = 1
# Partial counts kept before they are summed again.
_MERGE_ROWS = 2_000_000


@dataclasses.dataclass(frozen=True)
class NumericStats:
    """Mean and (population) variance of one numeric feature over the train entities.

    Attributes:
        mean, variance: After the column's transform, computed in float64.
        count: Train entities the statistics cover.
        transform: ``log1p`` or ``none``.
    """

    mean: float
    variance: float
    count: int
    transform: str = "none"


@dataclasses.dataclass(frozen=True, eq=False)
class StreamStats:
    """Counts of the train shards.

    Attributes:
        n_rows: Train rows (positives).
        user_ids, user_counts: Every user id with a train row and its rows,
            most frequent first (ties: ids in ascending order).
        item_ids, item_counts: The same for items.
        numeric: Side -> numeric feature column -> :class:`NumericStats`.
        files: The train files counted.
    """

    n_rows: int
    user_ids: tuple[str, ...]
    user_counts: np.ndarray
    item_ids: tuple[str, ...]
    item_counts: np.ndarray
    numeric: Mapping[str, Mapping[str, NumericStats]] = dataclasses.field(default_factory=dict)
    files: tuple[str, ...] = ()

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def ids(self, side: str) -> tuple[str, ...]:
        return self.user_ids if side == "user" else self.item_ids

    def item_frequencies(self) -> np.ndarray:
        """Each vocabulary item's share of the train rows (the logQ sampling probability)."""
        return self.item_counts / max(self.n_rows, 1)

    def counts_for(self, side: str, ids: Sequence[str] | np.ndarray) -> np.ndarray:
        """Train rows of each of ``ids`` (0 for ids without one), in the given order.

        With the item table's ids this is :attr:`Preprocessing.item_counts`.
        """
        index = pd.Index(np.asarray(self.ids(side), dtype=object))
        counts = self.user_counts if side == "user" else self.item_counts
        rows = index.get_indexer(np.asarray(ids, dtype=object))
        return np.where(rows >= 0, counts[rows], 0).astype(np.float64)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "n_rows": self.n_rows,
            "n_users": self.n_users,
            "n_items": self.n_items,
            "files": list(self.files),
            "numeric": {
                side: {name: dataclasses.asdict(s) for name, s in columns.items()}
                for side, columns in self.numeric.items()
            },
            "user_ids": list(self.user_ids),
            "user_counts": self.user_counts.tolist(),
            "item_ids": list(self.item_ids),
            "item_counts": self.item_counts.tolist(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StreamStats:
        if data.get("format") != FORMAT:
            raise ConfigError(
                f"stream statistics of format {data.get('format')!r}, expected {FORMAT}"
            )
        return cls(
            n_rows=int(data["n_rows"]),
            user_ids=tuple(data["user_ids"]),
            user_counts=np.asarray(data["user_counts"], dtype=np.int64),
            item_ids=tuple(data["item_ids"]),
            item_counts=np.asarray(data["item_counts"], dtype=np.int64),
            numeric={
                side: {name: NumericStats(**s) for name, s in columns.items()}
                for side, columns in data.get("numeric", {}).items()
            },
            files=tuple(data.get("files", ())),
        )

    def save(self, path: str | Path) -> Path:
        """Writes the statistics as JSON (atomically)."""
        return write_json_atomic(Path(path), self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> StreamStats:
        path = Path(path)
        check_file(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise DataValidationError(
                f"not stream statistics (invalid JSON: {exc})", file=path
            ) from None
        return cls.from_json(data)


def train_files(train: StreamSplit | str | Path | Sequence[str | Path]) -> list[Path]:
    """The train part files of a split (its directory or :class:`StreamSplit`), or the files given."""
    from tfrs_recsys.data.stream_split import read_split

    if isinstance(train, StreamSplit):
        return train.train_files
    if isinstance(train, (str, Path)):
        return read_split(train).train_files
    return [Path(f) for f in train]


class _Counter:
    """Sums id counts given batch by batch (amortised O(rows) with O(distinct ids) memory)."""

    def __init__(self) -> None:
        self.parts: list[pd.Series] = []
        self.pending = 0
        self.merged = 0

    def add(self, ids: pd.Series) -> None:
        counts = ids.value_counts(sort=False)
        self.parts.append(counts)
        self.pending += len(counts)
        if self.pending > max(_MERGE_ROWS, 2 * self.merged):
            self._merge()

    def _merge(self) -> None:
        if len(self.parts) > 1:
            self.parts = [pd.concat(self.parts).groupby(level=0, sort=False).sum()]
        self.merged = self.pending = len(self.parts[0]) if self.parts else 0

    def result(self) -> tuple[tuple[str, ...], np.ndarray]:
        """Ids by count (descending) then id (ascending), and their counts."""
        self._merge()
        if not self.parts:
            return (), np.zeros(0, dtype=np.int64)
        counts = self.parts[0]
        ids = counts.index.to_numpy(dtype=object).astype(str)
        values = counts.to_numpy(dtype=np.int64)
        order = np.lexsort((ids, -values))
        return tuple(ids[order].tolist()), values[order]


def compute_stream_stats(
    train: StreamSplit | str | Path | Sequence[str | Path],
    declaration: DatasetDeclaration | str | Path | None = None,
    *,
    batch_rows: int = BATCH_ROWS,
) -> StreamStats:
    """Counts the train shards in one pass (see the module docstring).

    Args:
        train: A split (object or directory) whose train files are read, or
            the Parquet files with ``user_id`` and ``item_id`` columns.
        declaration: The dataset's declaration: with it, the numeric columns of
            its feature tables get their statistics over the train entities.
        batch_rows: Rows read at a time.

    Raises:
        DataValidationError: A file is not readable Parquet, lacks ``user_id``
            or ``item_id``, or no file has a row.
    """
    import pyarrow.parquet as pq

    files = train_files(train)
    if not files:
        raise DataValidationError("no train files to count (the split's train side is empty)")
    users, items = _Counter(), _Counter()
    n_rows = 0
    for file in files:
        check_file(file)
        try:
            with pq.ParquetFile(file) as parquet:
                missing = [c for c in (USER_ID, ITEM_ID) if c not in parquet.schema_arrow.names]
                if missing:
                    raise DataValidationError(
                        f"no column {missing[0]!r} (expected a train shard with columns "
                        f"'user_id', 'item_id'); the file has {', '.join(parquet.schema_arrow.names)}",
                        file=file,
                    )
                for batch in parquet.iter_batches(
                    batch_size=batch_rows, columns=[USER_ID, ITEM_ID]
                ):
                    frame = batch.to_pandas()
                    users.add(frame[USER_ID])
                    items.add(frame[ITEM_ID])
                    n_rows += len(frame)
        except DataValidationError:
            raise
        except Exception as exc:  # pyarrow raises several unrelated types
            raise DataValidationError(
                f"cannot read the Parquet file: {' '.join(str(exc).split())}", file=file
            ) from exc
    if n_rows == 0:
        raise DataValidationError(
            f"the train files have no rows ({len(files)} file(s), first {files[0]})"
        )
    user_ids, user_counts = users.result()
    item_ids, item_counts = items.result()
    numeric: dict[str, dict[str, NumericStats]] = {}
    if declaration is not None:
        if not isinstance(declaration, DatasetDeclaration):
            declaration = read_declaration(declaration)
        numeric = _numeric_stats(declaration, {"user": user_ids, "item": item_ids})
    return StreamStats(
        n_rows=n_rows,
        user_ids=user_ids,
        user_counts=user_counts,
        item_ids=item_ids,
        item_counts=item_counts,
        numeric=numeric,
        files=tuple(str(f) for f in files),
    )


def _numeric_stats(
    declaration: DatasetDeclaration, train_ids: Mapping[str, Sequence[str]]
) -> dict[str, dict[str, NumericStats]]:
    from tfrs_recsys.data.declared_memory import _read_feature_table

    headers: dict = {}
    found: dict[str, dict[str, NumericStats]] = {}
    for side in ("user", "item"):
        spec = declaration.table(side)  # type: ignore[arg-type]
        numeric = [c for c in spec.columns if c.role == "numeric"] if spec else []
        if spec is None or not numeric:
            continue
        if not headers:
            headers = declaration.check_files()
        frame = _read_feature_table(spec, headers[spec.path])
        ids = pd.Index(frame[canonical_id(side)].to_numpy(dtype=object))
        rows = ids.get_indexer(np.asarray(train_ids[side], dtype=object))
        rows = np.unique(rows[rows >= 0])
        found[side] = {}
        for column in numeric:
            values = frame[column.name].to_numpy(dtype=np.float32)[rows]
            if column.log:
                values = np.log1p(np.maximum(values, 0.0)).astype(np.float32)
            numbers = values.astype(np.float64)
            found[side][column.name] = NumericStats(
                mean=float(numbers.mean()) if len(numbers) else 0.0,
                variance=float(numbers.var()) if len(numbers) else 0.0,
                count=int(len(numbers)),
                transform="log1p" if column.log else "none",
            )
    return found
