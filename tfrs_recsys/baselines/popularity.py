"""The popularity scorer: every user gets each item's train count (the floor).

Every learned model must clear it. A scorer in the sense of
:mod:`tfrs_recsys.baselines`: ``[batch]`` user rows -> ``[batch, n_items]`` float32.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tfrs_recsys.baselines.rows import check_user_rows
from tfrs_recsys.data.dataset import RecDataset
from tfrs_recsys.errors import ConfigError

__all__ = ["PopularityScorer", "fit_popularity"]


class PopularityScorer:
    """Scores every item by its number of train positives, the same for all users.

    Attributes:
        counts: ``[n_items]`` float32 train counts, item row order.
        n_users: Number of user rows accepted (``None``: any row).
        n_train_users: Users with a train positive (the denominator of
            :meth:`probabilities`; ``None``: the largest count).
    """

    def __init__(
        self, counts: np.ndarray, *, n_users: int | None = None, n_train_users: int | None = None
    ) -> None:
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

    @property
    def gives_probabilities(self) -> bool:
        """True: :meth:`probabilities` gives p(user likes item)."""
        return True

    def scorer(self) -> PopularityScorer:
        """The scorer itself (it is called with user rows)."""
        return self

    def __call__(self, user_rows: np.ndarray) -> np.ndarray:
        rows = check_user_rows(user_rows, self.n_users)
        return np.broadcast_to(self.counts, (len(rows), self.n_items)).copy()

    def probabilities(self, user_rows: np.ndarray, item_rows: np.ndarray) -> np.ndarray:
        """The share of train users who liked each item, ``[n]`` (the same for every user)."""
        check_user_rows(user_rows, self.n_users)
        items = np.asarray(item_rows, dtype=np.int64)
        if items.size and (items.min() < 0 or items.max() >= self.n_items):
            raise ConfigError(
                f"item rows must be in [0, {self.n_items}), got {items.min()}..{items.max()}"
            )
        denominator = self.n_train_users or max(float(self.counts.max(initial=0.0)), 1.0)
        return self.counts[items] / np.float32(denominator)

    def __repr__(self) -> str:
        return f"PopularityScorer(n_items={self.n_items})"


def fit_popularity(dataset: RecDataset, train: pd.DataFrame) -> PopularityScorer:
    """Same as :meth:`PopularityScorer.fit`."""
    return PopularityScorer.fit(dataset, train)
