"""The exported object: :class:`RecommenderModule`, its tables and signatures.

``b`` is the batch size, ``N`` the module's ``n``:

``serving_default``
    ``user_id`` string ``[b]`` -> ``item_ids`` string ``[b, N]``, ``scores``
    float32 ``[b, N]``, ``known_user`` bool ``[b]``. Known users (rows of the
    user table) are looked up in an in-graph hash table; their vectors and the
    item vectors were computed at export, so serving is a lookup and the
    index's top-k. Their train positives are masked (unless ``exclude`` is
    off). Unknown, empty or malformed ids are no error: they get the most
    popular items (train positive counts as scores) and ``known_user = false``.
    If a known user has fewer than ``N`` items left after the mask, the tail
    is padded with ``""`` and ``-inf``.
``recommend_k``
    the same plus ``k`` int32 scalar: outputs ``[b, k']``, ``k' = clip(k, 0,
    catalog size)``.
``recommend_from_features`` (models with user features besides the id)
    raw user columns -> ``item_ids`` / ``scores`` ``[b, N]`` for new users; the
    id goes in as ``""`` (the out-of-vocabulary bucket); nothing is masked.
``score_items`` (dot-product models)
    ``user_id`` ``[b]`` plus raw item columns ``[m]`` -> ``scores`` ``[b, m]``
    and ``known_user`` ``[b]``; the item tower runs in graph; users outside the
    table get the model's ``unknown_query``.
``score`` (models with a pair probability)
    ``user_id``, ``item_id`` ``[b]`` -> ``probability`` ``[b]`` and ``known``
    ``[b]`` (both ids known; ``probability = 0`` otherwise).

Every signature checks its inputs in graph: a column that is not a vector, a
``k`` that is not a scalar, or feature columns of different lengths fail with
``InvalidArgument`` naming the input. A non-finite numeric feature (NaN,
+-inf) is no error: it counts as missing and gets the column's train mean
(:class:`~tfrs_recsys.features.side_encoder.SideEncoder`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import tensorflow as tf

from tfrs_recsys.errors import ConfigError
from tfrs_recsys.models.serving_parts import RETRIEVAL_CELLS_PER_CHUNK, ScoreChunk, ServingParts
from tfrs_recsys.serving.index import TopKIndex, build_index, dot_scores
from tfrs_recsys.serving.tables import ServingTables
from tfrs_recsys.serving.text import text_fallbacks


def _string_spec(name: str) -> tf.TensorSpec:
    return tf.TensorSpec([None], tf.string, name=name)


def checked_columns(signature: str, columns: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    """``columns`` checked in graph: each a vector ``[b]``, all of one length.

    The signature's input specs say so, but a served request is not held to
    them; without these checks a bad one fails deep in the towers with a
    message that names no input.

    Raises:
        tf.errors.InvalidArgumentError: At run time, naming the input.
    """
    checked = {name: tf.ensure_shape(value, [None]) for name, value in columns.items()}
    if len(checked) < 2:
        return checked
    first, *others = checked
    length = tf.shape(checked[first])[0]
    asserts = [
        tf.debugging.assert_equal(
            tf.shape(checked[name])[0],
            length,
            message=f"{signature}: input {name} has a different length from input {first} "
            "(one value per row in every column)",
        )
        for name in others
    ]
    with tf.control_dependencies(asserts):
        return {name: tf.identity(value) for name, value in checked.items()}


def checked_k(k: tf.Tensor) -> tf.Tensor:
    """``k`` checked in graph to be a scalar (``InvalidArgument`` naming ``k`` otherwise)."""
    return tf.ensure_shape(k, [])


class RecommenderModule(tf.Module):
    """The exported object: in-graph tables, the top-k index and the signatures.

    Args:
        tables: Ids, vectors, the mask and the popularity fallback.
        n: Items per user of ``serving_default`` and ``recommend_from_features``.
        exclude: Mask each known user's ``exclude`` items.
        score_chunk: ``(user vectors [u, d], item vectors [m, d']) -> scores
            [u, m]``; default the dot product.
        cells_per_chunk: Bound on ``u * m`` per score matrix.
        index: ``brute_force`` or ``scann`` (approximate, needs the ScaNN ops).
        scann_options: ``num_leaves``, ``num_leaves_to_search``, ``reorder``
            of the ScaNN tree (defaults from the catalog size).
        scann_searcher: A built ScaNN searcher module of these item vectors
            (the tuned one), instead of building one from ``scann_options``.
        index_builder: Builds the index from the item vectors variable
            instead of ``index`` (e.g. a
            :class:`~tfrs_recsys.serving.index.TwoStageIndex`).
    """

    def __init__(
        self,
        tables: ServingTables,
        *,
        n: int = 10,
        exclude: bool = True,
        score_chunk: ScoreChunk | None = None,
        cells_per_chunk: int = RETRIEVAL_CELLS_PER_CHUNK,
        index: str = "brute_force",
        scann_options: Mapping[str, int] | None = None,
        scann_searcher: tf.Module | None = None,
        index_builder: Callable[[tf.Variable], TopKIndex] | None = None,
    ) -> None:
        super().__init__(name="recommender")
        n_users, n_items = len(tables.user_ids), len(tables.item_ids)
        if n_items == 0:
            raise ConfigError("cannot export a model of an empty catalog")
        self.n = int(n)
        self.exclude = bool(exclude)
        self.n_items = n_items
        self.user_table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(list(tables.user_ids), tf.string), tf.range(n_users, dtype=tf.int64)
            ),
            default_value=-1,
            name="user_rows",
        )
        self.item_table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(list(tables.item_ids), tf.string), tf.range(n_items, dtype=tf.int64)
            ),
            default_value=-1,
            name="item_rows",
        )
        self.user_vectors = tf.Variable(tables.user_vectors, trainable=False, name="user_vectors")
        self.item_vectors = tf.Variable(tables.item_vectors, trainable=False, name="item_vectors")
        self.item_ids = tf.Variable(
            tf.constant(list(tables.item_ids), tf.string), trainable=False, name="item_ids"
        )
        self.exclude_splits = tf.Variable(
            tables.exclude_splits, trainable=False, name="exclude_splits"
        )
        self.exclude_items = tf.Variable(
            tables.exclude_items, trainable=False, name="exclude_items"
        )
        order = np.argsort(-tables.popularity, kind="stable").astype(np.int32)
        self.popular_rows = tf.Variable(order, trainable=False, name="popular_rows")
        self.popular_scores = tf.Variable(
            tables.popularity[order], trainable=False, name="popular_scores"
        )
        if index_builder is not None:
            self.index = index_builder(self.item_vectors)
            return
        self.index = build_index(
            index,
            self.item_vectors,
            score_chunk=score_chunk,
            cells_per_chunk=cells_per_chunk,
            max_excluded=tables.max_excluded if exclude else 0,
            scann_options=scann_options,
            scann_searcher=scann_searcher,
        )

    # --- the graph -----------------------------------------------------------------------------

    def excluded_items(self, rows: tf.Tensor) -> tf.RaggedTensor:
        """Item rows to mask ``[u, (items)]`` for user rows ``[u]`` (``-1``: none)."""
        safe = tf.maximum(rows, 0)
        starts = tf.gather(self.exclude_splits, safe)
        lengths = tf.where(rows >= 0, tf.gather(self.exclude_splits, safe + 1) - starts, 0)
        positions = tf.ragged.range(starts, starts + lengths)
        return positions.with_flat_values(tf.gather(self.exclude_items, positions.flat_values))

    def _answer(self, scores: tf.Tensor, rows: tf.Tensor) -> dict[str, tf.Tensor]:
        ids = tf.gather(self.item_ids, tf.maximum(rows, 0))
        ids = tf.where(tf.math.is_finite(scores), ids, tf.constant("", tf.string))
        return {"item_ids": ids, "scores": scores}

    def _recommend(self, user_id: tf.Tensor, k: tf.Tensor) -> dict[str, tf.Tensor]:
        user_id = checked_columns("recommend", {"user_id": user_id})["user_id"]
        k = self.index.clip_k(checked_k(k))
        batch = tf.shape(user_id)[0]
        rows = self.user_table.lookup(user_id)
        known = rows >= 0
        # Only the known users are scored; everyone else gets the popular items.
        known_rows = tf.boolean_mask(rows, known)
        vectors = tf.gather(self.user_vectors, known_rows)
        exclude = self.excluded_items(known_rows) if self.exclude else None
        known_scores, known_items = self.index.top_k(vectors, k, exclude)
        # Position of each user among the known ones; the unknown point past the end,
        # at a dummy row (so that empty batches and k = 0 need no special case).
        position = tf.where(
            known, tf.cumsum(tf.cast(known, tf.int32), exclusive=True), tf.shape(known_rows)[0]
        )
        known_scores = tf.gather(
            tf.concat([known_scores, tf.zeros([1, k], tf.float32)], 0), position
        )
        known_items = tf.gather(tf.concat([known_items, tf.zeros([1, k], tf.int32)], 0), position)
        popular_scores = tf.tile(self.popular_scores[None, :k], [batch, 1])
        scores = tf.where(known[:, None], known_scores, popular_scores)
        items = tf.where(
            known[:, None], known_items, tf.tile(self.popular_rows[None, :k], [batch, 1])
        )
        return {**self._answer(scores, items), "known_user": known}

    @tf.function(input_signature=[_string_spec("user_id")], autograph=False)
    def serving_default(self, user_id: tf.Tensor) -> dict[str, tf.Tensor]:
        return self._recommend(user_id, tf.constant(self.n))

    @tf.function(
        input_signature=[_string_spec("user_id"), tf.TensorSpec([], tf.int32, name="k")],
        autograph=False,
    )
    def recommend_k(self, user_id: tf.Tensor, k: tf.Tensor) -> dict[str, tf.Tensor]:
        return self._recommend(user_id, k)

    def recommend_vectors(self, vectors: tf.Tensor, k: tf.Tensor) -> dict[str, tf.Tensor]:
        """Top ``k`` for query vectors ``[b, d]`` of new users (nothing masked)."""
        scores, items = self.index.top_k(vectors, k)
        return self._answer(scores, items)


def build_module(
    tables: ServingTables,
    parts: ServingParts,
    *,
    n: int,
    exclude: bool,
    index: str = "brute_force",
    cold_start_text=None,
    scann_options: Mapping[str, int] | None = None,
    scann_searcher: tf.Module | None = None,
) -> tuple[RecommenderModule, dict[str, Any]]:
    """The module and its signatures (concrete functions).

    Args:
        tables: The served users' and items' ids and vectors, mask, popularity.
        parts: The model's serving parts (score function, towers).
        n: Items per user of the fixed-size signatures.
        exclude: Mask known users' train items.
        index: ``brute_force`` or ``scann``.
        cold_start_text: A text encoder layer (the one the model's precomputed
            text vectors came from); when given, ``recommend_from_features``
            and ``score_items`` are traced with the text lookups falling back
            to it for strings outside their tables. The other signatures never
            read text.
        scann_options, scann_searcher: As :class:`RecommenderModule`.
    """
    module = RecommenderModule(
        tables,
        n=n,
        exclude=exclude,
        score_chunk=parts.score_chunk,
        cells_per_chunk=parts.cells_per_chunk,
        index=index,
        scann_options=scann_options,
        scann_searcher=scann_searcher,
    )
    signatures: dict[str, Any] = {
        "serving_default": module.serving_default.get_concrete_function(),
        "recommend_k": module.recommend_k.get_concrete_function(),
    }
    if parts.encode_user_features is not None:
        specs = parts.user_feature_specs
        names = list(specs)

        def from_features(*values):
            features = checked_columns("recommend_from_features", dict(zip(names, values)))
            return module.recommend_vectors(
                parts.encode_user_features(features), tf.constant(module.n)
            )

        module.recommend_from_features = tf.function(
            from_features, input_signature=[specs[c] for c in names], autograph=False
        )
        with text_fallbacks(parts.text_lookups, cold_start_text):
            signatures["recommend_from_features"] = (
                module.recommend_from_features.get_concrete_function()
            )
    if parts.encode_item_features is not None:
        item_specs = parts.item_feature_specs
        item_names = list(item_specs)
        if "user_id" in item_names:
            raise ConfigError(
                "score_items: the item table has a column named 'user_id', the name of its user input"
            )
        unknown_query = np.asarray(parts.unknown_query, np.float32)
        score_chunk = parts.score_chunk or dot_scores

        def score_items(user_id, *values):
            user_id = checked_columns("score_items", {"user_id": user_id})["user_id"]
            columns = checked_columns("score_items", dict(zip(item_names, values)))
            items = parts.encode_item_features(columns)
            rows = module.user_table.lookup(user_id)
            known = rows >= 0
            known_queries = tf.gather(module.user_vectors, tf.maximum(rows, 0))
            queries = tf.where(known[:, None], known_queries, tf.constant(unknown_query)[None, :])
            return {"scores": score_chunk(queries, items), "known_user": known}

        module.score_items = tf.function(
            score_items,
            input_signature=[_string_spec("user_id"), *[item_specs[c] for c in item_names]],
            autograph=False,
        )
        with text_fallbacks(parts.text_lookups, cold_start_text):
            signatures["score_items"] = module.score_items.get_concrete_function()
    if parts.pair_probability is not None:

        def score(user_id, item_id):
            checked = checked_columns("score", {"user_id": user_id, "item_id": item_id})
            user_id, item_id = checked["user_id"], checked["item_id"]
            users = module.user_table.lookup(user_id)
            items = module.item_table.lookup(item_id)
            known = (users >= 0) & (items >= 0)
            probability = parts.pair_probability(
                tf.gather(module.user_vectors, tf.maximum(users, 0)),
                tf.gather(module.item_vectors, tf.maximum(items, 0)),
            )
            return {"probability": tf.where(known, probability, 0.0), "known": known}

        module.score = tf.function(
            score,
            input_signature=[_string_spec("user_id"), _string_spec("item_id")],
            autograph=False,
        )
        signatures["score"] = module.score.get_concrete_function()
    return module, signatures


def track_model_resources(module: tf.Module, model, signatures: Mapping[str, Any]) -> int:
    """Tracks, on ``module``, the model's variables and tables the signatures capture.

    The Keras model itself is not saved (its Python classes would be needed to
    revive it); the functions keep working because every resource they read is
    tracked. ``model`` may be a list of models (the two stages of a two-stage
    export). Returns how many were tracked.
    """
    captured = {id(t) for fn in signatures.values() for t in fn.captured_inputs}
    models = list(model) if isinstance(model, (list, tuple)) else [model]
    kept = []
    descendants = [obj for m in models for obj in tf.train.TrackableView(m).descendants()]
    for obj in descendants:
        if isinstance(obj, tf.Variable):
            handle = obj.handle
        elif isinstance(obj, tf.saved_model.experimental.TrackableResource):
            handle = obj.resource_handle
        else:
            continue
        if id(handle) in captured:
            kept.append(obj)
    module.model_resources = kept
    return len(kept)
