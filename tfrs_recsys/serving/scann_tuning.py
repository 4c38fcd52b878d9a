"""ScaNN settings tuned on the exported model's own vectors: recall@10 against the exact top 10.

``export --index scann`` does not trust defaults from the catalog size alone.
:func:`tune_scann` measures, on a seeded sample of the known users (up to
:data:`DEFAULT_SAMPLE_USERS`), the exact top :data:`RECALL_K` of each user by
brute force (train items masked when the export masks them) and searches a
small grid of ScaNN settings:

- ``num_leaves``: ``sqrt(n_items)`` times :data:`LEAF_FACTORS` (one tree build each);
- ``num_leaves_to_search``: :data:`SEARCH_FRACTIONS` of the leaves;
- ``reorder``: :data:`REORDERS` candidates re-scored exactly.

The last two are search-time settings of one built tree, so the grid costs
three builds and a few dozen searches of the sample. Each setting's recall@10
is the mean, over the sampled users, of the share of their exact top 10 that
the index returns through the serving code path
(:func:`~tfrs_recsys.serving.index.scann_masked_top_k`: the same fetch, mask
and top-k). The cheapest setting whose recall reaches the target is chosen;
"cheapest" is the estimated vectors scored per query, ``num_leaves +
num_leaves_to_search * n_items / num_leaves + reorder`` (deterministic, unlike
a wall-clock time on a shared machine; the measured milliseconds are recorded
too). The chosen tree itself (not a rebuild) goes into the SavedModel.

Catalogs under :data:`~tfrs_recsys.serving.index.SCANN_TREE_MIN_ITEMS` items
are searched exhaustively (no tree); their recall is measured and reported all
the same. If no setting reaches the target, :func:`tune_scann` raises a
one-line ``ConfigError`` naming the best recall reached (exit 2 in the CLI):
lower ``--scann-recall`` or export with ``--index brute_force``.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf

from tfrs_recsys.errors import ConfigError
from tfrs_recsys.serving.index import (
    SCANN_TREE_MIN_ITEMS,
    SCANN_USERS_PER_CHUNK,
    BruteForceIndex,
    build_scann_searcher,
    scann_masked_top_k,
)
from tfrs_recsys.serving.tables import ServingTables

__all__ = [
    "DEFAULT_SAMPLE_USERS",
    "DEFAULT_TARGET_RECALL",
    "ScannTuning",
    "check_target_recall",
    "exact_top_k",
    "recall_at_k",
    "sample_user_rows",
    "tune_scann",
]

DEFAULT_TARGET_RECALL = 0.95
DEFAULT_SAMPLE_USERS = 2000
SAMPLE_SEED = 0
RECALL_K = 10
LEAF_FACTORS = (0.5, 1.0, 2.0)
SEARCH_FRACTIONS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5)
REORDERS = (100, 250, 1000)


@dataclasses.dataclass(frozen=True)
class ScannTuning:
    """The outcome of :func:`tune_scann`.

    Attributes:
        settings: The chosen ``num_leaves``, ``num_leaves_to_search``, ``reorder``
            (``num_leaves = 0``: exhaustive search of a small catalog).
        recall: Its recall@k against the exact top k on the sample.
        target: The recall asked for.
        k: The k of the recall.
        users: Sampled users (rows of the user table, sorted).
        grid: Every setting tried, with its recall, estimated cost and search ms.
        searcher: The chosen tree, serialised (a ``ScannState`` module).
        seconds: Wall seconds of the exact answers, the builds and the searches.
        masked: Whether train items were masked (as the export serves).
        exact: ``[users, k]`` the sampled users' exact best item rows.
    """

    settings: dict[str, int]
    recall: float
    target: float
    k: int
    users: np.ndarray
    grid: list[dict[str, Any]]
    searcher: Any
    seconds: dict[str, float]
    masked: bool
    exact: np.ndarray

    def manifest(self) -> dict[str, Any]:
        """The ``scann`` entry of the export manifest."""
        return {
            "chosen": dict(self.settings),
            "recall_at_k": round(self.recall, 5),
            "k": self.k,
            "target_recall": self.target,
            "sample_users": len(self.users),
            "sample_seed": SAMPLE_SEED,
            "masked_train_items": self.masked,
            "cost": "estimated vectors scored per query: num_leaves + num_leaves_to_search * "
            "n_items / num_leaves + reorder (n_items without a tree)",
            "grid": self.grid,
            "seconds": {name: round(value, 2) for name, value in self.seconds.items()},
        }

    def line(self) -> str:
        """One line for the console: the chosen settings and the measured recall."""
        chosen = self.settings
        where = (
            "exhaustive search (small catalog)"
            if chosen["num_leaves"] == 0
            else f"num_leaves={chosen['num_leaves']}, num_leaves_to_search="
            f"{chosen['num_leaves_to_search']}, reorder={chosen['reorder']}"
        )
        return (
            f"scann: {where}; recall@{self.k} {self.recall:.4f} against the exact top {self.k} "
            f"(target {self.target:g}) on {len(self.users)} sampled users, "
            f"{len(self.grid)} settings tried"
        )


def check_target_recall(target: float) -> float:
    """``target`` as a float in ``(0, 1]``, or a one-line ConfigError naming ``--scann-recall``."""
    try:
        value = float(target)
    except (TypeError, ValueError):
        raise ConfigError(f"--scann-recall must be a number in (0, 1], got {target!r}") from None
    if not 0.0 < value <= 1.0:  # also false for NaN
        raise ConfigError(f"--scann-recall must be in (0, 1], got {target!r}")
    return value


def sample_user_rows(n_users: int, size: int, seed: int = SAMPLE_SEED) -> np.ndarray:
    """``min(size, n_users)`` distinct user rows drawn with ``seed``, sorted."""
    rng = np.random.default_rng(seed)
    if n_users <= size:
        return np.arange(n_users, dtype=np.int64)
    return np.sort(rng.choice(n_users, size=size, replace=False)).astype(np.int64)


def _exclusions(tables: ServingTables, rows: np.ndarray) -> tf.RaggedTensor:
    starts, ends = tables.exclude_splits[rows], tables.exclude_splits[rows + 1]
    values = [tables.exclude_items[s:e] for s, e in zip(starts, ends)]
    flat = np.concatenate(values) if values else np.zeros(0, np.int64)
    return tf.RaggedTensor.from_row_lengths(
        tf.constant(flat, tf.int64), tf.constant(ends - starts, tf.int64)
    )


def exact_top_k(
    tables: ServingTables, rows: np.ndarray, k: int, *, exclude: bool
) -> tuple[np.ndarray, float]:
    """``[len(rows), k]`` exact best item rows of the users ``rows`` (``-1`` padding), and seconds.

    The exported brute-force index (:class:`~tfrs_recsys.serving.index.BruteForceIndex`,
    chunks of users bounded by its cells per chunk), each user's train items
    masked when ``exclude``.
    """
    started = time.perf_counter()
    index = BruteForceIndex(tables.item_vectors)
    top_k = tf.function(index.top_k, autograph=False)
    queries = tf.constant(tables.user_vectors[rows])
    masks = _exclusions(tables, rows) if exclude else None
    _, found = top_k(queries, tf.constant(k, tf.int32), masks)
    return found.numpy(), time.perf_counter() - started


def recall_at_k(found: np.ndarray, exact: np.ndarray) -> float:
    """Mean over users of the share of their exact rows (``>= 0``) that ``found`` holds.

    Users whose exact answer is empty (everything masked) are left out.
    """
    shares = []
    for got, want in zip(found, exact):
        want = want[want >= 0]
        if len(want):
            shares.append(len(np.intersect1d(got[got >= 0], want)) / len(want))
    return float(np.mean(shares)) if shares else 1.0


def _leaf_counts(n_items: int) -> list[int]:
    if n_items < SCANN_TREE_MIN_ITEMS:
        return [0]
    base = math.sqrt(n_items)
    counts = {max(2, min(n_items // 10, round(base * f))) for f in LEAF_FACTORS}
    return sorted(counts)


def _cost(n_items: int, num_leaves: int, num_leaves_to_search: int, reorder: int) -> int:
    if num_leaves == 0:
        return n_items
    return int(round(num_leaves + num_leaves_to_search * n_items / num_leaves + reorder))


def _search(searcher, tables, rows, masks, k, settings) -> np.ndarray:
    found = []
    for start in range(0, len(rows), SCANN_USERS_PER_CHUNK):
        chunk = slice(start, start + SCANN_USERS_PER_CHUNK)
        scores, got = scann_masked_top_k(
            searcher,
            tf.constant(tables.user_vectors[rows[chunk]]),
            tf.constant(k, tf.int32),
            masks[chunk] if masks is not None else None,
            n_items=len(tables.item_ids),
            leaves_to_search=settings["num_leaves_to_search"],
            reorder=settings["reorder"],
        )
        found.append(np.where(np.isfinite(scores.numpy()), got.numpy(), -1))
    return np.concatenate(found, 0)


def tune_scann(
    tables: ServingTables,
    *,
    exclude: bool,
    target: float = DEFAULT_TARGET_RECALL,
    sample_users: int = DEFAULT_SAMPLE_USERS,
    k: int = RECALL_K,
    progress: Callable[[str], None] | None = None,
) -> ScannTuning:
    """The cheapest grid setting whose recall@k on a user sample reaches ``target``.

    Args:
        tables: The export's tables (user and item vectors, the mask).
        exclude: Mask each user's train items, as the export serves.
        target: Recall@k to reach, in ``(0, 1]``.
        sample_users: Users sampled (seed :data:`SAMPLE_SEED`); every user
            when there are fewer.
        k: The k of the recall (capped at the catalog size).
        progress: Receives a line per tree built.

    Returns:
        The :class:`ScannTuning`, its chosen tree serialised.

    Raises:
        ConfigError: ``target`` outside ``(0, 1]``, or no setting reaches it
            (the message names the best recall and its setting).
    """
    target = check_target_recall(target)
    n_items = len(tables.item_ids)
    k = max(1, min(int(k), n_items))
    rows = sample_user_rows(len(tables.user_ids), sample_users)
    if len(rows) == 0:
        raise ConfigError("--index scann: the export has no known user to measure recall on")
    exact, exact_s = exact_top_k(tables, rows, k, exclude=exclude)
    masks = _exclusions(tables, rows) if exclude else None
    seconds = {"exact": exact_s, "builds": 0.0, "searches": 0.0}
    item_vectors = np.asarray(tables.item_vectors, np.float32)
    grid: list[dict[str, Any]] = []
    best: tuple[tuple[int, float], dict[str, Any], Any] | None = None
    for leaves in _leaf_counts(n_items):
        started = time.perf_counter()
        if leaves == 0:
            settings_list = [{"num_leaves": 0, "num_leaves_to_search": 0, "reorder": 0}]
        else:
            to_search = sorted({max(1, min(leaves, round(leaves * f))) for f in SEARCH_FRACTIONS})
            settings_list = [
                {"num_leaves": leaves, "num_leaves_to_search": t, "reorder": r}
                for t in to_search
                for r in REORDERS
            ]
        searcher = build_scann_searcher(item_vectors, settings_list[-1])
        built = time.perf_counter() - started
        seconds["builds"] += built
        if progress is not None:
            progress(f"scann: built a tree of {leaves} leaves in {built:.1f} s")
        kept = None
        for settings in settings_list:
            started = time.perf_counter()
            found = _search(searcher, tables, rows, masks, k, settings)
            took = time.perf_counter() - started
            seconds["searches"] += took
            recall = recall_at_k(found, exact)
            cost = _cost(n_items, **settings)
            grid.append(
                {
                    **settings,
                    "recall_at_k": round(recall, 5),
                    "estimated_cost": cost,
                    "ms_per_query": round(1000 * took / len(rows), 4),
                }
            )
            if recall >= target and (best is None or (cost, -recall) < best[0]):
                best = ((cost, -recall), {**settings, "recall": recall}, None)
                kept = searcher
        if kept is not None:
            best = (best[0], best[1], kept.serialize_to_module())
        del searcher, kept
    if best is None:
        top = max(grid, key=lambda row: row["recall_at_k"])
        raise ConfigError(
            f"--index scann: no setting of the {len(grid)} tried reaches recall@{k} >= {target:g} "
            f"against the exact top {k} on {len(rows)} sampled users (best {top['recall_at_k']:.4f} "
            f"with num_leaves={top['num_leaves']}, num_leaves_to_search="
            f"{top['num_leaves_to_search']}, reorder={top['reorder']}); lower --scann-recall or "
            "export with --index brute_force"
        )
    chosen = best[1]
    recall = chosen.pop("recall")
    return ScannTuning(
        settings=chosen,
        recall=recall,
        target=target,
        k=k,
        users=rows,
        grid=grid,
        searcher=best[2],
        seconds=seconds,
        masked=bool(exclude),
        exact=exact,
    )
