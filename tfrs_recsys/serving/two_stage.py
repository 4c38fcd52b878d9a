"""The two-stage export: retrieval then ranking in one SavedModel.

``tfrs-recsys export --run-dir RETRIEVAL_RUN --rerank RANKING_RUN
--candidates M`` (:func:`~tfrs_recsys.serving.export.export_run` with
``rerank``) builds a :class:`~tfrs_recsys.serving.module.RecommenderModule`
over a :class:`~tfrs_recsys.serving.index.TwoStageIndex`: a known user's
retrieval query vector scores the catalog, the user's train items are masked,
the top ``M`` are the candidates, the ranking head scores those ``M`` pairs
(the user's and the items' ranking encodings, computed at export) and the
answer is the top ``N`` of the ``M`` by the ranking logit. Unknown users get
the most popular items, as in every export. Stock TensorFlow ops only.

Signatures: ``serving_default`` (``N = -n``, at most ``M``) and
``recommend_k`` (``k`` clipped to ``[0, M]``); their ``scores`` are the
ranking model's logits.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from tfrs_recsys.errors import ConfigError
from tfrs_recsys.models.serving_parts import ServingParts
from tfrs_recsys.serving.index import TwoStageIndex
from tfrs_recsys.serving.module import RecommenderModule
from tfrs_recsys.serving.tables import tables_from_pairs
from tfrs_recsys.serving.verify import ExportError

_NOT_A_USER = "\x00 not a user \x00"


def check_two_stage_options(
    *, n: int, candidates: int, index: str, cold_start_text: bool, n_items: int | None = None
) -> None:
    """One-line ConfigErrors for options a two-stage export cannot take.

    Raises:
        ConfigError: ``candidates < 1``, ``n`` above the candidates (or the
            catalog), an index other than ``brute_force``, or ``cold_start_text``.
    """
    from tfrs_recsys.models.two_stage import check_candidates

    check_candidates(candidates)
    usable = candidates if n_items is None else min(candidates, n_items)
    if n > usable:
        raise ConfigError(
            f"-n {n} is more than the {usable} candidates the ranking model re-orders; "
            "use -n <= --candidates"
        )
    if index != "brute_force":
        raise ConfigError("--rerank exports use --index brute_force (the exact first stage)")
    if cold_start_text:
        raise ConfigError("--cold-start-text cannot be combined with --rerank")


def build_two_stage_module(
    dataset,
    first: ServingParts,
    second: ServingParts,
    pair_logits,
    *,
    exclude_pairs,
    popularity_pairs,
    n: int,
    candidates: int,
    exclude: bool,
) -> tuple[RecommenderModule, dict[str, Any]]:
    """The two-stage module and its signatures (``serving_default``, ``recommend_k``).

    Args:
        dataset: The served users and items.
        first: The retrieval model's serving parts (query and candidate vectors).
        second: The ranking model's serving parts (``kind == "ranking"``).
        pair_logits: The ranking head on paired rows, ``([p, d], [p, d']) -> [p, 1]``.
        exclude_pairs: Pairs masked for known users (the train positives) or ``None``.
        popularity_pairs: Pairs whose counts rank the catalog for unknown users.
        n: Items of ``serving_default``.
        candidates: ``M``.
        exclude: Whether ``exclude_pairs`` are masked.
    """
    if first.kind != "retrieval" or second.kind != "ranking":
        raise ConfigError(
            f"a two-stage export stacks a retrieval and a ranking model, got {first.kind} "
            f"and {second.kind}"
        )
    first_dim = int(first.user_vectors.shape[1])
    queries = np.concatenate([first.user_vectors, second.user_vectors], axis=1)
    tables = tables_from_pairs(
        dataset, dataclasses.replace(first, user_vectors=queries), exclude_pairs, popularity_pairs
    )

    def index_builder(item_vectors: tf.Variable) -> TwoStageIndex:
        return TwoStageIndex(
            item_vectors,
            second.item_vectors,
            pair_logits,
            first_dim=first_dim,
            candidates=candidates,
            first_score=first.score_chunk,
            cells_per_chunk=first.cells_per_chunk,
            pairs_per_chunk=second.cells_per_chunk,
        )

    module = RecommenderModule(tables, n=n, exclude=exclude, index_builder=index_builder)
    signatures = {
        "serving_default": module.serving_default.get_concrete_function(),
        "recommend_k": module.recommend_k.get_concrete_function(),
    }
    return module, signatures


def two_stage_manifest(ranking_run, candidates: int, n_items: int) -> dict[str, Any]:
    """The manifest entries of a two-stage export (``kind`` and ``two_stage``)."""
    config = ranking_run.config
    return {
        "kind": "two_stage",
        "two_stage": {
            "ranking_run_dir": str(Path(ranking_run.run_dir).resolve()),
            "ranking_config_name": config.name,
            "ranking_feature_set": config.model.feature_set,
            "candidates": int(candidates),
            "candidates_used": int(min(candidates, n_items)),
            "scores": "ranking model logits of the re-ordered candidates",
        },
    }


def verify_two_stage(loaded, recommender, data, user: str, *, n: int) -> None:
    """Checks the reloaded two-stage export against the in-process two stages.

    A known user's ``serving_default`` must be the first ``n`` items of
    :meth:`~tfrs_recsys.models.two_stage.TwoStageRecommender.rerank` (train
    items masked) with their ranking logits; an unknown id the popular items.

    Raises:
        ExportError: The export answers otherwise.
    """
    answer = loaded.signatures["serving_default"](user_id=tf.constant([user, _NOT_A_USER]))
    ids = answer["item_ids"].numpy().astype(str)
    scores = answer["scores"].numpy()
    if answer["known_user"].numpy().tolist() != [True, False]:
        raise ExportError(f"two-stage export: known_user wrong for [{user!r}, an unknown id]")
    dataset = data.dataset
    reranked = recommender.rerank(dataset.table("user").index_of([user]))
    count = int(min(n, reranked.candidates[0]))
    rows = reranked.order[0, :count]
    want = [str(i) for i in dataset.table("item").ids[rows]]
    if ids[0][:count].tolist() != want:
        raise ExportError(
            f"two-stage export: items {ids[0].tolist()} for {user!r}, expected {want} "
            "(the in-process retrieval then ranking)"
        )
    logits = reranked.logits[0, :count]
    tolerance = 1e-4 * max(1.0, float(np.abs(logits).max(initial=1.0)))
    if not np.allclose(scores[0][:count], logits, atol=tolerance, rtol=1e-4):
        raise ExportError(f"two-stage export: scores of {user!r} differ from the ranking logits")
    _, pop_items = dataset.encode(data.split.train)
    counts = np.bincount(pop_items, minlength=dataset.n_items)
    popular = dataset.table("item").ids[np.argsort(-counts, kind="stable")[:n]]
    if ids[1].tolist() != [str(i) for i in popular]:
        raise ExportError(
            "two-stage export: the unknown-user fallback is not the popularity ranking"
        )
