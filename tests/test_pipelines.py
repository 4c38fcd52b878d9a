"""tf.data pipelines: retrieval batches of positives, ranking batches with
sampled negatives, and the NegativeSampler."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from tfrs_recsys.data.dataset import RecDataset
from tfrs_recsys.data.pipelines import NegativeSampler, ranking_dataset, retrieval_dataset
from tfrs_recsys.data.splits import holdout_80_20
from tfrs_recsys.data.techproducts import TECH_PRODUCTS_SCHEMA
from tfrs_recsys.errors import ConfigError

USER_COLUMNS = ["user_id", "age", "profession", "personality"]
ITEM_COLUMNS = ["item_id", "product_type", "description", "price", "features"]
FLOAT_COLUMNS = {"age", "price"}


@pytest.fixture(scope="module")
def train(small_dataset) -> pd.DataFrame:
    return holdout_80_20(small_dataset.interactions).train


def _epoch(dataset: tf.data.Dataset) -> dict[str, np.ndarray]:
    """One pass over ``dataset``, every key concatenated over the batches."""
    batches = list(dataset)
    return {key: np.concatenate([b[key].numpy() for b in batches]) for key in batches[0]}


def _pairs(epoch: dict[str, np.ndarray], mask: np.ndarray | None = None) -> list[tuple[str, str]]:
    users, items = epoch["user_id"], epoch["item_id"]
    if mask is not None:
        users, items = users[mask], items[mask]
    return [(u.decode(), i.decode()) for u, i in zip(users, items)]


def _frame_pairs(frame: pd.DataFrame) -> list[tuple[str, str]]:
    return list(zip(frame["user_id"].astype(str), frame["item_id"].astype(str)))


def _toy_dataset(n_users: int, n_items: int, positives: list[tuple[int, int]]) -> RecDataset:
    """Users u0.., items i00..; positives as (user row, item row)."""
    users = pd.DataFrame(
        {
            "user_id": [f"u{k}" for k in range(n_users)],
            "age": [20.0 + k for k in range(n_users)],
            "profession": "arts",
            "personality": "Tech Enthusiast",
        }
    )
    items = pd.DataFrame(
        {
            "item_id": [f"i{k:02d}" for k in range(n_items)],
            "product_type": "mouse",
            "description": "A mouse.",
            "price": [10.0 + k for k in range(n_items)],
            "features": "Wireless, Silent clicks",
        }
    )
    interactions = pd.DataFrame(
        [(f"u{u}", f"i{i:02d}") for u, i in positives], columns=["user_id", "item_id"]
    )
    return RecDataset(
        schema=TECH_PRODUCTS_SCHEMA, users=users, items=items, interactions=interactions
    )


# --- retrieval_dataset ---------------------------------------------------------------------


def test_retrieval_keys_and_dtypes(small_dataset, train):
    spec = retrieval_dataset(small_dataset, train, batch_size=256).element_spec
    assert set(spec) == set(USER_COLUMNS + ITEM_COLUMNS)
    for name, tensor_spec in spec.items():
        expected = tf.float32 if name in FLOAT_COLUMNS else tf.string
        assert tensor_spec.dtype == expected, name
        assert tensor_spec.shape.rank == 1, name


def test_retrieval_batch_shapes_end_with_a_partial_batch(small_dataset, train):
    n = len(train)
    assert n % 1000 != 0  # the small dataset does have a partial last batch
    batches = list(retrieval_dataset(small_dataset, train, batch_size=1000))
    expected = [1000] * (n // 1000) + [n % 1000]
    for batch in batches:
        assert len({int(t.shape[0]) for t in batch.values()}) == 1  # every column, same length
    assert [int(b["user_id"].shape[0]) for b in batches] == expected


def test_retrieval_drop_remainder_gives_full_batches_only(small_dataset, train):
    batches = list(retrieval_dataset(small_dataset, train, batch_size=1000, drop_remainder=True))
    assert [int(b["item_id"].shape[0]) for b in batches] == [1000] * (len(train) // 1000)


def test_retrieval_epoch_covers_every_train_pair_once(small_dataset, train):
    epoch = _epoch(retrieval_dataset(small_dataset, train, batch_size=700))
    assert Counter(_pairs(epoch)) == Counter(_frame_pairs(train))


def test_retrieval_reshuffles_every_epoch(small_dataset, train):
    dataset = retrieval_dataset(small_dataset, train, batch_size=700, shuffle=True)
    first, second = _pairs(_epoch(dataset)), _pairs(_epoch(dataset))
    assert Counter(first) == Counter(second)
    assert first != second


def test_retrieval_without_shuffle_keeps_pair_order_every_epoch(small_dataset, train):
    dataset = retrieval_dataset(small_dataset, train, batch_size=700, shuffle=False)
    first, second = _pairs(_epoch(dataset)), _pairs(_epoch(dataset))
    assert first == _frame_pairs(train)
    assert second == first


def test_retrieval_same_seed_same_order(small_dataset, train):
    a = _pairs(_epoch(retrieval_dataset(small_dataset, train, batch_size=700, seed=3)))
    b = _pairs(_epoch(retrieval_dataset(small_dataset, train, batch_size=700, seed=3)))
    c = _pairs(_epoch(retrieval_dataset(small_dataset, train, batch_size=700, seed=4)))
    assert a == b
    assert a != c


def test_retrieval_emits_raw_feature_values(small_dataset, train):
    """Every row's features equal the user's and the item's rows of the tables."""
    epoch = _epoch(retrieval_dataset(small_dataset, train, batch_size=1000))
    users = small_dataset.users.set_index("user_id")
    items = small_dataset.items.set_index("item_id")
    user_ids = [u.decode() for u in epoch["user_id"]]
    item_ids = [i.decode() for i in epoch["item_id"]]
    np.testing.assert_array_equal(epoch["age"], users.loc[user_ids, "age"].to_numpy(np.float32))
    np.testing.assert_array_equal(epoch["price"], items.loc[item_ids, "price"].to_numpy(np.float32))
    assert [p.decode() for p in epoch["profession"]] == users.loc[user_ids, "profession"].tolist()
    assert [d.decode() for d in epoch["description"]] == items.loc[item_ids, "description"].tolist()
    assert [f.decode() for f in epoch["features"]] == items.loc[item_ids, "features"].tolist()


def test_retrieval_column_selection(small_dataset, train):
    dataset = retrieval_dataset(
        small_dataset,
        train,
        batch_size=500,
        user_columns=["user_id", "age"],
        item_columns=["item_id"],
    )
    assert set(dataset.element_spec) == {"user_id", "age", "item_id"}


@pytest.mark.parametrize("batch_size", [0, -5])
def test_retrieval_rejects_bad_batch_size(small_dataset, train, batch_size):
    with pytest.raises(ConfigError, match="batch_size"):
        retrieval_dataset(small_dataset, train, batch_size=batch_size)


def test_retrieval_rejects_unknown_column(small_dataset, train):
    with pytest.raises(ConfigError, match="height"):
        retrieval_dataset(small_dataset, train, user_columns=["user_id", "height"])


# --- ranking_dataset ----------------------------------------------------------------------------


def test_ranking_keys_include_a_float_label(small_dataset, train):
    spec = ranking_dataset(small_dataset, train, negatives_per_user=2).element_spec
    assert set(spec) == set(USER_COLUMNS + ITEM_COLUMNS + ["label"])
    assert spec["label"].dtype == tf.float32


def test_ranking_epoch_counts(small_dataset, train):
    """len(train) positives and 5 negatives per user with a train positive."""
    epoch = _epoch(ranking_dataset(small_dataset, train, negatives_per_user=5, batch_size=1000))
    labels = epoch["label"]
    assert set(np.unique(labels)) == {0.0, 1.0}
    assert int((labels == 1).sum()) == len(train)
    assert int((labels == 0).sum()) == 5 * train["user_id"].nunique()


def test_ranking_positives_are_the_train_pairs(small_dataset, train):
    epoch = _epoch(ranking_dataset(small_dataset, train, negatives_per_user=3, batch_size=1000))
    assert Counter(_pairs(epoch, epoch["label"] == 1)) == Counter(_frame_pairs(train))


def test_ranking_negatives_per_user(small_dataset, train):
    """Each user with a train positive gets exactly negatives_per_user negatives."""
    epoch = _epoch(ranking_dataset(small_dataset, train, negatives_per_user=4, batch_size=1000))
    per_user = Counter(u for u, _ in _pairs(epoch, epoch["label"] == 0))
    assert per_user == {u: 4 for u in train["user_id"].unique()}


def test_ranking_negatives_are_never_train_positives(small_dataset, train):
    epoch = _epoch(ranking_dataset(small_dataset, train, negatives_per_user=20, batch_size=2048))
    negatives = set(_pairs(epoch, epoch["label"] == 0))
    assert negatives.isdisjoint(_frame_pairs(train))


def test_ranking_resamples_negatives_each_epoch(small_dataset, train):
    dataset = ranking_dataset(small_dataset, train, negatives_per_user=5, resample_each_epoch=True)
    first, second = _epoch(dataset), _epoch(dataset)
    assert Counter(_pairs(first, first["label"] == 0)) != Counter(
        _pairs(second, second["label"] == 0)
    )


def test_ranking_fixed_negatives_come_back_each_epoch(small_dataset, train):
    """resample_each_epoch=False: same negatives (as a multiset), reshuffled with the positives."""
    dataset = ranking_dataset(small_dataset, train, negatives_per_user=5, resample_each_epoch=False)
    first, second = _epoch(dataset), _epoch(dataset)
    assert Counter(_pairs(first, first["label"] == 0)) == Counter(
        _pairs(second, second["label"] == 0)
    )
    assert _pairs(first) != _pairs(second)  # shuffle=True still reorders


def test_ranking_default_exclude_does_not_consult_the_holdout():
    """User u0: 1 train positive (i00) and 8 holdout positives (i01..i08) among 10 items.
    Negatives come from the 9 non-train items, 8 of them holdout items: with 200
    draws, P(no holdout item) = (1/9)^200."""
    dataset = _toy_dataset(1, 10, [(0, i) for i in range(9)])
    train = dataset.interactions.iloc[:1]
    holdout_items = set(dataset.interactions["item_id"].iloc[1:])
    epoch = _epoch(ranking_dataset(dataset, train, negatives_per_user=200, batch_size=512))
    negative_items = {i for _, i in _pairs(epoch, epoch["label"] == 0)}
    assert negative_items & holdout_items
    assert "i00" not in negative_items


def test_ranking_exclude_train_and_holdout_never_draws_holdout():
    """Same user, exclude = train + holdout: only i09 is left."""
    dataset = _toy_dataset(1, 10, [(0, i) for i in range(9)])
    train = dataset.interactions.iloc[:1]
    epoch = _epoch(
        ranking_dataset(
            dataset, train, negatives_per_user=200, exclude=dataset.interactions, batch_size=512
        )
    )
    negative_items = {i for _, i in _pairs(epoch, epoch["label"] == 0)}
    assert negative_items == {"i09"}


def test_ranking_negatives_are_uniform_over_the_complement():
    """1 user, 10 items, 3 excluded (i00, i03, i07): 7,000 draws over 7 items.
    Each count ~ Binomial(7000, 1/7): mean 1000, sd sqrt(7000/7 * 6/7) = 29.3;
    allow 5 sd. Chi-square (6 d.o.f.) below its 0.1 % point 22.46."""
    dataset = _toy_dataset(1, 10, [(0, 0), (0, 3), (0, 7)])
    epoch = _epoch(
        ranking_dataset(dataset, dataset.interactions, negatives_per_user=7000, batch_size=8192)
    )
    counts = Counter(i for _, i in _pairs(epoch, epoch["label"] == 0))
    allowed = [f"i{k:02d}" for k in (1, 2, 4, 5, 6, 8, 9)]
    assert set(counts) == set(allowed)
    sd = np.sqrt(7000 * (1 / 7) * (6 / 7))
    for item in allowed:
        assert abs(counts[item] - 1000) < 5 * sd, (item, counts[item])
    chi2 = sum((counts[item] - 1000) ** 2 / 1000 for item in allowed)
    assert chi2 < 22.46, chi2


def test_ranking_user_with_every_item_excluded():
    dataset = _toy_dataset(2, 3, [(0, 0), (0, 1), (0, 2), (1, 0)])
    with pytest.raises(ConfigError, match="'u0'"):
        ranking_dataset(dataset, dataset.interactions, negatives_per_user=1)


def test_ranking_rejects_negative_negatives_per_user(small_dataset, train):
    with pytest.raises(ConfigError, match="negatives_per_user"):
        ranking_dataset(small_dataset, train, negatives_per_user=-1)


def test_ranking_rejects_bad_batch_size(small_dataset, train):
    with pytest.raises(ConfigError, match="batch_size"):
        ranking_dataset(small_dataset, train, batch_size=0)


# --- NegativeSampler ---------------------------------------------------------------------------


def test_negative_sampler_draws_exactly_the_allowed_items():
    """12 items; excluded sets chosen to hit the edges: none, the first, the last,
    a prefix, a scattered set and all but one. 600 draws per user cover every
    allowed item (P(missing one) <= 12 * (11/12)^600 ~ 1e-21) and must never
    return an excluded item. A duplicated excluded pair is harmless."""
    n_items = 12
    excluded = {
        0: set(),
        1: {0},
        2: {11},
        3: {0, 1, 2},
        4: {3, 5, 7, 9},
        5: set(range(11)),
    }
    users = [u for u, items in excluded.items() for _ in items] + [4]
    items = [i for _, s in excluded.items() for i in sorted(s)] + [5]
    sampler = NegativeSampler(len(excluded), n_items, np.array(users), np.array(items))
    drawn = sampler(
        tf.constant(list(excluded), tf.int32), 600, tf.constant([7, 11], tf.int64)
    ).numpy()
    assert drawn.shape == (len(excluded), 600)
    for user, excluded_items in excluded.items():
        assert set(drawn[user].tolist()) == set(range(n_items)) - excluded_items, user


def test_negative_sampler_counts_excluded_items_per_user():
    sampler = NegativeSampler(3, 5, np.array([0, 0, 2, 0]), np.array([1, 4, 0, 1]))
    assert sampler.counts.tolist() == [2, 0, 1]  # (0,1) is listed twice


def test_negative_sampler_is_deterministic_by_seed():
    sampler = NegativeSampler(2, 50, np.array([0, 1]), np.array([3, 4]))
    users = tf.constant([0, 1], tf.int32)
    a = sampler(users, 20, tf.constant([1, 2], tf.int64)).numpy()
    b = sampler(users, 20, tf.constant([1, 2], tf.int64)).numpy()
    c = sampler(users, 20, tf.constant([1, 3], tf.int64)).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_ranking_without_shuffle_or_resampling_repeats_the_epoch(small_dataset, train):
    """Positives first in train order, then the fixed negatives; same every epoch."""
    dataset = ranking_dataset(
        small_dataset, train, negatives_per_user=3, shuffle=False, resample_each_epoch=False
    )
    first, second = _epoch(dataset), _epoch(dataset)
    assert _pairs(first) == _pairs(second)
    assert _pairs(first)[: len(train)] == _frame_pairs(train)
    assert first["label"][: len(train)].tolist() == [1.0] * len(train)


def test_user_label_dataset_gives_each_active_user_once_with_its_train_row(small_dataset):
    from tfrs_recsys.data.pipelines import user_label_dataset

    train = small_dataset.interactions.iloc[::2]
    ds = user_label_dataset(small_dataset, train, batch_size=64, user_columns=["user_id", "age"])
    expected = {}
    for user, item in zip(train["user_id"], train["item_id"]):
        expected.setdefault(user, set()).add(item)
    seen = []
    item_ids = small_dataset.items["item_id"].to_numpy()
    for batch in ds:
        assert batch["label"].shape[1] == small_dataset.n_items
        for user, row in zip(batch["user_id"].numpy(), batch["label"].numpy()):
            user = user.decode()
            seen.append(user)
            assert set(row) <= {0.0, 1.0}
            assert set(item_ids[row == 1.0]) == expected[user]
    assert sorted(seen) == sorted(expected)  # every active user exactly once


def test_user_label_dataset_reshuffles_users_each_epoch(small_dataset):
    from tfrs_recsys.data.pipelines import user_label_dataset

    ds = user_label_dataset(
        small_dataset, small_dataset.interactions, batch_size=500, user_columns=["user_id"]
    )
    first = [u for b in ds for u in b["user_id"].numpy()]
    second = [u for b in ds for u in b["user_id"].numpy()]
    assert sorted(first) == sorted(second) and first != second
