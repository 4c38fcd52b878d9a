"""Scorers that are not Keras models: the floor, the ceiling and the peers.

A *scorer* is a callable ``scorer(user_rows) -> scores`` taking ``[batch]``
int64 user row indices (rows of ``dataset.users``) and returning
``[batch, n_items]`` float32 scores, higher = better, item columns in
``dataset.items`` row order. The evaluator masks each user's train items and
ranks the rest; scorers never mask anything.

- :mod:`~tfrs_recsys.baselines.popularity`: :class:`PopularityScorer`, the floor.
- :mod:`~tfrs_recsys.baselines.oracle`: :class:`OracleScorer`, the generator's
  true preferences (generated data only), the ceiling.
- :mod:`~tfrs_recsys.baselines.random_scorer`: :class:`RandomScorer`, a sanity check.
- :mod:`~tfrs_recsys.baselines.ease`: :class:`EASEScorer` (Steck, 2019).
- :mod:`~tfrs_recsys.baselines.als`: :class:`ALSScorer`, implicit-feedback ALS.
- :mod:`~tfrs_recsys.baselines.tuning`: :func:`tune_ease`, :func:`tune_als` on a
  validation split carved out of train.
- :mod:`~tfrs_recsys.baselines.user_items`: :class:`UserItems`, the binary train matrix.
- :mod:`~tfrs_recsys.baselines.rows`: :func:`check_user_rows`, the input check.

All of them are numpy only at import time (ALS imports ``implicit`` when fitted,
the tuning metric imports TensorFlow when first used).
"""

from tfrs_recsys.baselines.als import ALSScorer
from tfrs_recsys.baselines.ease import EASEScorer
from tfrs_recsys.baselines.oracle import OracleScorer
from tfrs_recsys.baselines.popularity import PopularityScorer
from tfrs_recsys.baselines.random_scorer import RandomScorer
from tfrs_recsys.baselines.tuning import tune_als, tune_ease
from tfrs_recsys.baselines.user_items import UserItems

__all__ = [
    "ALSScorer",
    "EASEScorer",
    "OracleScorer",
    "PopularityScorer",
    "RandomScorer",
    "UserItems",
    "tune_als",
    "tune_ease",
]
