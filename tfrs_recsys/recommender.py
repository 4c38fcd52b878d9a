"""The one protocol every model that ranks the catalog satisfies.

TFRS models (retrieval, ranking), the notebooks' reproductions and the
baselines (popularity, oracle, EASE, ALS) are all :class:`Recommender`\\ s, so
the evaluation protocol, ``compare`` and the notebooks treat them alike:

- :meth:`Recommender.scorer` gives a :data:`Scorer`: ``scorer(user_rows [batch]
  int64) -> [batch, n_items]`` scores (numpy or ``tf.Tensor``), higher is
  better, columns in item-table row order;
- :attr:`Recommender.gives_probabilities` says whether
  :meth:`Recommender.probabilities` returns probabilities of single pairs (models
  trained with a logistic loss, popularity, the oracle) or the model only ranks
  (softmax two-towers, EASE, ALS).

This module imports neither TensorFlow nor pandas.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import numpy as np

Scorer = Callable[[np.ndarray], Any]
"""``scorer(user_rows [batch] int64) -> [batch, n_items]`` scores, higher = better."""

ProbabilityFn = Callable[[np.ndarray, np.ndarray], Any]
"""``probability_fn(user_rows [n], item_rows [n]) -> [n]`` probabilities in [0, 1]."""


@runtime_checkable
class Recommender(Protocol):
    """A model that scores the whole catalog for a batch of users."""

    @property
    def gives_probabilities(self) -> bool:
        """Whether :meth:`probabilities` gives p(user likes item) (else: ranking scores only)."""
        ...

    def scorer(self) -> Scorer:
        """The evaluator's view of the model: user rows ``[b]`` -> scores ``[b, n_items]``."""
        ...

    def probabilities(self, user_rows: np.ndarray, item_rows: np.ndarray) -> np.ndarray:
        """p(like) ``[n]`` of the pairs ``(user_rows[k], item_rows[k])``.

        Raises:
            ConfigError: The model gives ranking scores only
                (``gives_probabilities`` is false).
        """
        ...


def probability_fn(model: Recommender) -> ProbabilityFn | None:
    """``model.probabilities`` when the model gives probabilities, else None."""
    return model.probabilities if model.gives_probabilities else None
