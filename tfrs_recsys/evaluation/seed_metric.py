"""The seed notebooks' headline figure: the mean probability of one holdout positive per user.

Kept for comparison with the notebooks only (see docs/evaluation.md): it
rewards over-confidence and says nothing about ranking, so models are never
chosen by it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tfrs_recsys.data.dataset import RecDataset
from tfrs_recsys.data.schema import ITEM_ID, USER_ID
from tfrs_recsys.errors import ConfigError, DataValidationError
from tfrs_recsys.recommender import ProbabilityFn

SEED_METRIC_RANDOM_STATE = 42


def seed_metric(probability_fn: ProbabilityFn, dataset: RecDataset, holdout: pd.DataFrame) -> float:
    """Mean predicted probability of one random holdout positive per user.

    The seed notebooks' headline figure, kept for comparison only: it rewards
    over-confidence and says nothing about ranking, so never choose models by
    it. The pair of each user is chosen exactly as the notebooks do, with
    ``holdout.groupby('user_id').sample(n=1, random_state=42)``; the holdout
    is used as given (pairs that are also train pairs are not removed).

    Args:
        probability_fn: ``probability_fn(user_rows [n], item_rows [n]) -> [n]``
            probabilities in [0, 1] (``[n, 1]`` is accepted too); called once
            with all the sampled pairs.
        dataset: Encodes the ids into rows.
        holdout: Frame with ``user_id`` and ``item_id`` columns.

    Raises:
        DataValidationError: The holdout is empty or has unknown ids.
        ConfigError: ``probability_fn`` returned the wrong shape, NaN or values
            outside [0, 1].
    """
    if len(holdout) == 0:
        raise DataValidationError("the holdout frame is empty: no pair to score")
    sampled = holdout.groupby(USER_ID).sample(n=1, random_state=SEED_METRIC_RANDOM_STATE)
    user_rows, item_rows = dataset.encode(sampled)
    raw = probability_fn(user_rows, item_rows)
    try:
        probabilities = np.array(raw, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"probability_fn must return a numeric array, got {type(raw).__name__} ({exc})"
        ) from exc
    n = len(user_rows)
    if probabilities.shape not in ((n,), (n, 1)):
        raise ConfigError(
            f"probability_fn returned shape {probabilities.shape} for {n} pair(s); expected ({n},)"
        )
    probabilities = probabilities.reshape(n)
    bad = np.flatnonzero(~((probabilities >= 0.0) & (probabilities <= 1.0)))  # NaN included
    if bad.size:
        first = int(bad[0])
        raise ConfigError(
            f"probability_fn must return probabilities in [0, 1]; got {probabilities[first]} "
            f"for user {sampled[USER_ID].iloc[first]!r}, item "
            f"{sampled[ITEM_ID].iloc[first]!r} ({bad.size} bad value(s))"
        )
    return float(probabilities.mean())
