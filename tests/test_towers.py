"""Tower: output shape, L2-normalised rows, and the id residual."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import tensorflow as tf
from model_fixtures import genre_dataset, small_model_config, small_split, tower_for  # noqa: F401

from tfrs_recsys.data.pipelines import FeatureGather
from tfrs_recsys.features.columns import feature_columns


def _twins_dataset():
    """The genre toy data with u2 given u0's features (age 20, city paris)."""
    dataset = genre_dataset()
    users = dataset.users.copy()
    users.loc[users["user_id"] == "u2", "age"] = 20.0
    return dataclasses.replace(dataset, users=users)


def _user_vectors(tower, dataset, config, rows):
    columns = [f.name for f in feature_columns(dataset.schema, "user", config)]
    gather = FeatureGather(dataset.table("user"), columns)
    return tower(gather(tf.constant(np.asarray(rows, dtype=np.int64)))).numpy()


@pytest.mark.parametrize("side", ["user", "item"])
@pytest.mark.parametrize("id_mode", ["input", "residual", "none"])
def test_tower_rows_have_output_dim_and_unit_norm(small_dataset, small_split, side, id_mode):
    tf.keras.utils.set_random_seed(1)
    config = small_model_config(feature_set="subset", id_mode=id_mode, output_dim=6, hidden=(10, 7))
    tower = tower_for(small_dataset, side, small_split.train, config)
    columns = [f.name for f in feature_columns(small_dataset.schema, side, config)]
    gather = FeatureGather(small_dataset.table(side), columns)
    out = tower(gather(tf.range(11))).numpy()
    assert out.shape == (11, 6)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), np.ones(11), rtol=1e-5)


def test_all_features_tower_with_text_has_unit_rows(small_dataset, small_split):
    tf.keras.utils.set_random_seed(1)
    config = small_model_config(feature_set="all", text_encoder="bow", output_dim=5)
    tower = tower_for(small_dataset, "item", small_split.train, config)
    columns = [f.name for f in feature_columns(small_dataset.schema, "item", config)]
    assert {"description", "features"} <= set(columns)
    out = tower(FeatureGather(small_dataset.table("item"), columns)(tf.range(4))).numpy()
    assert out.shape == (4, 5)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), np.ones(4), rtol=1e-5)


def test_id_residual_separates_users_with_identical_features():
    tf.keras.utils.set_random_seed(2)
    dataset = _twins_dataset()
    config = small_model_config(feature_set="subset", id_mode="residual")
    tower = tower_for(dataset, "user", dataset.interactions, config)
    u0, u2 = _user_vectors(tower, dataset, config, [0, 2])
    assert not np.allclose(u0, u2, atol=1e-6)


def test_without_ids_identical_features_give_identical_vectors():
    tf.keras.utils.set_random_seed(2)
    dataset = _twins_dataset()
    config = small_model_config(feature_set="subset", id_mode="none")
    tower = tower_for(dataset, "user", dataset.interactions, config)
    assert tower.id_residual is None
    u0, u2 = _user_vectors(tower, dataset, config, [0, 2])
    np.testing.assert_array_equal(u0, u2)


def test_zero_residual_weights_make_twins_identical():
    tf.keras.utils.set_random_seed(2)
    dataset = _twins_dataset()
    config = small_model_config(feature_set="subset", id_mode="residual")
    tower = tower_for(dataset, "user", dataset.interactions, config)
    _user_vectors(tower, dataset, config, [0])  # build
    tower.residual_embedding.embeddings.assign(tf.zeros_like(tower.residual_embedding.embeddings))
    u0, u2 = _user_vectors(tower, dataset, config, [0, 2])
    np.testing.assert_allclose(u0, u2, rtol=1e-6)


def test_residual_is_added_to_the_feature_output_before_normalising():
    tf.keras.utils.set_random_seed(3)
    dataset = _twins_dataset()
    config = small_model_config(feature_set="subset", id_mode="residual", hidden=(4,), output_dim=3)
    tower = tower_for(dataset, "user", dataset.interactions, config)
    rows = np.array([0, 1, 2, 3])  # u3 has no train positive: OOV residual row 0
    got = _user_vectors(tower, dataset, config, rows)

    # By hand: features -> relu dense -> dense, plus residual row of the id, L2-normalised.
    table = dataset.table("user")
    age = table.columns["age"][rows].astype(np.float64)
    normalizer = tower.encoder.normalizers["age"]
    mean = float(np.ravel(normalizer.mean.numpy())[0])
    variance = float(np.ravel(normalizer.variance.numpy())[0])
    x = ((age - mean) / np.sqrt(variance))[:, None]
    w1, b1 = (v.numpy().astype(np.float64) for v in tower.hidden_layers[0].weights)
    w2, b2 = (v.numpy().astype(np.float64) for v in tower.output_layer.weights)
    features = np.maximum(x @ w1 + b1, 0.0) @ w2 + b2
    residual_table = tower.residual_embedding.embeddings.numpy().astype(np.float64)
    vocabulary = [str(v) for v in tower.residual_lookup.get_vocabulary()]
    assert vocabulary == ["[UNK]", "u0", "u1", "u2"]
    index = [vocabulary.index(u) if u in vocabulary else 0 for u in table.ids[rows]]
    raw = features + residual_table[index]
    expected = raw / np.linalg.norm(raw, axis=1, keepdims=True)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_id_as_input_separates_users_with_identical_features():
    tf.keras.utils.set_random_seed(2)
    dataset = _twins_dataset()
    config = small_model_config(feature_set="subset", id_mode="input")
    tower = tower_for(dataset, "user", dataset.interactions, config)
    assert tower.id_residual is None
    u0, u2 = _user_vectors(tower, dataset, config, [0, 2])
    assert not np.allclose(u0, u2, atol=1e-6)


def test_dropout_only_acts_in_training(small_dataset, small_split):
    tf.keras.utils.set_random_seed(4)
    config = small_model_config(feature_set="ids", dropout=0.5, hidden=(64,))
    tower = tower_for(small_dataset, "user", small_split.train, config)
    inputs = FeatureGather(small_dataset.table("user"), ["user_id"])(tf.range(8))
    a, b = tower(inputs, training=False).numpy(), tower(inputs, training=False).numpy()
    np.testing.assert_array_equal(a, b)
    c = tower(inputs, training=True).numpy()
    assert not np.allclose(a, c)


def test_normalize_false_leaves_the_rows_unnormalised(small_dataset, small_split):
    tf.keras.utils.set_random_seed(5)
    config = small_model_config(feature_set="ids", normalize=False)
    tower = tower_for(small_dataset, "user", small_split.train, config)
    assert tower.normalize is False
    inputs = FeatureGather(small_dataset.table("user"), ["user_id"])(tf.range(10))
    out = tower(inputs).numpy()
    assert out.shape == (10, config.output_dim)
    assert not np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-3)
    # The same tower with normalisation switched on gives the rows divided by their norms.
    tower.normalize = True
    np.testing.assert_allclose(
        tower(inputs).numpy(),
        out / np.linalg.norm(out, axis=1, keepdims=True),
        rtol=1e-5,
        atol=1e-6,
    )


def _ids_only_users_dataset():
    """The genre toy data whose users have no feature column but their id."""
    dataset = genre_dataset()
    schema = dataclasses.replace(
        dataset.schema,
        user_features=tuple(f for f in dataset.schema.user_features if f.kind == "id"),
    )
    return dataclasses.replace(dataset, schema=schema, users=dataset.users[["user_id"]].copy())


@pytest.mark.parametrize("feature_set", ["subset", "all"])
@pytest.mark.parametrize("id_mode", ["residual", "none"])
def test_a_side_without_features_falls_back_to_its_id(feature_set, id_mode):
    tf.keras.utils.set_random_seed(2)
    dataset = _ids_only_users_dataset()
    config = small_model_config(feature_set=feature_set, id_mode=id_mode)
    users = tower_for(dataset, "user", dataset.interactions, config)
    assert users.encoder.feature_names == ["user_id"]
    assert users.id_residual is None
    vectors = _user_vectors(users, dataset, config, [0, 1, 2])
    assert not np.allclose(vectors[0], vectors[2], atol=1e-6)  # the id tells users apart
    items = tower_for(dataset, "item", dataset.interactions, config)
    expected = [f.name for f in feature_columns(dataset.schema, "item", config) if f.kind != "id"]
    assert items.encoder.feature_names == expected  # the item side keeps its features
    assert ("genres" in expected) == (feature_set == "all")
