"""The user's train items as a query feature: the mean of their item embeddings.

A query tower with :class:`HistoryEncoder` reads, next to the user's own
features, what the user liked: the mean of a trainable item embedding over the
user's train items (a YouTube-DNN-style "watch history" input). The histories
are fitted with the preprocessing and held in graph (offsets and item rows), so
an exported model serves them with stock TensorFlow ops. In training, the item
an example predicts is left out of its user's history.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

#: The feature key under which the query tower gets the item rows to leave out.
EXCLUDED_ITEM = "__history_excluded_item_row"


class HistoryEncoder(tf.keras.layers.Layer):
    """User ids -> mean item embedding ``[batch, dim]`` over each user's train items.

    Args:
        user_ids: The user table's ids, in row order (``offsets`` indexes them).
        offsets: ``[n_users + 1]``: user ``u``'s items are ``items[offsets[u]:offsets[u+1]]``.
        items: Item rows of the histories.
        n_items: Catalog size (the embedding's rows).
        dim: Embedding width.
        l2: L2 weight on the embedding rows a batch looks up.
    """

    def __init__(
        self,
        user_ids: Sequence[str],
        offsets: np.ndarray,
        items: np.ndarray,
        n_items: int,
        dim: int,
        l2: float = 0.0,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.user_rows = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant([str(u) for u in user_ids]),
                tf.range(len(user_ids), dtype=tf.int64),
            ),
            default_value=-1,
        )
        self.offsets = tf.constant(np.asarray(offsets, dtype=np.int64))
        self.items = tf.constant(np.asarray(items, dtype=np.int64))
        self.embedding = tf.keras.layers.Embedding(n_items, dim, name="history_item_embedding")
        self.l2 = l2
        self.dim = dim

    def call(self, user_ids: tf.Tensor, excluded: tf.Tensor | None = None) -> tf.Tensor:
        rows = self.user_rows.lookup(user_ids)
        known = rows >= 0
        safe = tf.where(known, rows, 0)
        starts = tf.gather(self.offsets, safe)
        lengths = tf.where(known, tf.gather(self.offsets, safe + 1) - starts, 0)
        history = tf.gather(self.items, tf.ragged.range(starts, starts + lengths))
        if excluded is not None:
            history = tf.ragged.boolean_mask(
                history, tf.not_equal(history, tf.expand_dims(excluded, -1))
            )
        vectors = self.embedding(history)  # ragged [batch, items, dim]
        total = tf.reduce_sum(vectors, axis=1)
        count = tf.cast(tf.maximum(history.row_lengths(), 1), total.dtype)
        if self.l2 > 0:
            # L2 on the rows the batch looked up (none, for a batch of new users).
            rows_used = tf.cast(tf.maximum(tf.shape(vectors.flat_values)[0], 1), total.dtype)
            self.add_loss(self.l2 * tf.reduce_sum(tf.square(vectors.flat_values)) / rows_used)
        return total / tf.expand_dims(count, -1)
