"""Implicit-feedback ALS: Hu, Koren & Volinsky (2008), from the ``implicit`` library.

``implicit`` (0.7.x, CPU) is a dev / benchmark dependency, imported only when an
ALS model is fitted. Scores are ``user_factors[rows] @ item_factors.T``. A scorer
in the sense of :mod:`tfrs_recsys.baselines`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from tfrs_recsys.baselines.rows import check_user_rows
from tfrs_recsys.baselines.user_items import UserItems
from tfrs_recsys.data.dataset import RecDataset
from tfrs_recsys.errors import ConfigError

__all__ = ["INSTALL_HINT", "ALSScorer", "import_implicit"]

INSTALL_HINT = "install the dev extra: pip install -e '.[dev]'"


def import_implicit():
    """``(AlternatingLeastSquares, threadpool_limits or None)``; ConfigError if missing."""
    try:
        import implicit  # noqa: F401
        from implicit.als import AlternatingLeastSquares
    except ImportError as exc:
        raise ConfigError(
            f"ALS needs the 'implicit' package, which is not installed ({exc}); {INSTALL_HINT}"
        ) from None
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # implicit itself depends on threadpoolctl; be lenient anyway
        threadpool_limits = None
    return AlternatingLeastSquares, threadpool_limits


class ALSScorer:
    """Implicit-feedback ALS scores ``user_factors[rows] @ item_factors.T``.

    Attributes:
        user_factors: ``[n_users, factors]`` float32.
        item_factors: ``[n_items, factors]`` float32.
        params: The hyperparameters it was fitted with.
    """

    def __init__(
        self, user_factors: np.ndarray, item_factors: np.ndarray, params: Mapping[str, Any]
    ) -> None:
        if user_factors.shape[1] != item_factors.shape[1]:
            raise ConfigError(
                f"user factors have {user_factors.shape[1]} columns, item factors "
                f"{item_factors.shape[1]}"
            )
        self.user_factors = np.ascontiguousarray(user_factors, dtype=np.float32)
        self.item_factors = np.ascontiguousarray(item_factors, dtype=np.float32)
        self.params = dict(params)

    @property
    def n_items(self) -> int:
        return len(self.item_factors)

    @classmethod
    def fit(
        cls,
        dataset: RecDataset,
        train: pd.DataFrame,
        *,
        factors: int = 64,
        regularization: float = 0.1,
        alpha: float = 10.0,
        iterations: int = 15,
        random_state: int = 42,
        num_threads: int = 0,
    ) -> ALSScorer:
        """Fits ``implicit.als.AlternatingLeastSquares`` on the binary train matrix.

        Args:
            factors, regularization, iterations, random_state: As in ``implicit``.
            alpha: Confidence of a positive cell (``implicit`` 0.7 multiplies the
                0/1 matrix by ``alpha``; unobserved cells have confidence 1).
            num_threads: ALS worker threads (0 = one per core). BLAS is limited
                to one thread while fitting, as ``implicit`` recommends.

        Raises:
            ConfigError: ``implicit`` is not installed, or a bad hyperparameter.
        """
        return cls.fit_matrix(
            UserItems.from_frame(dataset, train),
            factors=factors,
            regularization=regularization,
            alpha=alpha,
            iterations=iterations,
            random_state=random_state,
            num_threads=num_threads,
        )

    @classmethod
    def fit_matrix(
        cls,
        user_items: UserItems,
        *,
        factors: int = 64,
        regularization: float = 0.1,
        alpha: float = 10.0,
        iterations: int = 15,
        random_state: int = 42,
        num_threads: int = 0,
    ) -> ALSScorer:
        """Same as :meth:`fit`, from an already encoded train matrix."""
        if factors < 1 or iterations < 1:
            raise ConfigError(
                f"factors and iterations must be positive, got {factors}, {iterations}"
            )
        if regularization < 0 or alpha <= 0:
            raise ConfigError(
                f"regularization must be >= 0 and alpha > 0, got {regularization}, {alpha}"
            )
        als_class, threadpool_limits = import_implicit()
        matrix = user_items.to_scipy()
        params = {
            "factors": int(factors),
            "regularization": float(regularization),
            "alpha": float(alpha),
            "iterations": int(iterations),
            "random_state": random_state,
        }

        def _fit():
            model = als_class(
                factors=params["factors"],
                regularization=params["regularization"],
                alpha=params["alpha"],
                iterations=params["iterations"],
                random_state=random_state,
                num_threads=int(num_threads),
                use_gpu=False,
            )
            model.fit(matrix, show_progress=False)
            return model

        if threadpool_limits is None:
            model = _fit()
        else:
            # implicit warns (and runs slowly) when OpenBLAS uses its own threadpool.
            with threadpool_limits(1, "blas"):
                model = _fit()
        return cls(_to_numpy(model.user_factors), _to_numpy(model.item_factors), params)

    @property
    def gives_probabilities(self) -> bool:
        """False: the scores only rank, they are not probabilities."""
        return False

    def scorer(self) -> ALSScorer:
        """The scorer itself (it is called with user rows)."""
        return self

    def probabilities(self, user_rows: np.ndarray, item_rows: np.ndarray) -> np.ndarray:
        """Not available: raises :class:`ConfigError` (see :attr:`gives_probabilities`)."""
        raise ConfigError(f"{self!r} gives ranking scores, not probabilities")

    def __call__(self, user_rows: np.ndarray) -> np.ndarray:
        rows = check_user_rows(user_rows, len(self.user_factors))
        return self.user_factors[rows] @ self.item_factors.T

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"ALSScorer({shown})"


def _to_numpy(factors) -> np.ndarray:
    # GPU models hold implicit.gpu.Matrix objects; CPU ones numpy arrays.
    return np.asarray(factors.to_numpy() if hasattr(factors, "to_numpy") else factors)
