"""The binary user x item train matrix in CSR form, shared by EASE and ALS."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd

from tfrs_recsys.data.dataset import RecDataset
from tfrs_recsys.errors import ConfigError

__all__ = ["UserItems"]

# Cells per dense chunk of user rows (float32: 32 MB).
_CHUNK_CELLS = 8_000_000


@dataclasses.dataclass(frozen=True)
class UserItems:
    """The binary user x item train matrix in CSR form (numpy arrays only).

    Attributes:
        indptr: ``[n_users + 1]`` int64; user ``u``'s items are
            ``indices[indptr[u]:indptr[u + 1]]``, sorted, without duplicates.
        indices: ``[nnz]`` int64 item rows.
        n_users, n_items: Matrix shape (the whole user and item tables).
    """

    indptr: np.ndarray
    indices: np.ndarray
    n_users: int
    n_items: int

    @classmethod
    def from_rows(
        cls, user_rows: np.ndarray, item_rows: np.ndarray, n_users: int, n_items: int
    ) -> UserItems:
        users = np.asarray(user_rows, dtype=np.int64)
        items = np.asarray(item_rows, dtype=np.int64)
        if users.shape != items.shape:
            raise ConfigError(f"{users.size} user rows but {items.size} item rows")
        keys = np.unique(users * np.int64(n_items) + items)  # sorted by user, then item
        users, items = keys // n_items, keys % n_items
        indptr = np.zeros(n_users + 1, dtype=np.int64)
        np.cumsum(np.bincount(users, minlength=n_users), out=indptr[1:])
        return cls(indptr=indptr, indices=items, n_users=n_users, n_items=n_items)

    @classmethod
    def from_frame(cls, dataset: RecDataset, frame: pd.DataFrame) -> UserItems:
        users, items = dataset.encode(frame)
        return cls.from_rows(users, items, dataset.n_users, dataset.n_items)

    @property
    def nnz(self) -> int:
        return len(self.indices)

    def counts(self) -> np.ndarray:
        """Positives per user, ``[n_users]``."""
        return np.diff(self.indptr)

    def dense(self, user_rows: np.ndarray, dtype: Any = np.float32) -> np.ndarray:
        """Dense 0/1 rows ``[len(user_rows), n_items]`` of the given users."""
        rows = np.asarray(user_rows, dtype=np.int64)
        out = np.zeros((len(rows), self.n_items), dtype=dtype)
        starts, ends = self.indptr[rows], self.indptr[rows + 1]
        lengths = ends - starts
        if lengths.sum():
            which = np.repeat(np.arange(len(rows)), lengths)
            offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
            out[which, self.indices[np.repeat(starts, lengths) + offsets]] = 1
        return out

    def gram(self) -> np.ndarray:
        """``X^T X`` as ``[n_items, n_items]`` float64, accumulated over user chunks."""
        gram = np.zeros((self.n_items, self.n_items), dtype=np.float64)
        chunk = max(1, _CHUNK_CELLS // max(1, self.n_items))
        active = np.flatnonzero(self.counts())
        for start in range(0, len(active), chunk):
            block = self.dense(active[start : start + chunk], np.float32)
            # float32 products of 0/1 values are exact integers below 2**24 per chunk.
            gram += (block.T @ block).astype(np.float64)
        return gram

    def to_scipy(self):
        """A ``scipy.sparse.csr_matrix`` of ones, float32 (scipy must be installed)."""
        import scipy.sparse

        data = np.ones(self.nnz, dtype=np.float32)
        return scipy.sparse.csr_matrix(
            (data, self.indices.astype(np.int32), self.indptr.astype(np.int32)),
            shape=(self.n_users, self.n_items),
        )
