"""``train.optimizer = "lazy_adam"``: Adam on dense gradients, row-wise Adam on sparse ones."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tfrs_recsys.config import load_config
from tfrs_recsys.errors import ConfigError
from tfrs_recsys.training.optimizers import LazyAdam, make_optimizer
from tfrs_recsys.training.run import optimizer_for


def _reference_lazy_adam(table, grads, steps, lr=0.01, b1=0.9, b2=0.999, eps=1e-7):
    """numpy LazyAdam: per step, a dict row -> summed gradient row."""
    table = table.astype(np.float64).copy()
    m, v = np.zeros_like(table), np.zeros_like(table)
    for t, grad in enumerate(grads[:steps], start=1):
        alpha = lr * np.sqrt(1 - b2**t) / (1 - b1**t)
        for row, g in grad.items():
            m[row] = b1 * m[row] + (1 - b1) * g
            v[row] = b2 * v[row] + (1 - b2) * g * g
            table[row] -= alpha * m[row] / (np.sqrt(v[row]) + eps)
    return table, m, v


def test_sparse_updates_touch_only_the_batch_rows_and_follow_adam_row_wise():
    rng = np.random.default_rng(0)
    start = rng.standard_normal((6, 3)).astype(np.float32)
    table = tf.Variable(start)
    optimizer = LazyAdam(0.01)
    # Step 1 looks rows 1, 4 and 1 again up (a repeated row's slices are summed); step 2 rows 4, 5.
    batches = [np.array([1, 4, 1]), np.array([4, 5])]
    weights = [rng.standard_normal((len(ids), 3)).astype(np.float32) for ids in batches]
    expected_grads = []
    for ids, weight in zip(batches, weights):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.gather(table, ids) * weight)
        grad = tape.gradient(loss, table)
        assert isinstance(grad, tf.IndexedSlices)
        summed: dict[int, np.ndarray] = {}
        for row, g in zip(ids, weight):
            summed[int(row)] = summed.get(int(row), 0) + g.astype(np.float64)
        expected_grads.append(summed)
        optimizer.apply_gradients([(grad, table)])
    expected, m, v = _reference_lazy_adam(start, expected_grads, 2)
    np.testing.assert_allclose(table.numpy(), expected, rtol=1e-5, atol=1e-6)
    untouched = [0, 2, 3]
    np.testing.assert_array_equal(table.numpy()[untouched], start[untouched])
    moments = [s for s in optimizer.variables if s.shape == table.shape]
    assert len(moments) == 2
    for slot, reference in zip(moments, (m, v)):
        np.testing.assert_allclose(slot.numpy(), reference, rtol=1e-5, atol=1e-7)
        np.testing.assert_array_equal(slot.numpy()[untouched], 0.0)


def test_dense_gradients_get_exactly_adams_update():
    rng = np.random.default_rng(1)
    start = rng.standard_normal((4, 2)).astype(np.float32)
    lazy, plain = tf.Variable(start), tf.Variable(start)
    optimizers = LazyAdam(0.05), tf.keras.optimizers.Adam(0.05)
    for _ in range(3):
        grad = tf.constant(rng.standard_normal((4, 2)).astype(np.float32))
        for variable, optimizer in zip((lazy, plain), optimizers):
            optimizer.apply_gradients([(grad, variable)])
    np.testing.assert_array_equal(lazy.numpy(), plain.numpy())


def test_a_sparse_step_does_not_visit_the_rows_outside_the_batch():
    """Adam's sparse step moves every row with a momentum; lazy_adam only the batch's."""
    table_lazy = tf.Variable(np.ones((5, 2), np.float32))
    table_adam = tf.Variable(np.ones((5, 2), np.float32))
    for table, optimizer in (
        (table_lazy, LazyAdam(0.1)),
        (table_adam, tf.keras.optimizers.Adam(0.1)),
    ):
        for ids in ([0], [1]):
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(tf.gather(table, ids))
            optimizer.apply_gradients([(tape.gradient(loss, table), table)])
    # Row 0 was in step 1 only: Adam keeps moving it in step 2, lazy_adam does not.
    assert table_adam.numpy()[0, 0] < table_lazy.numpy()[0, 0] < 1.0
    np.testing.assert_array_equal(table_lazy.numpy()[2:], 1.0)


def test_the_config_names_the_optimizer_and_refuses_unknown_ones():
    config = load_config(None, ['train.optimizer="lazy_adam"', "train.learning_rate=0.02"])
    optimizer = optimizer_for(config)
    assert isinstance(optimizer, LazyAdam)
    assert float(optimizer.learning_rate.numpy()) == pytest.approx(0.02)
    with pytest.raises(ConfigError, match="train.optimizer"):
        load_config(None, ['train.optimizer="lazyadam"'])
    with pytest.raises(ConfigError, match="unknown optimizer 'nadam'"):
        make_optimizer("nadam", 0.1)
    with pytest.raises(ConfigError, match="amsgrad"):
        LazyAdam(0.1, amsgrad=True)
