"""Text column encoders: strings ``[batch]`` -> vectors ``[batch, dim]``.

Two kinds, chosen per model config:

- :class:`BagOfWordsEncoder`: TF-IDF over a vocabulary learnt from the train
  entities' texts (``TextVectorization``), entirely in graph, any string.
- :class:`PrecomputedTextEncoder`: sentence embeddings computed once per
  distinct string (e.g. by a TF Hub BERT encoder) and looked up in graph by the
  string itself; strings outside the table get a zero vector, unless a
  fallback encoder is set (:meth:`PrecomputedTextEncoder.fallback_to`, used by
  ``tfrs-recsys export --cold-start-text`` while it traces the cold-start
  signatures): then they go through that encoder.
- :class:`FineTunedTextEncoder` (``model.text_trainable``): a trainable TF Hub
  encoder run in graph over each call's distinct strings; an export swaps it
  for a :class:`PrecomputedTextEncoder` of its fine-tuned vectors.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import numpy as np
import tensorflow as tf

from tfrs_recsys.errors import ConfigError


class BagOfWordsEncoder(tf.keras.layers.Layer):
    """TF-IDF bag of words in graph (``TextVectorization``), from a fitted vocabulary.

    Args:
        bag: The vocabulary and IDF weights fitted on the train entities' texts
            (:func:`tfrs_recsys.features.preprocessing.fit_bag_of_words`).
    """

    def __init__(self, bag, **kwargs) -> None:
        super().__init__(**kwargs)
        self.vectorizer = tf.keras.layers.TextVectorization(
            max_tokens=bag.max_tokens,
            output_mode="tf_idf",
            ngrams=bag.ngrams,
            vocabulary=list(bag.vocabulary),
            idf_weights=np.asarray(bag.idf_weights, dtype=np.float32),
            name=f"{self.name}_vectorizer",
        )

    def call(self, texts: tf.Tensor) -> tf.Tensor:
        return self.vectorizer(texts)


class _FallbackSlot:
    """Holds a fallback encoder out of Keras/TF tracking (not a Trackable)."""

    __slots__ = ("encoder",)

    def __init__(self) -> None:
        self.encoder = None


class PrecomputedTextEncoder(tf.keras.layers.Layer):
    """Looks sentence embeddings up by string in graph.

    Strings outside the table get the zero vector. While a fallback encoder is
    set (:meth:`fallback_to`), they get that encoder's output instead; the
    fallback is never part of the layer's weights or checkpoints, and calls
    traced without it are unchanged.

    Args:
        texts: Distinct strings, ``[n]``.
        vectors: Their embeddings, ``[n, dim]`` (float32).
    """

    def __init__(self, texts: Sequence[str], vectors: np.ndarray, **kwargs) -> None:
        super().__init__(**kwargs)
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) != len(texts):
            raise ConfigError(
                f"expected one vector per text: {len(texts)} texts, vectors of shape {vectors.shape}"
            )
        self.dim = vectors.shape[1]
        keys = tf.constant([str(t) for t in texts], dtype=tf.string)
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(keys, tf.range(len(texts), dtype=tf.int64)),
            default_value=-1,
        )
        # Row n (past the end) is the zero vector of unknown strings.
        self.vectors = tf.constant(np.concatenate([vectors, np.zeros((1, self.dim), np.float32)]))
        self._fallback = _FallbackSlot()

    @property
    def fallback(self) -> tf.keras.layers.Layer | None:
        """The encoder of unknown strings while one is set, else None."""
        return self._fallback.encoder

    @contextlib.contextmanager
    def fallback_to(self, encoder: tf.keras.layers.Layer) -> Iterator[None]:
        """Within the block, unknown strings go through ``encoder`` (strings ``[k]`` -> ``[k, dim]``).

        Meant for tracing a function (an export's cold-start signature): the
        traced graph keeps the encoder; later calls of the layer do not.

        Raises:
            ConfigError: ``encoder`` has a ``dim`` other than the table's.
        """
        width = getattr(encoder, "dim", self.dim)
        if int(width) != int(self.dim):
            raise ConfigError(
                f"{self.name}: the fallback text encoder gives {width}-d vectors, the table holds {self.dim}-d ones"
            )
        previous = self._fallback.encoder
        self._fallback.encoder = encoder
        try:
            yield
        finally:
            self._fallback.encoder = previous

    def call(self, texts: tf.Tensor) -> tf.Tensor:
        rows = self.table.lookup(texts)
        if self._fallback.encoder is not None:
            return self._with_fallback(texts, rows, self._fallback.encoder)
        rows = tf.where(rows < 0, tf.cast(tf.shape(self.vectors)[0] - 1, tf.int64), rows)
        return tf.gather(self.vectors, rows)

    def _with_fallback(self, texts: tf.Tensor, rows: tf.Tensor, encoder) -> tf.Tensor:
        """Known strings from the table; each distinct unknown one encoded once (none: no encoder call)."""
        flat_texts = tf.reshape(texts, [-1])
        flat_rows = tf.reshape(rows, [-1])
        vectors = tf.gather(self.vectors, tf.maximum(flat_rows, 0))
        missing = tf.where(flat_rows < 0)[:, 0]
        unknown, index = tf.unique(tf.gather(flat_texts, missing))
        encoded = tf.cond(
            tf.size(unknown) > 0,
            lambda: tf.cast(encoder(unknown, training=False), self.vectors.dtype),
            lambda: tf.zeros([0, self.dim], self.vectors.dtype),
        )
        encoded = tf.ensure_shape(encoded, [None, self.dim])
        vectors = tf.tensor_scatter_nd_update(vectors, missing[:, None], tf.gather(encoded, index))
        return tf.reshape(vectors, tf.concat([tf.shape(texts), [self.dim]], 0))


class CachedTextEncoder(tf.keras.layers.Layer):
    """Wraps a fixed text encoder with a table of its outputs for known strings.

    The encoder runs once over ``known_texts`` when the layer is built; in graph,
    a batch whose strings are all known is a table lookup, and a batch with an
    unknown string (a new item's text) goes through the encoder. The wrapped
    encoder must have no trainable weights (its output for a string is fixed).

    Args:
        encoder: strings ``[batch]`` -> ``[batch, dim]``.
        known_texts: The strings to precompute (e.g. every distinct text of the
            catalog); duplicates are ignored.
        batch_size: Strings per encoder call while precomputing.
    """

    def __init__(
        self,
        encoder: tf.keras.layers.Layer,
        known_texts: Sequence[str],
        batch_size: int = 4096,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        texts = sorted({str(t) for t in known_texts})
        if not texts:
            raise ConfigError("a cached text encoder needs at least one known text")
        self.encoder = encoder
        vectors = tf.concat(
            [
                encoder(tf.constant(texts[s : s + batch_size]))
                for s in range(0, len(texts), batch_size)
            ],
            0,
        )
        self.vectors = tf.constant(vectors.numpy())
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(texts), tf.range(len(texts), dtype=tf.int64)
            ),
            default_value=-1,
        )

    def call(self, texts: tf.Tensor) -> tf.Tensor:
        rows = self.table.lookup(texts)
        return tf.cond(
            tf.reduce_all(rows >= 0),
            lambda: tf.gather(self.vectors, tf.maximum(rows, 0)),
            lambda: tf.cast(self.encoder(texts), self.vectors.dtype),
        )


class FineTunedTextEncoder(tf.keras.layers.Layer):
    """A trainable TF Hub encoder run once per distinct string of each call.

    Strings ``[batch]`` -> ``[batch, dim]``: the call takes ``tf.unique`` of its
    (flattened) strings, encodes those and gathers the vectors back, so a
    catalog-wide candidate call costs one encoder pass per distinct string. The
    encoder (a :class:`~tfrs_recsys.text_encoder.HubTextEncoder` built with
    ``trainable=True``) may be shared by several columns of one side; its
    weights are trainable weights of the model.

    For an export, :meth:`precompute` builds a :class:`PrecomputedTextEncoder`
    of the fine-tuned encoder's vectors of given strings; while it is
    installed (:meth:`use_lookup`), the layer is that lookup (stock TF ops,
    unknown strings -> zero vector, :meth:`PrecomputedTextEncoder.fallback_to`
    available).

    Args:
        encoder: strings ``[k]`` -> ``[k, dim]`` (has a ``dim`` attribute).
    """

    def __init__(self, encoder: tf.keras.layers.Layer, **kwargs) -> None:
        super().__init__(**kwargs)
        self.encoder = encoder
        self.dim = int(encoder.dim)
        self._lookup = _FallbackSlot()  # the installed lookup, out of Keras tracking

    @property
    def lookup(self) -> PrecomputedTextEncoder | None:
        """The installed :class:`PrecomputedTextEncoder`, else None."""
        return self._lookup.encoder

    def precompute(self, texts: Sequence[str], batch_size: int = 256) -> PrecomputedTextEncoder:
        """A lookup of the (current, fine-tuned) encoder's vectors of the distinct ``texts``.

        Its ``source_encoder`` is this layer's encoder (the cold-start fallback).
        """
        distinct = sorted({str(t) for t in texts})
        if not distinct:
            raise ConfigError(f"{self.name}: no strings to precompute")
        vectors = np.concatenate(
            [
                self.encoder(tf.constant(distinct[s : s + batch_size]), training=False).numpy()
                for s in range(0, len(distinct), batch_size)
            ],
            0,
        )
        lookup = PrecomputedTextEncoder(distinct, vectors, name=f"{self.name}_lookup")
        lookup._source = _FallbackSlot()
        lookup._source.encoder = self.encoder
        return lookup

    @contextlib.contextmanager
    def use_lookup(self, lookup: PrecomputedTextEncoder) -> Iterator[PrecomputedTextEncoder]:
        """Within the block, calls of the layer are ``lookup``'s."""
        previous = self._lookup.encoder
        self._lookup.encoder = lookup
        try:
            yield lookup
        finally:
            self._lookup.encoder = previous

    def call(self, texts: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        if self._lookup.encoder is not None:
            return self._lookup.encoder(texts)
        texts = tf.convert_to_tensor(texts, tf.string)
        flat = tf.reshape(texts, [-1])
        distinct, index = tf.unique(flat)
        vectors = tf.ensure_shape(self.encoder(distinct, training=training), [None, self.dim])
        vectors = tf.gather(vectors, index)
        return tf.reshape(vectors, tf.concat([tf.shape(texts), [self.dim]], 0))

    def compute_output_shape(self, input_shape: tf.TensorShape) -> tf.TensorShape:
        return tf.TensorShape(input_shape).concatenate([self.dim])


def source_encoder(lookup: PrecomputedTextEncoder):
    """The fine-tuned encoder a :meth:`FineTunedTextEncoder.precompute` lookup came from, else None."""
    slot = getattr(lookup, "_source", None)
    return None if slot is None else slot.encoder
