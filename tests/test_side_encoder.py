"""SideEncoder: output width, no holdout leakage, list pooling, log1p, OOV."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from model_fixtures import genre_dataset, small_model_config, small_split  # noqa: F401

from tfrs_recsys.data.dataset import RecDataset
from tfrs_recsys.data.pipelines import FeatureGather
from tfrs_recsys.data.techproducts import TECH_PRODUCTS_SCHEMA
from tfrs_recsys.errors import ConfigError
from tfrs_recsys.features.columns import feature_columns
from tfrs_recsys.features.preprocessing import fit_bag_of_words, fit_side
from tfrs_recsys.features.side_encoder import EncoderDims, SideEncoder
from tfrs_recsys.features.text import BagOfWordsEncoder
from tfrs_recsys.towers.build import text_encoders


def _vocabulary(lookup) -> list[str]:
    """A StringLookup's vocabulary without the OOV token."""
    vocabulary = [str(v) for v in lookup.get_vocabulary()]
    assert vocabulary[0] == "[UNK]"
    return vocabulary[1:]


def _side_encoder(features, table, rows, dims: EncoderDims, text_encoders=None) -> SideEncoder:
    """A SideEncoder of ``features``, its preprocessing fitted on the table ``rows``."""
    config = small_model_config(feature_set="subset", numeric_buckets=dims.numeric_buckets)
    return SideEncoder(
        features, fit_side(table, tuple(features), rows, config), dims, text_encoders=text_encoders
    )


def _bow(texts, max_tokens, ngrams=2) -> BagOfWordsEncoder:
    return BagOfWordsEncoder(
        fit_bag_of_words([str(t) for t in texts], max_tokens=max_tokens, ngrams=ngrams)
    )


def _encode(encoder: SideEncoder, table, rows) -> np.ndarray:
    gather = FeatureGather(table, encoder.feature_names)
    return encoder(gather(tf.constant(np.asarray(rows, dtype=np.int64)))).numpy()


# --- Widths ---------------------------------------------------------------------------


@pytest.mark.parametrize("numeric_buckets", [0, 4])
def test_user_encoder_width_is_the_sum_of_the_encodings(
    small_dataset, small_split, numeric_buckets
):
    table = small_dataset.table("user")
    user_rows, _ = small_dataset.encode(small_split.train)
    dims = EncoderDims(id_dim=5, categorical_dim=3, numeric_buckets=numeric_buckets)
    encoder = _side_encoder(
        table.features, table, user_rows, dims
    )  # id, age, profession, personality
    # id 5 + age 1 (+ 3 bucket embedding) + profession 3 + personality 3
    expected = 5 + 1 + (3 if numeric_buckets else 0) + 3 + 3
    assert _encode(encoder, table, [0, 1, 2, 3, 4, 5, 6]).shape == (7, expected)


def test_item_encoder_width_counts_text_projections(small_dataset, small_split):
    table = small_dataset.table("item")
    _, item_rows = small_dataset.encode(small_split.train)
    texts = {
        name: _bow(table.columns[name][np.unique(item_rows)], max_tokens=50)
        for name in ("description", "features")
    }
    dims = EncoderDims(id_dim=6, categorical_dim=2, numeric_buckets=3, text_dim=7)
    encoder = _side_encoder(table.features, table, item_rows, dims, text_encoders=texts)
    # item_id 6 + product_type 2 + description 7 + price 1 + price buckets 2 + features 7
    assert _encode(encoder, table, np.arange(9)).shape == (9, 6 + 2 + 7 + 1 + 2 + 7)


def test_categorical_marked_as_text_also_gets_a_text_projection(small_dataset, small_split):
    table = small_dataset.table("user")
    user_rows, _ = small_dataset.encode(small_split.train)
    profession = [f for f in table.features if f.name == "profession"]
    assert profession[0].as_text
    text = {"profession": _bow(table.columns["profession"][user_rows], max_tokens=20)}
    dims = EncoderDims(categorical_dim=3, text_dim=5)
    without = _side_encoder(profession, table, user_rows, dims)
    with_text = _side_encoder(profession, table, user_rows, dims, text_encoders=text)
    assert _encode(without, table, [0, 1]).shape == (2, 3)
    assert _encode(with_text, table, [0, 1]).shape == (2, 3 + 5)


class _Stats:
    """``(mean, variance)`` of a fitted column, with the Normalization layer's attribute names."""

    def __init__(self, mean: np.ndarray, variance: np.ndarray) -> None:
        self.mean, self.variance = tf.constant(mean), tf.constant(variance)


# --- No holdout leakage -------------------------------------------------------------------


def test_id_vocabulary_is_exactly_the_train_users(small_dataset, small_split):
    table = small_dataset.table("user")
    user_rows, _ = small_dataset.encode(small_split.train)
    encoder = _side_encoder(table.features[:1], table, user_rows, EncoderDims(id_dim=4))
    assert _vocabulary(encoder.lookups["user_id"]) == sorted(set(small_split.train["user_id"]))


def test_holdout_only_user_maps_to_the_oov_row(small_dataset, small_split):
    holdout_only = sorted(set(small_split.holdout["user_id"]) - set(small_split.train["user_id"]))
    assert holdout_only, "the small dataset should have a user whose positives are all in holdout"
    table = small_dataset.table("user")
    user_rows, _ = small_dataset.encode(small_split.train)
    encoder = _side_encoder(table.features[:1], table, user_rows, EncoderDims(id_dim=4))
    assert holdout_only[0] not in _vocabulary(encoder.lookups["user_id"])
    assert int(encoder.lookups["user_id"](tf.constant([holdout_only[0]]))[0]) == 0
    row = table.index_of([holdout_only[0]])
    vector = _encode(encoder, table, row)[0]
    np.testing.assert_array_equal(vector, encoder.embeddings["user_id"].embeddings.numpy()[0])


def test_normalization_statistics_come_from_train_users_only(small_dataset, small_split):
    table = small_dataset.table("user")
    user_rows, _ = small_dataset.encode(small_split.train)
    age = [f for f in table.features if f.name == "age"]
    fitted = fit_side(table, tuple(age), user_rows, small_model_config(feature_set="subset"))
    ages = table.columns["age"][np.unique(user_rows)].astype(np.float64)
    mean, variance = fitted.normalization["age"]
    np.testing.assert_allclose(np.ravel(mean), [ages.mean()], rtol=1e-5)
    np.testing.assert_allclose(np.ravel(variance), [ages.var()], rtol=1e-4)


def test_hand_made_statistics_differ_from_all_rows():
    dataset = genre_dataset()
    users, items = dataset.table("user"), dataset.table("item")
    user_rows, item_rows = dataset.encode(dataset.interactions)  # u3 and i2 have no positives
    config = small_model_config(feature_set="subset")
    age = _Stats(*fit_side(users, users.features, user_rows, config).normalization["age"])
    price = _Stats(*fit_side(items, items.features, item_rows, config).normalization["price"])

    train_ages = np.array([20.0, 30.0, 40.0])
    all_ages = np.array([20.0, 30.0, 40.0, 90.0])
    np.testing.assert_allclose(np.ravel(age.mean.numpy()), [train_ages.mean()], rtol=1e-6)
    np.testing.assert_allclose(np.ravel(age.variance.numpy()), [train_ages.var()], rtol=1e-5)
    assert not np.isclose(float(np.ravel(age.mean.numpy())[0]), all_ages.mean())
    assert not np.isclose(float(np.ravel(age.variance.numpy())[0]), all_ages.var())

    train_prices = np.log1p([9.0, 99.0])
    all_prices = np.log1p([9.0, 99.0, 1000.0])
    np.testing.assert_allclose(np.ravel(price.mean.numpy()), [train_prices.mean()], rtol=1e-5)
    np.testing.assert_allclose(np.ravel(price.variance.numpy()), [train_prices.var()], rtol=1e-4)
    assert not np.isclose(float(np.ravel(price.mean.numpy())[0]), all_prices.mean())


def test_categorical_vocabularies_hold_only_train_values():
    dataset = genre_dataset()
    users, items = dataset.table("user"), dataset.table("item")
    user_rows, item_rows = dataset.encode(dataset.interactions)
    user_encoder = _side_encoder(users.features, users, user_rows, EncoderDims())
    item_encoder = _side_encoder(items.features, items, item_rows, EncoderDims())
    assert _vocabulary(user_encoder.lookups["user_id"]) == ["u0", "u1", "u2"]
    assert _vocabulary(user_encoder.lookups["city"]) == ["paris", "rome"]  # "far": u3 only
    assert _vocabulary(item_encoder.lookups["item_id"]) == ["i0", "i1"]
    assert _vocabulary(item_encoder.lookups["genres"]) == ["a", "b"]  # "zz": i2 only, "" dropped
    assert _vocabulary(item_encoder.lookups["kind"]) == ["book", "film"]


def test_bucket_boundaries_come_from_train_values():
    dataset = genre_dataset()
    users = dataset.table("user")
    user_rows, _ = dataset.encode(dataset.interactions)
    age = [f for f in users.features if f.name == "age"]
    encoder = _side_encoder(age, users, user_rows, EncoderDims(numeric_buckets=3))
    boundaries = np.asarray(encoder.buckets["age"].bin_boundaries, dtype=np.float64)
    assert len(boundaries) == 2
    # The train ages are 20, 30, 40; the holdout-only 90 must not move them.
    assert np.all((boundaries >= 20.0) & (boundaries <= 40.0))


def test_text_vocabulary_is_learnt_from_train_items_only():
    # A tech-products dataset with a fourth item that nobody likes: its words stay out.
    users = pd.DataFrame(
        {
            "user_id": ["u1", "u2"],
            "age": [30.0, 40.0],
            "profession": ["arts", "law"],
            "personality": ["Tech Enthusiast", "Budget Conscious"],
        }
    )
    items = pd.DataFrame(
        {
            "item_id": ["i1", "i2", "i3"],
            "product_type": ["laptop", "mouse", "mouse"],
            "description": ["fast laptop", "quiet mouse", "zebra unicorn"],
            "price": [999.0, 20.0, 30.0],
            "features": ["touchscreen", "wireless", "glitter"],
        }
    )
    interactions = pd.DataFrame({"user_id": ["u1", "u2"], "item_id": ["i1", "i2"]})
    dataset = RecDataset(TECH_PRODUCTS_SCHEMA, users, items, interactions)
    config = small_model_config(feature_set="all", text_encoder="bow")
    features = feature_columns(dataset.schema, "item", config)
    _, item_rows = dataset.encode(interactions)
    fitted = fit_side(dataset.table("item"), features, item_rows, config)
    encoders = text_encoders(fitted, features, dataset.table("item"), config)
    assert set(encoders) == {"description", "features"}
    description = {str(w) for w in encoders["description"].encoder.vectorizer.get_vocabulary()}
    assert {"fast", "laptop", "quiet", "mouse"} <= description
    assert not {"zebra", "unicorn"} & description
    assert "glitter" not in {
        str(w) for w in encoders["features"].encoder.vectorizer.get_vocabulary()
    }


# --- Pooling, transforms, OOV at inference ---------------------------------------------------


@pytest.fixture(scope="module")
def genre_item_encoder():
    dataset = genre_dataset()
    items = dataset.table("item")
    _, item_rows = dataset.encode(dataset.interactions)
    features = [f for f in items.features if f.name in ("genres", "price", "kind")]
    encoder = _side_encoder(features, items, item_rows, EncoderDims(categorical_dim=3))
    encoder(_genre_inputs(["a"]))  # builds the embedding tables
    return encoder


def _genre_inputs(genres, prices=None, kinds=None):
    n = len(genres)
    return {
        "genres": tf.constant(genres),
        "price": tf.constant(prices if prices is not None else [9.0] * n, tf.float32),
        "kind": tf.constant(kinds if kinds is not None else ["book"] * n),
    }


def test_categorical_list_is_the_mean_of_its_label_embeddings(genre_item_encoder):
    encoder = genre_item_encoder
    table = encoder.embeddings["genres"].embeddings.numpy()
    lookup = encoder.lookups["genres"]
    a, b = (int(lookup(tf.constant([label]))[0]) for label in ("a", "b"))
    assert {a, b} == {1, 2}
    out = encoder(_genre_inputs(["a|b", "a", "b|a|b"])).numpy()[:, :3]  # genres come first
    np.testing.assert_allclose(out[0], (table[a] + table[b]) / 2, rtol=1e-6)
    np.testing.assert_allclose(out[1], table[a], rtol=1e-6)
    np.testing.assert_allclose(out[2], (table[a] + 2 * table[b]) / 3, rtol=1e-6)


def test_empty_categorical_list_gives_zeros(genre_item_encoder):
    out = genre_item_encoder(_genre_inputs(["", "a"])).numpy()[:, :3]
    np.testing.assert_array_equal(out[0], np.zeros(3))
    assert np.any(out[1] != 0)


def test_unknown_list_label_pools_the_oov_embedding(genre_item_encoder):
    encoder = genre_item_encoder
    table = encoder.embeddings["genres"].embeddings.numpy()
    a = int(encoder.lookups["genres"](tf.constant(["a"]))[0])
    out = encoder(_genre_inputs(["zz|a"])).numpy()[0, :3]
    np.testing.assert_allclose(out, (table[0] + table[a]) / 2, rtol=1e-6)


def test_log1p_numeric_is_normalised_after_the_transform(genre_item_encoder):
    prices = np.array([0.0, 9.0, 99.0, 1000.0])
    out = genre_item_encoder(_genre_inputs(["a"] * 4, prices=prices.tolist())).numpy()[:, 3]
    train = np.log1p([9.0, 99.0])
    expected = (np.log1p(prices) - train.mean()) / np.sqrt(train.var())
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)


def test_unknown_category_at_inference_gets_the_oov_embedding(genre_item_encoder):
    encoder = genre_item_encoder
    table = encoder.embeddings["kind"].embeddings.numpy()
    out = encoder(_genre_inputs(["a", "a"], kinds=["never-seen", "other"])).numpy()[:, 4:7]
    np.testing.assert_array_equal(out[0], table[0])
    np.testing.assert_array_equal(out[1], table[0])  # "other" exists only on an untrained item


def test_encoder_output_width_on_the_hand_made_items(genre_item_encoder):
    # genres 3 + price 1 + kind 3
    assert genre_item_encoder(_genre_inputs(["a", "b"])).shape == (2, 7)


# --- Errors ----------------------------------------------------------------------------------


def test_text_column_without_an_encoder_is_a_config_error(small_dataset, small_split):
    table = small_dataset.table("item")
    _, item_rows = small_dataset.encode(small_split.train)
    with pytest.raises(ConfigError, match="description"):
        _side_encoder(table.features, table, item_rows, EncoderDims())


def test_no_feature_is_a_config_error(small_dataset):
    with pytest.raises(ConfigError, match="at least one feature"):
        _side_encoder([], small_dataset.table("user"), np.arange(3), EncoderDims())


def test_cached_text_encoder_matches_the_encoder_for_known_and_unknown_texts():
    from tfrs_recsys.features.text import CachedTextEncoder

    bow = _bow(["red laptop", "blue mouse", "red mouse"], max_tokens=10, ngrams=1)
    cached = CachedTextEncoder(bow, ["red laptop", "blue mouse"])
    known = tf.constant(["blue mouse", "red laptop", "blue mouse"])
    np.testing.assert_allclose(cached(known).numpy(), bow(known).numpy())
    # "red mouse" is not in the table: the batch falls back to the encoder.
    mixed = tf.constant(["red mouse", "red laptop"])
    np.testing.assert_allclose(cached(mixed).numpy(), bow(mixed).numpy())


def test_id_l2_penalises_only_the_rows_a_batch_looks_up(small_dataset, small_split):
    """loss = l2 * mean over the batch of ||e_id||^2; ids outside the batch do not count."""
    from tfrs_recsys.features.side_encoder import EncoderDims

    features = tuple(f for f in small_dataset.schema.user_features if f.kind == "id")
    user_rows, _ = small_dataset.encode(small_split.train)
    encoder = _side_encoder(
        features, small_dataset.table("user"), user_rows, EncoderDims(id_dim=4, embeddings_l2=0.5)
    )
    ids = tf.constant(small_dataset.table("user").ids[:3].astype(str))
    vectors = encoder({"user_id": ids}).numpy()
    assert len(encoder.losses) == 1
    expected = 0.5 * np.mean(np.sum(vectors.astype(np.float64) ** 2, axis=1))
    np.testing.assert_allclose(float(encoder.losses[0]), expected, rtol=1e-5)
