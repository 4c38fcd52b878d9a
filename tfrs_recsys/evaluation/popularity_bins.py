"""Recall@10 of holdout pairs binned by the item's train popularity (the long tail).

An item's *train positives* are the distinct users that have it as a train
positive in the split's train part (all users, evaluated or not). Every item
falls into one of the fixed bins of :data:`BIN_LABELS`, whose edges do not
depend on the data, so a bin means the same on every dataset:

- ``0``: no train positive, a *cold* item; only its features can rank it;
- ``1-4``: an id vector updated by a handful of pairs;
- ``5-19``: a rare item;
- ``20-99``: a mid-popularity item;
- ``100-499``: a popular item;
- ``500+``: the head.

The edges after ``0`` grow by about x5, so each bin spans the same ratio of
collaborative signal. For bin ``b`` (docs/evaluation.md):

``recall@10[b]`` = (holdout ``(user, item)`` pairs with the item in ``b`` that
are in the user's top 10) / (holdout pairs with the item in ``b``)

over the evaluated users, train items masked as in the protocol. It is a mean
over *pairs*, not over users, so a bin's figure is not diluted by the users
that have no holdout item in it. A bin without holdout pairs has recall
``None`` (``null`` in JSON): nothing to find, not a zero.
"""

from __future__ import annotations

from typing import Any

import numpy as np

BIN_LOWER_EDGES: tuple[int, ...] = (0, 1, 5, 20, 100, 500)
"""The smallest number of train positives of each bin."""
BIN_LABELS: tuple[str, ...] = ("0", "1-4", "5-19", "20-99", "100-499", "500+")
"""The bins' names, in :data:`BIN_LOWER_EDGES`' order (also the keys of results)."""
BIN_K = 10
"""The cut-off of the binned recall."""
RECALL_KEY = f"recall@{BIN_K}"
HITS_KEY = f"hits@{BIN_K}"


def item_bins(train_positives: np.ndarray) -> np.ndarray:
    """``[n_items]`` int64 bin index (into :data:`BIN_LABELS`) of each item.

    Args:
        train_positives: ``[n_items]`` non-negative train-positive counts.
    """
    counts = np.asarray(train_positives, dtype=np.int64)
    return np.searchsorted(np.asarray(BIN_LOWER_EDGES), counts, side="right").astype(np.int64) - 1


def count_bins(bins_of: np.ndarray) -> np.ndarray:
    """``[len(BIN_LABELS)]`` int64: how many entries of ``bins_of`` fall in each bin."""
    return np.bincount(np.asarray(bins_of, dtype=np.int64), minlength=len(BIN_LABELS))


def binned_recall(
    items: np.ndarray, pairs: np.ndarray, hits: np.ndarray
) -> dict[str, dict[str, Any]]:
    """The result's ``popularity_bins``: per bin label, counts and recall@10.

    Args:
        items: ``[bins]`` catalog items per bin.
        pairs: ``[bins]`` holdout pairs per bin.
        hits: ``[bins]`` of those pairs found in the user's top 10.

    Returns:
        ``{label: {"items": int, "pairs": int, "hits@10": int, "recall@10":
        float or None}}`` in :data:`BIN_LABELS`' order; ``None`` when the bin
        has no holdout pair.
    """
    return {
        label: {
            "items": int(items[b]),
            "pairs": int(pairs[b]),
            HITS_KEY: int(hits[b]),
            RECALL_KEY: float(hits[b] / pairs[b]) if pairs[b] else None,
        }
        for b, label in enumerate(BIN_LABELS)
    }
