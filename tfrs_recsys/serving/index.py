"""The top-k index: each query vector's best items of a fixed catalog.

One interface, :class:`TopKIndex`, and two implementations, as TFRS's
``tfrs.layers.factorized_top_k.TopK`` has ``BruteForce`` and ``ScaNN``:

- :class:`BruteForceIndex`: exact; scores the whole catalog (a dot product,
  or any ``score_chunk`` such as a ranking head) and keeps the top ``k``.
  Stock TensorFlow ops only.
- :class:`ScannIndex`: approximate nearest neighbours by dot product with the
  ScaNN ops (the optional ``scann`` extra; a TF Serving build with them).
- :class:`TwoStageIndex`: retrieval then ranking; the exact top ``M`` of a
  first-stage score, re-ordered by a ranking head on those ``M`` pairs. Stock
  TensorFlow ops only.

Both answer ``top_k(queries [b, d], k, exclude) -> (scores [b, k'], rows
[b, k'])`` with ``k' = clip(k, 0, n_items)``: rows best first, ties to the
lower row, the items of ``exclude`` masked, and ``-inf`` / row ``-1`` padding
when the mask leaves fewer than ``k'`` items. Queries are answered in chunks of
users so that a score matrix stays within ``cells_per_chunk`` cells.

Example:
    >>> index = BruteForceIndex(np.eye(3, dtype=np.float32))
    >>> exclude = tf.ragged.constant([[0]], dtype=tf.int64)
    >>> index.top_k(tf.constant([[3.0, 2.0, 1.0]]), 5, exclude)
    # scores [[2., 1., -inf]], rows [[1, 2, -1]]
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import tensorflow as tf

from tfrs_recsys.errors import ConfigError
from tfrs_recsys.models.serving_parts import (
    RANKING_PAIRS_PER_CHUNK,
    RETRIEVAL_CELLS_PER_CHUNK,
    ScoreChunk,
)

INDEXES = ("brute_force", "scann")
SCANN_EXTRA_HINT = "pip install 'tfrs-recsys[scann]' (scann[tf]==1.4.2)"
#: ScaNN holds ``[users, k + masked items]`` candidates per chunk, not a score matrix.
SCANN_USERS_PER_CHUNK = 256


class Hidden:
    """Holds Python objects a tf.Module must not track (functions of the Keras model)."""

    def __init__(self, **values) -> None:
        self.__dict__.update(values)


def dot_scores(queries: tf.Tensor, items: tf.Tensor) -> tf.Tensor:
    """``queries [u, d] . items [m, d]^T -> [u, m]``."""
    return tf.matmul(queries, items, transpose_b=True)


class TopKIndex(tf.Module):
    """The top-k interface: subclasses implement :meth:`_chunk_top_k`.

    Args:
        n_items: Catalog size.
        users_per_chunk: Query vectors answered together.
        name: Module name.
    """

    def __init__(self, n_items: int, users_per_chunk: int, name: str) -> None:
        super().__init__(name=name)
        if n_items == 0:
            raise ConfigError("cannot build a top-k index of an empty catalog")
        self.n_items = int(n_items)
        self.users_per_chunk = max(1, int(users_per_chunk))

    def clip_k(self, k: tf.Tensor | int) -> tf.Tensor:
        """``k`` as an int32 scalar in ``[0, n_items]``."""
        return tf.clip_by_value(tf.cast(tf.reshape(k, []), tf.int32), 0, self.n_items)

    def top_k(
        self, queries: tf.Tensor, k: tf.Tensor | int, exclude: tf.RaggedTensor | None = None
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """The best ``k`` items of each query, best first.

        Args:
            queries: ``[b, d]`` float32 query vectors.
            k: Items wanted (int32 scalar), clipped to ``[0, n_items]``.
            exclude: ``[b, (m)]`` int64 item rows never returned for each
                query (e.g. the user's train items), or ``None``.

        Returns:
            ``(scores [b, k'], rows [b, k'])``: float32 scores and int32 item
            rows; where fewer than ``k'`` items remain, ``-inf`` and ``-1``.
        """
        k = self.clip_k(k)
        batch = tf.shape(queries)[0]
        per = tf.minimum(self.users_per_chunk, tf.maximum(batch, 1))
        chunks = (tf.maximum(batch, 1) + per - 1) // per
        pad = chunks * per - batch
        padded = tf.pad(queries, [[0, pad], [0, 0]])
        padded = tf.reshape(padded, [chunks, per, tf.shape(queries)[1]])
        if exclude is None:
            elems = padded

            def answer(chunk):
                return self._chunk_top_k(chunk, k, None)

        else:
            # The padding queries exclude nothing; one ragged row of rows per chunk.
            lengths = tf.pad(exclude.row_lengths(), [[0, pad]])
            per_chunk = tf.fill([chunks], tf.cast(per, lengths.dtype))
            elems = (
                padded,
                tf.RaggedTensor.from_nested_row_lengths(
                    exclude.flat_values, [per_chunk, lengths], validate=False
                ),
            )

            def answer(chunk):
                return self._chunk_top_k(chunk[0], k, chunk[1])

        values, indices = tf.map_fn(
            answer,
            elems,
            fn_output_signature=(
                tf.TensorSpec([None, None], tf.float32),
                tf.TensorSpec([None, None], tf.int32),
            ),
            parallel_iterations=1,
        )
        values = tf.reshape(values, [chunks * per, k])[:batch]
        indices = tf.reshape(indices, [chunks * per, k])[:batch]
        return values, tf.where(tf.math.is_finite(values), indices, -1)

    def _chunk_top_k(
        self, queries: tf.Tensor, k: tf.Tensor, exclude: tf.RaggedTensor | None
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """``(scores [u, k], rows [u, k])`` of one chunk; masked items score ``-inf``."""
        raise NotImplementedError


class BruteForceIndex(TopKIndex):
    """Exact top-k: every catalog item is scored.

    Args:
        item_vectors: ``[n_items, d']`` array, or a variable to share.
        score_chunk: ``(queries [u, d], items [m, d']) -> scores [u, m]``;
            default the dot product.
        cells_per_chunk: Bound on ``u * n_items`` per score matrix.
    """

    def __init__(
        self,
        item_vectors: np.ndarray | tf.Variable,
        *,
        score_chunk: ScoreChunk | None = None,
        cells_per_chunk: int = RETRIEVAL_CELLS_PER_CHUNK,
    ) -> None:
        n_items = int(item_vectors.shape[0])
        super().__init__(n_items, int(cells_per_chunk) // max(n_items, 1), name="brute_force")
        if isinstance(item_vectors, tf.Variable):
            self.item_vectors = item_vectors
        else:
            self.item_vectors = tf.Variable(
                np.asarray(item_vectors, np.float32), trainable=False, name="item_vectors"
            )
        self._fns = Hidden(score_chunk=score_chunk or dot_scores)

    def _chunk_top_k(self, queries, k, exclude):
        scores = masked(self._fns.score_chunk(queries, self.item_vectors), exclude)
        top = tf.math.top_k(scores, k=k)
        return top.values, top.indices


def masked(scores: tf.Tensor, exclude: tf.RaggedTensor | None) -> tf.Tensor:
    """``scores [u, m]`` with the cells ``(j, exclude[j])`` set to ``-inf``."""
    if exclude is None:
        return scores
    cells = tf.stack([exclude.value_rowids(), tf.cast(exclude.flat_values, tf.int64)], axis=1)
    return tf.tensor_scatter_nd_update(
        scores, cells, tf.fill([tf.shape(cells)[0]], tf.constant(-np.inf, scores.dtype))
    )


class TwoStageIndex(TopKIndex):
    """Retrieval then ranking: the top ``candidates`` by a first-stage score, re-ordered.

    A query is a user's first-stage vector and its ranking user vector side
    by side, ``[first_dim + d_rank]``. Per chunk of users: the first-stage
    score of the whole catalog (excluded items masked), its exact top
    ``M = min(candidates, n_items)`` (ties to the lower row), the ranking
    head on those ``M`` (user, item) pairs, and the top ``k`` of the ``M``
    logits (ties to the better retrieval place). The answer's scores are the
    ranking logits; ``k`` is clipped to ``[0, M]``. Stock TensorFlow ops.

    Args:
        first_items: ``[n_items, d]`` first-stage item vectors (array or variable).
        ranking_items: ``[n_items, d']`` ranking item encodings.
        pair_logits: ``(user vectors [p, d_rank], item encodings [p, d']) ->
            logits [p, 1]`` of paired rows (the ranking head).
        first_dim: ``d_q``, the width of the first-stage part of a query.
        candidates: ``M``.
        first_score: ``(queries [u, d_q], items [m, d]) -> [u, m]``; default
            the dot product.
        cells_per_chunk: Bound on ``u * n_items`` per first-stage score matrix.
        pairs_per_chunk: Bound on ``u * M`` pairs through the head at a time.
    """

    def __init__(
        self,
        first_items: np.ndarray | tf.Variable,
        ranking_items: np.ndarray,
        pair_logits: ScoreChunk,
        *,
        first_dim: int,
        candidates: int,
        first_score: ScoreChunk | None = None,
        cells_per_chunk: int = RETRIEVAL_CELLS_PER_CHUNK,
        pairs_per_chunk: int = RANKING_PAIRS_PER_CHUNK,
    ) -> None:
        n_items = int(first_items.shape[0])
        if n_items == 0:
            raise ConfigError("cannot build a top-k index of an empty catalog")
        if int(candidates) < 1:
            raise ConfigError(f"--candidates must be at least 1, got {candidates}")
        m = min(int(candidates), n_items)
        per = min(int(cells_per_chunk) // n_items, int(pairs_per_chunk) // m)
        super().__init__(n_items, per, name="two_stage")
        self.candidates = m
        self.first_dim = int(first_dim)
        if isinstance(first_items, tf.Variable):
            self.first_items = first_items
        else:
            self.first_items = tf.Variable(
                np.asarray(first_items, np.float32), trainable=False, name="item_vectors"
            )
        self.ranking_items = tf.Variable(
            np.asarray(ranking_items, np.float32), trainable=False, name="ranking_item_vectors"
        )
        self._fns = Hidden(pair_logits=pair_logits, first_score=first_score or dot_scores)

    def clip_k(self, k: tf.Tensor | int) -> tf.Tensor:
        """``k`` as an int32 scalar in ``[0, M]``: only candidates are returned."""
        return tf.clip_by_value(tf.cast(tf.reshape(k, []), tf.int32), 0, self.candidates)

    def _chunk_top_k(self, queries, k, exclude):
        m = self.candidates
        first = self._fns.first_score(queries[:, : self.first_dim], self.first_items)
        proposed = tf.math.top_k(masked(first, exclude), k=m)
        users = queries[:, self.first_dim :]
        logits = self._fns.pair_logits(
            tf.repeat(users, m, axis=0),
            tf.gather(self.ranking_items, tf.reshape(proposed.indices, [-1])),
        )
        logits = tf.reshape(logits, [-1, m])
        # Places past the user's unseen items (masked, -inf) are no candidates.
        logits = tf.where(
            tf.math.is_finite(proposed.values), logits, tf.constant(-np.inf, logits.dtype)
        )
        top = tf.math.top_k(logits, k=k)
        return top.values, tf.gather(proposed.indices, top.indices, batch_dims=1)


class ScannIndex(TopKIndex):
    """Approximate top-k by dot product with ScaNN (needs the ``scann`` extra).

    Each query fetches ``k`` plus the most items any query of its chunk
    excludes, masks its own excluded items (a sorted search of its row, memory
    ``[users, fetched]``, never ``users x items``) and keeps the best ``k``.

    Args:
        item_vectors: ``[n_items, d]`` float32.
        max_excluded: Unused (kept for callers); the fetch depends on the
            chunk's own excluded items.
        options: ``num_leaves``, ``num_leaves_to_search``, ``reorder`` of the
            ScaNN tree (defaults from the catalog size; catalogs under
            :data:`SCANN_TREE_MIN_ITEMS` items are searched exhaustively).
        searcher: A built searcher's :class:`ScannState` module for these
            item vectors (e.g. the one :mod:`~tfrs_recsys.serving.scann_tuning`
            measured), instead of building one from ``options``.

    Raises:
        ConfigError: ScaNN is not installed.
    """

    def __init__(
        self,
        item_vectors: np.ndarray,
        *,
        max_excluded: int = 0,
        options: Mapping[str, int] | None = None,
        searcher: tf.Module | None = None,
    ) -> None:
        super().__init__(len(item_vectors), SCANN_USERS_PER_CHUNK, name="scann")
        self.max_excluded = int(max_excluded)
        settings = scann_settings(len(item_vectors), options or {})
        self.leaves_to_search = settings["num_leaves_to_search"]
        self.reorder = settings["reorder"]
        self.searcher = (
            searcher
            if searcher is not None
            else build_scann_searcher(
                np.asarray(item_vectors, np.float32), settings
            ).serialize_to_module()
        )

    def _chunk_top_k(self, queries, k, exclude):
        from scann.scann_ops.py import scann_ops

        searcher = scann_ops.searcher_from_module(self.searcher)
        return scann_masked_top_k(
            searcher,
            queries,
            k,
            exclude,
            n_items=self.n_items,
            leaves_to_search=self.leaves_to_search,
            reorder=self.reorder,
        )


#: Catalogs smaller than this are searched exhaustively by ScaNN (no tree).
SCANN_TREE_MIN_ITEMS = 1000


def scann_settings(n_items: int, options: Mapping[str, int]) -> dict[str, int]:
    """``num_leaves``, ``num_leaves_to_search``, ``reorder``: ``options`` or defaults from ``n_items``.

    Defaults: ``sqrt(n_items)`` leaves (at most 2,000), a tenth of them
    searched, 200 candidates re-scored exactly. ``num_leaves = 0`` for
    catalogs under :data:`SCANN_TREE_MIN_ITEMS` items (exhaustive search).
    """
    if n_items < SCANN_TREE_MIN_ITEMS:
        return {"num_leaves": 0, "num_leaves_to_search": 0, "reorder": 0}
    leaves = int(options.get("num_leaves", max(1, min(2000, int(np.sqrt(n_items))))))
    to_search = int(options.get("num_leaves_to_search", max(1, leaves // 10)))
    return {
        "num_leaves": leaves,
        "num_leaves_to_search": max(1, min(to_search, leaves)),
        "reorder": int(options.get("reorder", 200)),
    }


def build_scann_searcher(item_vectors: np.ndarray, settings: Mapping[str, int]):
    """A ScaNN searcher (``ScannSearcher``) of ``item_vectors`` by dot product.

    A tree of ``settings["num_leaves"]`` leaves, anisotropic hashing and exact
    re-scoring; an exhaustive search when ``num_leaves`` is 0.
    """
    scann_ops = import_scann()
    n_items = len(item_vectors)
    builder = scann_ops.builder(tf.constant(item_vectors), 10, "dot_product")
    if settings["num_leaves"] > 0:
        builder = builder.tree(
            num_leaves=int(settings["num_leaves"]),
            num_leaves_to_search=int(settings["num_leaves_to_search"]),
            training_sample_size=min(n_items, 250_000),
        )
        builder = builder.score_ah(2, anisotropic_quantization_threshold=0.2).reorder(
            max(int(settings["reorder"]), 10)
        )
    else:
        builder = builder.score_brute_force()
    return builder.build()


def scann_masked_top_k(
    searcher,
    queries: tf.Tensor,
    k: tf.Tensor,
    exclude: tf.RaggedTensor | None,
    *,
    n_items: int,
    leaves_to_search: int,
    reorder: int,
) -> tuple[tf.Tensor, tf.Tensor]:
    """``(scores [u, k], rows [u, k])`` of one chunk from a ScaNN searcher, excluded rows masked.

    ``k`` plus the chunk's largest excluded row count are fetched (at least
    ``reorder`` candidates are re-scored exactly), the excluded ones set to
    ``-inf`` by a sorted search of each query's excluded rows, the best ``k``
    kept. Used by :class:`ScannIndex` and by the recall measurement.
    """
    extra = tf.constant(0, tf.int32)
    if exclude is not None:
        lengths = tf.concat([exclude.row_lengths(), tf.zeros([1], tf.int64)], 0)
        extra = tf.cast(tf.reduce_max(lengths), tf.int32)
    wanted = tf.maximum(tf.minimum(k + extra, n_items), 1)
    options = {"final_num_neighbors": wanted}
    if leaves_to_search > 0:
        options["leaves_to_search"] = leaves_to_search
        options["pre_reorder_num_neighbors"] = tf.maximum(wanted, reorder)
    result = searcher.search_batched_parallel(queries, **options)
    indices = tf.cast(result.indices, tf.int32)
    scores = result.distances
    if exclude is not None:
        # Each row's excluded items sorted, padded (and closed) with n_items, never a row.
        excluded = tf.cast(exclude.to_tensor(default_value=n_items), tf.int32)
        excluded = tf.sort(
            tf.concat([excluded, tf.fill([tf.shape(excluded)[0], 1], n_items)], 1), axis=1
        )
        place = tf.searchsorted(excluded, indices, side="left")
        hit = tf.gather(excluded, place, batch_dims=1) == indices
        scores = tf.where(hit, tf.constant(-np.inf, scores.dtype), scores)
    # Fewer neighbours than asked (tiny catalogs): pad, the padding ranks last.
    missing = tf.maximum(k - tf.shape(indices)[1], 0)
    indices = tf.pad(indices, [[0, 0], [0, missing]])
    scores = tf.pad(scores, [[0, 0], [0, missing]], constant_values=-np.inf)
    top = tf.math.top_k(scores, k=k)
    return top.values, tf.gather(indices, top.indices, batch_dims=1)


def import_scann():
    """The ScaNN TensorFlow ops, or a ConfigError naming the optional extra."""
    try:
        from scann.scann_ops.py import scann_ops
    except ImportError as exc:
        raise ConfigError(
            f"--index scann needs the optional ScaNN ops, which are not installed ({exc}): "
            f"{SCANN_EXTRA_HINT}"
        ) from None
    return scann_ops


def build_index(
    name: str,
    item_vectors: np.ndarray | tf.Variable,
    *,
    score_chunk: ScoreChunk | None = None,
    cells_per_chunk: int = RETRIEVAL_CELLS_PER_CHUNK,
    max_excluded: int = 0,
    scann_options: Mapping[str, int] | None = None,
    scann_searcher: tf.Module | None = None,
) -> TopKIndex:
    """The index called ``name`` (one of :data:`INDEXES`) over ``item_vectors``.

    Raises:
        ConfigError: An unknown name; ``scann`` with a ``score_chunk`` (ScaNN
            searches by dot product only) or without ScaNN installed.
    """
    if name == "brute_force":
        return BruteForceIndex(
            item_vectors, score_chunk=score_chunk, cells_per_chunk=cells_per_chunk
        )
    if name == "scann":
        if score_chunk is not None:
            raise ConfigError(
                "--index scann searches by dot product; this model scores pairs through its "
                "own head: export it with --index brute_force"
            )
        vectors = item_vectors.numpy() if isinstance(item_vectors, tf.Variable) else item_vectors
        return ScannIndex(
            vectors, max_excluded=max_excluded, options=scann_options, searcher=scann_searcher
        )
    raise ConfigError(f"index must be one of {', '.join(INDEXES)}, got {name!r}")
