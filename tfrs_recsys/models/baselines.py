"""Non-learned reference scorers: popularity (the floor), oracle and random.

A *scorer* is a callable ``scorer(user_rows) -> scores`` taking ``int64`` user
row indices (rows of ``dataset.users``) and returning a ``[len(user_rows),
n_items]`` ``float32`` array, higher = better, with item columns in
``dataset.items`` row order. The evaluator masks each user's train items and
ranks the rest (see ``shared/EVALUATION.md``); scorers never mask anything.

- :class:`PopularityScorer`: every user gets the item's train count. The floor
  every learned model must clear.
- :class:`OracleScorer`: the generator's true preference probabilities (generated
  data only). The ceiling of the headline ``model / oracle`` recall ratio.
- :class:`RandomScorer`: a reproducible random ranking, as a sanity check.

All three are numpy only.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tfrs_recsys.data.dataset import RecDataset
from tfrs_recsys.data.generator import TrueModel, cell_uniform
from tfrs_recsys.errors import ConfigError

__all__ = ["OracleScorer", "PopularityScorer", "RandomScorer", "fit_popularity"]


def _check_rows(user_rows: np.ndarray, n_users: int | None) -> np.ndarray:
    """``user_rows`` as a 1-D int64 array; ConfigError if not rows of ``n_users``."""
    rows = np.asarray(user_rows)
    if rows.ndim != 1:
        raise ConfigError(
            f"user_rows must be a 1-D array of user row indices, got shape {rows.shape}"
        )
    if rows.size and not np.issubdtype(rows.dtype, np.integer):
        raise ConfigError(f"user_rows must be integers, got dtype {rows.dtype}")
    rows = rows.astype(np.int64, copy=False)
    if n_users is not None and rows.size and (rows.min() < 0 or rows.max() >= n_users):
        raise ConfigError(
            f"user row {int(rows.min() if rows.min() < 0 else rows.max())} is outside "
            f"0..{n_users - 1}"
        )
    return rows


class PopularityScorer:
    """Scores every item by its number of train positives, the same for all users.

    Attributes:
        counts: ``[n_items]`` float32 train counts, item row order.
        n_users: Number of user rows accepted (``None``: any row).
        n_train_users: Users with a train positive (the denominator of
            :meth:`probabilities`; ``None``: the largest count).
    """

    def __init__(self, counts: np.ndarray, *, n_users: int | None = None, n_train_users: int | None = None) -> None:
        counts = np.asarray(counts, dtype=np.float32)
        if counts.ndim != 1:
            raise ConfigError(f"counts must be 1-D, got shape {counts.shape}")
        self.counts = counts
        self.n_users = n_users
        self.n_train_users = n_train_users

    @property
    def n_items(self) -> int:
        return len(self.counts)

    @classmethod
    def fit(cls, dataset: RecDataset, train: pd.DataFrame) -> PopularityScorer:
        """Counts the train positives of each catalog item (duplicates count once)."""
        users, items = dataset.encode(train)
        if len(items):
            # A repeated (user, item) pair is one positive, not two.
            pairs = np.unique(users * np.int64(dataset.n_items) + items)
            items = pairs % np.int64(dataset.n_items)
        counts = np.bincount(items, minlength=dataset.n_items)
        return cls(counts, n_users=dataset.n_users, n_train_users=max(len(np.unique(users)), 1))

    def __call__(self, user_rows: np.ndarray) -> np.ndarray:
        rows = _check_rows(user_rows, self.n_users)
        return np.broadcast_to(self.counts, (len(rows), self.n_items)).copy()

    def probabilities(self, user_rows: np.ndarray, item_rows: np.ndarray) -> np.ndarray:
        """The share of train users who liked each item, ``[n]`` (the same for every user)."""
        _check_rows(user_rows, self.n_users)
        items = np.asarray(item_rows, dtype=np.int64)
        if items.size and (items.min() < 0 or items.max() >= self.n_items):
            raise ConfigError(f"item rows must be in [0, {self.n_items}), got {items.min()}..{items.max()}")
        denominator = self.n_train_users or max(float(self.counts.max(initial=0.0)), 1.0)
        return self.counts[items] / np.float32(denominator)

    def __repr__(self) -> str:
        return f"PopularityScorer(n_items={self.n_items})"


def fit_popularity(dataset: RecDataset, train: pd.DataFrame) -> PopularityScorer:
    """Same as :meth:`PopularityScorer.fit`."""
    return PopularityScorer.fit(dataset, train)


class OracleScorer:
    """Ranks by the generator's true probabilities ``truth.probabilities(rows)``.

    Only meaningful for a generated tech-products dataset loaded with its
    ``truth.npz``: user and item rows of the loaded dataset are the generator's
    rows (the loader keeps file order), so rows index the true model directly.
    """

    def __init__(self, truth: TrueModel) -> None:
        if truth is None:
            raise ConfigError(
                "the oracle needs the generator's true model (truth.npz); this dataset has none"
            )
        self.truth = truth

    @property
    def n_items(self) -> int:
        return self.truth.n_items

    def check_dataset(self, dataset: RecDataset) -> OracleScorer:
        """Raises :class:`ConfigError` if ``dataset`` does not match the true model's sizes."""
        if (dataset.n_users, dataset.n_items) != (self.truth.n_users, self.truth.n_items):
            raise ConfigError(
                f"the true model has {self.truth.n_users} users x {self.truth.n_items} items, "
                f"the dataset {dataset.n_users} x {dataset.n_items}"
            )
        return self

    def __call__(self, user_rows: np.ndarray) -> np.ndarray:
        rows = _check_rows(user_rows, self.truth.n_users)
        return self.truth.probabilities(rows).astype(np.float32, copy=False)

    def probabilities(self, user_rows: np.ndarray, item_rows: np.ndarray, chunk: int = 4096) -> np.ndarray:
        """True probabilities ``[n]`` of the pairs ``(user_rows[k], item_rows[k])``."""
        users = _check_rows(user_rows, self.truth.n_users)
        items = np.asarray(item_rows, dtype=np.int64)
        if items.shape != users.shape:
            raise ConfigError(f"user_rows and item_rows differ in shape: {users.shape} vs {items.shape}")
        out = np.empty(len(users), np.float32)
        for s in range(0, len(users), chunk):
            rows = self.truth.probabilities(users[s : s + chunk])
            out[s : s + chunk] = rows[np.arange(len(rows)), items[s : s + chunk]]
        return out

    def __repr__(self) -> str:
        return f"OracleScorer(n_users={self.truth.n_users}, n_items={self.n_items})"


class RandomScorer:
    """Uniform random scores, a pure function of ``(seed, user row, item row)``.

    The same user gets the same scores on every call and in any batch.
    """

    def __init__(self, n_items: int, seed: int = 0) -> None:
        if n_items < 1:
            raise ConfigError(f"n_items must be positive, got {n_items}")
        if seed < 0:
            raise ConfigError(f"seed must be non-negative, got {seed}")
        self._n_items = int(n_items)
        self.seed = int(seed)

    @property
    def n_items(self) -> int:
        return self._n_items

    def __call__(self, user_rows: np.ndarray) -> np.ndarray:
        rows = _check_rows(user_rows, None)
        if rows.size and rows.min() < 0:
            raise ConfigError(f"user row {int(rows.min())} is negative")
        return cell_uniform(self.seed, 0, rows, self._n_items).astype(np.float32)

    def __repr__(self) -> str:
        return f"RandomScorer(n_items={self.n_items}, seed={self.seed})"
