"""The numpy tables a recommender SavedModel bakes in: :class:`ServingTables`."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
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
        n_users, n_items = len(user_ids), len(item_ids)
        if len(user_vectors) != n_users or len(item_vectors) != n_items:
            raise ConfigError(
                f"serving tables: {len(user_vectors)} user vectors for {n_users} user ids, "
                f"{len(item_vectors)} item vectors for {n_items} item ids"
            )
        if exclude_user_rows is None or len(exclude_user_rows) == 0:
            splits = np.zeros(n_users + 1, np.int64)
            items = np.zeros(0, np.int64)
        else:
            users = np.asarray(exclude_user_rows, np.int64)
            pairs = np.unique(np.stack([users, np.asarray(exclude_item_rows, np.int64)], 1), axis=0)
            counts = np.bincount(pairs[:, 0], minlength=n_users)
            splits = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
            items = pairs[:, 1].copy()
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
