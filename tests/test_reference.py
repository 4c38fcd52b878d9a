"""Reproductions of the seed notebooks: their negative sampling, and the first
notebook's model (LabelEncoder codes, MinMax scaling, probabilities)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from model_fixtures import small_split  # noqa: F401
from sklearn.preprocessing import LabelEncoder, MinMaxScaler

from tfrs_recsys.data.dataset import RecDataset
from tfrs_recsys.data.techproducts import TECH_PRODUCTS_SCHEMA
from tfrs_recsys.notebook_models.negatives import notebook_negatives
from tfrs_recsys.notebook_models.seed_subset import SeedSubsetModel


def _notebook_code(wide: pd.DataFrame, k: int) -> pd.DataFrame:
    """The notebooks' negative sampling, as written in them."""
    interactions_df = wide.melt(id_vars=["user_id"], var_name="item_id", value_name="label")
    negatives = interactions_df[interactions_df["label"] == 0]
    negatives = negatives.sample(frac=1, random_state=42).reset_index(drop=True)
    neg_samples = negatives.groupby("user_id", group_keys=False).head(k)
    return neg_samples


def _pairs(frame: pd.DataFrame) -> list[tuple[str, str]]:
    return list(zip(frame["user_id"].astype(str), frame["item_id"].astype(str)))


def _wide(user_ids, item_ids, positives) -> pd.DataFrame:
    """The 0/1 user x item DataFrame, user_id first, as the notebooks read the CSV."""
    matrix = np.zeros((len(user_ids), len(item_ids)), dtype=np.int64)
    for user, item in positives:
        matrix[user_ids.index(user), item_ids.index(item)] = 1
    wide = pd.DataFrame(matrix, columns=item_ids)
    wide.insert(0, "user_id", user_ids)
    return wide


def _tiny_dataset(user_ids, item_ids, positives) -> RecDataset:
    users = pd.DataFrame(
        {
            "user_id": user_ids,
            "age": [30.0 + k for k in range(len(user_ids))],
            "profession": "arts",
            "personality": "Tech Enthusiast",
        }
    )
    items = pd.DataFrame(
        {
            "item_id": item_ids,
            "product_type": "mouse",
            "description": "A mouse.",
            "price": [10.0 + k for k in range(len(item_ids))],
            "features": "Wireless",
        }
    )
    interactions = pd.DataFrame(positives, columns=["user_id", "item_id"])
    return RecDataset(TECH_PRODUCTS_SCHEMA, users, items, interactions)


# Ids deliberately not in sorted order: the melt follows table order.
TINY_USERS = ["u_b", "u_a", "u_c"]
TINY_ITEMS = ["i3", "i1", "i4", "i2"]
TINY_POSITIVES = [("u_b", "i1"), ("u_a", "i3"), ("u_a", "i4"), ("u_a", "i2"), ("u_c", "i3")]


@pytest.mark.parametrize("k", [1, 2, 3, 10])
def test_tiny_negatives_equal_the_notebook_code_in_set_and_order(k):
    dataset = _tiny_dataset(TINY_USERS, TINY_ITEMS, TINY_POSITIVES)
    expected = _notebook_code(_wide(TINY_USERS, TINY_ITEMS, TINY_POSITIVES), k)
    got = notebook_negatives(dataset, dataset.interactions, per_user=k)
    assert _pairs(got) == _pairs(expected)
    assert (got["label"] == 0).all()


def test_tiny_negatives_never_contain_a_positive():
    dataset = _tiny_dataset(TINY_USERS, TINY_ITEMS, TINY_POSITIVES)
    got = notebook_negatives(dataset, dataset.interactions, per_user=10)
    assert not set(_pairs(got)) & set(TINY_POSITIVES)
    # u_a has one zero (i1), u_b three, u_c three: 7 in all with k = 10.
    assert len(got) == 7


def test_small_dataset_negatives_equal_the_notebook_code(small_dataset, small_matrix):
    user_ids = [str(u) for u in small_dataset.users["user_id"]]
    item_ids = [str(i) for i in small_dataset.items["item_id"]]
    wide = pd.DataFrame(small_matrix.astype(np.int64), columns=item_ids)
    wide.insert(0, "user_id", user_ids)
    expected = _notebook_code(wide, 10)
    got = notebook_negatives(small_dataset, small_dataset.interactions, per_user=10)
    assert len(got) == len(expected)
    assert _pairs(got) == _pairs(expected)


# --- The first notebook's model --------------------------------------------------------------

NEGATIVES_PER_USER = 20


@pytest.fixture(scope="module")
def seed_model(small_dataset, small_split):
    return SeedSubsetModel.fit(
        small_dataset,
        small_split.train,
        small_split.holdout,
        epochs=1,
        batch_size=256,
        negatives_per_user=NEGATIVES_PER_USER,
    )


@pytest.fixture(scope="module")
def training_frame(small_dataset, small_split):
    """The frame the notebook fits on: train positives + its (leaky) negatives."""
    everything = pd.concat([small_split.train, small_split.holdout], ignore_index=True)
    negatives = notebook_negatives(small_dataset, everything, per_user=NEGATIVES_PER_USER)
    return pd.concat([small_split.train[["user_id", "item_id"]], negatives], ignore_index=True)


def test_seed_model_scores_probabilities_for_the_whole_catalog(seed_model, small_dataset):
    rows = np.array([0, 1, 2, 100, 499])
    scores = np.asarray(seed_model.scorer()(rows))
    assert scores.shape == (5, small_dataset.n_items)
    assert np.all((scores >= 0.0) & (scores <= 1.0))
    assert seed_model.train_s > 0


def test_seed_model_scorer_equals_its_pairwise_probabilities(seed_model, small_dataset):
    rows = np.array([4, 9])
    n = small_dataset.n_items
    pairwise = seed_model.probabilities(np.repeat(rows, n), np.tile(np.arange(n), 2)).reshape(2, n)
    np.testing.assert_allclose(np.asarray(seed_model.scorer()(rows)), pairwise, rtol=1e-6)


@pytest.mark.parametrize(("side", "attribute"), [("user", "user_codes"), ("item", "item_codes")])
def test_label_codes_follow_sklearn_label_encoder(
    seed_model, small_dataset, training_frame, side, attribute
):
    encoder = LabelEncoder().fit(training_frame[f"{side}_id"].astype(str))
    ids = small_dataset.table(side).ids.astype(str)
    known = np.isin(ids, encoder.classes_)
    expected = np.full(len(ids), -1)
    expected[known] = encoder.transform(ids[known])
    np.testing.assert_array_equal(getattr(seed_model, attribute), expected)


def test_min_max_scaling_is_fitted_on_the_training_frame(seed_model, small_dataset, training_frame):
    ages = small_dataset.users.set_index("user_id")["age"]
    scaler = MinMaxScaler().fit(ages.loc[training_frame["user_id"]].to_numpy()[:, None])
    expected = scaler.transform(small_dataset.users[["age"]].to_numpy())[:, 0]
    np.testing.assert_allclose(seed_model.age_scaled, expected, rtol=1e-6, atol=1e-9)
    prices = small_dataset.items.set_index("item_id")["price"]
    scaler = MinMaxScaler().fit(prices.loc[training_frame["item_id"]].to_numpy()[:, None])
    expected = scaler.transform(small_dataset.items[["price"]].to_numpy())[:, 0]
    np.testing.assert_allclose(seed_model.price_scaled, expected, rtol=1e-5, atol=1e-7)
