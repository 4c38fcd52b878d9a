"""``model.text_encoder = "bert"``: text columns embedded once by a TF Hub
encoder pair (a tiny converted BERT here), looked up in graph by string."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from model_fixtures import (  # noqa: F401
    embedding_cache,
    first_batch,
    model_for,
    small_model_config,
    small_split,
    tiny_bert_pair,
)

from tfrs_recsys.config import ExperimentConfig, ModelConfig, TrainConfig
from tfrs_recsys.errors import ConfigError
from tfrs_recsys.features.columns import text_model_spec
from tfrs_recsys.features.text import PrecomputedTextEncoder
from tfrs_recsys.models.factory import training_dataset
from tfrs_recsys.text_encoder import embed_texts


@pytest.fixture(scope="module")
def pair_dir(tmp_path_factory):
    return tiny_bert_pair(tmp_path_factory, "bert-features")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One embedding cache for the module: the catalog's strings are embedded once."""
    yield from embedding_cache(tmp_path_factory, "bert")


def _model(dataset, train, pair_dir, kind="retrieval", **overrides):
    config = small_model_config(
        kind=kind, feature_set="all", text_encoder="bert", text_model=str(pair_dir), **overrides
    )
    return model_for(dataset, train, config)


def test_text_columns_are_looked_up_from_the_encoders_vectors(
    small_dataset, small_split, pair_dir, cache
):
    model = _model(small_dataset, small_split.train, pair_dir)
    encoders = model.candidate_tower.encoder.text_encoders
    assert set(encoders) == {"description", "features"}
    assert set(model.query_tower.encoder.text_encoders) == {"profession"}
    for encoder in encoders.values():
        assert isinstance(encoder, PrecomputedTextEncoder)
    texts = [str(t) for t in small_dataset.items["description"][:5]]
    expected = embed_texts(texts, str(pair_dir))
    got = encoders["description"](tf.constant(texts)).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert got.shape[1] == 16  # the tiny BERT's hidden size
    # The on-disk cache now holds the catalog's strings: each is embedded once.
    assert any((cache / "text_embeddings").rglob("*.npz"))


def test_an_unknown_text_gets_the_zero_vector(small_dataset, small_split, pair_dir, cache):
    model = _model(small_dataset, small_split.train, pair_dir)
    encoder = model.candidate_tower.encoder.text_encoders["description"]
    np.testing.assert_array_equal(encoder(tf.constant(["never seen before"])).numpy(), 0.0)


@pytest.mark.parametrize(
    "kind,loss",
    [("retrieval", "catalog_sigmoid"), ("retrieval", "softmax"), ("ranking", "softmax")],
)
def test_models_with_bert_text_train(small_dataset, small_split, pair_dir, cache, kind, loss):
    tf.keras.utils.set_random_seed(3)
    model = _model(small_dataset, small_split.train, pair_dir, kind=kind, loss=loss)
    model.compile(optimizer=tf.keras.optimizers.Adam(0.05))
    experiment = ExperimentConfig(model=model.config, train=TrainConfig(batch_size=64, seed=1))
    pipeline = training_dataset(model, small_dataset, small_split.train, experiment)
    batch = first_batch(pipeline)
    before = float(model.compute_loss(batch))
    model.fit(pipeline.repeat().take(10), verbose=0)
    after = float(model.compute_loss(batch))
    assert np.isfinite(after) and after < before


def test_text_model_spec_accepts_a_name_a_directory_or_a_pair():
    assert text_model_spec("minilm") == "minilm"
    assert text_model_spec("/a/dir") == "/a/dir"
    assert text_model_spec("https://p, https://e") == ("https://p", "https://e")


@pytest.mark.parametrize("bad", ["", "  ", "a,b,c"])
def test_bad_text_model_is_a_config_error(bad):
    with pytest.raises(ConfigError, match="text_model"):
        ModelConfig(text_model=bad)


# --- The second notebook's model (seed_all) --------------------------------------------------


@pytest.fixture(scope="module")
def seed_all(small_dataset, small_split, pair_dir, cache):
    from tfrs_recsys.notebook_models.seed_all import SeedAllModel

    return SeedAllModel.fit(
        small_dataset,
        small_split.train,
        small_split.holdout,
        text_model=str(pair_dir),
        rows=5000,
        epochs=1,
    )


def test_seed_all_features_are_the_notebooks(seed_all, small_dataset, pair_dir, cache):
    users, items = small_dataset.users, small_dataset.items
    profession = embed_texts(list(users["profession"].astype(str)), str(pair_dir))
    ages = users["age"].to_numpy(np.float64)
    np.testing.assert_allclose(seed_all.user_features[:, :-1], profession, atol=1e-6)
    np.testing.assert_allclose(
        seed_all.user_features[:, -1], (ages - ages.min()) / (ages.max() - ages.min()), atol=1e-6
    )
    assert seed_all.item_features.shape == (small_dataset.n_items, 2 * profession.shape[1] + 1)
    prices = items["price"].to_numpy(np.float64)
    np.testing.assert_allclose(
        seed_all.item_features[:, -1],
        (prices - prices.min()) / (prices.max() - prices.min()),
        atol=1e-6,
    )


def test_seed_all_scorer_equals_the_keras_model_and_ranks_items_alike_for_everyone(
    seed_all, small_dataset
):
    users = np.array([0, 3, 7])
    scores = seed_all.scorer()(users)
    assert scores.shape == (3, small_dataset.n_items)
    pairs_u = np.repeat(users, small_dataset.n_items)
    pairs_i = np.tile(np.arange(small_dataset.n_items), 3)
    expected = seed_all.probabilities(pairs_u, pairs_i).reshape(3, -1)
    np.testing.assert_allclose(scores, expected, atol=1e-5)
    # One sigmoid over concatenated towers: the item order is the same for every user.
    order = np.argsort(-scores[0], kind="stable")
    assert (np.diff(scores[:, order], axis=1) <= 0).all()
