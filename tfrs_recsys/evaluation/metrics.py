"""Top-K ranking metrics of the shared protocol, computed from hit matrices.

A *hit matrix* ``hits`` is a boolean array ``[users, depth]``: ``hits[u, r]``
says whether the item ranked ``r + 1`` for user ``u`` is one of that user's
holdout items. Empty ranking slots (fewer rankable items than ``depth``) are
``False``. ``n_relevant`` ``[users]`` is the size of each user's holdout set
(always >= 1 for evaluated users).

Definitions (docs/evaluation.md, the metrics), per user:

- ``recall@K`` = hits in the top K / ``n_relevant``
- ``precision@K`` = hits in the top K / K
- ``hit_rate@K`` = 1 if there is a hit in the top K, else 0
- ``ndcg@K`` = DCG / IDCG with binary gains, ``DCG = sum 1/log2(rank + 1)`` over
  the hits (rank from 1) and IDCG the DCG of ``min(K, n_relevant)`` hits in the
  first ranks.

The protocol averages each figure over users; these functions return per-user
values so callers can also average them per segment.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

METRIC_NAMES: tuple[str, ...] = ("recall", "precision", "hit_rate", "ndcg")
COVERAGE_K = 10


def metric_key(name: str, k: int) -> str:
    """The key of a metric in result dictionaries, e.g. ``recall@10``."""
    return f"{name}@{k}"


def discounts(depth: int) -> np.ndarray:
    """``1 / log2(rank + 1)`` for ranks ``1..depth``: ``[depth]`` float64."""
    return 1.0 / np.log2(np.arange(2, depth + 2, dtype=np.float64))


def per_user_metrics(
    hits: np.ndarray, n_relevant: np.ndarray, ks: Sequence[int]
) -> dict[str, np.ndarray]:
    """Recall, precision, hit rate and NDCG at each K, per user.

    Args:
        hits: ``[users, depth]`` bool hit matrix, ``depth >= max(ks)``.
        n_relevant: ``[users]`` holdout-set sizes, all >= 1.
        ks: Cut-offs.

    Returns:
        ``metric_key(name, k)`` -> ``[users]`` float64, for every name of
        :data:`METRIC_NAMES` and every ``k`` of ``ks``.
    """
    n_relevant = np.asarray(n_relevant, dtype=np.int64)
    depth = hits.shape[1]
    cum_hits = np.cumsum(hits, axis=1, dtype=np.int64)  # [users, depth]
    gains = discounts(depth)
    cum_dcg = np.cumsum(hits * gains, axis=1)  # [users, depth]
    ideal = np.cumsum(gains)  # ideal[j]: DCG of j + 1 hits in the first ranks
    out: dict[str, np.ndarray] = {}
    for k in ks:
        found = cum_hits[:, k - 1].astype(np.float64)
        idcg = ideal[np.minimum(k, n_relevant) - 1]
        out[metric_key("recall", k)] = found / n_relevant
        out[metric_key("precision", k)] = found / k
        out[metric_key("hit_rate", k)] = (found > 0).astype(np.float64)
        out[metric_key("ndcg", k)] = cum_dcg[:, k - 1] / idcg
    return out


def recall_curve(hits: np.ndarray, n_relevant: np.ndarray, max_k: int) -> np.ndarray:
    """Recall at ``K = 1..max_k`` per user: ``[users, max_k]`` float64."""
    cum_hits = np.cumsum(hits[:, :max_k], axis=1, dtype=np.int64)
    return cum_hits / np.asarray(n_relevant, dtype=np.float64)[:, None]
