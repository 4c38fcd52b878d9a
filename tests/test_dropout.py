"""CountedDropout: masks are a function of (seed, training calls), restored with the weights."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

import tfrs_recsys  # noqa: F401  (routes tf.keras to tf_keras before TensorFlow)
from tfrs_recsys.towers.dropout import CountedDropout

X = tf.ones([4, 64])


def test_inference_leaves_the_inputs_unchanged():
    layer = CountedDropout(0.5, seed=1)
    np.testing.assert_array_equal(layer(X, training=False).numpy(), X.numpy())


def test_training_drops_about_the_rate_and_rescales_the_rest():
    out = CountedDropout(0.25, seed=1)(X, training=True).numpy()
    kept = out != 0
    assert 0.6 < kept.mean() < 0.9
    np.testing.assert_allclose(out[kept], 1 / 0.75, rtol=1e-6)


def test_each_training_call_draws_a_new_mask_and_the_sequence_is_fixed_by_the_seed():
    first, second = CountedDropout(0.5, seed=7), CountedDropout(0.5, seed=7)
    a = [first(X, training=True).numpy() for _ in range(3)]
    b = [second(X, training=True).numpy() for _ in range(3)]
    assert not np.array_equal(a[0], a[1])
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    other = CountedDropout(0.5, seed=8)(X, training=True).numpy()
    assert not np.array_equal(other, a[0])


def test_a_restored_layer_continues_the_mask_sequence(tmp_path):
    whole = CountedDropout(0.5, seed=3)
    masks = [whole(X, training=True).numpy() for _ in range(4)]

    stopped = CountedDropout(0.5, seed=3)
    for _ in range(2):
        stopped(X, training=True)
    prefix = tf.train.Checkpoint(layer=stopped).write(str(tmp_path / "ckpt"))
    resumed = CountedDropout(0.5, seed=3)
    resumed(X, training=False)  # builds the counter
    tf.train.Checkpoint(layer=resumed).read(prefix).assert_consumed()
    assert int(resumed.calls.numpy()) == 2
    for expected in masks[2:]:
        np.testing.assert_array_equal(resumed(X, training=True).numpy(), expected)
