"""The evaluation protocol (docs/evaluation.md).

- :mod:`~tfrs_recsys.evaluation.metrics`: per-user ranking metrics from hit matrices;
- :mod:`~tfrs_recsys.evaluation.protocol`: :class:`EvaluationTask` (the fixed
  inputs of one dataset and split), :func:`evaluate` (any scorer ->
  :class:`EvaluationResult`) and :func:`seed_metric` (the notebooks' figure).

Importing this package imports TensorFlow.
"""

from tfrs_recsys.evaluation.protocol import (
    EvaluationResult,
    EvaluationTask,
    ProbabilityFn,
    Scorer,
    evaluate,
    seed_metric,
)

__all__ = [
    "EvaluationResult",
    "EvaluationTask",
    "ProbabilityFn",
    "Scorer",
    "evaluate",
    "seed_metric",
]
