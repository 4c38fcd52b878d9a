"""The random scorer: a reproducible random ranking, as a sanity check.

A scorer in the sense of :mod:`tfrs_recsys.baselines`.
"""

from __future__ import annotations

import numpy as np

from tfrs_recsys.baselines.rows import check_user_rows
from tfrs_recsys.data.generator import cell_uniform
from tfrs_recsys.errors import ConfigError

__all__ = ["RandomScorer"]


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

    @property
    def gives_probabilities(self) -> bool:
        """False: the scores only rank, they are not probabilities."""
        return False

    def scorer(self) -> RandomScorer:
        """The scorer itself (it is called with user rows)."""
        return self

    def probabilities(self, user_rows: np.ndarray, item_rows: np.ndarray) -> np.ndarray:
        """Not available: raises :class:`ConfigError` (see :attr:`gives_probabilities`)."""
        raise ConfigError(f"{self!r} gives ranking scores, not probabilities")

    def __call__(self, user_rows: np.ndarray) -> np.ndarray:
        rows = check_user_rows(user_rows, None)
        if rows.size and rows.min() < 0:
            raise ConfigError(f"user row {int(rows.min())} is negative")
        return cell_uniform(self.seed, 0, rows, self._n_items).astype(np.float32)

    def __repr__(self) -> str:
        return f"RandomScorer(n_items={self.n_items}, seed={self.seed})"
