"""Popularity, oracle and random scorers on hand-made data."""

from __future__ import annotations

import tfrs_recsys  # noqa: F401  (routes tf.keras before anything imports TensorFlow)

# isort: split
import numpy as np
import pandas as pd
import pytest

from tfrs_recsys.baselines.oracle import OracleScorer
from tfrs_recsys.baselines.popularity import PopularityScorer, fit_popularity
from tfrs_recsys.baselines.random_scorer import RandomScorer
from tfrs_recsys.data.dataset import RecDataset
from tfrs_recsys.data.schema import DatasetSchema, Feature
from tfrs_recsys.errors import ConfigError

TOY_SCHEMA = DatasetSchema(
    name="toy", user_features=(Feature("user_id", "id"),), item_features=(Feature("item_id", "id"),)
)


def toy_dataset(n_users: int, n_items: int, positives: list[tuple[int, int]]) -> RecDataset:
    users = pd.DataFrame({"user_id": [f"u{k}" for k in range(n_users)]})
    items = pd.DataFrame({"item_id": [f"i{k}" for k in range(n_items)]})
    interactions = pd.DataFrame(
        [(f"u{u}", f"i{i}") for u, i in positives], columns=["user_id", "item_id"]
    )
    return RecDataset(schema=TOY_SCHEMA, users=users, items=items, interactions=interactions)


def pairs_frame(positives: list[tuple[int, int]]) -> pd.DataFrame:
    return pd.DataFrame([(f"u{u}", f"i{i}") for u, i in positives], columns=["user_id", "item_id"])


# --- Popularity -----------------------------------------------------------------------------

# Train counts by hand: i2 x3, i0 x2, i4 x1, i1 and i3 never (i3 only in the holdout).
TRAIN = [(0, 2), (1, 2), (2, 2), (0, 0), (3, 0), (1, 4)]
HOLDOUT = [(2, 3), (3, 3), (0, 3), (1, 3)]


@pytest.fixture
def popularity_data():
    dataset = toy_dataset(4, 5, TRAIN + HOLDOUT)
    return dataset, pairs_frame(TRAIN)


def test_popularity_counts_train_positives_per_item(popularity_data):
    dataset, train = popularity_data
    scorer = PopularityScorer.fit(dataset, train)
    np.testing.assert_array_equal(scorer.counts, [2, 0, 3, 0, 1])


def test_popularity_scores_every_user_alike_in_count_order(popularity_data):
    dataset, train = popularity_data
    scores = PopularityScorer.fit(dataset, train)(np.array([3, 0, 0], dtype=np.int64))
    assert scores.shape == (3, 5) and scores.dtype == np.float32
    for row in scores:
        np.testing.assert_array_equal(row, [2, 0, 3, 0, 1])
        assert list(np.argsort(-row, kind="stable")[:3]) == [2, 0, 4]
    scores[0, 0] = 99.0  # the caller may write into the result
    assert PopularityScorer.fit(dataset, train)(np.array([0]))[0, 0] == 2.0


def test_popularity_counts_a_repeated_pair_once(popularity_data):
    dataset, train = popularity_data
    doubled = pd.concat([train, pairs_frame([(0, 2), (0, 2)])], ignore_index=True)
    np.testing.assert_array_equal(PopularityScorer.fit(dataset, doubled).counts, [2, 0, 3, 0, 1])


def test_fit_popularity_is_the_classmethod(popularity_data):
    dataset, train = popularity_data
    np.testing.assert_array_equal(
        fit_popularity(dataset, train).counts, PopularityScorer.fit(dataset, train).counts
    )


def test_popularity_with_no_users(popularity_data):
    dataset, train = popularity_data
    assert PopularityScorer.fit(dataset, train)(np.array([], dtype=np.int64)).shape == (0, 5)


def test_popularity_probabilities_are_the_share_of_train_users_who_liked_the_item(popularity_data):
    dataset, train = popularity_data
    scorer = PopularityScorer.fit(dataset, train)
    assert scorer.n_train_users == 4  # users 0..3 all have a train positive
    got = scorer.probabilities(np.array([0, 3, 1]), np.array([2, 0, 3]))
    np.testing.assert_allclose(got, [3 / 4, 2 / 4, 0.0])
    with pytest.raises(ConfigError, match="item rows"):
        scorer.probabilities(np.array([0]), np.array([5]))


@pytest.mark.parametrize("rows", [np.array([4]), np.array([-1]), np.array([[0]]), np.array([0.5])])
def test_popularity_rejects_bad_rows(popularity_data, rows):
    dataset, train = popularity_data
    with pytest.raises(ConfigError):
        PopularityScorer.fit(dataset, train)(rows)


# --- Oracle ---------------------------------------------------------------------------------


def test_oracle_returns_the_true_probabilities(small_generated, small_dataset):
    truth = small_generated.truth
    scorer = OracleScorer(truth).check_dataset(small_dataset)
    rows = np.array([0, 7, 499, 7], dtype=np.int64)
    scores = scorer(rows)
    assert scores.shape == (4, small_dataset.n_items) and scores.dtype == np.float32
    np.testing.assert_array_equal(scores, truth.probabilities(rows))
    np.testing.assert_array_equal(scores[1], scores[3])


def test_oracle_pair_probabilities_are_the_true_matrix_cells(small_generated):
    truth = small_generated.truth
    users = np.array([0, 7, 499, 7, 3], dtype=np.int64)
    items = np.array([0, 119, 5, 5, 60], dtype=np.int64)
    got = OracleScorer(truth).probabilities(users, items, chunk=2)
    np.testing.assert_array_equal(got, truth.probabilities(users)[np.arange(5), items])
    with pytest.raises(ConfigError, match="differ in shape"):
        OracleScorer(truth).probabilities(users, items[:2])


def test_oracle_refuses_a_mismatched_dataset_or_missing_truth(small_generated, popularity_data):
    with pytest.raises(ConfigError, match="true model has 500 users x 120 items"):
        OracleScorer(small_generated.truth).check_dataset(popularity_data[0])
    with pytest.raises(ConfigError, match="truth.npz"):
        OracleScorer(None)
    with pytest.raises(ConfigError):
        OracleScorer(small_generated.truth)(np.array([500]))


# --- Random ---------------------------------------------------------------------------------


def test_random_scores_are_reproducible_per_user():
    scorer = RandomScorer(50, seed=3)
    both = scorer(np.array([4, 9], dtype=np.int64))
    assert both.shape == (2, 50) and both.dtype == np.float32
    assert ((both > 0) & (both < 1)).all()
    np.testing.assert_array_equal(scorer(np.array([9]))[0], both[1])
    assert not np.array_equal(both[0], both[1])
    assert not np.array_equal(RandomScorer(50, seed=4)(np.array([4]))[0], both[0])


def test_random_rejects_bad_arguments():
    with pytest.raises(ConfigError):
        RandomScorer(0)
    with pytest.raises(ConfigError):
        RandomScorer(5, seed=-1)
    with pytest.raises(ConfigError):
        RandomScorer(5)(np.array([-2]))


# --- The Recommender protocol ----------------------------------------------------------------


def test_every_baseline_is_a_recommender_that_scores_as_it_is_called(popularity_data):
    from tfrs_recsys.baselines.ease import EASEScorer
    from tfrs_recsys.recommender import Recommender, probability_fn

    dataset, train = popularity_data
    popularity = PopularityScorer.fit(dataset, train)
    ease = EASEScorer.fit(dataset, train, l2=1.0)
    rows = np.array([0, 3])
    for model in (popularity, ease, RandomScorer(5, seed=1)):
        assert isinstance(model, Recommender)
        np.testing.assert_array_equal(model.scorer()(rows), model(rows))
    # Popularity gives probabilities (share of the 4 train users); EASE and random only rank.
    probabilities = probability_fn(popularity)
    np.testing.assert_allclose(probabilities(np.array([0]), np.array([2])), [3 / 4])
    assert probability_fn(ease) is None and probability_fn(RandomScorer(5)) is None
    with pytest.raises(ConfigError, match="not probabilities"):
        ease.probabilities(np.array([0]), np.array([1]))
