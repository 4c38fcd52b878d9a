"""Dropout whose masks are a function of (seed, training step), so a resumed run
draws the masks an uninterrupted run draws.

Keras' ``Dropout`` draws its masks from a stateful random kernel whose state
lives in the process, not in the checkpoint: a run killed and resumed would
continue with other masks than the run never stopped. :class:`CountedDropout`
keys stateless masks on a call counter that is a (non-trainable) weight of the
layer, saved with the model in every checkpoint.
"""

from __future__ import annotations

import tensorflow as tf


class CountedDropout(tf.keras.layers.Layer):
    """Inverted dropout with masks ``f(seed, number of training calls so far)``.

    Args:
        rate: Fraction of units dropped in training, in ``[0, 1)``.
        seed: The layer's seed (any int64); layers of one model need distinct seeds.
    """

    def __init__(self, rate: float, seed: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.rate = float(rate)
        self.seed = int(seed)

    def build(self, input_shape) -> None:
        self.calls = self.add_weight(
            name="calls", shape=(), dtype=tf.int64, initializer="zeros", trainable=False
        )
        super().build(input_shape)

    def call(self, inputs: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        """``inputs`` ``[batch, width]`` with units dropped (training) or unchanged."""
        if not training or self.rate <= 0:
            return inputs
        count = self.calls.assign_add(1)
        seed = tf.stack([tf.constant(self.seed, tf.int64), count])
        return tf.nn.experimental.stateless_dropout(inputs, rate=self.rate, seed=seed)

    def get_config(self) -> dict:
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}
