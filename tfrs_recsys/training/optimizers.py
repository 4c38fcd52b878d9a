"""Optimizers: ``train.optimizer`` -> a Keras 2 optimizer.

``lazy_adam`` is Adam whose sparse updates touch only the rows of the batch.
Keras' ``Adam`` takes an embedding's sparse gradient (``tf.IndexedSlices``,
the rows a batch looked up) and still decays both moment slots and moves the
variable over **every** row, each step: a step costs ``O(vocabulary x dim)``,
so an id vocabulary of a million users makes training several times slower
than the model's own work (measured in docs/benchmarks.md). ``LazyAdam``
updates the looked-up rows' moments and values only (the rule of
``tfa.optimizers.LazyAdam``, now unmaintained): a step costs ``O(batch x
dim)`` whatever the vocabulary. Rows not in a batch keep their moments
instead of decaying, which is the one difference from Adam; dense variables
(tower weights) get Adam's update exactly.
"""

from __future__ import annotations

import tensorflow as tf

from tfrs_recsys.errors import ConfigError

__all__ = ["LAZY_ADAM_MIN_IDS", "LazyAdam", "make_optimizer"]

#: Above this many user + item ids, Adam's dense pass over the embedding rows
#: outweighs the model's step: the statistics-based default configs use
#: ``lazy_adam`` there, and a streamed run with ``adam`` gets a warning.
LAZY_ADAM_MIN_IDS = 100_000


class LazyAdam(tf.keras.optimizers.Adam):
    """Adam with row-wise (lazy) updates of sparse gradients; see the module docstring.

    Args:
        learning_rate: As for ``tf.keras.optimizers.Adam``; the other Adam
            arguments too, except ``amsgrad`` (not supported).
    """

    def __init__(self, learning_rate=0.001, name: str = "LazyAdam", **kwargs) -> None:
        if kwargs.get("amsgrad"):
            raise ConfigError("LazyAdam does not support amsgrad")
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)

    def update_step(self, gradient, variable):
        if not isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable)
        dtype = variable.dtype
        lr = tf.cast(self.learning_rate, dtype)
        local_step = tf.cast(self.iterations + 1, dtype)
        beta_1 = tf.cast(self.beta_1, dtype)
        beta_2 = tf.cast(self.beta_2, dtype)
        alpha = lr * tf.sqrt(1 - tf.pow(beta_2, local_step)) / (1 - tf.pow(beta_1, local_step))
        var_key = self._var_key(variable)
        m = self._momentums[self._index_dict[var_key]]
        v = self._velocities[self._index_dict[var_key]]
        # A row looked up twice in the batch has two slices: sum them first.
        rows, position = tf.unique(gradient.indices)
        values = tf.math.unsorted_segment_sum(gradient.values, position, tf.shape(rows)[0])
        m_rows = beta_1 * tf.gather(m, rows) + (1 - beta_1) * values
        v_rows = beta_2 * tf.gather(v, rows) + (1 - beta_2) * tf.square(values)
        m.scatter_update(tf.IndexedSlices(m_rows, rows))
        v.scatter_update(tf.IndexedSlices(v_rows, rows))
        step = alpha * m_rows / (tf.sqrt(v_rows) + tf.cast(self.epsilon, dtype))
        variable.scatter_sub(tf.IndexedSlices(step, rows))


def make_optimizer(name: str, learning_rate: float) -> tf.keras.optimizers.Optimizer:
    """The optimizer ``name`` (``adam``, ``lazy_adam``, ``adagrad``, ``sgd``) at ``learning_rate``."""
    if name == "adam":
        return tf.keras.optimizers.Adam(learning_rate)
    if name == "lazy_adam":
        return LazyAdam(learning_rate)
    if name == "adagrad":
        return tf.keras.optimizers.Adagrad(learning_rate)
    if name == "sgd":
        return tf.keras.optimizers.SGD(learning_rate)
    raise ConfigError(f"unknown optimizer {name!r}; choose adam, lazy_adam, adagrad or sgd")
