"""The user's train items as a query feature (``model.user_history``)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import tensorflow as tf
from model_fixtures import model_for, small_model_config, small_split, tiny_experiment  # noqa: F401

from tfrs_recsys.errors import ConfigError
from tfrs_recsys.features.preprocessing import Preprocessing, fit_preprocessing, user_histories
from tfrs_recsys.towers.history import EXCLUDED_ITEM, HistoryEncoder


def test_user_histories_list_each_users_items():
    users = np.array([2, 0, 2, 2, 0])
    items = np.array([5, 1, 3, 4, 9])
    offsets, rows = user_histories(users, items, n_users=4)
    assert offsets.tolist() == [0, 2, 2, 5, 5]
    assert rows[0:2].tolist() == [1, 9] and rows[2:5].tolist() == [3, 4, 5]


@pytest.fixture
def encoder():
    # users a: items 0, 2; b: none; c: item 1
    layer = HistoryEncoder(["a", "b", "c"], np.array([0, 2, 2, 3]), np.array([0, 2, 1]), 3, 4)
    layer(tf.constant(["a"]))  # builds the embedding
    return layer, layer.embedding.embeddings.numpy()


def test_the_history_is_the_mean_item_embedding(encoder):
    layer, table = encoder
    out = layer(tf.constant(["a", "c", "b", "new user", ""])).numpy()
    np.testing.assert_allclose(out[0], (table[0] + table[2]) / 2, rtol=1e-6)
    np.testing.assert_allclose(out[1], table[1], rtol=1e-6)
    np.testing.assert_array_equal(out[2:], np.zeros((3, 4)))


def test_the_predicted_item_is_left_out_of_the_history(encoder):
    layer, table = encoder
    out = layer(tf.constant(["a", "a", "c"]), tf.constant([2, 1, 1], tf.int64)).numpy()
    np.testing.assert_allclose(out[0], table[0], rtol=1e-6)
    np.testing.assert_allclose(out[1], (table[0] + table[2]) / 2, rtol=1e-6)
    np.testing.assert_array_equal(out[2], np.zeros(4))


def test_the_history_l2_is_taken_on_the_rows_looked_up():
    layer = HistoryEncoder(["a", "b"], np.array([0, 2, 2]), np.array([0, 1]), 2, 3, l2=0.5)
    layer(tf.constant(["b"]))
    assert float(tf.add_n(layer.losses)) == 0.0  # a batch of users without history
    table = layer.embedding.embeddings.numpy()
    layer(tf.constant(["a"]))
    expected = 0.5 * (np.square(table[0]).sum() + np.square(table[1]).sum()) / 2
    np.testing.assert_allclose(float(layer.losses[-1]), expected, rtol=1e-6)


@pytest.mark.parametrize(
    "overrides",
    [{"kind": "ranking"}, {"loss": "catalog_sigmoid"}, {"loss": "sigmoid"}],
)
def test_user_history_needs_a_retrieval_softmax(overrides):
    with pytest.raises(ConfigError, match="model.user_history needs"):
        small_model_config(user_history=True, **overrides)


def test_the_histories_are_fitted_from_train_and_saved(small_dataset, small_split, tmp_path):
    config = small_model_config(feature_set="ids", user_history=True)
    fitted = fit_preprocessing(small_dataset, small_split.train, config)
    offsets, rows = fitted.user_history
    users, items = small_dataset.encode(small_split.train)
    user = int(users[0])
    expected = np.sort(items[users == user])
    np.testing.assert_array_equal(rows[offsets[user] : offsets[user + 1]], expected)
    assert offsets[-1] == len(small_split.train)
    loaded = Preprocessing.load(fitted.save(tmp_path / "pre"))
    np.testing.assert_array_equal(loaded.user_history[0], offsets)
    np.testing.assert_array_equal(loaded.user_history[1], rows)
    plain = fit_preprocessing(small_dataset, small_split.train, small_model_config())
    assert plain.user_history is None
    assert Preprocessing.load(plain.save(tmp_path / "plain")).user_history is None


def test_a_history_model_reads_the_history_and_leaves_the_target_out(small_dataset, small_split):
    tf.keras.utils.set_random_seed(3)
    config = small_model_config(feature_set="ids", user_history=True, id_mode="input")
    model = model_for(small_dataset, small_split.train, config)
    users, items = small_dataset.encode(small_split.train)
    user = int(users[0])
    features = model.user_gather(tf.constant([user, user]))
    target = int(items[users == user][0])
    features = {**features, **model.item_gather(tf.constant([target, target]))}
    plain = model.query_vectors(features).numpy()
    trained = model.query_vectors(features, training=True).numpy()
    np.testing.assert_allclose(plain[0], plain[1])
    assert not np.allclose(plain[0], trained[0])  # one item fewer in the history
    inputs = {c: features[c] for c in model.user_columns}
    excluded = model.query_tower(
        {**inputs, EXCLUDED_ITEM: tf.constant([target, target], tf.int64)}
    ).numpy()
    np.testing.assert_allclose(trained, excluded, rtol=1e-6)


def test_a_history_run_trains_evaluates_and_exports(small_dir, tmp_path):
    from tfrs_recsys.serving.export import export_run
    from tfrs_recsys.serving.exported import load_exported
    from tfrs_recsys.training.run import load_run, train

    config = tiny_experiment(small_dir, model={"user_history": True, "id_mode": "input"})
    run = train(config, tmp_path / "run", verbose=0)
    assert 0 < run.metrics["holdout"]["metrics"]["recall@10"] <= 1
    again = load_run(tmp_path / "run")
    users = np.arange(5, dtype=np.int64)
    np.testing.assert_allclose(
        again.model.user_embeddings(users), run.model.user_embeddings(users), rtol=1e-6
    )
    result = export_run(tmp_path / "run", tmp_path / "exported" / "h", n=5, notice=lambda t: None)
    exported = load_exported(result.path)
    ids = [str(u) for u in again.data.dataset.table("user").ids[:3]]
    answers = exported.recommend(ids, k=5)
    scores = np.asarray(again.model.scorer()(users[:3]))
    train_items = again.data.split.train
    for answer, row, user_id in zip(answers, range(3), ids):
        seen = set(train_items.loc[train_items["user_id"] == user_id, "item_id"].astype(str))
        item_ids = [str(i) for i in again.data.dataset.table("item").ids]
        order = [i for i in np.argsort(-scores[row], kind="stable") if item_ids[i] not in seen]
        assert [a["item_id"] for a in answer["items"]] == [item_ids[i] for i in order[:5]]


def test_the_history_config_key_round_trips(small_dir):
    config = tiny_experiment(small_dir, model={"user_history": True})
    from tfrs_recsys.config import config_from_dict

    assert config_from_dict(config.to_dict()) == config
    assert dataclasses.replace(config.model, user_history=False) != config.model
