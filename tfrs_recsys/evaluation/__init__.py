"""The evaluation protocol (docs/evaluation.md).

- :mod:`~tfrs_recsys.evaluation.metrics`: per-user ranking metrics from hit matrices;
- :mod:`~tfrs_recsys.evaluation.protocol`: :class:`EvaluationTask` (the fixed
  inputs of one dataset and split), :func:`evaluate` (any scorer ->
  :class:`EvaluationResult`);
- :mod:`~tfrs_recsys.evaluation.seed_metric`: :func:`seed_metric` (the notebooks' figure).

Importing this package imports TensorFlow.
"""

from tfrs_recsys.evaluation.protocol import EvaluationResult, EvaluationTask, evaluate
from tfrs_recsys.evaluation.seed_metric import seed_metric
from tfrs_recsys.recommender import ProbabilityFn, Scorer

__all__ = [
    "EvaluationResult",
    "EvaluationTask",
    "ProbabilityFn",
    "Scorer",
    "evaluate",
    "seed_metric",
]
