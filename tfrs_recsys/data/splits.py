"""Train / holdout splits of the positive interactions, each with a name.

``holdout-80-20`` is the split of the evaluation protocol (docs/evaluation.md)
and of the seed notebooks: shuffle the positives with ``DataFrame.sample(frac=1,
random_state=42)``, then ``sklearn.model_selection.train_test_split(test_size=0.2,
random_state=42)``. It is reproduced here with numpy alone (a test proves it
equal to the pandas + scikit-learn code). Any figure from another split must
name that split.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np
import pandas as pd

from tfrs_recsys.data.schema import USER_ID
from tfrs_recsys.errors import ConfigError, DataValidationError


@dataclasses.dataclass(frozen=True)
class Split:
    """A named split: ``train`` and ``holdout`` frames of positive pairs."""

    name: str
    train: pd.DataFrame
    holdout: pd.DataFrame

    def summary(self) -> dict[str, int | str]:
        return {
            "split": self.name,
            "train": len(self.train),
            "holdout": len(self.holdout),
            "holdout_users": int(self.holdout[USER_ID].nunique()),
        }


def holdout_80_20(interactions: pd.DataFrame, *, seed: int = 42, test_size: float = 0.2) -> Split:
    """The protocol's split (see module docstring); row order as pandas/sklearn give."""
    if not 0.0 < test_size < 1.0:
        raise ConfigError(f"test_size must be in (0, 1), got {test_size}")
    n = len(interactions)
    if n < 2:
        raise DataValidationError(f"cannot split {n} interaction(s); need at least 2")
    # DataFrame.sample(frac=1, random_state=seed) draws RandomState(seed).permutation(n).
    shuffled = interactions.iloc[np.random.RandomState(seed).permutation(n)].reset_index(drop=True)
    # train_test_split: n_test = ceil(test_size * n), then a fresh RandomState(seed)
    # permutation; the first n_test positions are the test rows.
    n_test = math.ceil(test_size * n)
    order = np.random.RandomState(seed).permutation(n)
    train = shuffled.iloc[order[n_test:]]
    holdout = shuffled.iloc[order[:n_test]]
    return Split("holdout-80-20", train, holdout)


def per_user_random(interactions: pd.DataFrame, *, fraction: float = 0.2, seed: int = 42) -> Split:
    """Holds out ``round(fraction * n_u)`` (at least 1) random positives of each user.

    Users with a single positive keep it in train.
    """
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"fraction must be in (0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    users = interactions[USER_ID].to_numpy()
    codes, _ = pd.factorize(users)
    keys = rng.random(len(users))
    order = np.lexsort((keys, codes))
    counts = np.bincount(codes)
    # Rank of each row among its user's rows in the random order.
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty(len(users), dtype=np.int64)
    rank[order] = np.arange(len(users)) - np.repeat(starts, counts)
    take = np.maximum(1, np.rint(fraction * counts)).astype(np.int64)
    in_holdout = (rank < take[codes]) & (counts[codes] >= 2)
    return Split("per-user-random", interactions[~in_holdout], interactions[in_holdout])


def leave_last_out(interactions: pd.DataFrame, *, timestamp: str = "timestamp") -> Split:
    """Holds out each user's latest positive (ties: the later row in file order).

    Users with a single positive keep it in train.
    """
    if timestamp not in interactions.columns:
        raise DataValidationError(
            f"leave-last-out needs a {timestamp!r} column; the interactions have "
            f"{', '.join(map(str, interactions.columns))}"
        )
    codes, _ = pd.factorize(interactions[USER_ID].to_numpy())
    times = interactions[timestamp].to_numpy()
    position = np.arange(len(codes))
    order = np.lexsort((position, times, codes))
    last_of_user = np.ones(len(codes), dtype=bool)
    last_of_user[:-1] = codes[order][1:] != codes[order][:-1]
    counts = np.bincount(codes)
    in_holdout = np.zeros(len(codes), dtype=bool)
    in_holdout[order[last_of_user]] = True
    in_holdout &= counts[codes] >= 2
    return Split("leave-last-out", interactions[~in_holdout], interactions[in_holdout])


def carve_validation(train: pd.DataFrame, *, fraction: float = 0.1, seed: int = 7) -> Split:
    """Splits a train frame again: a random ``fraction`` becomes validation.

    Used for early stopping and tuning, so the holdout is never consulted.
    """
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"validation fraction must be in (0, 1), got {fraction}")
    n = len(train)
    picked = np.zeros(n, dtype=bool)
    picked[np.random.default_rng(seed).permutation(n)[: max(1, int(round(fraction * n)))]] = True
    return Split("validation", train[~picked], train[picked])


SPLITS: dict[str, Callable[..., Split]] = {
    "holdout-80-20": holdout_80_20,
    "per-user-random": per_user_random,
    "leave-last-out": leave_last_out,
}


def make_split(name: str, interactions: pd.DataFrame, **kwargs) -> Split:
    """The split called ``name`` (one of :data:`SPLITS`)."""
    try:
        factory = SPLITS[name]
    except KeyError:
        raise ConfigError(f"unknown split {name!r}; choose one of {', '.join(SPLITS)}") from None
    return factory(interactions, **kwargs)


def split_dataset(dataset, name: str = "holdout-80-20", **kwargs) -> Split:
    """Splits ``dataset``'s positive interactions with the split called ``name``.

    ``holdout-80-20`` (the default) is the evaluation protocol's split; see
    :data:`SPLITS` for the others.

    Args:
        dataset: A :class:`~tfrs_recsys.data.dataset.RecDataset`.
        name: The split's name.
        **kwargs: The split's own arguments (e.g. ``seed``).
    """
    return make_split(name, dataset.interactions, **kwargs)
