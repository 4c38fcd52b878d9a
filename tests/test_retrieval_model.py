"""RetrievalModel: training lowers the loss, scores are dot products of the towers'
vectors, the item bias, the in-batch / catalog losses by hand, logQ and OOV users."""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pytest
import tensorflow as tf
from model_fixtures import (  # noqa: F401
    NEW_USER,
    first_batch,
    model_for,
    numpy_softmax_ce,
    small_model_config,
    small_split,
    with_extra_user,
)

from tfrs_recsys.config import ExperimentConfig, TrainConfig
from tfrs_recsys.data.splits import holdout_80_20
from tfrs_recsys.errors import ConfigError
from tfrs_recsys.models.factory import training_dataset
from tfrs_recsys.models.retrieval import RetrievalModel
from tfrs_recsys.serving.recommend import recommend

TEMPERATURE = 0.2
STEPS = 12

# (negatives, feature_set, item_bias): each trained once per module, STEPS steps.
CASES = [
    ("catalog", "ids", False),
    ("in_batch", "subset", True),
    ("catalog", "all", True),
    ("in_batch", "ids", False),
]
CASE_IDS = [f"{n}-{f}-{'bias' if b else 'nobias'}" for n, f, b in CASES]
BIAS_CASES = [c for c in CASES if c[2]]


def _config(negatives, feature_set, item_bias, **overrides):
    return small_model_config(
        negatives=negatives,
        feature_set=feature_set,
        item_bias=item_bias,
        text_encoder="bow",
        temperature=TEMPERATURE,
        **overrides,
    )


def _pipeline(model, dataset, train, batch_size=256, seed=42):
    experiment = ExperimentConfig(
        model=model.config, train=TrainConfig(batch_size=batch_size, seed=seed)
    )
    return training_dataset(model, dataset, train, experiment)


@dataclasses.dataclass
class Trained:
    model: RetrievalModel
    batch: dict
    loss_before: float
    loss_after: float


@pytest.fixture(scope="module")
def trained(small_dataset, small_split):
    """``trained(case) -> Trained``: the case's model after STEPS Adam steps (cached)."""

    @functools.cache
    def _train(case) -> Trained:
        tf.keras.utils.set_random_seed(11)
        model = model_for(small_dataset, small_split.train, _config(*case))
        model.compile(optimizer=tf.keras.optimizers.Adam(0.05))
        pipeline = _pipeline(model, small_dataset, small_split.train)
        batch = first_batch(pipeline)
        before = float(model.compute_loss(batch, training=False))
        model.fit(pipeline.repeat().take(STEPS), verbose=0)
        after = float(model.compute_loss(batch, training=False))
        return Trained(model, batch, before, after)

    return _train


# --- Training --------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_a_few_steps_lower_the_loss_on_a_fixed_batch(trained, case):
    result = trained(case)
    assert np.isfinite(result.loss_before) and np.isfinite(result.loss_after)
    assert result.loss_after < 0.95 * result.loss_before


# --- Scores --------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_scorer_shape_is_users_by_catalog(trained, small_dataset, case):
    model = trained(case).model
    rows = np.array([0, 5, 17, 499])
    scores = np.asarray(model.scorer()(rows))
    assert scores.shape == (4, small_dataset.n_items)
    assert np.all(np.isfinite(scores))


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_scores_are_dot_products_of_the_embeddings(trained, case):
    model = trained(case).model
    rows = np.arange(0, 500, 9)
    queries = model.user_embeddings(rows)
    items = model.item_embeddings()
    expected = queries.astype(np.float64) @ items.astype(np.float64).T
    np.testing.assert_allclose(np.asarray(model.scorer()(rows)), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_embedding_widths(trained, small_dataset, case):
    model = trained(case).model
    width = model.config.output_dim + (1 if case[2] else 0)
    assert model.user_embeddings(np.arange(6)).shape == (6, width)
    assert model.item_embeddings().shape == (small_dataset.n_items, width)


def test_user_embeddings_of_no_rows_is_empty(trained):
    model = trained(CASES[2]).model
    assert model.user_embeddings(np.zeros(0, dtype=np.int64)).shape == (
        0,
        model.config.output_dim + 1,
    )


@pytest.mark.parametrize("case", BIAS_CASES, ids=[CASE_IDS[CASES.index(c)] for c in BIAS_CASES])
def test_item_bias_is_a_constant_query_column(trained, case):
    model = trained(case).model
    queries = model.user_embeddings(np.arange(20))
    np.testing.assert_allclose(queries[:, -1], np.full(20, TEMPERATURE), rtol=1e-6)
    # The rest is the unit-norm query tower output.
    np.testing.assert_allclose(np.linalg.norm(queries[:, :-1], axis=1), np.ones(20), rtol=1e-5)


@pytest.mark.parametrize("case", BIAS_CASES, ids=[CASE_IDS[CASES.index(c)] for c in BIAS_CASES])
def test_item_bias_adds_temperature_times_bias_to_the_cosine(trained, small_dataset, case):
    model = trained(case).model
    rows = np.arange(0, 500, 13)
    users = model.user_gather(tf.constant(rows))
    items = model.item_gather(tf.range(small_dataset.n_items))
    q_raw = model.query_tower({c: users[c] for c in model.user_columns}).numpy().astype(np.float64)
    c_raw = (
        model.candidate_tower({c: items[c] for c in model.item_columns}).numpy().astype(np.float64)
    )
    ids = tf.constant(small_dataset.table("item").ids.astype(str))
    bias = model.item_bias(model.item_bias_lookup(ids)).numpy()[:, 0].astype(np.float64)
    assert np.abs(bias).max() > 1e-4, "training should have moved the item biases"
    expected = q_raw @ c_raw.T + TEMPERATURE * bias[None, :]
    np.testing.assert_allclose(np.asarray(model.scorer()(rows)), expected, rtol=1e-4, atol=1e-5)


# --- Losses by hand ------------------------------------------------------------------------------


def _item_rows(dataset, batch) -> np.ndarray:
    ids = [v.decode() for v in batch["item_id"].numpy()]
    return dataset.table("item").index_of(ids)


def test_catalog_loss_is_the_mean_softmax_cross_entropy_over_the_catalog(
    small_dataset, small_split
):
    tf.keras.utils.set_random_seed(5)
    model = model_for(small_dataset, small_split.train, _config("catalog", "subset", False))
    batch = first_batch(_pipeline(model, small_dataset, small_split.train, batch_size=64))
    queries = model.query_vectors(batch).numpy().astype(np.float64)
    catalog = model.item_embeddings().astype(np.float64)
    labels = _item_rows(small_dataset, batch)
    expected = numpy_softmax_ce(queries @ catalog.T / TEMPERATURE, labels).mean()
    np.testing.assert_allclose(float(model.compute_loss(batch)), expected, rtol=1e-4)


def _in_batch_loss(queries, candidates, rows, log_probability, *, logq: bool) -> float:
    """TFRS's in-batch softmax by hand: summed CE, diagonal labels, accidental hits removed."""
    logits = queries @ candidates.T / TEMPERATURE
    if logq:
        logits = logits - log_probability[rows][None, :]
    same = rows[:, None] == rows[None, :]
    logits = np.where(same & ~np.eye(len(rows), dtype=bool), -1e30, logits)
    return float(numpy_softmax_ce(logits, np.arange(len(rows))).sum())


@pytest.fixture(scope="module")
def logq_models(small_dataset, small_split):
    """Two in-batch models with identical weights, with and without logQ correction."""
    tf.keras.utils.set_random_seed(6)
    models = {
        logq: model_for(
            small_dataset,
            small_split.train,
            _config("in_batch", "ids", False, logq_correction=logq),
        )
        for logq in (True, False)
    }
    batch = first_batch(_pipeline(models[True], small_dataset, small_split.train, batch_size=64))
    for model in models.values():
        model.compute_loss(batch)  # creates the weights
    models[False].set_weights(models[True].get_weights())
    return models, batch


def test_in_batch_loss_with_logq_matches_numpy(logq_models, small_split, small_dataset):
    models, batch = logq_models
    rows = _item_rows(small_dataset, batch)
    assert len(set(rows)) < len(rows), "the batch should contain accidental hits"
    # Sampling probabilities from train counts, computed here independently.
    _, train_items = small_dataset.encode(small_split.train)
    counts = np.bincount(train_items, minlength=small_dataset.n_items).astype(np.float64)
    log_probability = np.log(np.maximum(counts, 1.0) / counts.sum())
    model = models[True]
    queries = model.query_vectors(batch).numpy().astype(np.float64)
    candidates = model.candidate_vectors(batch).numpy().astype(np.float64)
    expected = _in_batch_loss(queries, candidates, rows, log_probability, logq=True)
    np.testing.assert_allclose(float(model.compute_loss(batch)), expected, rtol=1e-4)


def test_in_batch_loss_without_logq_matches_numpy_and_differs(logq_models, small_dataset):
    models, batch = logq_models
    rows = _item_rows(small_dataset, batch)
    on, off = models[True], models[False]
    np.testing.assert_array_equal(on.query_vectors(batch).numpy(), off.query_vectors(batch).numpy())
    queries = off.query_vectors(batch).numpy().astype(np.float64)
    candidates = off.candidate_vectors(batch).numpy().astype(np.float64)
    expected = _in_batch_loss(queries, candidates, rows, None, logq=False)
    loss_off = float(off.compute_loss(batch))
    np.testing.assert_allclose(loss_off, expected, rtol=1e-4)
    assert abs(float(on.compute_loss(batch)) - loss_off) > 1e-3 * loss_off


def test_item_log_probability_comes_from_train_counts(small_dataset, small_split):
    # A train subset that leaves some items without any positive.
    train = small_split.train.iloc[:150]
    counts = (
        train["item_id"]
        .value_counts()
        .reindex(small_dataset.items["item_id"], fill_value=0)
        .to_numpy()
    ).astype(np.float64)
    assert (counts == 0).any() and (counts > 1).any()
    expected = np.log(np.maximum(counts, 1.0) / counts.sum())
    model = model_for(small_dataset, train, _config("in_batch", "ids", False))
    np.testing.assert_allclose(model.item_log_probability.numpy(), expected, rtol=1e-5)


def test_vocabularies_come_from_train_not_holdout(small_dataset, small_split):
    model = model_for(small_dataset, small_split.train, _config("catalog", "ids", False))
    lookup = model.query_tower.encoder.lookups["user_id"]
    assert [str(v) for v in lookup.get_vocabulary()[1:]] == sorted(
        set(small_split.train["user_id"])
    )


# --- OOV users ------------------------------------------------------------------------------------


@pytest.mark.parametrize("feature_set", ["ids", "subset"])
def test_users_unseen_in_train_get_finite_scores_and_recommendations(small_dataset, feature_set):
    dataset = with_extra_user(small_dataset)
    split = holdout_80_20(dataset.interactions)
    holdout_only = sorted(set(split.holdout["user_id"]) - set(split.train["user_id"]))
    assert holdout_only
    tf.keras.utils.set_random_seed(8)
    model = model_for(dataset, split.train, _config("catalog", feature_set, True))

    unseen = [NEW_USER, holdout_only[0]]
    rows = dataset.table("user").index_of(unseen)
    scores = np.asarray(model.scorer()(rows))
    assert scores.shape == (2, dataset.n_items)
    assert np.all(np.isfinite(scores))
    recommendations = recommend(model.scorer(), dataset, unseen, n=5, exclude=split.train)
    assert [len(r) for r in recommendations] == [5, 5]
    for recs in recommendations:
        assert all(np.isfinite(r["score"]) for r in recs)


def test_sigmoid_loss_is_binary_cross_entropy_of_dot_products_plus_biases(
    small_dataset, small_split
):
    """loss = mean BCE(label, q.c / T + user bias), the item bias inside q.c."""
    tf.keras.utils.set_random_seed(8)
    model = model_for(
        small_dataset, small_split.train, _config("catalog", "subset", True, loss="sigmoid")
    )
    batch = first_batch(_pipeline(model, small_dataset, small_split.train, batch_size=128))
    assert set(np.unique(batch["label"].numpy())) == {0.0, 1.0}  # trains on the ranking pipeline
    model.compute_loss(batch)  # creates the weights
    model.user_bias.set_weights(
        [np.random.default_rng(0).normal(size=model.user_bias.get_weights()[0].shape)]
    )
    queries = model.query_vectors(batch).numpy().astype(np.float64)
    candidates = model.candidate_vectors(batch).numpy().astype(np.float64)
    user_bias = model.user_bias(model.user_bias_lookup(batch["user_id"])).numpy()[:, 0]
    logits = (queries * candidates).sum(axis=1) / TEMPERATURE + user_bias
    labels = batch["label"].numpy()
    expected = np.mean(np.maximum(logits, 0) - logits * labels + np.log1p(np.exp(-np.abs(logits))))
    np.testing.assert_allclose(float(model.compute_loss(batch)), expected, rtol=1e-4)


def test_sigmoid_loss_training_lowers_the_loss(small_dataset, small_split):
    tf.keras.utils.set_random_seed(9)
    model = model_for(
        small_dataset, small_split.train, _config("catalog", "ids", True, loss="sigmoid")
    )
    model.compile(optimizer=tf.keras.optimizers.Adam(0.05))
    pipeline = _pipeline(model, small_dataset, small_split.train)
    batch = first_batch(pipeline)
    before = float(model.compute_loss(batch))
    model.fit(pipeline.repeat().take(STEPS), verbose=0)
    assert float(model.compute_loss(batch)) < 0.95 * before


def test_catalog_sigmoid_loss_is_bce_over_every_catalog_cell(small_dataset, small_split):
    """loss = mean over users x items of BCE(train row, q.C / T + user bias)."""
    tf.keras.utils.set_random_seed(10)
    model = model_for(
        small_dataset, small_split.train, _config("catalog", "subset", True, loss="catalog_sigmoid")
    )
    batch = first_batch(_pipeline(model, small_dataset, small_split.train, batch_size=32))
    labels = batch["label"].numpy()
    assert labels.shape == (32, small_dataset.n_items)
    model.compute_loss(batch)  # creates the weights
    queries = model.query_vectors(batch).numpy().astype(np.float64)
    catalog = model.item_embeddings().astype(np.float64)
    user_bias = model.user_bias(model.user_bias_lookup(batch["user_id"])).numpy()
    logits = queries @ catalog.T / TEMPERATURE + user_bias
    expected = np.mean(np.maximum(logits, 0) - logits * labels + np.log1p(np.exp(-np.abs(logits))))
    np.testing.assert_allclose(float(model.compute_loss(batch)), expected, rtol=1e-4)


def test_catalog_sigmoid_training_lowers_the_loss(small_dataset, small_split):
    tf.keras.utils.set_random_seed(12)
    model = model_for(
        small_dataset, small_split.train, _config("catalog", "ids", True, loss="catalog_sigmoid")
    )
    model.compile(optimizer=tf.keras.optimizers.Adam(0.05))
    pipeline = _pipeline(model, small_dataset, small_split.train, batch_size=64)
    batch = first_batch(pipeline)
    before = float(model.compute_loss(batch))
    model.fit(pipeline.repeat().take(STEPS), verbose=0)
    assert float(model.compute_loss(batch)) < 0.95 * before


@pytest.mark.parametrize(
    "loss,negatives",
    [("catalog_sigmoid", "catalog"), ("softmax", "catalog"), ("softmax", "in_batch")],
)
def test_vector_l2_adds_the_mf_penalty_on_the_final_vectors(
    small_dataset, small_split, loss, negatives
):
    """vector_l2 * (mean ||q||^2 + catalog sum ||c||^2 / train users), or batch means."""
    weight = 0.05
    plain = _config(negatives, "subset", True, loss=loss)
    penalised = dataclasses.replace(plain, vector_l2=weight)
    tf.keras.utils.set_random_seed(14)
    model = model_for(small_dataset, small_split.train, penalised)
    batch = first_batch(_pipeline(model, small_dataset, small_split.train, batch_size=32))
    with_penalty = float(model.compute_loss(batch))
    model.config = plain  # same weights, no penalty
    without = float(model.compute_loss(batch))
    queries = model.query_vectors(batch).numpy().astype(np.float64)
    query_term = np.mean(np.sum(queries**2, axis=1))
    if negatives == "catalog":
        catalog = model.item_embeddings().astype(np.float64)
        n_users = small_split.train["user_id"].nunique()
        candidate_term = np.sum(catalog**2) / n_users
    else:
        candidates = model.candidate_vectors(batch).numpy().astype(np.float64)
        candidate_term = np.mean(np.sum(candidates**2, axis=1))
    np.testing.assert_allclose(
        with_penalty - without, weight * (query_term + candidate_term), rtol=1e-4
    )
    assert with_penalty - without > 0


def test_vector_l2_must_not_be_negative():
    from tfrs_recsys.config import ModelConfig
    from tfrs_recsys.errors import ConfigError

    with pytest.raises(ConfigError, match="vector_l2"):
        ModelConfig(vector_l2=-0.1)


def test_logistic_model_probabilities_are_the_sigmoid_of_its_trained_logits(
    small_dataset, small_split
):
    """p(u, i) = sigmoid(q_u . c_i / T + user bias), pair by pair, as the catalog loss trains it."""
    tf.keras.utils.set_random_seed(15)
    model = model_for(
        small_dataset, small_split.train, _config("catalog", "subset", True, loss="catalog_sigmoid")
    )
    model.compile(optimizer=tf.keras.optimizers.Adam(0.05))
    model.fit(
        _pipeline(model, small_dataset, small_split.train, batch_size=64).repeat().take(5),
        verbose=0,
    )
    rng = np.random.default_rng(0)
    users = rng.integers(0, small_dataset.n_users, 50)
    items = rng.integers(0, small_dataset.n_items, 50)
    got = model.probabilities(users, items, batch_size=16)
    queries = model.user_embeddings(users).astype(np.float64)
    catalog = model.item_embeddings().astype(np.float64)
    ids = small_dataset.table("user").ids[users]
    bias = model.user_bias(model.user_bias_lookup(tf.constant([str(u) for u in ids]))).numpy()[:, 0]
    logits = np.sum(queries * catalog[items], axis=1) / TEMPERATURE + bias
    np.testing.assert_allclose(got, 1.0 / (1.0 + np.exp(-logits)), rtol=1e-5, atol=1e-6)
    assert ((got > 0) & (got < 1)).all()
    # For one user, the probabilities order the catalog as the scorer does.
    user = np.full(small_dataset.n_items, users[0])
    order = np.argsort(-model.probabilities(user, np.arange(small_dataset.n_items)), kind="stable")
    scores = np.asarray(model.scorer()(users[:1]))[0]
    np.testing.assert_array_equal(np.sort(scores)[::-1], scores[order])
    assert model.probabilities(users[:0], items[:0]).shape == (0,)


def test_softmax_model_has_no_probabilities(small_dataset, small_split):
    model = model_for(small_dataset, small_split.train, _config("catalog", "ids", True))
    assert not model.gives_probabilities
    with pytest.raises(ConfigError, match="catalog_sigmoid"):
        model.probabilities(np.array([0]), np.array([0]))


def test_mixed_negatives_loss_matches_numpy(small_dataset, small_split):
    """Batch positives plus uniform catalog draws, the mixture's logQ, accidental hits out."""
    tf.keras.utils.set_random_seed(7)
    config = _config("mixed", "ids", True, mixed_negatives=50)
    model = model_for(small_dataset, small_split.train, config)
    batch = first_batch(_pipeline(model, small_dataset, small_split.train, batch_size=64))
    model.compute_loss(batch)  # creates the weights; the first draw
    step = int(model.mixed_draws.numpy())
    rows = _item_rows(small_dataset, batch)
    n_items = small_dataset.n_items
    # The next step's draws: stateless, keyed on (the model's seed, steps so far).
    draws = tf.random.stateless_uniform(
        [50], seed=[model.mixed_seed, step + 1], maxval=n_items, dtype=tf.int64
    ).numpy()
    _, train_items = small_dataset.encode(small_split.train)
    counts = np.bincount(train_items, minlength=n_items).astype(np.float64)
    frequency = np.maximum(counts, 1.0) / counts.sum()
    candidate_rows = np.concatenate([rows, draws])
    queries = model.query_vectors(batch).numpy().astype(np.float64)
    catalog = model.item_embeddings().astype(np.float64)
    logits = queries @ catalog[candidate_rows].T / TEMPERATURE
    logits -= np.log(frequency[candidate_rows] + 50 / (len(rows) * n_items))[None, :]
    same = rows[:, None] == candidate_rows[None, :]
    diagonal = np.eye(len(rows), len(candidate_rows), dtype=bool)
    logits = np.where(same & ~diagonal, -1e30, logits)
    expected = numpy_softmax_ce(logits, np.arange(len(rows))).sum()
    np.testing.assert_allclose(float(model.compute_loss(batch)), expected, rtol=1e-4)
    assert int(model.mixed_draws.numpy()) == step + 1
