"""RankingModel: training lowers the loss, probabilities, scorer consistency, DCN cross."""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pytest
import tensorflow as tf
from model_fixtures import first_batch, model_for, small_model_config, small_split  # noqa: F401

from tfrs_recsys.config import ExperimentConfig, TrainConfig
from tfrs_recsys.data.pipelines import LABEL
from tfrs_recsys.models.factory import training_dataset
from tfrs_recsys.models.ranking import RankingModel

STEPS = 12


def _config(**overrides):
    return small_model_config(
        kind="ranking", feature_set="subset", negatives_per_user=5, **overrides
    )


@dataclasses.dataclass
class Trained:
    model: RankingModel
    batch: dict
    loss_before: float
    loss_after: float


@pytest.fixture(scope="module")
def trained(small_dataset, small_split):
    """``trained(cross_layer) -> Trained`` after STEPS Adam steps (cached)."""

    @functools.cache
    def _train(cross_layer: bool) -> Trained:
        tf.keras.utils.set_random_seed(21)
        config = _config(cross_layer=cross_layer)
        model = model_for(small_dataset, small_split.train, config)
        assert isinstance(model, RankingModel)
        model.compile(optimizer=tf.keras.optimizers.Adam(0.02))
        experiment = ExperimentConfig(model=config, train=TrainConfig(batch_size=256, seed=3))
        pipeline = training_dataset(model, small_dataset, small_split.train, experiment)
        batch = first_batch(pipeline)
        before = float(model.compute_loss(batch, training=False))
        model.fit(pipeline.repeat().take(STEPS), verbose=0)
        after = float(model.compute_loss(batch, training=False))
        return Trained(model, batch, before, after)

    return _train


@pytest.mark.parametrize("cross_layer", [False, True])
def test_a_few_steps_lower_the_loss_on_a_fixed_batch(trained, cross_layer):
    result = trained(cross_layer)
    assert np.isfinite(result.loss_before)
    assert result.loss_after < 0.95 * result.loss_before


def test_cross_layer_is_built_only_when_configured(trained):
    assert trained(True).model.cross is not None
    assert trained(False).model.cross is None
    assert any("cross" in w.name for w in trained(True).model.trainable_weights)


def test_the_batch_mixes_positives_and_negatives(trained):
    labels = trained(False).batch[LABEL].numpy()
    assert set(np.unique(labels)) == {0.0, 1.0}


def test_loss_is_binary_cross_entropy_of_the_logits(trained):
    result = trained(False)
    logits = result.model(result.batch, training=False).numpy()[:, 0].astype(np.float64)
    labels = result.batch[LABEL].numpy().astype(np.float64)
    expected = np.mean(np.maximum(logits, 0) - logits * labels + np.log1p(np.exp(-np.abs(logits))))
    np.testing.assert_allclose(result.loss_after, expected, rtol=1e-4)


@pytest.mark.parametrize("cross_layer", [False, True])
def test_probabilities_have_one_value_per_pair_in_unit_interval(
    trained, small_dataset, cross_layer
):
    model = trained(cross_layer).model
    rng = np.random.default_rng(0)
    users = rng.integers(0, small_dataset.n_users, size=37)
    items = rng.integers(0, small_dataset.n_items, size=37)
    p = model.probabilities(users, items)
    assert p.shape == (37,)
    assert np.all((p >= 0.0) & (p <= 1.0))
    assert np.ptp(p) > 0  # not a constant


def test_probabilities_in_small_batches_equal_one_batch(trained):
    model = trained(False).model
    users, items = np.arange(10), np.arange(10, 20)
    np.testing.assert_allclose(
        model.probabilities(users, items, batch_size=3),
        model.probabilities(users, items),
        rtol=1e-6,
    )


@pytest.mark.parametrize("cross_layer", [False, True])
def test_scorer_logits_match_probabilities(trained, small_dataset, cross_layer):
    model = trained(cross_layer).model
    rows = np.array([0, 3, 250, 499])
    logits = np.asarray(model.scorer()(rows), dtype=np.float64)
    n = small_dataset.n_items
    assert logits.shape == (4, n)
    p = model.probabilities(np.repeat(rows, n), np.tile(np.arange(n), len(rows))).reshape(4, n)
    np.testing.assert_allclose(1.0 / (1.0 + np.exp(-logits)), p, rtol=1e-4, atol=1e-6)


def test_scorer_handles_different_batch_sizes(trained, small_dataset):
    scorer = trained(False).model.scorer()
    one = np.asarray(scorer(np.array([7])))
    three = np.asarray(scorer(np.array([5, 7, 9])))
    assert one.shape == (1, small_dataset.n_items)
    np.testing.assert_allclose(three[1], one[0], rtol=1e-5, atol=1e-6)
