"""The evaluation protocol (docs/evaluation.md) for any scorer.

(Over 500 lines: the task, its result and the one ranking loop that links them
are one concept, and splitting them would spread the protocol over modules.)

A *scorer* is any callable ``scorer(user_rows) -> scores`` that takes a
``[batch]`` int64 array of user row indices (row order of ``dataset.users``) and
returns ``[batch, n_items]`` scores (numpy or ``tf.Tensor``, cast to float32),
higher is better, columns in ``dataset.items`` row order. Models, popularity,
the generator's oracle and peer libraries all provide one, so they are all
measured by the same code.

:class:`EvaluationTask` holds the protocol's fixed inputs for one
``(dataset, split)`` and is reused for every model; :func:`evaluate` ranks the
catalog for each evaluated user, batch by batch:

1. call the scorer (the only model-dependent step),
2. set the user's *train* positives to ``-inf`` (they are never ranked),
3. ``tf.math.top_k`` over the catalog,
4. look the top items up in the user's holdout set with a sorted-key search
   (no dense ``[batch, n_items]`` holdout matrix, so large catalogs fit),
5. turn the hit matrix into metrics with numpy
   (:mod:`tfrs_recsys.evaluation.metrics`).

Conventions the protocol leaves open, decided here:

- *Holdout pairs that are also train pairs* (possible when the source repeats a
  row) are dropped from the user's holdout set: the item is masked, so it could
  never be a hit. Users left without holdout items are not evaluated.
  :attr:`EvaluationTask.dropped_holdout_pairs` counts the dropped pairs.
  Repeated pairs within train or within holdout count once.
- *Empty slots*: a ``-inf`` score means "not rankable". When fewer than K items
  have a score above ``-inf`` (a small catalog, or many train items), the
  remaining slots are misses and cover no item; masked items never count as
  hits or in coverage.
- *Ties* between equal scores go to the lower item row (``tf.math.top_k``'s
  documented order), so results are deterministic.
- ``coverage@10`` is computed over all evaluated users (and per segment over the
  segment's users): distinct items in a top-10 / catalog size.
- ``popularity_bins``: recall@10 of the holdout pairs grouped by the item's
  number of train positives (:mod:`tfrs_recsys.evaluation.popularity_bins`),
  counted from the same top-10 lists.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import tensorflow as tf

from tfrs_recsys.data.dataset import RecDataset
from tfrs_recsys.data.splits import Split
from tfrs_recsys.errors import ConfigError, NothingToEvaluateError
from tfrs_recsys.evaluation.metrics import (
    COVERAGE_K,
    METRIC_NAMES,
    metric_key,
    per_user_metrics,
    recall_curve,
)
from tfrs_recsys.evaluation.popularity_bins import (
    BIN_K,
    BIN_LABELS,
    binned_recall,
    count_bins,
    item_bins,
)
from tfrs_recsys.recommender import Scorer

logger = logging.getLogger(__name__)


DEFAULT_SPLIT = "holdout-80-20"


# --- The protocol's fixed inputs ------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class EvaluationTask:
    """What every model is evaluated on for one ``(dataset, split)``.

    Build it with :meth:`build` (or :meth:`from_split`). Per-user lists are
    stored CSR-style: the items of evaluated user ``j`` are
    ``items[offsets[j]:offsets[j + 1]]``, sorted ascending.

    Attributes:
        dataset_name: The dataset's schema name.
        split_name: The split's name (``holdout-80-20`` for the protocol).
        n_items: Catalog size (every item of the item table).
        user_rows: ``[U]`` int64, user rows with >= 1 holdout item, ascending.
        user_ids: ``[U]`` the ids of those users (for messages).
        train_offsets: ``[U + 1]`` int64 offsets into ``train_items``.
        train_items: Item rows of each evaluated user's train positives (masked).
        holdout_offsets: ``[U + 1]`` int64 offsets into ``holdout_items``.
        holdout_items: Item rows of each evaluated user's holdout positives.
        segment: The user column metrics are broken down by, or ``None``.
        segments: ``[U]`` str segment value of each evaluated user, or ``None``.
        dropped_holdout_pairs: Distinct holdout pairs dropped because they are
            also train pairs (see the module docstring).
        item_train_positives: ``[n_items]`` int64, each item's number of
            distinct train users over the whole train part (evaluated users or
            not), for :attr:`EvaluationResult.popularity_bins`. ``None`` (a
            task built by hand): counted from the evaluated users' train lists.
    """

    dataset_name: str
    split_name: str
    n_items: int
    user_rows: np.ndarray
    user_ids: np.ndarray
    train_offsets: np.ndarray
    train_items: np.ndarray
    holdout_offsets: np.ndarray
    holdout_items: np.ndarray
    segment: str | None
    segments: np.ndarray | None
    dropped_holdout_pairs: int = 0
    item_train_positives: np.ndarray | None = None

    @classmethod
    def build(
        cls,
        dataset: RecDataset,
        train: pd.DataFrame,
        holdout: pd.DataFrame,
        *,
        split_name: str = DEFAULT_SPLIT,
    ) -> EvaluationTask:
        """The task of ``dataset`` with the given train and holdout positives.

        Args:
            dataset: Gives the catalog, the user table (segments) and the id
                encoding.
            train: ``user_id``, ``item_id`` pairs masked at ranking time.
            holdout: ``user_id``, ``item_id`` pairs to retrieve.
            split_name: Recorded in every result.

        Raises:
            DataValidationError: An id is unknown to the dataset.
            NothingToEvaluateError: No user has a holdout item that is not also
                a train item.
        """
        n_items = dataset.n_items
        train_users, train_items = dataset.encode(train)
        holdout_users, holdout_items = dataset.encode(holdout)
        # One int64 key per pair, row-major: sorting keys sorts by user then item.
        train_keys = np.unique(train_users * n_items + train_items)
        holdout_keys = np.unique(holdout_users * n_items + holdout_items)
        also_train = np.isin(holdout_keys, train_keys, assume_unique=True)
        holdout_keys = holdout_keys[~also_train]
        if holdout_keys.size == 0:
            raise NothingToEvaluateError(
                f"no user of {dataset.schema.name!r} has a holdout positive that is not "
                f"also a train positive ({len(holdout)} holdout row(s)): nothing to evaluate"
            )
        user_rows = np.unique(holdout_keys // n_items)
        holdout_offsets, holdout_items_csr = _csr(holdout_keys, user_rows, n_items)
        item_train_positives = np.bincount(train_keys % n_items, minlength=n_items)
        train_keys = train_keys[np.isin(train_keys // n_items, user_rows)]
        train_offsets, train_items_csr = _csr(train_keys, user_rows, n_items)

        segment = dataset.schema.user_segment
        segments = None
        if segment is not None:
            segments = dataset.users[segment].to_numpy()[user_rows].astype(str).astype(object)
        dropped = int(also_train.sum())
        if dropped:
            logger.info(
                "%d holdout pair(s) are also train pairs; dropped from the holdout sets", dropped
            )
        return cls(
            dataset_name=dataset.schema.name,
            split_name=split_name,
            n_items=n_items,
            user_rows=user_rows,
            user_ids=dataset.table("user").ids[user_rows],
            train_offsets=train_offsets,
            train_items=train_items_csr,
            holdout_offsets=holdout_offsets,
            holdout_items=holdout_items_csr,
            segment=segment,
            segments=segments,
            dropped_holdout_pairs=dropped,
            item_train_positives=item_train_positives.astype(np.int64),
        )

    @classmethod
    def from_split(cls, dataset: RecDataset, split: Split) -> EvaluationTask:
        """:meth:`build` from a :class:`~tfrs_recsys.data.splits.Split`, keeping its name."""
        return cls.build(dataset, split.train, split.holdout, split_name=split.name)

    @property
    def n_users(self) -> int:
        """Evaluated users."""
        return len(self.user_rows)

    @property
    def holdout_counts(self) -> np.ndarray:
        """``[U]`` int64 holdout-set size of each evaluated user (>= 1)."""
        return np.diff(self.holdout_offsets)

    @property
    def holdout_keys(self) -> np.ndarray:
        """Sorted int64 keys ``position * n_items + item`` of the holdout pairs.

        ``position`` is the user's index in :attr:`user_rows`. Cached.
        """
        cached = self.__dict__.get("_holdout_keys")
        if cached is None:
            positions = np.repeat(np.arange(self.n_users, dtype=np.int64), self.holdout_counts)
            cached = positions * self.n_items + self.holdout_items
            object.__setattr__(self, "_holdout_keys", cached)
        return cached

    @property
    def train_positives_per_item(self) -> np.ndarray:
        """``[n_items]`` int64 train positives of each item (:attr:`item_train_positives`)."""
        if self.item_train_positives is not None:
            return self.item_train_positives
        return np.bincount(self.train_items, minlength=self.n_items).astype(np.int64)

    def train_items_of(self, position: int) -> np.ndarray:
        """Train item rows of the evaluated user at ``position``."""
        return self.train_items[self.train_offsets[position] : self.train_offsets[position + 1]]

    def holdout_items_of(self, position: int) -> np.ndarray:
        """Holdout item rows of the evaluated user at ``position``."""
        return self.holdout_items[
            self.holdout_offsets[position] : self.holdout_offsets[position + 1]
        ]


def _csr(keys: np.ndarray, user_rows: np.ndarray, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """Offsets ``[U + 1]`` and items of sorted pair keys, for the users ``user_rows``."""
    positions = np.searchsorted(user_rows, keys // n_items)
    counts = np.bincount(positions, minlength=len(user_rows))
    offsets = np.zeros(len(user_rows) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return offsets, (keys % n_items).astype(np.int64)


# --- Results ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class EvaluationResult:
    """The protocol's figures for one scorer on one task.

    Attributes:
        metrics: ``recall@K``, ``precision@K``, ``hit_rate@K``, ``ndcg@K`` for
            each K, then ``coverage@10``; means over the evaluated users.
        recall_curve: ``[curve_max_k]`` float64, recall@K for K = 1..curve_max_k.
        per_segment: Segment value -> the same metrics over that segment's users,
            plus ``users`` (their count). Empty when the schema has no segment.
        users: Evaluated users.
        eval_s: Wall time of :func:`evaluate`, scorer included.
        scorer_s: The part of ``eval_s`` spent inside the scorer.
        dataset: Dataset name.
        split: Split name.
        segment: The segment column, or ``None``.
        popularity_bins: Bin label -> ``items``, ``pairs``, ``hits@10`` and
            ``recall@10`` (``None`` for a bin without holdout pairs) of the
            holdout pairs binned by the item's train positives
            (:func:`tfrs_recsys.evaluation.popularity_bins.binned_recall`).
            Empty in a result read from a file written before it existed.
        standard_errors: Per metric of ``metrics`` (coverage excepted), the
            standard error of its mean over the users (``std / sqrt(users)``):
            how far another draw of users could move it. Empty in a result
            read from a file written before it existed.
    """

    metrics: dict[str, float]
    recall_curve: np.ndarray
    per_segment: dict[str, dict[str, float]]
    users: int
    eval_s: float
    scorer_s: float
    dataset: str
    split: str
    segment: str | None
    popularity_bins: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    standard_errors: dict[str, float] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dictionary (plain floats and lists)."""
        return {
            "dataset": self.dataset,
            "split": self.split,
            "users": int(self.users),
            "metrics": {k: float(v) for k, v in self.metrics.items()},
            "recall_curve": [float(v) for v in self.recall_curve],
            "segment": self.segment,
            "per_segment": {
                name: {k: (int(v) if k == "users" else float(v)) for k, v in values.items()}
                for name, values in self.per_segment.items()
            },
            "eval_s": float(self.eval_s),
            "scorer_s": float(self.scorer_s),
            "popularity_bins": {
                label: dict(figures) for label, figures in self.popularity_bins.items()
            },
            "standard_errors": {k: float(v) for k, v in self.standard_errors.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvaluationResult:
        """The inverse of :meth:`to_dict`."""
        try:
            return cls(
                metrics=dict(data["metrics"]),
                recall_curve=np.asarray(data["recall_curve"], dtype=np.float64),
                per_segment={k: dict(v) for k, v in data["per_segment"].items()},
                users=int(data["users"]),
                eval_s=float(data["eval_s"]),
                scorer_s=float(data.get("scorer_s", 0.0)),
                dataset=data["dataset"],
                split=data["split"],
                segment=data.get("segment"),
                popularity_bins={
                    str(label): dict(figures)
                    for label, figures in data.get("popularity_bins", {}).items()
                },
                standard_errors={
                    str(k): float(v) for k, v in data.get("standard_errors", {}).items()
                },
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ConfigError(f"malformed evaluation result: {exc!r}") from exc


# --- Evaluation ------------------------------------------------------------------


def evaluate(
    scorer: Scorer,
    task: EvaluationTask,
    *,
    ks: Sequence[int] = (10, 50),
    curve_max_k: int = 100,
    batch_size: int | None = None,
) -> EvaluationResult:
    """Ranks the catalog for every evaluated user and computes the protocol's metrics.

    Args:
        scorer: ``scorer(user_rows [batch] int64) -> [batch, n_items]`` scores
            (see the module docstring); called once per batch of users.
        task: The protocol's fixed inputs (:meth:`EvaluationTask.build`).
        ks: Cut-offs of recall, precision, hit rate and NDCG.
        curve_max_k: Length of the recall curve (recall@1..curve_max_k);
            at least ``max(ks)``.
        batch_size: Users per scorer call. Memory peaks at about
            ``2 * batch_size * n_items * 4`` bytes (the scorer's output and the
            masked copy). Default (``None``): :func:`default_batch_size`, 1024
            users up to 16,384 items, fewer for larger catalogs. The figures
            do not depend on it.

    Returns:
        The metrics, recall curve and per-segment breakdown.

    Raises:
        ConfigError: Bad ``ks``, ``curve_max_k`` or ``batch_size``; the scorer
            returned the wrong shape, a non-numeric array or NaN scores.

    Example:
        The generator's oracle on a tech-products directory::

            dataset = load_tech_products(directory)
            task = EvaluationTask.from_split(dataset, holdout_80_20(dataset.interactions))
            oracle = evaluate(load_truth(directory).probabilities, task)
            oracle.metrics["recall@10"], oracle.per_segment["Budget Conscious"]
    """
    return evaluate_tasks(
        scorer,
        [task],
        item_train_positives=task.train_positives_per_item,
        ks=ks,
        curve_max_k=curve_max_k,
        batch_size=batch_size,
    )


def evaluate_tasks(
    scorer: Scorer,
    tasks: Iterable[EvaluationTask],
    *,
    item_train_positives: np.ndarray,
    ks: Sequence[int] = (10, 50),
    curve_max_k: int = 100,
    batch_size: int | None = None,
) -> EvaluationResult:
    """:func:`evaluate` over the users of several tasks, as if they were one task.

    For a population too large to hold as one task: each task holds the
    train and holdout lists of one block of users (disjoint blocks of one
    split, :mod:`tfrs_recsys.evaluation.blocks`), and ``tasks`` may be a
    generator that builds a block only when it is reached, so that one
    block's lists are in memory at a time. The result is the one task of all
    the blocks' users would give: metrics are means over every evaluated
    user, coverage counts the items of every user's top 10. What is kept
    across blocks is ``O(users + items)``: the per-user metric values and
    the coverage and popularity counters.

    Args:
        scorer: As for :func:`evaluate`.
        tasks: Tasks of one dataset, split and catalog; their users must not
            overlap (a user in two blocks would count twice).
        item_train_positives: ``[n_items]`` each item's train positives over
            the whole train side (the popularity bins); a single task's own
            :attr:`EvaluationTask.train_positives_per_item` for one task.
        ks: As for :func:`evaluate`.
        curve_max_k: As for :func:`evaluate`.
        batch_size: As for :func:`evaluate`.

    Raises:
        ConfigError: As :func:`evaluate`; tasks of different catalogs or splits.
        NothingToEvaluateError: No task has a user to evaluate.
    """
    ks = _check_cutoffs(ks, curve_max_k, batch_size)
    started = time.perf_counter()
    scorer_s = 0.0
    first: EvaluationTask | None = None
    per_user_parts: dict[str, list[np.ndarray]] = {}
    segment_parts: list[np.ndarray] = []
    curve_sum = np.zeros(curve_max_k, dtype=np.float64)
    # covered[segment value][i]: item i is in the top-10 of some user of the segment.
    covered: dict[str, np.ndarray] = {}
    bin_of_item = item_bins(np.asarray(item_train_positives))
    bin_hits = np.zeros(len(BIN_LABELS), dtype=np.int64)
    holdout_bins = np.zeros(len(BIN_LABELS), dtype=np.int64)
    n_users = 0
    for task in tasks:
        if first is None:
            first = task
        elif (task.n_items, task.split_name, task.segment) != (
            first.n_items,
            first.split_name,
            first.segment,
        ):
            raise ConfigError(
                f"the evaluation blocks must share one catalog, split and segment column: "
                f"{first.n_items} items / {first.split_name!r} / {first.segment!r}, then "
                f"{task.n_items} items / {task.split_name!r} / {task.segment!r}"
            )
        if task.n_users == 0:
            continue
        users_per_call = default_batch_size(task.n_items) if batch_size is None else batch_size
        block = _rank_task(scorer, task, ks, curve_max_k, users_per_call, bin_of_item)
        scorer_s += block.scorer_s
        n_users += task.n_users
        for key, values in block.per_user.items():
            per_user_parts.setdefault(key, []).append(values)
        curve_sum += block.curve_sum
        bin_hits += block.bin_hits
        holdout_bins += count_bins(bin_of_item[task.holdout_items])
        for value, row in zip(block.segment_values, block.covered):
            if value in covered:
                covered[value] |= row
            else:
                covered[value] = row
        if task.segments is not None:
            segment_parts.append(task.segments)
    if first is None or n_users == 0:
        raise NothingToEvaluateError("the evaluation task has no user with a holdout item")
    task = first
    per_user = {key: np.concatenate(parts) for key, parts in per_user_parts.items()}

    metrics = {key: float(values.mean()) for key, values in per_user.items()}
    standard_errors = {
        key: float(values.std() / np.sqrt(n_users)) for key, values in per_user.items()
    }
    coverage_key = metric_key("coverage", COVERAGE_K)
    any_covered = np.zeros(task.n_items, dtype=bool)
    for row in covered.values():
        any_covered |= row
    metrics[coverage_key] = float(any_covered.sum() / task.n_items)
    per_segment: dict[str, dict[str, float]] = {}
    if task.segments is not None:
        segment_codes, segment_values = pd.factorize(np.concatenate(segment_parts), sort=True)
        for code, value in enumerate(segment_values):
            members = segment_codes == code
            figures: dict[str, float] = {
                key: float(values[members].mean()) for key, values in per_user.items()
            }
            figures[coverage_key] = float(covered[str(value)].sum() / task.n_items)
            figures["users"] = int(members.sum())
            per_segment[str(value)] = figures

    eval_s = time.perf_counter() - started
    logger.info(
        "evaluated %d users of %s (%s) in %.3f s (scorer %.3f s): %s",
        n_users,
        task.dataset_name,
        task.split_name,
        eval_s,
        scorer_s,
        ", ".join(f"{k}={v:.4f}" for k, v in metrics.items()),
    )
    return EvaluationResult(
        metrics=metrics,
        recall_curve=curve_sum / n_users,
        per_segment=per_segment,
        users=n_users,
        eval_s=eval_s,
        scorer_s=scorer_s,
        dataset=task.dataset_name,
        split=task.split_name,
        segment=task.segment,
        popularity_bins=binned_recall(count_bins(bin_of_item), holdout_bins, bin_hits),
        standard_errors=standard_errors,
    )


@dataclasses.dataclass
class _Ranked:
    """What :func:`_rank_task` keeps of one task's ranking."""

    per_user: dict[str, np.ndarray]
    curve_sum: np.ndarray
    segment_values: list[str]
    covered: np.ndarray
    bin_hits: np.ndarray
    scorer_s: float


def _rank_task(
    scorer: Scorer,
    task: EvaluationTask,
    ks: tuple[int, ...],
    curve_max_k: int,
    batch_size: int,
    bin_of_item: np.ndarray,
) -> _Ranked:
    """Ranks the catalog for the users of ``task``, batch by batch (the protocol's loop)."""
    depth = max(max(ks), curve_max_k, COVERAGE_K)
    top_n = min(depth, task.n_items)

    n_users = task.n_users
    counts = task.holdout_counts
    per_user = {
        metric_key(name, k): np.empty(n_users, dtype=np.float64)
        for k in ks
        for name in METRIC_NAMES
    }
    curve_sum = np.zeros(curve_max_k, dtype=np.float64)
    if task.segments is not None:
        segment_codes, segment_values = pd.factorize(task.segments, sort=True)
        segment_codes = segment_codes.astype(np.int64)
    else:
        segment_codes, segment_values = np.zeros(n_users, dtype=np.int64), np.array(["all"])
    covered = np.zeros((len(segment_values), task.n_items), dtype=bool)
    holdout_keys = task.holdout_keys
    bin_hits = np.zeros(len(BIN_LABELS), dtype=np.int64)
    bin_k = min(BIN_K, top_n)
    scorer_s = 0.0

    for start in range(0, n_users, batch_size):
        stop = min(start + batch_size, n_users)
        rows = task.user_rows[start:stop]
        called = time.perf_counter()
        raw = scorer(rows)
        scorer_s += time.perf_counter() - called
        scores = _score_matrix(raw, task, start, stop)

        # Train positives are never ranked.
        lo, hi = task.train_offsets[start], task.train_offsets[stop]
        local = np.repeat(np.arange(stop - start), np.diff(task.train_offsets[start : stop + 1]))
        scores[local, task.train_items[lo:hi]] = -np.inf

        values, items = tf.math.top_k(scores, k=top_n, sorted=True)
        ranked = values.numpy() > -np.inf  # [B, top_n]; -inf slots are empty
        items = items.numpy().astype(np.int64)

        # Hit lookup: sorted keys of this batch's holdout pairs, one search per slot.
        batch_keys = holdout_keys[task.holdout_offsets[start] : task.holdout_offsets[stop]]
        queries = np.arange(start, stop, dtype=np.int64)[:, None] * task.n_items + items
        found = np.searchsorted(batch_keys, queries)
        found_clipped = np.minimum(found, max(len(batch_keys) - 1, 0))
        hits = (batch_keys[found_clipped] == queries) & ranked
        if top_n < depth:
            hits = np.pad(hits, ((0, 0), (0, depth - top_n)))

        batch_counts = counts[start:stop]
        for key, values_of_batch in per_user_metrics(hits, batch_counts, ks).items():
            per_user[key][start:stop] = values_of_batch
        curve_sum += recall_curve(hits, batch_counts, curve_max_k).sum(axis=0)
        bin_hits += count_bins(bin_of_item[items[:, :bin_k][hits[:, :bin_k]]])

        top = items[:, :COVERAGE_K]
        shown = ranked[:, :COVERAGE_K]
        batch_segments = np.broadcast_to(segment_codes[start:stop, None], top.shape)
        covered[batch_segments[shown], top[shown]] = True

    return _Ranked(
        per_user=per_user,
        curve_sum=curve_sum,
        segment_values=[str(v) for v in segment_values],
        covered=covered,
        bin_hits=bin_hits,
        scorer_s=scorer_s,
    )


#: Score cells (users x items) of one scorer call by default: 64 MB of float32 scores.
SCORE_CELLS_PER_CALL = 1 << 24


def default_batch_size(n_items: int) -> int:
    """Users per scorer call by default: 1024, or fewer so that a call scores at most
    :data:`SCORE_CELLS_PER_CALL` cells (16 users at 1M items)."""
    return max(1, min(1024, SCORE_CELLS_PER_CALL // max(int(n_items), 1)))


def _check_cutoffs(ks: Sequence[int], curve_max_k: int, batch_size: int | None) -> tuple[int, ...]:
    try:
        cutoffs = tuple(ks)
    except TypeError:
        raise ConfigError(f"ks must be a sequence of positive integers, got {ks!r}") from None
    if not cutoffs:
        raise ConfigError("ks must name at least one cut-off, got an empty sequence")
    for k in cutoffs:
        if not _is_int(k) or k < 1:
            raise ConfigError(f"every k must be a positive integer, got {k!r} in ks={cutoffs}")
    if len(set(cutoffs)) != len(cutoffs):
        raise ConfigError(f"ks repeats a cut-off: {cutoffs}")
    if not _is_int(curve_max_k) or curve_max_k < 1:
        raise ConfigError(f"curve_max_k must be a positive integer, got {curve_max_k!r}")
    if curve_max_k < max(cutoffs):
        raise ConfigError(
            f"curve_max_k ({curve_max_k}) must be at least the largest k ({max(cutoffs)})"
        )
    if batch_size is not None and (not _is_int(batch_size) or batch_size < 1):
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    return tuple(int(k) for k in cutoffs)


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _score_matrix(raw: Any, task: EvaluationTask, start: int, stop: int) -> np.ndarray:
    """The scorer's output as a writable float32 copy, checked for shape and NaN."""
    expected = (stop - start, task.n_items)
    try:
        # Always a copy: masking writes into it, and the caller's array stays intact.
        scores = np.array(raw, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"the scorer must return a numeric [users, items] array, got "
            f"{type(raw).__name__} ({exc})"
        ) from exc
    if scores.shape != expected:
        raise ConfigError(
            f"the scorer returned scores of shape {scores.shape} for {expected[0]} user "
            f"row(s); expected {expected} = (users in the batch, items in the catalog "
            f"of {task.dataset_name!r})"
        )
    nan = np.isnan(scores)
    if nan.any():
        row, item = (int(x) for x in np.argwhere(nan)[0])
        raise ConfigError(
            f"the scorer returned NaN for user row {int(task.user_rows[start + row])} "
            f"(user {task.user_ids[start + row]!r}), item row {item} "
            f"({int(nan.sum())} NaN score(s) in this batch of {expected[0]} users)"
        )
    return scores
