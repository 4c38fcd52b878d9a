"""The numpy tables a recommender SavedModel bakes in: :class:`ServingTables`."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tfrs_recsys.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

    from tfrs_recsys.models.serving_parts import ServingParts


@dataclasses.dataclass(frozen=True)
class ServingTables:
    """Everything a recommender SavedModel bakes in, as numpy arrays.

    Attributes:
        user_ids: ``[n_users]`` ids of the known users (row order of the vectors).
        user_vectors: ``[n_users, d]`` their query vectors (or user encodings).
        item_ids: ``[n_items]`` catalog ids.
        item_vectors: ``[n_items, d']`` candidate vectors (or item encodings).
        exclude_splits: ``[n_users + 1]`` CSR row splits of the items to mask.
        exclude_items: ``[nnz]`` item rows to mask, user by user.
        popularity: ``[n_items]`` train positive counts (the fallback ranking).
    """

    user_ids: np.ndarray
    user_vectors: np.ndarray
    item_ids: np.ndarray
    item_vectors: np.ndarray
    exclude_splits: np.ndarray
    exclude_items: np.ndarray
    popularity: np.ndarray

    @classmethod
    def build(
        cls,
        user_ids: Sequence[str],
        user_vectors: np.ndarray,
        item_ids: Sequence[str],
        item_vectors: np.ndarray,
        *,
        exclude_user_rows: np.ndarray | None = None,
        exclude_item_rows: np.ndarray | None = None,
        popularity: np.ndarray | None = None,
    ) -> ServingTables:
        """Tables from vectors and optional ``(user row, item row)`` pairs to mask.

        Args:
            user_ids: ``[n_users]`` user ids.
            user_vectors: ``[n_users, d]``.
            item_ids: ``[n_items]`` item ids.
            item_vectors: ``[n_items, d']``.
            exclude_user_rows: ``[pairs]`` user rows of the pairs to mask
                (duplicates allowed).
            exclude_item_rows: ``[pairs]`` their item rows.
            popularity: ``[n_items]`` fallback scores (default zeros).
        """
        n_items = len(item_ids)
        keys = None
        if exclude_user_rows is not None and len(exclude_user_rows):
            keys = pair_keys(exclude_user_rows, exclude_item_rows, n_items)
        return cls.from_keys(
            user_ids,
            user_vectors,
            item_ids,
            item_vectors,
            exclude_keys=keys,
            popularity=popularity,
        )

    @classmethod
    def from_keys(
        cls,
        user_ids: Sequence[str],
        user_vectors: np.ndarray,
        item_ids: Sequence[str],
        item_vectors: np.ndarray,
        *,
        exclude_keys: np.ndarray | None = None,
        popularity: np.ndarray | None = None,
    ) -> ServingTables:
        """Tables from vectors and the pairs to mask as :func:`pair_keys` (duplicates allowed).

        The mask is built from one ``int64`` key per pair (sorted, deduplicated):
        memory about three times 8 bytes per pair, never ``users x items``.
        """
        n_users, n_items = len(user_ids), len(item_ids)
        if len(user_vectors) != n_users or len(item_vectors) != n_items:
            raise ConfigError(
                f"serving tables: {len(user_vectors)} user vectors for {n_users} user ids, "
                f"{len(item_vectors)} item vectors for {n_items} item ids"
            )
        splits, items = exclusion_csr(exclude_keys, n_users, n_items)
        return cls(
            user_ids=np.asarray([str(u) for u in user_ids], dtype=object),
            user_vectors=np.asarray(user_vectors, np.float32),
            item_ids=np.asarray([str(i) for i in item_ids], dtype=object),
            item_vectors=np.asarray(item_vectors, np.float32),
            exclude_splits=splits,
            exclude_items=items,
            popularity=(
                np.zeros(n_items, np.float32)
                if popularity is None
                else np.asarray(popularity, np.float32)
            ),
        )

    @property
    def max_excluded(self) -> int:
        """The most items masked for one user."""
        return int(np.diff(self.exclude_splits).max(initial=0))


def tables_from_pairs(
    dataset, parts: ServingParts, exclude_pairs: pd.DataFrame | None, popularity_pairs: pd.DataFrame
) -> ServingTables:
    """The tables of ``dataset``'s users and items: the model's vectors, the mask, popularity.

    Args:
        dataset: The served user and item tables (rows of ``parts``' vectors).
        parts: The model's serving parts.
        exclude_pairs: ``user_id, item_id`` pairs masked for known users
            (the train positives), or ``None``.
        popularity_pairs: Pairs whose item counts rank the catalog for
            unknown users (the train positives).
    """
    ex_users = ex_items = None
    if exclude_pairs is not None and len(exclude_pairs):
        ex_users, ex_items = dataset.encode(exclude_pairs)
    _, pop_items = dataset.encode(popularity_pairs)
    popularity = np.bincount(pop_items, minlength=dataset.n_items).astype(np.float32)
    return ServingTables.build(
        dataset.table("user").ids,
        parts.user_vectors,
        dataset.table("item").ids,
        parts.item_vectors,
        exclude_user_rows=ex_users,
        exclude_item_rows=ex_items,
        popularity=popularity,
    )


def pair_keys(user_rows: np.ndarray, item_rows: np.ndarray, n_items: int) -> np.ndarray:
    """One ``int64`` key per ``(user row, item row)`` pair: ``user * n_items + item``."""
    return np.asarray(user_rows, np.int64) * np.int64(n_items) + np.asarray(item_rows, np.int64)


def exclusion_csr(
    keys: np.ndarray | None, n_users: int, n_items: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(splits [n_users + 1], items [nnz])``: the CSR of the distinct pairs of ``keys``.

    Each user's item rows are sorted. ``keys`` as :func:`pair_keys`; ``None`` or
    empty masks nothing.
    """
    if keys is None or len(keys) == 0:
        return np.zeros(n_users + 1, np.int64), np.zeros(0, np.int64)
    keys = np.unique(np.asarray(keys, np.int64))
    users = keys // np.int64(n_items)
    items = keys - users * np.int64(n_items)
    del keys
    counts = np.bincount(users, minlength=n_users)
    if len(counts) > n_users:
        raise ConfigError(f"serving tables: a user row {int(users.max())} past {n_users} users")
    splits = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return splits, items


def _batch_rows(column, table) -> np.ndarray:
    """Table rows of an Arrow string column, its distinct values looked up once per batch."""
    encoded = column.dictionary_encode()
    codes = encoded.indices.to_numpy(zero_copy_only=False)
    rows = table.index_of(
        np.asarray(encoded.dictionary.to_pylist(), dtype=object), where="train parts"
    )
    return rows[codes]


def train_part_counts(
    dataset, files: Sequence[str | Path], *, exclude: bool, batch_rows: int = 65_536
) -> tuple[np.ndarray | None, np.ndarray, int]:
    """One streaming pass over train part files: the mask's pair keys and item counts.

    Args:
        dataset: The served user and item tables (ids to rows).
        files: Parquet part files with ``user_id`` and ``item_id`` (a streamed
            split's train side).
        exclude: Collect the pairs (else only the counts).
        batch_rows: Rows read at a time.

    Returns:
        ``(keys, popularity, rows)``: the :func:`pair_keys` of every row (or
        ``None`` without ``exclude``), ``[n_items]`` positive counts, rows read.
        Memory: 8 bytes a row for the keys, one record batch, never
        ``users x items``.

    Raises:
        DataValidationError: An id is not in its feature table.
    """
    import pyarrow.parquet as pq

    from tfrs_recsys.data.schema import ITEM_ID, USER_ID

    users, items = dataset.table("user"), dataset.table("item")
    n_items = dataset.n_items
    popularity = np.zeros(n_items, np.int64)
    keys: list[np.ndarray] = []
    rows = 0
    for file in files:
        with pq.ParquetFile(file) as parquet:
            for batch in parquet.iter_batches(batch_size=batch_rows, columns=[USER_ID, ITEM_ID]):
                item_rows = _batch_rows(batch.column(ITEM_ID), items)
                popularity += np.bincount(item_rows, minlength=n_items)
                if exclude:
                    user_rows = _batch_rows(batch.column(USER_ID), users)
                    keys.append(pair_keys(user_rows, item_rows, n_items))
                rows += batch.num_rows
    if not exclude:
        return None, popularity, rows
    return (np.concatenate(keys) if keys else np.zeros(0, np.int64)), popularity, rows


def tables_from_parts(
    dataset, parts: ServingParts, files: Sequence[str | Path], *, exclude: bool
) -> tuple[ServingTables, int]:
    """:func:`tables_from_pairs` of a streamed run: the mask and popularity from part files.

    Args:
        dataset: The served user and item tables (rows of ``parts``' vectors).
        parts: The model's serving parts.
        files: The train part files of the run's split (one streaming pass).
        exclude: Mask each user's train positives.

    Returns:
        The tables and the number of train rows read.
    """
    keys, popularity, rows = train_part_counts(dataset, files, exclude=exclude)
    tables = ServingTables.from_keys(
        dataset.table("user").ids,
        parts.user_vectors,
        dataset.table("item").ids,
        parts.item_vectors,
        exclude_keys=keys,
        popularity=popularity.astype(np.float32),
    )
    return tables, rows
