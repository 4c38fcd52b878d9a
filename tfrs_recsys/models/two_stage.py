"""Retrieval then ranking: :class:`TwoStageRecommender`.

The first stage, a trained retrieval model, proposes each user's top ``M``
*candidates* (``candidates``, default :data:`DEFAULT_CANDIDATES`) among the
items the user has not seen (the train positives are excluded, as everywhere);
the second stage, a trained ranking model, re-orders those ``M`` by its logit.

As a :class:`~tfrs_recsys.recommender.Recommender` it ranks the whole catalog,
so the evaluation protocol applies unchanged: the candidates come first, in the
ranking model's order (ties keep the retrieval order), then every other unseen
item in the retrieval order, then the seen items (score ``-inf``). Only the
first ``M`` places differ from the retrieval model's ranking, so recall@K for
``K > M`` is the retrieval model's, and recall@K for ``K <= M`` measures the
re-ranking. The scores it hands the evaluator are positions (``n_items - p``
for the item in place ``p``), not model scores; :meth:`TwoStageRecommender.rerank`
gives the ranking logits.

Example:
    >>> retrieval, ranking = load_run("runs/tech_all"), load_run("runs/tech_ranking_all")
    >>> model = TwoStageRecommender.from_runs(retrieval, ranking, candidates=200)
    >>> evaluate(model.scorer(), EvaluationTask.from_split(model.dataset, retrieval.data.split))
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tfrs_recsys.data.dataset import RecDataset
from tfrs_recsys.errors import ConfigError
from tfrs_recsys.recommender import Scorer

logger = logging.getLogger(__name__)

#: Candidates the first stage proposes per user unless told otherwise.
DEFAULT_CANDIDATES = 200

#: ``(user_rows [b], item_rows [b, m]) -> ranking logits [b, m]``.
CandidateScorer = Callable[[np.ndarray, np.ndarray], np.ndarray]


def check_candidates(candidates: Any, flag: str = "--candidates") -> int:
    """``candidates`` as an ``int >= 1``.

    Raises:
        ConfigError: Not a whole number, or below 1 (naming ``flag``).
    """
    if isinstance(candidates, bool) or not isinstance(candidates, (int, np.integer)):
        raise ConfigError(f"{flag} must be a whole number >= 1, got {candidates!r}")
    if candidates < 1:
        raise ConfigError(f"{flag} must be at least 1 (candidates per user), got {candidates}")
    return int(candidates)


@dataclasses.dataclass(frozen=True)
class Reranked:
    """The two-stage ranking of a batch of users.

    Attributes:
        order: ``[b, n_items]`` int64 item rows, best first: the re-ranked
            candidates, then the other unseen items in retrieval order, then
            the seen items (in no meaningful order).
        rankable: ``[b]`` int64 unseen items per user (``order[j, :rankable[j]]``
            are the ranked ones).
        candidates: ``[b]`` int64 candidates per user (``min(M, rankable)``).
        logits: ``[b, M]`` float32 ranking logits of ``order[:, :M]``; ``-inf``
            past a user's candidates.
    """

    order: np.ndarray
    rankable: np.ndarray
    candidates: np.ndarray
    logits: np.ndarray

    def scores(self) -> np.ndarray:
        """``[b, n_items]`` float32 scores in item-row order that sort as :attr:`order`.

        The item in place ``p`` scores ``n_items - p``; seen items ``-inf``.
        """
        batch, n_items = self.order.shape
        places = np.arange(n_items, dtype=np.int64)[None, :]
        values = np.where(places < self.rankable[:, None], n_items - places, -np.inf)
        scores = np.empty((batch, n_items), np.float32)
        np.put_along_axis(scores, self.order, values.astype(np.float32), axis=1)
        return scores


def rerank_order(
    retrieval_scores: np.ndarray, candidate_logits: Callable[[np.ndarray], np.ndarray], m: int
) -> Reranked:
    """The two-stage order of retrieval scores whose seen items are already ``-inf``.

    Args:
        retrieval_scores: ``[b, n_items]`` first-stage scores, ``-inf`` for
            items never to rank (the user's train positives).
        candidate_logits: ``item_rows [b, m'] -> logits [b, m']`` of the
            ranking model for each user's candidates.
        m: Candidates per user (clipped to the catalog).

    Returns:
        The :class:`Reranked` order. Retrieval ties go to the lower item row
        (as ``tf.math.top_k`` and the evaluator break them); ranking ties keep
        the retrieval order.
    """
    scores = np.asarray(retrieval_scores, dtype=np.float32)
    batch, n_items = scores.shape
    m = min(int(m), n_items)
    order = np.argsort(-scores, axis=1, kind="stable")
    rankable = np.isfinite(scores).sum(axis=1).astype(np.int64)
    candidates = np.minimum(rankable, m)
    head = order[:, :m]
    valid = np.arange(m)[None, :] < candidates[:, None]
    logits = np.array(candidate_logits(head), dtype=np.float32).reshape(batch, m)
    logits = np.where(valid, logits, -np.inf).astype(np.float32)
    within = np.argsort(-logits, axis=1, kind="stable")
    order = order.copy()
    order[:, :m] = np.take_along_axis(head, within, axis=1)
    logits = np.take_along_axis(logits, within, axis=1)
    return Reranked(order=order, rankable=rankable, candidates=candidates, logits=logits)


class ExcludedItems:
    """Each user row's items never to rank (train positives), CSR by user row.

    Args:
        dataset: Gives the id encoding and the user count.
        pairs: ``user_id``, ``item_id`` pairs to exclude, or ``None``.
    """

    def __init__(self, dataset: RecDataset, pairs: pd.DataFrame | None) -> None:
        self.n_items = dataset.n_items
        if pairs is None or len(pairs) == 0:
            keys = np.zeros(0, np.int64)
        else:
            users, items = dataset.encode(pairs)
            keys = np.unique(users.astype(np.int64) * self.n_items + items)
        counts = np.bincount(keys // self.n_items, minlength=dataset.n_users)
        self.splits = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self.items = (keys % self.n_items).astype(np.int64)

    def mask(self, scores: np.ndarray, user_rows: np.ndarray) -> None:
        """Sets ``scores[j, item]`` to ``-inf`` for the excluded items of ``user_rows[j]``."""
        starts, stops = self.splits[user_rows], self.splits[user_rows + 1]
        local = np.repeat(np.arange(len(user_rows)), stops - starts)
        if local.size:
            positions = np.concatenate([np.arange(a, b) for a, b in zip(starts, stops)])
            scores[local, self.items[positions]] = -np.inf


class TwoStageRecommender:
    """A retrieval model's top ``candidates`` re-ordered by a ranking model.

    Args:
        retrieval: The first stage (anything with ``scorer()``; a
            :class:`~tfrs_recsys.models.retrieval.RetrievalModel` to export).
        ranking: The second stage, a
            :class:`~tfrs_recsys.models.ranking.RankingModel`.
        dataset: The dataset both were trained on.
        exclude: ``user_id``, ``item_id`` pairs never recommended (the train
            positives), or ``None``.
        candidates: ``M``, candidates per user; clipped to the catalog size.

    Raises:
        ConfigError: ``candidates`` is not a whole number >= 1.
    """

    def __init__(
        self,
        retrieval,
        ranking,
        dataset: RecDataset,
        exclude: pd.DataFrame | None,
        *,
        candidates: int = DEFAULT_CANDIDATES,
    ) -> None:
        requested = check_candidates(candidates)
        self.retrieval = retrieval
        self.ranking = ranking
        self.dataset = dataset
        self.excluded = ExcludedItems(dataset, exclude)
        self.requested_candidates = requested
        self.candidates = min(requested, dataset.n_items)
        if self.candidates < requested:
            logger.warning(
                "%d candidates asked for a catalog of %d items: every item is re-ranked",
                requested,
                dataset.n_items,
            )

    @classmethod
    def from_runs(
        cls, retrieval_run, ranking_run, *, candidates: int = DEFAULT_CANDIDATES
    ) -> TwoStageRecommender:
        """The two stages of two trained runs (``TrainedRun`` of ``train`` / ``load_run``).

        Raises:
            ConfigError: The runs are not a retrieval and a ranking run on the
                same data and split (:func:`check_stages`), or bad ``candidates``.
        """
        check_candidates(candidates)
        check_stages(retrieval_run, ranking_run)
        data = retrieval_run.data
        return cls(
            retrieval_run.model,
            ranking_run.model,
            data.dataset,
            data.split.train,
            candidates=candidates,
        )

    @property
    def gives_probabilities(self) -> bool:
        """The evaluator's scores are places, not probabilities."""
        return False

    def probabilities(self, user_rows: np.ndarray, item_rows: np.ndarray) -> np.ndarray:
        """Not available: use the ranking model's ``probabilities``.

        Raises:
            ConfigError: Always.
        """
        raise ConfigError(
            "a two-stage recommender ranks; its ranking model's probabilities() gives p(like)"
        )

    def rerank(self, user_rows: np.ndarray) -> Reranked:
        """The two-stage order of the users ``user_rows [b]`` (int64 user-table rows)."""
        return self._reranker()(np.asarray(user_rows, dtype=np.int64))

    def _reranker(self) -> Callable[[np.ndarray], Reranked]:
        first = self.retrieval.scorer()
        second: CandidateScorer = self.ranking.candidate_scorer()

        def rerank(rows: np.ndarray) -> Reranked:
            scores = np.array(first(rows), dtype=np.float32)
            self.excluded.mask(scores, rows)
            return rerank_order(scores, lambda items: second(rows, items), self.candidates)

        return rerank

    def scorer(self) -> Scorer:
        """A scorer for the evaluator: the order of :meth:`rerank` as scores (see the module)."""
        rerank = self._reranker()

        def score(user_rows: np.ndarray) -> np.ndarray:
            return rerank(np.asarray(user_rows, dtype=np.int64)).scores()

        return score


def _data_key(config) -> tuple[str, float, str]:
    source = str(config.data.source)
    path = Path(source).expanduser()
    if path.exists():
        source = str(path.resolve())
    return source, float(config.data.min_rating), str(config.data.split)


def check_stages(retrieval_run, ranking_run, flags: tuple[str, str] = ("--run-dir", "--rerank")):
    """Checks that two runs can be stacked: a retrieval and a ranking run, same data and split.

    Args:
        retrieval_run, ranking_run: ``TrainedRun`` objects (``load_run``).
        flags: How the two runs were named to the user, for the messages.

    Raises:
        ConfigError: One line naming the run and what differs.
    """
    first, second = flags
    kinds = (retrieval_run.config.model.kind, ranking_run.config.model.kind)
    if kinds[0] != "retrieval":
        raise ConfigError(
            f"{first} {retrieval_run.run_dir}: the first stage must be a retrieval run "
            f"(model.kind = 'retrieval'), got {kinds[0]!r}"
        )
    if kinds[1] != "ranking":
        raise ConfigError(
            f"{second} {ranking_run.run_dir}: the second stage must be a ranking run "
            f"(model.kind = 'ranking'), got {kinds[1]!r}"
        )
    a, b = _data_key(retrieval_run.config), _data_key(ranking_run.config)
    same_tables = _same_tables(retrieval_run.data.dataset, ranking_run.data.dataset)
    if a != b or not same_tables:
        what = "data.source, data.min_rating, data.split" if a != b else "user or item tables"
        raise ConfigError(
            f"{second} {ranking_run.run_dir}: trained on other data than {first} "
            f"{retrieval_run.run_dir} ({what}: {b} vs {a}); both stages must be trained on the "
            "same data and split"
        )


def _same_tables(a: RecDataset, b: RecDataset) -> bool:
    return (
        a.n_users == b.n_users
        and a.n_items == b.n_items
        and np.array_equal(a.table("user").ids, b.table("user").ids)
        and np.array_equal(a.table("item").ids, b.table("item").ids)
    )


def candidate_negative_exclusions(
    retrieval, dataset: RecDataset, seen: pd.DataFrame, candidates: int, batch_size: int = 1024
) -> pd.DataFrame:
    """Pairs whose exclusion leaves only each user's retrieval candidates as negatives.

    Hard negatives for a second stage: with ``exclude`` set to these pairs,
    :func:`~tfrs_recsys.data.pipelines.ranking_dataset` draws each user's
    negatives from the first stage's top ``candidates`` items outside ``seen``,
    the items the ranking model will have to re-order, instead of the whole
    catalog.

    Args:
        retrieval: The first stage (anything with ``scorer()``).
        dataset: The dataset it ranks.
        seen: ``user_id``, ``item_id`` pairs that are never candidates nor
            negatives (the train positives).
        candidates: ``M``, clipped to the catalog.
        batch_size: Users per scorer call.

    Returns:
        ``user_id``, ``item_id`` pairs: ``seen`` plus every item outside the
        user's ``M`` candidates.
    """
    m = min(check_candidates(candidates), dataset.n_items)
    excluded = ExcludedItems(dataset, seen)
    score = retrieval.scorer()
    keep = np.zeros((dataset.n_users, dataset.n_items), dtype=bool)
    for start in range(0, dataset.n_users, batch_size):
        rows = np.arange(start, min(start + batch_size, dataset.n_users), dtype=np.int64)
        scores = np.array(score(rows), dtype=np.float32)
        excluded.mask(scores, rows)
        top = np.argsort(-scores, axis=1, kind="stable")[:, :m]
        finite = np.isfinite(np.take_along_axis(scores, top, axis=1))
        keep[np.repeat(rows, m)[finite.ravel()], top.ravel()[finite.ravel()]] = True
    users, items = np.nonzero(~keep)
    return pd.DataFrame(
        {
            "user_id": dataset.table("user").ids[users],
            "item_id": dataset.table("item").ids[items],
        }
    )
