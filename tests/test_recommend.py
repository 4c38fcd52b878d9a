"""recommend(): top-N with item columns, train items excluded; representative_users."""

from __future__ import annotations

import json

import numpy as np
import pytest
from model_fixtures import genre_dataset, small_split  # noqa: F401

from tfrs_recsys.data.techproducts import load_tech_products
from tfrs_recsys.errors import DataValidationError
from tfrs_recsys.serving.recommend import recommend, representative_users


class MatrixScorer:
    """scorer(rows) -> a fixed random score matrix's rows (no ties)."""

    def __init__(self, n_users: int, n_items: int, seed: int = 0) -> None:
        self.matrix = np.random.default_rng(seed).random((n_users, n_items)).astype(np.float32)

    def __call__(self, rows):
        return self.matrix[np.asarray(rows)]


def _train_items(split, dataset, user_id) -> set[int]:
    items = split.train.loc[split.train["user_id"] == user_id, "item_id"]
    return set(dataset.table("item").index_of(items.to_numpy()).tolist())


USERS = ["tec_0001", "bud_0007", "cre_0078", "per_0100"]


def test_top_n_with_train_items_excluded_matches_numpy(small_dataset, small_split):
    scorer = MatrixScorer(small_dataset.n_users, small_dataset.n_items)
    recs = recommend(scorer, small_dataset, USERS, n=7, exclude=small_split.train)
    assert len(recs) == len(USERS)
    item_ids = small_dataset.table("item").ids
    for user_id, user_recs in zip(USERS, recs):
        row = int(small_dataset.table("user").index_of([user_id])[0])
        scores = scorer.matrix[row].astype(np.float64).copy()
        seen = _train_items(small_split, small_dataset, user_id)
        scores[list(seen)] = -np.inf
        top = np.argsort(-scores)[:7]
        assert [r["item_id"] for r in user_recs] == [str(item_ids[i]) for i in top]
        np.testing.assert_allclose([r["score"] for r in user_recs], scores[top], rtol=1e-6)


def test_recommendations_exclude_train_items_even_when_they_score_highest(
    small_dataset, small_split
):
    user_id = "bud_0007"
    seen = _train_items(small_split, small_dataset, user_id)
    assert seen
    scorer = MatrixScorer(small_dataset.n_users, small_dataset.n_items)
    row = int(small_dataset.table("user").index_of([user_id])[0])
    scorer.matrix[row, list(seen)] += 100.0  # the train items would win without the mask
    [recs] = recommend(scorer, small_dataset, [user_id], n=10, exclude=small_split.train)
    recommended = set(small_dataset.table("item").index_of([r["item_id"] for r in recs]).tolist())
    assert len(recs) == 10
    assert not recommended & seen
    [unmasked] = recommend(scorer, small_dataset, [user_id], n=len(seen))
    assert (
        set(small_dataset.table("item").index_of([r["item_id"] for r in unmasked]).tolist()) == seen
    )


def test_each_recommendation_has_the_item_columns_and_a_score_sorted_descending(small_dataset):
    scorer = MatrixScorer(small_dataset.n_users, small_dataset.n_items, seed=3)
    [recs] = recommend(scorer, small_dataset, ["pra_0005"], n=5)
    assert len(recs) == 5
    for rec in recs:
        assert set(rec) == set(small_dataset.items.columns) | {"score"}
    item_table = small_dataset.items.set_index("item_id")
    for rec in recs:
        assert rec["product_type"] == item_table.loc[rec["item_id"], "product_type"]
        assert rec["price"] == pytest.approx(float(item_table.loc[rec["item_id"], "price"]))
    scores = [rec["score"] for rec in recs]
    assert scores == sorted(scores, reverse=True)
    json.dumps(recs)  # plain Python values


def test_fewer_than_n_when_the_catalog_runs_out(make_tech_dir):
    dataset = load_tech_products(make_tech_dir())  # 3 items; bud_0001 likes item_0002 and item_0003
    scorer = MatrixScorer(dataset.n_users, dataset.n_items)
    [recs] = recommend(scorer, dataset, ["bud_0001"], n=5, exclude=dataset.interactions)
    assert [r["item_id"] for r in recs] == ["item_0001"]


def test_unknown_user_is_a_data_validation_error(small_dataset):
    scorer = MatrixScorer(small_dataset.n_users, small_dataset.n_items)
    with pytest.raises(DataValidationError, match="nobody"):
        recommend(scorer, small_dataset, ["tec_0001", "nobody"], n=3)


def test_users_are_answered_in_the_order_asked(small_dataset):
    scorer = MatrixScorer(small_dataset.n_users, small_dataset.n_items)
    forward = recommend(scorer, small_dataset, USERS, n=3)
    backward = recommend(scorer, small_dataset, USERS[::-1], n=3)
    assert forward == backward[::-1]


def test_a_repeated_user_gets_the_same_masked_recommendations(small_dataset, small_split):
    scorer = MatrixScorer(small_dataset.n_users, small_dataset.n_items)
    first, second = recommend(
        scorer, small_dataset, ["bud_0007", "bud_0007"], n=10, exclude=small_split.train
    )
    assert first == second


# --- representative_users --------------------------------------------------------------------------


def test_representative_users_per_personality(small_dataset):
    picked = representative_users(small_dataset, per_segment=3)
    personalities = set(small_dataset.users["personality"])
    assert set(picked) == personalities
    by_id = small_dataset.users.set_index("user_id")["personality"]
    for personality, users in picked.items():
        assert len(users) == 3
        assert len(set(users)) == 3
        assert all(by_id[u] == personality for u in users)


def test_representative_users_are_reproducible_and_seeded(small_dataset):
    assert representative_users(small_dataset, seed=5) == representative_users(
        small_dataset, seed=5
    )
    assert representative_users(small_dataset, seed=5) != representative_users(
        small_dataset, seed=6
    )


def test_representative_users_takes_a_whole_small_segment(make_tech_dir):
    dataset = load_tech_products(make_tech_dir())  # one user per personality
    picked = representative_users(dataset, per_segment=3)
    assert picked == {
        "Tech Enthusiast": ["tec_0001"],
        "Budget Conscious": ["bud_0001"],
        "Creative Explorer": ["cre_0001"],
    }


def test_representative_users_without_a_segment_is_one_group():
    dataset = genre_dataset()
    picked = representative_users(dataset, per_segment=2)
    assert list(picked) == ["all users"]
    assert len(picked["all users"]) == 2
    assert set(picked["all users"]) <= set(dataset.users["user_id"])
