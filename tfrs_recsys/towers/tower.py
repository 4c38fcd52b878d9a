"""A tower: feature encoder -> dense layers -> (id residual) -> L2-normalised vector."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import tensorflow as tf

from tfrs_recsys.features.side_encoder import SideEncoder, batch_l2
from tfrs_recsys.towers.dropout import CountedDropout
from tfrs_recsys.towers.history import EXCLUDED_ITEM


class Tower(tf.keras.Model):
    """Maps a raw feature dict to an embedding ``[batch, output_dim]``.

    Args:
        encoder: Turns the side's raw features into ``[batch, width]``.
        hidden: Widths of the ReLU layers between encoder and output.
        output_dim: Embedding width.
        dropout: Dropout rate after each hidden layer (training only).
        id_residual: Optional ``(id column, lookup, embedding)``: an id embedding
            of width ``output_dim`` added to the feature tower's output, so ids
            refine what the features predict instead of replacing it (and can be
            regularised on their own).
        id_l2: L2 weight on the residual id rows a batch looks up.
        normalize: L2-normalise the output (cosine scores).
        history: Optional ``(id column, encoder)``: the user's train items
            (:class:`~tfrs_recsys.towers.history.HistoryEncoder`), concatenated
            to the encoded features before the dense layers.
    """

    def __init__(
        self,
        encoder: SideEncoder,
        hidden: Sequence[int],
        output_dim: int,
        *,
        dropout: float = 0.0,
        id_residual: tuple[str, tf.keras.layers.Layer, tf.keras.layers.Layer] | None = None,
        id_l2: float = 0.0,
        normalize: bool = True,
        history: tuple[str, tf.keras.layers.Layer] | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.encoder = encoder
        self.history_column = None
        if history is not None:
            self.history_column, self.history = history
        self.hidden_layers = [tf.keras.layers.Dense(width, activation="relu") for width in hidden]
        # Masks keyed on a checkpointed call counter (resume draws the same masks);
        # each layer's seed comes from the global seed (``train.seed``).
        self.dropout_layers = (
            [
                CountedDropout(dropout, seed=int(tf.random.uniform([], 0, 2**31 - 1, tf.int64)))
                for _ in hidden
            ]
            if dropout > 0
            else []
        )
        self.output_layer = tf.keras.layers.Dense(output_dim)
        self.id_residual = id_residual
        if id_residual is not None:
            # Tracked attributes, so the residual's weights are saved with the tower.
            self.residual_lookup = id_residual[1]
            self.residual_embedding = id_residual[2]
        self.normalize = normalize
        self.id_l2 = id_l2

    def call(self, inputs: Mapping[str, tf.Tensor], training: bool | None = None) -> tf.Tensor:
        x = self.encoder(inputs, training=training)
        if self.history_column is not None:
            history = self.history(inputs[self.history_column], inputs.get(EXCLUDED_ITEM))
            x = tf.concat([x, tf.cast(history, x.dtype)], axis=-1)
        for i, layer in enumerate(self.hidden_layers):
            x = layer(x)
            if self.dropout_layers:
                x = self.dropout_layers[i](x, training=training)
        x = self.output_layer(x)
        if self.id_residual is not None:
            column = self.id_residual[0]
            residual = self.residual_embedding(self.residual_lookup(inputs[column]))
            if self.id_l2 > 0:
                self.add_loss(batch_l2(residual, self.id_l2))
            x = x + residual
        return tf.math.l2_normalize(x, axis=-1) if self.normalize else x
