"""Hyperparameter tuning of the peers (EASE's ``l2``, ALS's grid) on validation.

Tuning (:func:`tune_ease`, :func:`tune_als`) carves a validation split out of
*train* with :func:`tfrs_recsys.data.splits.carve_validation`; the holdout is not
an argument, so it cannot leak into the choice. The best setting on validation
is refitted on the whole train. The default validation metric is the package
evaluator's recall@10 (:mod:`tfrs_recsys.evaluation`, which imports TensorFlow)
with the fit-train items masked, over users with at least one validation
positive; any ``metric_fn(scorer, fit_train, validation) -> float`` (higher =
better) can replace it.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from tfrs_recsys.baselines.als import ALSScorer, import_implicit
from tfrs_recsys.baselines.ease import EASEScorer, check_catalog_size, ease_weights
from tfrs_recsys.baselines.user_items import UserItems
from tfrs_recsys.data.dataset import RecDataset
from tfrs_recsys.data.splits import carve_validation
from tfrs_recsys.errors import ConfigError
from tfrs_recsys.recommender import Scorer

__all__ = [
    "DEFAULT_ALS_GRID",
    "DEFAULT_EASE_LAMBDAS",
    "VALIDATION_K",
    "MetricFn",
    "default_metric",
    "tune_als",
    "tune_ease",
]

MetricFn = Callable[[Scorer, pd.DataFrame, pd.DataFrame], float]
"""``metric_fn(scorer, fit_train, validation) -> float``, higher = better."""

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


def default_metric(dataset: RecDataset) -> MetricFn:
    """recall@10 of the package evaluator (:mod:`tfrs_recsys.evaluation`) on the validation split.

    The evaluation protocol (:mod:`tfrs_recsys.evaluation.protocol`) with the fit-train positives masked
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
            better; default the package evaluator's recall@10 on the validation split.

    Returns:
        ``(scorer refitted on train, {"l2": best}, table)`` with one table row per
        candidate: ``l2``, ``validation_metric``, ``fit_seconds`` (the shared
        Gram matrix's time included in every row) and ``eval_seconds``. Ties go
        to the earlier candidate.
    """
    candidates = [float(v) for v in lambdas]
    if not candidates:
        raise ConfigError("tune_ease needs at least one lambda")
    check_catalog_size(dataset.n_items, max_items)
    metric = metric_fn or default_metric(dataset)
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
    import_implicit()  # fail before carving anything if implicit is missing
    metric = metric_fn or default_metric(dataset)
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
