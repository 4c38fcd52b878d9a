"""The seed notebooks' negative sampling, reproduced exactly (and leaky).

Its negatives are the notebook's: the zeros of the *full* matrix (train and
holdout positives excluded), globally shuffled with ``random_state=42``, the
first 100 per user. Excluding holdout positives from the negatives leaks the
holdout into training; it is kept here only to reproduce the notebook, and
named ``leaky`` wherever it appears. The package's own models never do this.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tfrs_recsys.data.dataset import RecDataset
from tfrs_recsys.data.schema import ITEM_ID, USER_ID
from tfrs_recsys.errors import ConfigError

__all__ = ["notebook_negatives"]


def check_cell_count(dataset: RecDataset) -> None:
    """Raises :class:`ConfigError` if the matrix is too large for :func:`notebook_negatives`."""
    n_users, n_items = dataset.n_users, dataset.n_items
    if n_users * n_items > 50_000_000:
        raise ConfigError(
            f"the notebooks' negative sampling enumerates every cell; {n_users} x {n_items} is too large"
        )


def notebook_negatives(
    dataset: RecDataset, positives: pd.DataFrame, *, per_user: int = 100, seed: int = 42
) -> pd.DataFrame:
    """The notebooks' negatives: first ``per_user`` zeros per user after a shuffle.

    Equivalent to the notebook code on the melted full matrix::

        negatives = interactions_df[interactions_df['label'] == 0]
        negatives = negatives.sample(frac=1, random_state=42).reset_index(drop=True)
        neg_samples = negatives.groupby('user_id', group_keys=False).head(100)

    where the melt walks items (columns) in catalog order and users in table
    order. ``positives`` must be *all* positives (train and holdout), as in the
    notebooks: this is the leaky part.
    """
    check_cell_count(dataset)
    n_users, n_items = dataset.n_users, dataset.n_items
    user_rows, item_rows = dataset.encode(positives)
    positive = np.zeros((n_items, n_users), dtype=bool)  # melt order: item-major
    positive[item_rows, user_rows] = True
    zero_cells = np.flatnonzero(~positive.ravel())
    shuffled = zero_cells[np.random.RandomState(seed).permutation(len(zero_cells))]
    users = shuffled % n_users
    # groupby(...).head(k) keeps the first k rows of each user in shuffled order.
    order = np.argsort(users, kind="stable")
    counts = np.bincount(users, minlength=n_users)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty(len(users), dtype=np.int64)
    rank[order] = np.arange(len(users)) - np.repeat(starts, counts)
    keep = np.sort(np.flatnonzero(rank < per_user))
    cells = shuffled[keep]
    return pd.DataFrame(
        {
            USER_ID: dataset.table("user").ids[cells % n_users],
            ITEM_ID: dataset.table("item").ids[cells // n_users],
            "label": 0,
        }
    )
