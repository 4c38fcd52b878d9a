"""Preprocessing fitted once: what it holds, save -> load, and models built from it."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from model_fixtures import genre_dataset, small_model_config, small_split  # noqa: F401

from tfrs_recsys.errors import ConfigError
from tfrs_recsys.features.preprocessing import Preprocessing, fit_preprocessing
from tfrs_recsys.models.factory import build_model


def test_hand_made_statistics_come_from_the_train_entities_only():
    dataset = genre_dataset()  # u3 and i2 have no positive
    config = small_model_config(feature_set="all", text_encoder="none")
    fitted = fit_preprocessing(dataset, dataset.interactions, config)
    assert fitted.user.train_ids == ("u0", "u1", "u2")
    assert fitted.item.train_ids == ("i0", "i1")
    assert fitted.user.vocabularies["city"] == ("paris", "rome")
    assert fitted.item.vocabularies["genres"] == ("a", "b")  # "zz" only on i2, "" dropped
    mean, variance = fitted.user.normalization["age"]
    np.testing.assert_allclose(mean, [30.0], rtol=1e-6)  # mean of 20, 30, 40
    np.testing.assert_allclose(variance, [np.var([20.0, 30.0, 40.0])], rtol=1e-5)
    mean, _ = fitted.item.normalization["price"]  # log1p, i0 and i1 only
    np.testing.assert_allclose(mean, [np.log1p([9.0, 99.0]).mean()], rtol=1e-5)
    np.testing.assert_array_equal(fitted.item_counts, [2.0, 2.0, 0.0])  # i0 twice, i1 twice
    assert fitted.n_train_users == 3


def test_a_feature_set_fits_only_its_columns():
    dataset = genre_dataset()
    fitted = fit_preprocessing(dataset, dataset.interactions, small_model_config(feature_set="ids"))
    assert fitted.user.columns == ["user_id"]
    assert set(fitted.user.vocabularies) == {"user_id"}
    assert not fitted.user.normalization


@pytest.mark.parametrize("options", [dict(numeric_buckets=3), dict(text_encoder="bow")])
def test_save_then_load_gives_the_same_preprocessing(small_dataset, small_split, tmp_path, options):
    config = small_model_config(feature_set="all", **options)
    fitted = fit_preprocessing(small_dataset, small_split.train, config)
    loaded = Preprocessing.load(fitted.save(tmp_path / "preprocessing"))
    np.testing.assert_array_equal(loaded.item_counts, fitted.item_counts)
    assert loaded.n_train_users == fitted.n_train_users
    for side in ("user", "item"):
        a, b = fitted.side(side), loaded.side(side)
        assert a.features == b.features
        assert dict(a.vocabularies) == dict(b.vocabularies)
        assert a.train_ids == b.train_ids
        assert dict(a.bucket_boundaries) == dict(b.bucket_boundaries)
        assert set(a.normalization) == set(b.normalization)
        for name, (mean, variance) in a.normalization.items():
            np.testing.assert_array_equal(b.normalization[name][0], mean)
            np.testing.assert_array_equal(b.normalization[name][1], variance)
        assert set(a.bag_of_words) == set(b.bag_of_words)
        for name, bow in a.bag_of_words.items():
            assert b.bag_of_words[name].vocabulary == bow.vocabulary
            np.testing.assert_array_equal(b.bag_of_words[name].idf_weights, bow.idf_weights)
    assert not list(tmp_path.glob(".*")), "no staging directory left behind"


def test_a_model_built_from_loaded_preprocessing_answers_like_the_original(
    small_dataset, small_split, tmp_path
):
    config = small_model_config(feature_set="all", text_encoder="bow", numeric_buckets=3)
    fitted = fit_preprocessing(small_dataset, small_split.train, config)
    loaded = Preprocessing.load(fitted.save(tmp_path / "preprocessing"))
    rows = np.arange(20, dtype=np.int64)
    # Same seed, same layers in the same order: the same initial weights, so any
    # difference would come from the preprocessing.
    tf.keras.utils.set_random_seed(3)
    expected = build_model(config, fitted, small_dataset).scorer()(rows).numpy()
    tf.keras.utils.set_random_seed(3)
    got = build_model(config, loaded, small_dataset).scorer()(rows).numpy()
    np.testing.assert_array_equal(got, expected)


def test_loading_a_directory_without_preprocessing_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="no readable fitted preprocessing"):
        Preprocessing.load(tmp_path)


def test_a_model_refuses_preprocessing_fitted_on_another_catalog(small_dataset, small_split):
    config = small_model_config(feature_set="ids")
    fitted = fit_preprocessing(genre_dataset(), genre_dataset().interactions, config)
    with pytest.raises(ConfigError):
        build_model(config, fitted, small_dataset)
