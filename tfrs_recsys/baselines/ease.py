"""EASE: Steck (2019), "Embarrassingly Shallow Autoencoders for Sparse Data".

With ``X`` the binary user x item train matrix, ``G = X^T X + l2 * I``,
``P = G^-1``, ``B = -P / diag(P)`` (column-wise) and ``diag(B) = 0``; a user's
scores are ``X_u B``. Pure numpy: the Gram matrix is accumulated in float64 from
dense chunks of user rows and inverted densely, so memory is about
``3 * n_items**2 * 8`` bytes (70 MB for 1,682 movies, 24 MB for 1,000 products,
9.6 GB for 20,000 items). Catalogs above ``max_items`` (20,000 by default) are
refused with a :class:`ConfigError`. A scorer in the sense of
:mod:`tfrs_recsys.baselines`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tfrs_recsys.baselines.rows import check_user_rows
from tfrs_recsys.baselines.user_items import UserItems
from tfrs_recsys.data.dataset import RecDataset
from tfrs_recsys.errors import ConfigError

__all__ = ["EASEScorer", "check_catalog_size", "ease_weights"]


def ease_weights(gram: np.ndarray, l2: float) -> np.ndarray:
    """EASE item-item weights ``B`` (float32) from a Gram matrix ``X^T X`` and ``l2``.

    ``P = (G + l2 I)^-1``, ``B_ij = -P_ij / P_jj``, ``B_jj = 0``.
    """
    if not l2 > 0:
        raise ConfigError(f"the EASE l2 regularisation must be positive, got {l2}")
    g = np.array(gram, dtype=np.float64, copy=True)
    g[np.diag_indices_from(g)] += l2
    p = np.linalg.inv(g)
    b = p / (-np.diag(p))[None, :]
    b[np.diag_indices_from(b)] = 0.0
    return b.astype(np.float32)


class EASEScorer:
    """EASE scores ``X_u B`` (see the module docstring).

    Attributes:
        weights: ``[n_items, n_items]`` float32 ``B``.
        user_items: The train matrix ``X`` the scores are computed from.
        l2: The regularisation it was fitted with.
    """

    def __init__(self, weights: np.ndarray, user_items: UserItems, *, l2: float) -> None:
        if weights.shape != (user_items.n_items, user_items.n_items):
            raise ConfigError(
                f"EASE weights have shape {weights.shape}, expected {(user_items.n_items,) * 2}"
            )
        self.weights = weights
        self.user_items = user_items
        self.l2 = float(l2)

    @property
    def n_items(self) -> int:
        return self.user_items.n_items

    @classmethod
    def fit(
        cls,
        dataset: RecDataset,
        train: pd.DataFrame,
        *,
        l2: float = 500.0,
        max_items: int = 20_000,
    ) -> EASEScorer:
        """Fits EASE on the train positives.

        Args:
            dataset: Gives the user / item row indices and the catalog size.
            train: The train positives (``user_id``, ``item_id``).
            l2: The ridge penalty ``lambda`` (Steck used 500 on ML-20M).
            max_items: Refuse catalogs larger than this (dense ``n_items**2`` memory).
        """
        check_catalog_size(dataset.n_items, max_items)
        user_items = UserItems.from_frame(dataset, train)
        return cls(ease_weights(user_items.gram(), l2), user_items, l2=l2)

    @property
    def gives_probabilities(self) -> bool:
        """False: the scores only rank, they are not probabilities."""
        return False

    def scorer(self) -> EASEScorer:
        """The scorer itself (it is called with user rows)."""
        return self

    def probabilities(self, user_rows: np.ndarray, item_rows: np.ndarray) -> np.ndarray:
        """Not available: raises :class:`ConfigError` (see :attr:`gives_probabilities`)."""
        raise ConfigError(f"{self!r} gives ranking scores, not probabilities")

    def __call__(self, user_rows: np.ndarray) -> np.ndarray:
        rows = check_user_rows(user_rows, self.user_items.n_users)
        return self.user_items.dense(rows, np.float32) @ self.weights

    def __repr__(self) -> str:
        return f"EASEScorer(n_items={self.n_items}, l2={self.l2:g})"


def check_catalog_size(n_items: int, max_items: int) -> None:
    """Raises :class:`ConfigError` if EASE's dense ``n_items**2`` matrices exceed ``max_items``."""
    if n_items > max_items:
        gigabytes = 3 * n_items**2 * 8 / 1e9
        raise ConfigError(
            f"EASE inverts a dense {n_items} x {n_items} matrix (about {gigabytes:.1f} GB); "
            f"the limit is max_items={max_items}"
        )
