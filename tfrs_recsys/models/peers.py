"""Peer collaborative-filtering baselines: EASE and implicit ALS, with tuning.

Both are scorers in the sense of :mod:`tfrs_recsys.models.baselines`:
``scorer(user_rows) -> [len(user_rows), n_items] float32``, higher = better,
item columns in ``dataset.items`` row order, nothing masked.

- :class:`EASEScorer`: Steck (2019), "Embarrassingly Shallow Autoencoders for
  Sparse Data". With ``X`` the binary user x item train matrix,
  ``G = X^T X + l2 * I``, ``P = G^-1``, ``B = -P / diag(P)`` (column-wise) and
  ``diag(B) = 0``; a user's scores are ``X_u B``. Pure numpy: the Gram matrix is
  accumulated in float64 from dense chunks of user rows and inverted densely,
  so memory is about ``3 * n_items**2 * 8`` bytes (70 MB for 1,682 movies,
  24 MB for 1,000 products, 9.6 GB for 20,000 items). Catalogs above
  ``max_items`` (20,000 by default) are refused with a :class:`ConfigError`.
- :class:`ALSScorer`: Hu, Koren & Volinsky (2008) implicit-feedback ALS from
  the ``implicit`` library (0.7.x, CPU). ``implicit`` is a dev / benchmark
  dependency, imported only when an ALS model is fitted. Scores are
  ``user_factors[rows] @ item_factors.T``.

Tuning (:func:`tune_ease`, :func:`tune_als`) carves a validation split out of
*train* with :func:`tfrs_recsys.data.splits.carve_validation`; the holdout is not
an argument, so it cannot leak into the choice. The best setting on validation
is refitted on the whole train. The default validation metric is the shared
evaluator's recall@10 (:mod:`tfrs_recsys.evaluation`, which imports TensorFlow)
with the fit-train items masked, over users with at least one validation
positive; any ``metric_fn(scorer, fit_train, validation) -> float`` (higher =
better) can replace it.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from tfrs_recsys.data.dataset import RecDataset
from tfrs_recsys.data.splits import carve_validation
from tfrs_recsys.models.baselines import _check_rows
from tfrs_recsys.errors import ConfigError

__all__ = [
    "ALSScorer",
    "EASEScorer",
    "UserItems",
    "tune_als",
    "tune_ease",
]

Scorer = Callable[[np.ndarray], np.ndarray]
MetricFn = Callable[[Scorer, pd.DataFrame, pd.DataFrame], float]

DEFAULT_EASE_LAMBDAS: tuple[float, ...] = (10.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0)
# implicit's regularization is not scaled by the user's or item's count, and
# alpha multiplies the positives' confidence. On ML-100K (about 42 train
# positives per user when tuning) and the default tech-products data (about 70) the usual
# 0.01 .. 1 penalties overfit: the best validation recalls came from
# regularization 10 .. 50 with alpha 5 .. 20, and from 16 .. 32 factors on the
# tech-products data (true taste rank 8). 16 settings, about a minute on ML-100K.
DEFAULT_ALS_GRID: dict[str, tuple[Any, ...]] = {
    "factors": (16, 32, 64, 128),
    "regularization": (10.0, 50.0),
    "alpha": (5.0, 20.0),
    "iterations": (15,),
}
VALIDATION_K = 10
INSTALL_HINT = "install the dev extra: pip install -e '.[dev]'"

# Cells per dense chunk of user rows (float32: 32 MB).
_CHUNK_CELLS = 8_000_000


# --- The binary train matrix ---------------------------------------------------------


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


# --- EASE ------------------------------------------------------------------------------


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
        _check_catalog(dataset.n_items, max_items)
        user_items = UserItems.from_frame(dataset, train)
        return cls(ease_weights(user_items.gram(), l2), user_items, l2=l2)

    def __call__(self, user_rows: np.ndarray) -> np.ndarray:
        rows = _check_rows(user_rows, self.user_items.n_users)
        return self.user_items.dense(rows, np.float32) @ self.weights

    def __repr__(self) -> str:
        return f"EASEScorer(n_items={self.n_items}, l2={self.l2:g})"


def _check_catalog(n_items: int, max_items: int) -> None:
    if n_items > max_items:
        gigabytes = 3 * n_items**2 * 8 / 1e9
        raise ConfigError(
            f"EASE inverts a dense {n_items} x {n_items} matrix (about {gigabytes:.1f} GB); "
            f"the limit is max_items={max_items}"
        )


# --- Implicit ALS ------------------------------------------------------------------------


def _import_implicit():
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
        als_class, threadpool_limits = _import_implicit()
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

    def __call__(self, user_rows: np.ndarray) -> np.ndarray:
        rows = _check_rows(user_rows, len(self.user_factors))
        return self.user_factors[rows] @ self.item_factors.T

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"ALSScorer({shown})"


def _to_numpy(factors) -> np.ndarray:
    # GPU models hold implicit.gpu.Matrix objects; CPU ones numpy arrays.
    return np.asarray(factors.to_numpy() if hasattr(factors, "to_numpy") else factors)


# --- Validation metric ---------------------------------------------------------------------


def _default_metric(dataset: RecDataset) -> MetricFn:
    """recall@10 of the shared evaluator (:mod:`tfrs_recsys.evaluation`) on the validation split.

    The protocol of ``shared/EVALUATION.md`` with the fit-train positives masked
    and the validation positives as the holdout. The evaluation task is built
    once per ``(fit_train, validation)`` pair of frames and reused for every
    candidate. Imports TensorFlow (the evaluator ranks with ``tf.math.top_k``).
    """
    from tfrs_recsys.evaluation import EvaluationTask, evaluate

    cache: dict[str, Any] = {}

    def metric(scorer: Scorer, fit_train: pd.DataFrame, validation: pd.DataFrame) -> float:
        if cache.get("fit_train") is not fit_train or cache.get("validation") is not validation:
            cache.update(
                fit_train=fit_train,
                validation=validation,
                task=EvaluationTask.build(dataset, fit_train, validation, split_name="validation"),
            )
        result = evaluate(scorer, cache["task"], ks=(VALIDATION_K,), curve_max_k=VALIDATION_K)
        return float(result.metrics[f"recall@{VALIDATION_K}"])

    return metric


# --- Tuning --------------------------------------------------------------------------------


def tune_ease(
    dataset: RecDataset,
    train: pd.DataFrame,
    *,
    lambdas: Iterable[float] = DEFAULT_EASE_LAMBDAS,
    validation_fraction: float = 0.1,
    seed: int = 7,
    metric_fn: MetricFn | None = None,
    max_items: int = 20_000,
) -> tuple[EASEScorer, dict[str, float], pd.DataFrame]:
    """Chooses the EASE ``l2`` on a validation split of ``train``, then refits on all of it.

    Args:
        dataset: The dataset ``train`` belongs to.
        train: The train positives; a ``validation_fraction`` of them (drawn with
            ``seed``) is held out for the choice. The protocol's holdout is not
            an argument on purpose.
        lambdas: Candidate ``l2`` values.
        metric_fn: ``metric_fn(scorer, fit_train, validation) -> float``, higher is
            better; default the shared evaluator's recall@10 on the validation split.

    Returns:
        ``(scorer refitted on train, {"l2": best}, table)`` with one table row per
        candidate: ``l2``, ``validation_metric``, ``fit_seconds`` (the shared
        Gram matrix's time included in every row) and ``eval_seconds``. Ties go
        to the earlier candidate.
    """
    candidates = [float(v) for v in lambdas]
    if not candidates:
        raise ConfigError("tune_ease needs at least one lambda")
    _check_catalog(dataset.n_items, max_items)
    metric = metric_fn or _default_metric(dataset)
    split = carve_validation(train, fraction=validation_fraction, seed=seed)
    start = time.perf_counter()
    fit_items = UserItems.from_frame(dataset, split.train)
    gram = fit_items.gram()  # shared by every candidate
    gram_seconds = time.perf_counter() - start
    rows = []
    for l2 in candidates:
        start = time.perf_counter()
        scorer = EASEScorer(ease_weights(gram, l2), fit_items, l2=l2)
        fit_seconds = time.perf_counter() - start + gram_seconds
        start = time.perf_counter()
        value = float(metric(scorer, split.train, split.holdout))
        rows.append(
            {
                "l2": l2,
                "validation_metric": value,
                "fit_seconds": fit_seconds,
                "eval_seconds": time.perf_counter() - start,
            }
        )
    table = pd.DataFrame(rows)
    best = {"l2": candidates[_best_index(table)]}
    return EASEScorer.fit(dataset, train, max_items=max_items, **best), best, table


def tune_als(
    dataset: RecDataset,
    train: pd.DataFrame,
    *,
    grid: Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Any]] = DEFAULT_ALS_GRID,
    validation_fraction: float = 0.1,
    seed: int = 7,
    metric_fn: MetricFn | None = None,
    random_state: int = 42,
    num_threads: int = 0,
) -> tuple[ALSScorer, dict[str, Any], pd.DataFrame]:
    """Chooses ALS hyperparameters on a validation split of ``train``, then refits.

    Args:
        grid: Either ``{name: candidates}`` (every combination is tried, names
            among ``factors``, ``regularization``, ``alpha``, ``iterations``) or
            an explicit sequence of settings (dicts).
        random_state: Seed of every fit (the candidates differ only by their
            hyperparameters).
        Other arguments as in :func:`tune_ease`.

    Returns:
        ``(scorer refitted on train, best setting, table)``: one table row per
        setting with its hyperparameters, ``validation_metric``, ``fit_seconds``
        and ``eval_seconds``. Ties go to the earlier setting.
    """
    settings = _expand_grid(grid)
    _import_implicit()  # fail before carving anything if implicit is missing
    metric = metric_fn or _default_metric(dataset)
    split = carve_validation(train, fraction=validation_fraction, seed=seed)
    fit_items = UserItems.from_frame(dataset, split.train)  # shared by every setting
    rows = []
    for setting in settings:
        start = time.perf_counter()
        scorer = ALSScorer.fit_matrix(
            fit_items, random_state=random_state, num_threads=num_threads, **setting
        )
        fit_seconds = time.perf_counter() - start
        start = time.perf_counter()
        value = float(metric(scorer, split.train, split.holdout))
        rows.append(
            {
                **setting,
                "validation_metric": value,
                "fit_seconds": fit_seconds,
                "eval_seconds": time.perf_counter() - start,
            }
        )
    table = pd.DataFrame(rows)
    best = dict(settings[_best_index(table)])
    final = ALSScorer.fit(
        dataset, train, random_state=random_state, num_threads=num_threads, **best
    )
    return final, best, table


_ALS_NAMES = frozenset({"factors", "regularization", "alpha", "iterations"})


def _expand_grid(
    grid: Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Any]],
) -> list[dict[str, Any]]:
    if isinstance(grid, Mapping):
        names = list(grid)
        values = [list(grid[name]) for name in names]
        if any(not v for v in values):
            raise ConfigError("every ALS grid entry needs at least one candidate")
        settings = [dict(zip(names, combo)) for combo in itertools.product(*values)]
    else:
        settings = [dict(s) for s in grid]
    if not settings:
        raise ConfigError("tune_als needs at least one setting")
    for setting in settings:
        unknown = set(setting) - _ALS_NAMES
        if unknown:
            raise ConfigError(
                f"unknown ALS hyperparameter(s) {', '.join(sorted(unknown))}; "
                f"use {', '.join(sorted(_ALS_NAMES))}"
            )
    return settings


def _best_index(table: pd.DataFrame) -> int:
    values = table["validation_metric"].to_numpy(dtype=np.float64)
    if np.isnan(values).all():
        raise ConfigError("the validation metric is NaN for every candidate")
    return int(np.nanargmax(values))  # first maximum: ties go to the earlier candidate
