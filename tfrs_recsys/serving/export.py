"""SavedModel exports for TF Serving: raw user ids in, top-N item ids out.

``tfrs-recsys export`` turns a trained run into
``<out>/<version>/`` (the layout TF Serving watches). The SavedModel stands on
TensorFlow ops alone: no Python, no tensorflow_recommenders and no tfrs_recsys
are needed to serve it. By default it holds stock TensorFlow ops only (any TF
Serving loads it), also for runs with ``model.text_encoder = "bert"``: their
text columns are looked up in precomputed tables, and a string outside them
(a new user's profession, a new item's description) gets the zero vector.

Signatures (``b`` is the batch size, ``N`` the ``-n`` of the export):

``serving_default``
    ``user_id`` string ``[b]`` -> ``item_ids`` string ``[b, N]``, ``scores``
    float32 ``[b, N]``, ``known_user`` bool ``[b]``. Known users (rows of the
    user table) are looked up in an in-graph hash table; their query vectors
    and the item vectors were computed at export, so serving is a lookup, a
    matrix product and a top-k. Their train positives are masked (unless
    exported with ``--no-exclude``). Unknown, empty or malformed ids are no
    error: they get the most popular items (train positive counts as scores)
    and ``known_user = false``. If a known user has fewer than ``N`` items left
    after the mask, the tail is padded with ``""`` and ``-inf``.
``recommend_k``
    the same plus ``k`` int32 scalar (shape ``[]``): outputs ``[b, k']`` with
    ``k' = clip(k, 0, catalog size)``. A scalar has no batch dimension, so
    TF Serving's REST API takes it in the columnar ``{"inputs": {...}}`` form.
``recommend_from_features`` (models with user features besides the id)
    the model's raw user columns (numeric float32 ``[b]``, others string
    ``[b]``) -> ``item_ids`` / ``scores`` ``[b, N]``, for new users: the query
    tower runs in graph (the id goes in as ``""``, the out-of-vocabulary
    bucket); nothing is masked.
``score_items`` (retrieval runs)
    ``user_id`` string ``[b]`` plus the model's raw item columns (numeric
    float32 ``[m]``, others string ``[m]``; the item id may be any string, an
    unseen one is the out-of-vocabulary bucket) -> ``scores`` float32 ``[b, m]``
    and ``known_user`` bool ``[b]``, for new (cold-start) or known items: the
    candidate tower runs in graph and a known user's query vector comes from
    the table (the score is the model's dot product, item bias included). An
    unknown user gets a zero query vector (plus the constant component that
    adds the item bias, when the model has one): the items' own learnt prior,
    not the train popularity counts (which a new item does not have).
``score`` (ranking runs)
    ``user_id``, ``item_id`` string ``[b]`` -> ``probability`` float32 ``[b]``
    and ``known`` bool ``[b]`` (both ids known; ``probability = 0`` otherwise).

``--cold-start-text`` (``export_run(..., cold_start_text=True)``, runs with
precomputed BERT text features only): ``recommend_from_features`` and
``score_items`` are traced with each text lookup falling back to the run's TF
Hub encoder (:class:`~tfrs_recsys.text_encoder.HubTextEncoder`, the same
handles, pooling, sequence length and normalisation the tables were computed
with) for the strings outside its table; known strings still come from the
table, so they get the same vectors as without the flag. The encoder's
variables, tables and assets are saved with the export. These two signatures
then hold TF Text ops, and as all signatures share one function library the
whole SavedModel needs TF Text to load, whichever signature is used: TF
Serving >= 2.20 (which bundles TF Text 2.20; documented, not tested here), or
``import tensorflow_text`` before ``tf.saved_model.load`` in Python.
``serving_default`` and ``recommend_k`` still contain no such op.

``assets.extra/`` also holds the item table (``items.json``, for
``tfrs-recsys recommend``), a few users per segment
(``representative_users.json``), the export manifest (``export.json``: among
others ``custom_ops``, the ops outside stock TensorFlow per signature,
``custom_ops_to_load``, those of the whole SavedModel (what loading it needs),
``cold_start_text``, ``needs_tf_text_to_load`` and, for BERT text runs,
``text_encoder``: handles, pooling, seq_length, normalize, columns) and, if
``tensorflow-serving-api`` is installed, ``tf_serving_warmup_requests``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import tensorflow as tf

from tfrs_recsys.errors import ConfigError, RecsysError
from tfrs_recsys.serving import tf_serving
from tfrs_recsys.serving.exported import ITEMS_FILE, MANIFEST_FILE, REPRESENTATIVE_FILE
from tfrs_recsys.serving.tf_serving import ASSETS_EXTRA, DEFAULT_SERVING_ROOT, WARMUP_FILE

logger = logging.getLogger(__name__)

INDEXES = ("brute_force", "scann")
SCANN_EXTRA_HINT = "pip install 'tfrs-recsys[scann]' (scann[tf]==1.4.2)"
# Score matrices are computed for at most this many (user, item) cells at a time.
RETRIEVAL_CELLS_PER_CHUNK = 1 << 25
RANKING_PAIRS_PER_CHUNK = 1 << 17
SCANN_USERS_PER_CHUNK = 256


class ExportError(RecsysError):
    """The exported SavedModel did not give the trained model's answer."""


@dataclasses.dataclass(frozen=True)
class ServingTables:
    """Everything a recommender SavedModel bakes in, as numpy arrays.

    Attributes:
        user_ids: ``[n_users]`` ids of the known users (row order of the vectors).
        user_vectors: ``[n_users, d]`` their query vectors (or user encodings).
        item_ids: ``[n_items]`` catalog ids.
        item_vectors: ``[n_items, d']`` candidate vectors (or item encodings).
        exclude_splits: ``[n_users + 1]`` CSR row splits of the items to mask.
        exclude_items: ``[nnz]`` item rows to mask, user by user.
        popularity: ``[n_items]`` train positive counts (the fallback ranking).
    """

    user_ids: np.ndarray
    user_vectors: np.ndarray
    item_ids: np.ndarray
    item_vectors: np.ndarray
    exclude_splits: np.ndarray
    exclude_items: np.ndarray
    popularity: np.ndarray

    @classmethod
    def build(
        cls,
        user_ids: Sequence[str],
        user_vectors: np.ndarray,
        item_ids: Sequence[str],
        item_vectors: np.ndarray,
        *,
        exclude_user_rows: np.ndarray | None = None,
        exclude_item_rows: np.ndarray | None = None,
        popularity: np.ndarray | None = None,
    ) -> ServingTables:
        """Tables from vectors and optional ``(user row, item row)`` pairs to mask."""
        n_users, n_items = len(user_ids), len(item_ids)
        if exclude_user_rows is None or len(exclude_user_rows) == 0:
            splits = np.zeros(n_users + 1, np.int64)
            items = np.zeros(0, np.int64)
        else:
            users = np.asarray(exclude_user_rows, np.int64)
            pairs = np.unique(np.stack([users, np.asarray(exclude_item_rows, np.int64)], 1), axis=0)
            counts = np.bincount(pairs[:, 0], minlength=n_users)
            splits = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
            items = pairs[:, 1].copy()
        return cls(
            user_ids=np.asarray([str(u) for u in user_ids], dtype=object),
            user_vectors=np.asarray(user_vectors, np.float32),
            item_ids=np.asarray([str(i) for i in item_ids], dtype=object),
            item_vectors=np.asarray(item_vectors, np.float32),
            exclude_splits=splits,
            exclude_items=items,
            popularity=(np.zeros(n_items, np.float32) if popularity is None else np.asarray(popularity, np.float32)),
        )

    @property
    def max_excluded(self) -> int:
        return int(np.diff(self.exclude_splits).max(initial=0))


class _Hidden:
    """Holds Python objects a tf.Module must not track (the Keras model)."""

    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)


def _string_spec(name: str) -> tf.TensorSpec:
    return tf.TensorSpec([None], tf.string, name=name)


class RecommenderModule(tf.Module):
    """The exported object: in-graph tables and the serving functions.

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
    """

    def __init__(
        self,
        tables: ServingTables,
        *,
        n: int = 10,
        exclude: bool = True,
        score_chunk: Callable[[tf.Tensor, tf.Tensor], tf.Tensor] | None = None,
        cells_per_chunk: int = RETRIEVAL_CELLS_PER_CHUNK,
        index: str = "brute_force",
        scann_options: Mapping[str, int] | None = None,
    ) -> None:
        super().__init__(name="recommender")
        n_users, n_items = len(tables.user_ids), len(tables.item_ids)
        if n_items == 0:
            raise ConfigError("cannot export a model of an empty catalog")
        self.n = int(n)
        self.exclude = bool(exclude)
        self.n_items = n_items
        self.index = index
        # Brute force holds a [users, items] score matrix per chunk; ScaNN only
        # [users, k + masked items] candidates.
        self.users_per_chunk = max(1, int(cells_per_chunk) // n_items) if index != "scann" else SCANN_USERS_PER_CHUNK
        self._fns = _Hidden(score_chunk=score_chunk or _dot_scores)
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
        self.item_ids = tf.Variable(tf.constant(list(tables.item_ids), tf.string), trainable=False, name="item_ids")
        self.exclude_splits = tf.Variable(tables.exclude_splits, trainable=False, name="exclude_splits")
        self.exclude_items = tf.Variable(tables.exclude_items, trainable=False, name="exclude_items")
        order = np.argsort(-tables.popularity, kind="stable").astype(np.int32)
        self.popular_rows = tf.Variable(order, trainable=False, name="popular_rows")
        self.popular_scores = tf.Variable(tables.popularity[order], trainable=False, name="popular_scores")
        self.max_excluded = tables.max_excluded if exclude else 0
        self.scann = None
        if index == "scann":
            self.scann = _scann_state(tables.item_vectors, scann_options or {})
        elif index != "brute_force":
            raise ConfigError(f"index must be one of {', '.join(INDEXES)}, got {index!r}")

    # --- the graph -----------------------------------------------------------------------------

    def _clip_k(self, k: tf.Tensor) -> tf.Tensor:
        return tf.clip_by_value(tf.cast(tf.reshape(k, []), tf.int32), 0, self.n_items)

    def _excluded(self, rows: tf.Tensor) -> tf.RaggedTensor:
        """Item rows to mask ``[u, (items)]`` for user rows ``[u]`` (``-1``: none)."""
        safe = tf.maximum(rows, 0)
        starts = tf.gather(self.exclude_splits, safe)
        lengths = tf.where(rows >= 0, tf.gather(self.exclude_splits, safe + 1) - starts, 0)
        positions = tf.ragged.range(starts, starts + lengths)
        return positions.with_flat_values(tf.gather(self.exclude_items, positions.flat_values))

    def _chunk_top_k(self, vectors: tf.Tensor, rows: tf.Tensor, k: tf.Tensor, mask: bool):
        if self.scann is not None:
            return self._scann_top_k(vectors, rows, k, mask)
        scores = self._fns.score_chunk(vectors, self.item_vectors)
        if mask:
            excluded = self._excluded(rows)
            cells = tf.stack([excluded.value_rowids(), excluded.flat_values], axis=1)
            scores = tf.tensor_scatter_nd_update(
                scores, cells, tf.fill([tf.shape(cells)[0]], tf.constant(-np.inf, scores.dtype))
            )
        top = tf.math.top_k(scores, k=k)
        return top.values, top.indices

    def _scann_top_k(self, vectors: tf.Tensor, rows: tf.Tensor, k: tf.Tensor, mask: bool):
        from scann.scann_ops.py import scann_ops

        extra = self.max_excluded if mask else 0
        wanted = tf.minimum(k + extra, self.n_items)
        searcher = scann_ops.searcher_from_module(self.scann)
        result = searcher.search_batched_parallel(vectors, final_num_neighbors=tf.maximum(wanted, 1))
        indices = tf.cast(result.indices, tf.int32)
        scores = result.distances
        if mask:
            excluded = tf.cast(self._excluded(rows).to_tensor(default_value=-1), tf.int32)
            hit = tf.reduce_any(indices[:, :, None] == excluded[:, None, :], axis=2)
            scores = tf.where(hit, tf.constant(-np.inf, scores.dtype), scores)
        # Fewer neighbours than asked (tiny catalogs): pad, the padding ranks last.
        missing = tf.maximum(k - tf.shape(indices)[1], 0)
        indices = tf.pad(indices, [[0, 0], [0, missing]])
        scores = tf.pad(scores, [[0, 0], [0, missing]], constant_values=-np.inf)
        top = tf.math.top_k(scores, k=k)
        return top.values, tf.gather(indices, top.indices, batch_dims=1)

    def _top_k(self, vectors: tf.Tensor, rows: tf.Tensor, k: tf.Tensor, mask: bool):
        """Top ``k`` ``(scores, item rows)`` of each row of ``vectors``, in user chunks."""
        batch = tf.shape(vectors)[0]
        per = tf.minimum(self.users_per_chunk, tf.maximum(batch, 1))
        chunks = (tf.maximum(batch, 1) + per - 1) // per
        pad = chunks * per - batch
        padded = tf.pad(vectors, [[0, pad], [0, 0]])
        padded = tf.reshape(padded, [chunks, per, tf.shape(vectors)[1]])
        padded_rows = tf.reshape(tf.pad(rows, [[0, pad]], constant_values=-1), [chunks, per])
        values, indices = tf.map_fn(
            lambda args: self._chunk_top_k(args[0], args[1], k, mask),
            (padded, padded_rows),
            fn_output_signature=(
                tf.TensorSpec([None, None], tf.float32),
                tf.TensorSpec([None, None], tf.int32),
            ),
            parallel_iterations=1,
        )
        values = tf.reshape(values, [chunks * per, k])[:batch]
        indices = tf.reshape(indices, [chunks * per, k])[:batch]
        return values, indices

    def _answer(self, scores: tf.Tensor, rows: tf.Tensor) -> dict[str, tf.Tensor]:
        ids = tf.gather(self.item_ids, rows)
        ids = tf.where(tf.math.is_finite(scores), ids, tf.constant("", tf.string))
        return {"item_ids": ids, "scores": scores}

    def _recommend(self, user_id: tf.Tensor, k: tf.Tensor) -> dict[str, tf.Tensor]:
        k = self._clip_k(k)
        batch = tf.shape(user_id)[0]
        rows = self.user_table.lookup(user_id)
        known = rows >= 0
        # Only the known users are scored; everyone else gets the popular items.
        known_rows = tf.boolean_mask(rows, known)
        vectors = tf.gather(self.user_vectors, known_rows)
        known_scores, known_items = self._top_k(vectors, known_rows, k, self.exclude)
        # Position of each user among the known ones; the unknown point past the end,
        # at a dummy row (so that empty batches and k = 0 need no special case).
        position = tf.where(known, tf.cumsum(tf.cast(known, tf.int32), exclusive=True), tf.shape(known_rows)[0])
        known_scores = tf.gather(tf.concat([known_scores, tf.zeros([1, k], tf.float32)], 0), position)
        known_items = tf.gather(tf.concat([known_items, tf.zeros([1, k], tf.int32)], 0), position)
        scores = tf.where(known[:, None], known_scores, tf.tile(self.popular_scores[None, :k], [batch, 1]))
        items = tf.where(known[:, None], known_items, tf.tile(self.popular_rows[None, :k], [batch, 1]))
        return {**self._answer(scores, items), "known_user": known}

    @tf.function(input_signature=[_string_spec("user_id")], autograph=False)
    def serving_default(self, user_id: tf.Tensor) -> dict[str, tf.Tensor]:
        return self._recommend(user_id, tf.constant(self.n))

    @tf.function(input_signature=[_string_spec("user_id"), tf.TensorSpec([], tf.int32, name="k")], autograph=False)
    def recommend_k(self, user_id: tf.Tensor, k: tf.Tensor) -> dict[str, tf.Tensor]:
        return self._recommend(user_id, k)

    def recommend_vectors(self, vectors: tf.Tensor, k: tf.Tensor) -> dict[str, tf.Tensor]:
        """Top ``k`` for query vectors of new users (nothing masked)."""
        k = self._clip_k(k)
        rows = -tf.ones([tf.shape(vectors)[0]], tf.int64)
        scores, items = self._top_k(vectors, rows, k, False)
        return self._answer(scores, items)


def _dot_scores(vectors: tf.Tensor, items: tf.Tensor) -> tf.Tensor:
    return tf.matmul(vectors, items, transpose_b=True)


def _scann_state(item_vectors: np.ndarray, options: Mapping[str, int]):
    scann_ops = import_scann()
    n_items = len(item_vectors)
    leaves = int(options.get("num_leaves", max(1, min(2000, int(np.sqrt(n_items))))))
    to_search = int(options.get("num_leaves_to_search", max(1, leaves // 10)))
    reorder = int(options.get("reorder", 200))
    builder = scann_ops.builder(tf.constant(item_vectors), 10, "dot_product")
    if n_items >= 1000:
        builder = builder.tree(
            num_leaves=leaves, num_leaves_to_search=min(to_search, leaves), training_sample_size=min(n_items, 250_000)
        )
        builder = builder.score_ah(2, anisotropic_quantization_threshold=0.2).reorder(reorder)
    else:
        builder = builder.score_brute_force()
    return builder.build().serialize_to_module()


def import_scann():
    """The ScaNN TensorFlow ops, or a ConfigError naming the optional extra."""
    try:
        from scann.scann_ops.py import scann_ops
    except ImportError as exc:
        raise ConfigError(
            f"--index scann needs the optional ScaNN ops, which are not installed ({exc}): {SCANN_EXTRA_HINT}"
        ) from None
    return scann_ops


# --- From a trained model --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ModelAdapter:
    """What the exporter needs from a trained model, through its public methods."""

    kind: str
    tables: ServingTables
    score_chunk: Callable[[tf.Tensor, tf.Tensor], tf.Tensor] | None
    cells_per_chunk: int
    feature_vectors: Callable[[Mapping[str, tf.Tensor]], tf.Tensor] | None
    feature_specs: dict[str, tf.TensorSpec]
    pair_probability: Callable[[tf.Tensor, tf.Tensor], tf.Tensor] | None
    #: Raw item columns -> candidate vectors (retrieval: ``score_items``), and its inputs.
    item_vectors: Callable[[Mapping[str, tf.Tensor]], tf.Tensor] | None = None
    item_specs: dict[str, tf.TensorSpec] = dataclasses.field(default_factory=dict)
    #: The query vector ``score_items`` gives users outside the table.
    unknown_query: np.ndarray | None = None
    #: The model's precomputed (TF Hub) text lookups, by side: ``{"user": {column: layer}, ...}``.
    text_lookups: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)


def _feature_specs(model, dataset) -> dict[str, tf.TensorSpec]:
    id_column = dataset.schema.id_column("user")
    specs = {}
    for name in model.user_columns:
        if name == id_column:
            continue
        feature = dataset.schema.feature("user", name)
        dtype = tf.float32 if feature.kind == "numeric" else tf.string
        specs[name] = tf.TensorSpec([None], dtype, name=name)
    return specs


def _item_specs(model, dataset) -> dict[str, tf.TensorSpec]:
    """``score_items``' item inputs: every item column of the model, the id included."""
    specs = {}
    for name in model.item_columns:
        feature = dataset.schema.feature("item", name)
        dtype = tf.float32 if feature.kind == "numeric" else tf.string
        specs[name] = tf.TensorSpec([None], dtype, name=name)
    return specs


def precomputed_text_lookups(model) -> dict[str, dict[str, Any]]:
    """The model's :class:`PrecomputedTextEncoder` layers, ``{"user"|"item": {column: layer}}``.

    A :class:`FineTunedTextEncoder` counts through its installed lookup
    (:func:`install_finetuned_lookups`); without one it is left out.
    """
    from tfrs_recsys.features.text import FineTunedTextEncoder, PrecomputedTextEncoder

    found: dict[str, dict[str, Any]] = {}
    for side, column, encoder in _side_text_encoders(model):
        if isinstance(encoder, FineTunedTextEncoder):
            encoder = encoder.lookup
        if isinstance(encoder, PrecomputedTextEncoder):
            found.setdefault(side, {})[column] = encoder
    return found


def _side_text_encoders(model):
    """``(side, column, text encoder)`` of the model's side encoders."""
    from tfrs_recsys.features.side_encoder import SideEncoder

    for layer in model.submodules:
        if isinstance(layer, SideEncoder):
            side = layer.name.removesuffix("_features")
            for column, encoder in layer.text_encoders.items():
                yield side, column, encoder


def install_finetuned_lookups(model, dataset, stack: contextlib.ExitStack) -> list[Any]:
    """Swaps each fine-tuned text encoder for a lookup of its vectors, until ``stack`` closes.

    Each :class:`FineTunedTextEncoder` gets a :class:`PrecomputedTextEncoder`
    of its (fine-tuned) encoder's vectors of every distinct string of its
    column in the feature table (computed once here); unknown strings get the
    zero vector unless a cold-start fallback is set, which is then that
    fine-tuned encoder. Returns the installed lookups (their tables must be
    tracked by the export).
    """
    from tfrs_recsys.features.text import FineTunedTextEncoder

    installed = []
    for side, column, encoder in _side_text_encoders(model):
        if isinstance(encoder, FineTunedTextEncoder):
            lookup = encoder.precompute(list(dataset.table(side).columns[column]))
            installed.append(stack.enter_context(encoder.use_lookup(lookup)))
    return installed


def adapt_model(model, dataset, exclude_pairs: pd.DataFrame | None, popularity_pairs: pd.DataFrame) -> ModelAdapter:
    """Precomputes a retrieval or ranking model's vectors over the whole user and item tables."""
    from tfrs_recsys.models.ranking import RankingModel

    user_ids = dataset.table("user").ids
    item_ids = dataset.table("item").ids
    id_column = dataset.schema.id_column("user")
    ex_users = ex_items = None
    if exclude_pairs is not None and len(exclude_pairs):
        ex_users, ex_items = dataset.encode(exclude_pairs)
    _, pop_items = dataset.encode(popularity_pairs)
    popularity = np.bincount(pop_items, minlength=dataset.n_items).astype(np.float32)
    specs = _feature_specs(model, dataset)
    all_users = np.arange(dataset.n_users, dtype=np.int64)

    def with_new_id(features: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        first = next(iter(features.values()))
        full = dict(features)
        if id_column in model.user_columns:
            full[id_column] = tf.fill(tf.shape(first), "")
        return full

    if isinstance(model, RankingModel):
        user_vectors = _batched(lambda rows: model.encode_users(model.user_gather(rows), training=False), all_users)
        item_vectors = _batched(
            lambda rows: model.encode_items(model.item_gather(rows), training=False),
            np.arange(dataset.n_items, dtype=np.int64),
        )

        def score_chunk(users: tf.Tensor, items: tf.Tensor) -> tf.Tensor:
            count = tf.shape(users)[0]
            n_items = tf.shape(items)[0]
            logits = model.head(tf.repeat(users, n_items, axis=0), tf.tile(items, [count, 1]))
            return tf.reshape(logits, [count, n_items])

        def pair_probability(users: tf.Tensor, items: tf.Tensor) -> tf.Tensor:
            return tf.sigmoid(model.head(users, items))[:, 0]

        return ModelAdapter(
            kind="ranking",
            tables=ServingTables.build(
                user_ids, user_vectors, item_ids, item_vectors,
                exclude_user_rows=ex_users, exclude_item_rows=ex_items, popularity=popularity,
            ),
            score_chunk=score_chunk,
            cells_per_chunk=RANKING_PAIRS_PER_CHUNK,
            feature_vectors=(lambda f: model.encode_users(with_new_id(f), training=False)) if specs else None,
            feature_specs=specs,
            pair_probability=pair_probability,
            text_lookups=precomputed_text_lookups(model),
        )
    # score_items: users outside the table get a query of zeros (plus the constant
    # component that adds the item bias, when the model has one): the items'
    # own prior, no popularity counts (a new item has none).
    width = model.config.output_dim + (1 if model.item_bias is not None else 0)
    unknown_query = np.zeros(width, np.float32)
    if model.item_bias is not None:
        unknown_query[-1] = model.config.temperature
    return ModelAdapter(
        kind="retrieval",
        tables=ServingTables.build(
            user_ids, model.user_embeddings(all_users), item_ids, model.item_embeddings(),
            exclude_user_rows=ex_users, exclude_item_rows=ex_items, popularity=popularity,
        ),
        score_chunk=None,
        cells_per_chunk=RETRIEVAL_CELLS_PER_CHUNK,
        feature_vectors=(lambda f: model.query_vectors(with_new_id(f))) if specs else None,
        feature_specs=specs,
        pair_probability=None,
        item_vectors=lambda f: model.candidate_vectors(f, training=False),
        item_specs=_item_specs(model, dataset),
        unknown_query=unknown_query,
        text_lookups=precomputed_text_lookups(model),
    )


def _batched(fn, rows: np.ndarray, batch_size: int = 4096) -> np.ndarray:
    parts = [fn(tf.constant(rows[s : s + batch_size])).numpy() for s in range(0, len(rows), batch_size)]
    return np.concatenate(parts, 0)


def text_fallbacks(adapter: ModelAdapter, encoder) -> contextlib.ExitStack:
    """A context in which the model's precomputed text lookups fall back to ``encoder``.

    Unknown strings then go through ``encoder`` instead of getting the zero
    vector; with ``encoder=None`` nothing changes.
    """
    from tfrs_recsys.features.text import source_encoder

    stack = contextlib.ExitStack()
    if encoder is not None:
        for lookups in adapter.text_lookups.values():
            for layer in lookups.values():
                # A fine-tuned encoder's lookup falls back to that encoder.
                stack.enter_context(layer.fallback_to(source_encoder(layer) or encoder))
    return stack


def build_module(
    adapter: ModelAdapter, *, n: int, exclude: bool, index: str = "brute_force", cold_start_text=None
) -> tuple[RecommenderModule, dict[str, Any]]:
    """The module and its signatures (concrete functions), model resources tracked.

    ``cold_start_text``: a text encoder layer (the one the model's precomputed
    text vectors came from); when given, ``recommend_from_features`` and
    ``score_items`` are traced with the text lookups falling back to it for
    strings outside their tables. The other signatures never read text.
    """
    module = RecommenderModule(
        adapter.tables,
        n=n,
        exclude=exclude,
        score_chunk=adapter.score_chunk,
        cells_per_chunk=adapter.cells_per_chunk,
        index=index,
    )
    signatures: dict[str, Any] = {
        "serving_default": module.serving_default.get_concrete_function(),
        "recommend_k": module.recommend_k.get_concrete_function(),
    }
    # Input names of the feature signatures, in order (for the export's checks).
    module._fns.inputs = {}
    if adapter.feature_vectors is not None:
        specs = adapter.feature_specs
        names = list(specs)

        def from_features(*values):
            features = dict(zip(names, values))
            return module.recommend_vectors(adapter.feature_vectors(features), tf.constant(module.n))

        module.recommend_from_features = tf.function(from_features, input_signature=[specs[c] for c in names], autograph=False)
        with text_fallbacks(adapter, cold_start_text):
            signatures["recommend_from_features"] = module.recommend_from_features.get_concrete_function()
        module._fns.inputs["recommend_from_features"] = names
    if adapter.item_vectors is not None:
        item_specs = adapter.item_specs
        item_names = list(item_specs)
        if "user_id" in item_names:
            raise ConfigError(
                "score_items: the item table has a column named 'user_id', the name of its user input"
            )
        unknown_query = np.asarray(adapter.unknown_query, np.float32)

        def score_items(user_id, *values):
            items = adapter.item_vectors(dict(zip(item_names, values)))
            rows = module.user_table.lookup(user_id)
            known = rows >= 0
            known_queries = tf.gather(module.user_vectors, tf.maximum(rows, 0))
            queries = tf.where(known[:, None], known_queries, tf.constant(unknown_query)[None, :])
            return {"scores": module._fns.score_chunk(queries, items), "known_user": known}

        module.score_items = tf.function(
            score_items,
            input_signature=[_string_spec("user_id"), *[item_specs[c] for c in item_names]],
            autograph=False,
        )
        with text_fallbacks(adapter, cold_start_text):
            signatures["score_items"] = module.score_items.get_concrete_function()
        module._fns.inputs["score_items"] = ["user_id", *item_names]
    if adapter.pair_probability is not None:

        def score(user_id, item_id):
            users = module.user_table.lookup(user_id)
            items = module.item_table.lookup(item_id)
            known = (users >= 0) & (items >= 0)
            probability = adapter.pair_probability(
                tf.gather(module.user_vectors, tf.maximum(users, 0)),
                tf.gather(module.item_vectors, tf.maximum(items, 0)),
            )
            return {"probability": tf.where(known, probability, 0.0), "known": known}

        module.score = tf.function(score, input_signature=[_string_spec("user_id"), _string_spec("item_id")], autograph=False)
        signatures["score"] = module.score.get_concrete_function()
    return module, signatures


def track_text_encoder(module: tf.Module, encoder) -> int:
    """Tracks a :class:`~tfrs_recsys.text_encoder.HubTextEncoder`'s loaded SavedModels on ``module``.

    The preprocessor and the encoder (their variables, tables, assets such as a
    vocabulary file, and functions) are then saved with the export, which no
    longer needs the handles' directories. ``encoder`` may be a list of
    encoders (a fine-tuned run's, one per side). Returns how many objects are tracked.
    """
    encoders = encoder if isinstance(encoder, (list, tuple)) else [encoder]
    objects = []
    for layer in encoders:
        objects += [
            getattr(layer, "_preprocessor_module", None),  # tokenizer/packer functions, tables, assets
            getattr(getattr(layer, "_encoder", None), "_func", None),  # the encoder SavedModel, weights
        ]
    module.cold_start_text_encoder = [o for o in objects if o is not None]
    return len(module.cold_start_text_encoder)


def track_model_resources(module: tf.Module, model, signatures: Mapping[str, Any]) -> int:
    """Tracks, on ``module``, the model's variables and tables the signatures capture.

    The Keras model itself is not saved (its Python classes would be needed to
    revive it); the functions keep working because every resource they read is
    tracked. Returns how many were tracked.
    """
    captured = {id(t) for fn in signatures.values() for t in fn.captured_inputs}
    kept = []
    for obj in tf.train.TrackableView(model).descendants():
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


# --- Graph inspection --------------------------------------------------------------------------------

_CORE_OPS: set[str] | None = None


def core_ops() -> set[str]:
    global _CORE_OPS
    if _CORE_OPS is None:
        _CORE_OPS = {name for name in dir(tf.raw_ops) if not name.startswith("__")}
    return _CORE_OPS


def op_types(concrete) -> set[str]:
    """Every op type in a concrete function's graph and the functions it calls."""
    graph_def = concrete.graph.as_graph_def()
    ops = {node.op for node in graph_def.node}
    for function in graph_def.library.function:
        ops |= {node.op for node in function.node_def}
    return ops


def non_core_ops(concrete) -> list[str]:
    """Op types that stock TensorFlow does not define (TF Text, ScaNN, ...)."""
    return sorted(op for op in op_types(concrete) if op not in core_ops())


def saved_model_non_core_ops(path: Path) -> list[str]:
    """Op types outside stock TensorFlow anywhere in a SavedModel (what loading it needs).

    Wider than the signatures' :func:`non_core_ops`: it also counts functions
    of saved objects no signature calls (e.g. a tracked TF Hub preprocessor's
    two-segment packing).
    """
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString((Path(path) / "saved_model.pb").read_bytes())
    ops: set[str] = set()
    for meta_graph in saved.meta_graphs:
        ops |= {node.op for node in meta_graph.graph_def.node}
        for function in meta_graph.graph_def.library.function:
            ops |= {node.op for node in function.node_def}
    return sorted(op for op in ops if op not in core_ops())


def signature_summary(concrete) -> dict[str, Any]:
    def spec(value) -> dict[str, Any]:
        return {"dtype": value.dtype.name, "shape": value.shape.as_list() if value.shape.rank is not None else None}

    inputs = {s.name: spec(s) for s in tf.nest.flatten(concrete.structured_input_signature)}
    outputs = {name: spec(t) for name, t in concrete.structured_outputs.items()}
    return {"inputs": inputs, "outputs": outputs}


# --- The export command -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ExportResult:
    model_name: str
    version: int
    path: Path
    models_config: Path
    signatures: dict[str, Any]
    warmup_requests: int
    custom_ops: dict[str, list[str]]
    seconds: float
    cold_start_text: bool = False
    #: Ops outside stock TensorFlow anywhere in the SavedModel (loading it needs them).
    custom_ops_to_load: list[str] = dataclasses.field(default_factory=list)


def check_out_dir(out: Path) -> None:
    """ConfigError if ``out`` (or a parent) is a file."""
    out = Path(out)
    for path in [out, *out.parents]:
        if path.exists() and not path.is_dir():
            raise ConfigError(f"--out {out}: {path} exists and is not a directory")
    if not out.name or out.name in (".", ".."):
        raise ConfigError(f"--out {out}: name the model directory, e.g. exported_models/tech_ids")


def export_run(
    run_dir: Path,
    out: Path,
    *,
    n: int = 10,
    exclude: bool = True,
    index: str = "brute_force",
    serving_root: str = DEFAULT_SERVING_ROOT,
    warmup: bool = True,
    cold_start_text: bool = False,
    notice: Callable[[str], None] = print,
) -> ExportResult:
    """Exports the best weights of ``run_dir`` as the next version under ``out``.

    Args:
        run_dir: A finished training run.
        out: The model directory (``exported_models/<model_name>``); versions
            go below it, ``models.config`` beside it.
        n: Items per user of ``serving_default``.
        exclude: Mask each known user's train positives.
        index: ``brute_force`` (exact, stock TF Serving) or ``scann``
            (approximate; needs a TF Serving build with the ScaNN ops).
        serving_root: Where the server sees ``out``'s parent (``base_path`` of
            ``models.config`` is ``<serving_root>/<model_name>``).
        warmup: Write warm-up requests (needs ``tensorflow-serving-api``).
        cold_start_text: Put the run's TF Hub text encoder in graph behind its
            precomputed text tables, for ``recommend_from_features`` and
            ``score_items`` (runs with ``model.text_encoder = "bert"`` only).
            The SavedModel then needs TF Text to load (any signature).
        notice: Prints notices (e.g. warm-up skipped, TF Text needed).

    Raises:
        ConfigError: Bad arguments, not a finished run, ScaNN missing,
            ``cold_start_text`` for a run without BERT text features.
        ExportError: The reloaded SavedModel does not answer as the model does.

    A run with ``model.text_trainable`` exports like a frozen BERT run: each
    fine-tuned text encoder becomes a table of its fine-tuned vectors of the
    feature table's strings (stock TF ops); with ``cold_start_text``, unknown
    strings go through the fine-tuned encoder, saved with the export.
    """
    with contextlib.ExitStack() as stack:
        return _export_run(
            run_dir, out, n=n, exclude=exclude, index=index, serving_root=serving_root, warmup=warmup,
            cold_start_text=cold_start_text, notice=notice, stack=stack,
        )


def _export_run(
    run_dir: Path,
    out: Path,
    *,
    n: int,
    exclude: bool,
    index: str,
    serving_root: str,
    warmup: bool,
    cold_start_text: bool,
    notice: Callable[[str], None],
    stack: contextlib.ExitStack,
) -> ExportResult:
    from tfrs_recsys.features.text import source_encoder
    from tfrs_recsys.training.run import load_trained_model

    start = time.perf_counter()
    out = Path(out)
    run_dir = Path(run_dir)
    if n < 1:
        raise ConfigError(f"-n must be at least 1, got {n}")
    if index not in INDEXES:
        raise ConfigError(f"--index must be one of {', '.join(INDEXES)}, got {index!r}")
    check_out_dir(out)
    if not run_dir.is_dir():
        raise ConfigError(f"--run-dir {run_dir}: no such directory")
    if index == "scann":
        import_scann()
    if cold_start_text:
        _check_cold_start_config(run_dir)
    config, data, model = load_trained_model(run_dir)
    finetuned = install_finetuned_lookups(model, data.dataset, stack)
    adapter = adapt_model(model, data.dataset, data.split.train if exclude else None, data.split.train)
    spec = encoder = None
    if adapter.text_lookups:
        from tfrs_recsys.models.retrieval import text_model_spec
        from tfrs_recsys.text_encoder import resolve_encoder

        spec = resolve_encoder(text_model_spec(config.model.text_model))
    if cold_start_text:
        if spec is None:
            raise ConfigError(
                f"--cold-start-text: the model of {run_dir} has no precomputed (bert) text features "
                "(its tables have no text columns): nothing to encode; export it without the flag"
            )
        from tfrs_recsys.text_encoder.cache import encoder_layer

        used = ("user" in adapter.text_lookups and adapter.feature_vectors is not None) or (
            "item" in adapter.text_lookups and adapter.item_vectors is not None
        )
        if not used:
            raise ConfigError(
                f"--cold-start-text: no signature of this {adapter.kind} export reads the run's bert text columns "
                f"({', '.join(sorted(adapter.text_lookups))} side only): nothing to encode; export it without the flag"
            )
        sources = [source_encoder(lookup) for lookup in finetuned]
        if sources:
            encoder = sources[0]  # each fine-tuned lookup falls back to its own encoder (text_fallbacks)
        else:
            encoder = encoder_layer(spec)  # the layer embed_texts used, if it loaded one in this process
        _check_encoder_reproduces_tables(adapter, encoder)
    module, signatures = build_module(adapter, n=n, exclude=exclude, index=index, cold_start_text=encoder)
    track_model_resources(module, model, signatures)
    # The fine-tuned lookups are not model layers: their tables are tracked here.
    module.finetuned_text_tables = [lookup.table for lookup in finetuned]
    if encoder is not None:
        distinct = list({id(e): e for e in (sources or [encoder])}.values())
        track_text_encoder(module, distinct)

    custom = {name: non_core_ops(fn) for name, fn in signatures.items()}
    if custom["serving_default"] and index == "brute_force":  # pragma: no cover - a bug if it happens
        raise ExportError(f"serving_default uses ops outside stock TensorFlow: {custom['serving_default']}")
    model_name = out.name
    manifest = {
        "format": 1,
        "model_name": model_name,
        "run_dir": str(run_dir.resolve()),
        "config_name": config.name,
        "kind": adapter.kind,
        "feature_set": config.model.feature_set,
        "dataset": data.dataset.schema.name,
        "n": n,
        "exclude_train": exclude,
        "index": index,
        "users": int(data.dataset.n_users),
        "items": int(data.dataset.n_items),
        "user_segment": data.dataset.schema.user_segment,
        "item_id_column": data.dataset.schema.id_column("item"),
        "signatures": {name: signature_summary(fn) for name, fn in signatures.items()},
        "custom_ops": {name: ops for name, ops in custom.items() if ops},
        "cold_start_text": bool(cold_start_text),
        # All signatures share one function library: TF Text ops in one of them
        # make the whole SavedModel need TF Text to load.
        "needs_tf_text_to_load": bool(cold_start_text),
        "text_encoder": _text_encoder_manifest(config, spec, adapter),
        "score_items_unknown_user": (
            "zero query vector (item bias only, when the model has one)" if "score_items" in signatures else None
        ),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    check_user = _check_user(data)

    out.mkdir(parents=True, exist_ok=True)
    tf_serving.remove_stale_staging(out)
    staging = out / tf_serving.staging_name()
    try:
        tf.saved_model.save(module, str(staging), signatures=signatures)
        manifest["custom_ops_to_load"] = saved_model_non_core_ops(staging)
        if manifest["custom_ops_to_load"] and not cold_start_text and index == "brute_force":
            # A bug if it happens: the default export is stock TensorFlow.
            raise ExportError(f"the SavedModel uses ops outside stock TensorFlow: {manifest['custom_ops_to_load']}")
        if cold_start_text:
            notice(
                "notice: --cold-start-text puts TF Text ops in the SavedModel (in "
                f"{', '.join(name for name, ops in custom.items() if ops) or 'no signature'}); loading it, "
                "whichever signature is used, needs TF Text: TF Serving >= 2.20, or "
                "`import tensorflow_text` before tf.saved_model.load"
            )
        extra = staging / ASSETS_EXTRA
        extra.mkdir()
        _write_assets(extra, data.dataset, manifest)
        warmup_count = 0
        if warmup:
            if tf_serving.serving_api_available():
                warmup_count = tf_serving.write_warmup_requests(
                    extra / WARMUP_FILE, model_name, _warmup_inputs(check_user, n)
                )
            else:
                notice(
                    "warm-up requests skipped: tensorflow-serving-api is not installed "
                    "(pip install 'tfrs-recsys[serving]')"
                )
        loaded = tf.saved_model.load(str(staging))
        verify_export(
            staging, model, data, check_user, n=n, exclude=exclude, exact=index == "brute_force", loaded=loaded
        )
        if encoder is not None:
            verify_cold_start(loaded, module, signatures, adapter, data, check_user)
        del loaded
        version = _publish(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    config_path = tf_serving.write_models_config(out.parent, serving_root)
    return ExportResult(
        model_name=model_name,
        version=version,
        path=out / str(version),
        models_config=config_path,
        signatures=manifest["signatures"],
        warmup_requests=warmup_count,
        custom_ops=manifest["custom_ops"],
        seconds=time.perf_counter() - start,
        cold_start_text=bool(cold_start_text),
        custom_ops_to_load=manifest["custom_ops_to_load"],
    )


def _check_cold_start_config(run_dir: Path) -> None:
    """ConfigError, before the model is loaded, when the run's config rules ``--cold-start-text`` out."""
    from tfrs_recsys.config import load_config
    from tfrs_recsys.training.run import CONFIG_FILE

    path = run_dir / CONFIG_FILE
    if not path.is_file():
        return  # load_trained_model names the problem
    model = load_config(path).model
    if model.feature_set != "all" or model.text_encoder == "none":
        raise ConfigError(
            f"--cold-start-text: the model of {run_dir} has no text features (model.feature_set = "
            f"{model.feature_set!r}, model.text_encoder = {model.text_encoder!r}): nothing to encode; "
            "export it without the flag"
        )
    if model.text_encoder == "bow":
        raise ConfigError(
            f"--cold-start-text: the model of {run_dir} encodes text with the bag-of-words encoder "
            "(model.text_encoder = 'bow'), already in graph for any string: nothing to add; export it without the flag"
        )


def _check_encoder_reproduces_tables(adapter: ModelAdapter, encoder, count: int = 4) -> None:
    """ExportError unless ``encoder`` gives the precomputed vectors of a few known strings."""
    from tfrs_recsys.features.text import source_encoder

    for side, lookups in adapter.text_lookups.items():
        for column, layer in lookups.items():
            keys, rows = layer.table.export()
            keys, rows = keys[:count], rows[:count]
            if int(tf.size(keys)) == 0:
                continue
            got = (source_encoder(layer) or encoder)(keys, training=False).numpy()
            want = tf.gather(layer.vectors, rows).numpy()
            if not np.allclose(got, want, atol=1e-4):
                raise ExportError(
                    f"--cold-start-text: the text encoder {encoder.encoder_handle} does not reproduce the "
                    f"precomputed vectors of the {side} column {column!r} (largest difference "
                    f"{float(np.abs(got - want).max()):.3g})"
                )


def _text_encoder_manifest(config, spec, adapter: ModelAdapter) -> dict[str, Any] | None:
    if spec is None:
        return None
    return {
        "text_model": config.model.text_model,
        "preprocessor": spec.preprocessor,
        "encoder": spec.encoder,
        "pooling": spec.pooling,
        "seq_length": spec.seq_length,
        "normalize": spec.normalize,
        "name": spec.name,
        "fine_tuned": bool(config.model.text_trainable),
        "columns": {side: sorted(lookups) for side, lookups in sorted(adapter.text_lookups.items())},
    }


def _publish(staging: Path, out: Path) -> int:
    """Renames ``staging`` to the next free integer version under a lock."""
    with tf_serving.file_lock(out / ".export.lock"):
        version = tf_serving.next_version(out)
        os.rename(staging, out / str(version))
    return version


def _check_user(data) -> str:
    """A known user with train positives (the first one of the train split)."""
    return str(data.split.train["user_id"].iloc[0])


def _warmup_inputs(user: str, n: int) -> list[tuple[str, dict[str, np.ndarray]]]:
    batch = np.array([user.encode()] * 8 + [b"", b"unknown-user"], dtype=object)
    return [
        ("serving_default", {"user_id": np.array([user.encode()], dtype=object)}),
        ("serving_default", {"user_id": batch}),
        ("recommend_k", {"user_id": batch, "k": np.array(n, np.int32)}),
    ]


def _write_assets(extra: Path, dataset, manifest: dict[str, Any]) -> None:
    from tfrs_recsys.serving.recommend import representative_users

    items = dataset.items.reset_index(drop=True)
    (extra / ITEMS_FILE).write_text(items.to_json(orient="records", force_ascii=False) + "\n", encoding="utf-8")
    users = dataset.users.set_index(dataset.schema.id_column("user"))
    groups = {
        segment: [{"user_id": u, **{k: _plain(v) for k, v in users.loc[u].items()}} for u in ids]
        for segment, ids in representative_users(dataset, per_segment=3).items()
    }
    (extra / REPRESENTATIVE_FILE).write_text(
        json.dumps({"segment": dataset.schema.user_segment, "groups": groups}, indent=2, ensure_ascii=False) + "\n",
        encoding="utf-8",
    )
    (extra / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def verify_export(
    path: Path, model, data, user: str, *, n: int, exclude: bool, exact: bool = True, loaded=None
) -> None:
    """Reloads the SavedModel and checks a known user's and an unknown user's answer.

    The known user's items must be the trained model's top ``n`` (train items
    masked when ``exclude``), with the same scores; the unknown id must get
    ``known_user = false`` and the popularity ranking. ``loaded``: the
    SavedModel at ``path`` if already loaded.
    """
    if loaded is None:
        loaded = tf.saved_model.load(str(path))
    answer = loaded.signatures["serving_default"](user_id=tf.constant([user, "\x00 not a user \x00"]))
    ids = answer["item_ids"].numpy().astype(str)
    scores = answer["scores"].numpy()
    known = answer["known_user"].numpy()
    if known.tolist() != [True, False]:
        raise ExportError(f"exported model: known_user {known.tolist()} for [{user!r}, an unknown id]")
    dataset = data.dataset
    row = dataset.table("user").index_of([user])
    expected = np.array(model.scorer()(row), dtype=np.float64)[0]
    item_rows = dataset.table("item").index_of([i for i in ids[0] if i])
    seen = set()
    if exclude:
        _, seen_rows = dataset.encode(data.split.train[data.split.train["user_id"] == user])
        seen = set(seen_rows.tolist())
        expected[list(seen)] = -np.inf
    best = np.sort(expected)[::-1][:n]
    if seen & set(item_rows.tolist()):
        raise ExportError(f"exported model recommends {user!r} one of their train items")
    tolerance = 1e-4 * max(1.0, float(np.abs(best[np.isfinite(best)]).max(initial=1.0)))
    if exact and not np.allclose(scores[0], best, atol=tolerance, rtol=1e-4):
        raise ExportError(f"exported model: scores {scores[0].tolist()} for {user!r}, expected {best.tolist()}")
    if not np.allclose(scores[0][: len(item_rows)], expected[item_rows], atol=tolerance, rtol=1e-4):
        raise ExportError(f"exported model: scores of {user!r}'s items differ from the model's")
    _, pop_items = dataset.encode(data.split.train)
    counts = np.bincount(pop_items, minlength=dataset.n_items)
    popular = dataset.table("item").ids[np.argsort(-counts, kind="stable")[:n]]
    if ids[1].tolist() != [str(i) for i in popular]:
        raise ExportError("exported model: the unknown-user fallback is not the popularity ranking")


#: The text ``verify_cold_start`` gives every text column (no table holds it).
COLD_START_CHECK_TEXT = "cold-start check: a text no feature table holds"


def _side_inputs(
    table, rows: Sequence[int], names: Sequence[str], specs: Mapping[str, tf.TensorSpec], texts
) -> list:
    """Raw feature columns of ``table``'s ``rows``, every column of ``texts`` replaced by an unseen string."""
    values = []
    for name in names:
        column = np.asarray(table.columns[name])[list(rows)]
        if specs[name].dtype == tf.float32:
            values.append(tf.constant(column.astype(np.float32)))
        else:
            strings = [COLD_START_CHECK_TEXT if name in texts else str(v) for v in column]
            values.append(tf.constant(strings, tf.string))
    return values


def verify_cold_start(
    loaded, module: RecommenderModule, signatures: Mapping[str, Any], adapter: ModelAdapter, data, user: str
) -> None:
    """Checks a reloaded cold-start signature on text no precomputed table holds.

    Every text column gets :data:`COLD_START_CHECK_TEXT`; the reloaded
    ``recommend_from_features`` (or, without user text columns,
    ``score_items``) must answer as the function traced in process (whose
    text lookups fall back to the encoder) does: the encoder's variables,
    tables and assets were saved with the export. One signature is enough
    (both share the encoder), and each first call costs seconds.
    """
    dataset = data.dataset
    cases = {}
    user_texts = adapter.text_lookups.get("user", {})
    item_texts = adapter.text_lookups.get("item", {})
    if "recommend_from_features" in module._fns.inputs and user_texts:
        names = module._fns.inputs["recommend_from_features"]
        rows = dataset.table("user").index_of([user])
        cases["recommend_from_features"] = _side_inputs(
            dataset.table("user"), rows, names, adapter.feature_specs, user_texts
        )
    elif "score_items" in module._fns.inputs and item_texts:
        names = module._fns.inputs["score_items"]
        rows = list(range(min(3, dataset.n_items)))
        items = _side_inputs(dataset.table("item"), rows, names[1:], adapter.item_specs, item_texts)
        id_position = names[1:].index(dataset.schema.id_column("item"))
        items[id_position] = tf.concat([["cold-start-check-item"], items[id_position][1:]], 0)
        cases["score_items"] = [tf.constant([user, "\x00 not a user \x00"]), *items]
    for name, values in cases.items():
        want = signatures[name](*values)
        got = loaded.signatures[name](**dict(zip(module._fns.inputs[name], values)))
        for key, value in want.items():
            a, b = got[key].numpy(), value.numpy()
            same = np.array_equal(a, b) if a.dtype.kind in "OSUb" else np.allclose(a, b, atol=1e-4, rtol=1e-4)
            if not same:
                raise ExportError(f"exported model: {name} {key} with an unseen text differs from the model's")
