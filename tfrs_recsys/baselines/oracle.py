"""The oracle scorer: the generator's true preference probabilities (the ceiling).

Generated tech-products data only. The ceiling of the headline
``model / oracle`` recall ratio. A scorer in the sense of :mod:`tfrs_recsys.baselines`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tfrs_recsys.baselines.rows import check_user_rows
from tfrs_recsys.data.dataset import RecDataset
from tfrs_recsys.data.generator import TrueModel
from tfrs_recsys.errors import ConfigError

__all__ = ["OracleScorer"]


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

    @classmethod
    def for_dataset(cls, dataset: RecDataset) -> OracleScorer:
        """The oracle of a generated dataset, from the ``truth.npz`` in its directory.

        Raises:
            ConfigError: The dataset has no true model (only generated data has
                one), or its sizes differ from the true model's.
        """
        from tfrs_recsys.data.techproducts import load_truth

        truth = load_truth(Path(dataset.source)) if dataset.source else None
        if truth is None:
            raise ConfigError(
                f"the oracle needs the generator's true model: {dataset.source or 'this dataset'} "
                "has no truth.npz (only generated data has one)"
            )
        return cls(truth).check_dataset(dataset)

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

    @property
    def gives_probabilities(self) -> bool:
        """True: :meth:`probabilities` gives p(user likes item)."""
        return True

    def scorer(self) -> OracleScorer:
        """The scorer itself (it is called with user rows)."""
        return self

    def __call__(self, user_rows: np.ndarray) -> np.ndarray:
        rows = check_user_rows(user_rows, self.truth.n_users)
        return self.truth.probabilities(rows).astype(np.float32, copy=False)

    def probabilities(
        self, user_rows: np.ndarray, item_rows: np.ndarray, chunk: int = 4096
    ) -> np.ndarray:
        """True probabilities ``[n]`` of the pairs ``(user_rows[k], item_rows[k])``."""
        users = check_user_rows(user_rows, self.truth.n_users)
        items = np.asarray(item_rows, dtype=np.int64)
        if items.shape != users.shape:
            raise ConfigError(
                f"user_rows and item_rows differ in shape: {users.shape} vs {items.shape}"
            )
        if hasattr(self.truth, "pair_probabilities"):  # the scale truth: no full rows
            return np.asarray(self.truth.pair_probabilities(users, items), np.float32)
        out = np.empty(len(users), np.float32)
        for s in range(0, len(users), chunk):
            rows = self.truth.probabilities(users[s : s + chunk])
            out[s : s + chunk] = rows[np.arange(len(rows)), items[s : s + chunk]]
        return out

    def __repr__(self) -> str:
        return f"OracleScorer(n_users={self.truth.n_users}, n_items={self.n_items})"
