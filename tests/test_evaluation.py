"""The evaluation protocol (docs/evaluation.md) against hand-worked examples
and a slow, obviously-correct reference implementation written below."""

from __future__ import annotations

import json
import math
from collections import defaultdict

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

# Import the package first: it routes tf.keras to tf_keras before TensorFlow loads.
import tfrs_recsys  # noqa: F401  (import for its side effect)
from tfrs_recsys.data.dataset import RecDataset
from tfrs_recsys.data.generator import GeneratorConfig, generate
from tfrs_recsys.data.schema import DatasetSchema, Feature
from tfrs_recsys.data.splits import holdout_80_20
from tfrs_recsys.data.techproducts import load_tech_products, load_truth, write_tech_products
from tfrs_recsys.errors import ConfigError, DataValidationError
from tfrs_recsys.evaluation import EvaluationResult, EvaluationTask, evaluate, seed_metric

NEG_INF = -np.inf

TOY_SCHEMA = DatasetSchema(
    name="toy",
    user_features=(Feature("user_id", "id"), Feature("group", "categorical")),
    item_features=(Feature("item_id", "id"),),
    user_segment="group",
)


def toy_dataset(n_users: int, n_items: int, groups: list[str] | None = None) -> RecDataset:
    """Users ``u0..``, items ``i0..``; the interactions table is not used here."""
    users = pd.DataFrame(
        {
            "user_id": [f"u{u}" for u in range(n_users)],
            "group": groups if groups is not None else ["a"] * n_users,
        }
    )
    items = pd.DataFrame({"item_id": [f"i{i}" for i in range(n_items)]})
    empty = pd.DataFrame(
        {"user_id": pd.Series([], dtype=object), "item_id": pd.Series([], dtype=object)}
    )
    return RecDataset(schema=TOY_SCHEMA, users=users, items=items, interactions=empty)


def pairs(by_user: dict[int, list[int]]) -> pd.DataFrame:
    """A ``user_id, item_id`` frame from ``{user row: [item rows]}``."""
    rows = [(f"u{u}", f"i{i}") for u, items in by_user.items() for i in items]
    return pd.DataFrame(rows, columns=["user_id", "item_id"])


def matrix_scorer(scores: np.ndarray):
    return lambda rows: scores[rows]


# --- The slow reference ------------------------------------------------------------


def reference(scores, dataset, train, holdout, ks, curve_max_k, segment="group"):
    """Protocol figures by plain Python loops: one full sort per user.

    Returns ``(metrics, curve, per_segment)`` like EvaluationResult. Conventions
    of the module docstring: holdout pairs that are train pairs are dropped;
    -inf scores are not ranked; ties go to the lower item row.
    """
    n_items = scores.shape[1]
    train_sets, holdout_sets = defaultdict(set), defaultdict(set)
    for u, i in zip(*dataset.encode(train)):
        train_sets[int(u)].add(int(i))
    for u, i in zip(*dataset.encode(holdout)):
        holdout_sets[int(u)].add(int(i))
    per_user, curves, tops, groups = [], [], [], []
    for u in sorted(holdout_sets):
        relevant = holdout_sets[u] - train_sets[u]
        if not relevant:
            continue
        s = np.asarray(scores[u], dtype=np.float32)
        candidates = [i for i in range(n_items) if i not in train_sets[u] and s[i] > NEG_INF]
        ranking = sorted(candidates, key=lambda i: (-float(s[i]), i))
        figures = {}
        for k in ks:
            hit = [i in relevant for i in ranking[:k]]
            dcg = sum(1 / math.log2(rank + 2) for rank, h in enumerate(hit) if h)
            idcg = sum(1 / math.log2(rank + 2) for rank in range(min(k, len(relevant))))
            figures[f"recall@{k}"] = sum(hit) / len(relevant)
            figures[f"precision@{k}"] = sum(hit) / k
            figures[f"hit_rate@{k}"] = float(any(hit))
            figures[f"ndcg@{k}"] = dcg / idcg
        per_user.append(figures)
        curves.append(
            [len(relevant & set(ranking[:k])) / len(relevant) for k in range(1, curve_max_k + 1)]
        )
        tops.append(set(ranking[:10]))
        groups.append(str(dataset.users[segment].iloc[u]))

    def aggregate(members):
        out = {key: float(np.mean([per_user[m][key] for m in members])) for key in per_user[0]}
        out["coverage@10"] = len(set().union(*(tops[m] for m in members))) / n_items
        return out

    everyone = list(range(len(per_user)))
    per_segment = {}
    for g in sorted(set(groups)):
        members = [m for m in everyone if groups[m] == g]
        per_segment[g] = aggregate(members) | {"users": len(members)}
    return aggregate(everyone), np.mean(curves, axis=0), per_segment


def assert_matches_reference(result, expected):
    metrics, curve, per_segment = expected
    assert list(result.metrics) == list(metrics)
    for key, value in metrics.items():
        assert result.metrics[key] == pytest.approx(value, abs=1e-12), key
    np.testing.assert_allclose(result.recall_curve, curve, rtol=0, atol=1e-12)
    assert set(result.per_segment) == set(per_segment)
    for g, figures in per_segment.items():
        assert result.per_segment[g].keys() == figures.keys()
        for key, value in figures.items():
            assert result.per_segment[g][key] == pytest.approx(value, abs=1e-12), (g, key)


# --- The worked example --------------------------------------------------------------
#
# 4 users x 6 items; scores below, train items masked (M), holdout items (H).
#
#          i0    i1    i2    i3    i4    i5     train     holdout   group
#   u0   0.90  0.80  0.70  0.10  0.50  0.30     {i0}      {i1,i3}     a
#   u1   0.20  0.10  0.95  0.40  0.60  0.50     {i1,i2}   {i0}        b
#   u2   0.30  0.20  0.10  0.90  0.40  0.50     {i3}      {}          a   (not evaluated)
#   u3   0.10  0.90  0.80  0.70  0.60  0.05     {}        {i0,i2,i4,i5} a
#
# Rankings after masking (H = holdout hit):
#   u0: i1(H) i2 i4 i5 i3(H)            (i0 scores highest but is masked)
#   u1: i4 i5 i3 i0(H)                  (i2 scores highest but is masked)
#   u3: i1 i2(H) i3 i4(H) i0(H) i5(H)
TOY_SCORES = np.array(
    [
        [0.90, 0.80, 0.70, 0.10, 0.50, 0.30],
        [0.20, 0.10, 0.95, 0.40, 0.60, 0.50],
        [0.30, 0.20, 0.10, 0.90, 0.40, 0.50],
        [0.10, 0.90, 0.80, 0.70, 0.60, 0.05],
    ],
    dtype=np.float32,
)
TOY_TRAIN = {0: [0], 1: [1, 2], 2: [3]}
TOY_HOLDOUT = {0: [1, 3], 1: [0], 3: [0, 2, 4, 5]}
TOY_GROUPS = ["a", "b", "a", "a"]
L2, L3, L4, L5 = (1 / math.log2(n) for n in (2, 3, 4, 5))  # 1, 0.6309, 0.5, 0.4307


@pytest.fixture
def toy():
    dataset = toy_dataset(4, 6, TOY_GROUPS)
    task = EvaluationTask.build(
        dataset, pairs(TOY_TRAIN), pairs(TOY_HOLDOUT), split_name="toy-split"
    )
    return dataset, task


def test_task_holds_evaluated_users_and_csr_lists(toy):
    _, task = toy
    # u2 has no holdout item: not evaluated.
    np.testing.assert_array_equal(task.user_rows, [0, 1, 3])
    assert list(task.user_ids) == ["u0", "u1", "u3"]
    assert task.n_items == 6 and task.n_users == 3
    assert task.dataset_name == "toy" and task.split_name == "toy-split"
    np.testing.assert_array_equal(task.holdout_counts, [2, 1, 4])
    assert [list(task.holdout_items_of(p)) for p in range(3)] == [[1, 3], [0], [0, 2, 4, 5]]
    assert [list(task.train_items_of(p)) for p in range(3)] == [[0], [1, 2], []]
    assert task.segment == "group" and list(task.segments) == ["a", "b", "a"]
    assert task.dropped_holdout_pairs == 0


def test_worked_example_metrics(toy):
    _, task = toy
    result = evaluate(matrix_scorer(TOY_SCORES), task, ks=(2, 4), curve_max_k=6)
    m = result.metrics
    assert result.users == 3
    # recall@2: u0 1/2 (i1), u1 0/1, u3 1/4 (i2)      -> (0.5 + 0 + 0.25) / 3 = 0.25
    assert m["recall@2"] == pytest.approx(0.25)
    # precision@2: 1/2, 0, 1/2                          -> 1/3
    assert m["precision@2"] == pytest.approx(1 / 3)
    # hit_rate@2: 1, 0, 1                               -> 2/3
    assert m["hit_rate@2"] == pytest.approx(2 / 3)
    # ndcg@2: u0 DCG 1/log2(2) = 1, IDCG (2 holdout) 1 + 1/log2(3) -> 1/1.6309
    #         u1 0
    #         u3 DCG 1/log2(3) (rank 2), IDCG min(2, 4) = 2 items -> 0.6309/1.6309
    #         sum of u0 and u3 = 1.6309/1.6309 = 1      -> 1/3
    assert m["ndcg@2"] == pytest.approx(1 / 3)
    # recall@4: u0 1/2, u1 1/1 (i0 at rank 4), u3 2/4   -> 2/3
    assert m["recall@4"] == pytest.approx(2 / 3)
    # precision@4: 1/4, 1/4, 2/4                        -> 1/3
    assert m["precision@4"] == pytest.approx(1 / 3)
    assert m["hit_rate@4"] == pytest.approx(1.0)
    # ndcg@4: u0 1 / (1 + L3) (|holdout| = 2 < K: IDCG over 2 items)
    #         u1 L5 / 1 (rank 4)
    #         u3 (L3 + L5) / (1 + L3 + L4 + L5) (|holdout| = 4 = K)
    ndcg4 = (1 / (L2 + L3) + L5 / L2 + (L3 + L5) / (L2 + L3 + L4 + L5)) / 3
    assert m["ndcg@4"] == pytest.approx(ndcg4)
    # Every unmasked item is in someone's top 10 (u3 masks nothing): 6/6.
    assert m["coverage@10"] == pytest.approx(1.0)
    assert list(m) == [
        "recall@2",
        "precision@2",
        "hit_rate@2",
        "ndcg@2",
        "recall@4",
        "precision@4",
        "hit_rate@4",
        "ndcg@4",
        "coverage@10",
    ]
    # Curve, K = 1..6: u0 [.5 .5 .5 .5 1 1]; u1 [0 0 0 1 1 1]; u3 [0 .25 .25 .5 .75 1]
    np.testing.assert_allclose(
        result.recall_curve,
        np.mean(
            [[0.5, 0.5, 0.5, 0.5, 1, 1], [0, 0, 0, 1, 1, 1], [0, 0.25, 0.25, 0.5, 0.75, 1]], axis=0
        ),
    )
    assert result.dataset == "toy" and result.split == "toy-split" and result.segment == "group"
    assert result.eval_s >= result.scorer_s >= 0.0


def test_worked_example_standard_errors(toy):
    _, task = toy
    result = evaluate(matrix_scorer(TOY_SCORES), task, ks=(2, 4), curve_max_k=6)
    se = result.standard_errors
    # recall@2 per user: 0.5, 0, 0.25 (above); mean 0.25, population std
    # sqrt(((0.25)^2 + (0.25)^2 + 0) / 3) = 0.2041; over sqrt(3) users -> 0.1179.
    assert se["recall@2"] == pytest.approx(np.sqrt(0.125 / 3) / np.sqrt(3))
    # hit_rate@4 is 1 for every user: no spread.
    assert se["hit_rate@4"] == 0.0
    assert "coverage@10" not in se
    # Kept through the JSON form.
    assert type(result).from_dict(result.to_dict()).standard_errors == se


def test_worked_example_per_segment(toy):
    _, task = toy
    result = evaluate(matrix_scorer(TOY_SCORES), task, ks=(2, 4), curve_max_k=6)
    a, b = result.per_segment["a"], result.per_segment["b"]
    assert set(result.per_segment) == {"a", "b"}  # u2 (a) is not evaluated but u0, u3 are
    assert a["users"] == 2 and b["users"] == 1
    # Segment a = u0, u3: recall@2 (0.5 + 0.25) / 2; b = u1: 0.
    assert a["recall@2"] == pytest.approx(0.375)
    assert b["recall@2"] == 0.0
    assert a["recall@4"] == pytest.approx(0.5) and b["recall@4"] == pytest.approx(1.0)
    assert b["ndcg@4"] == pytest.approx(L5)
    # Coverage: a covers all 6 items (u3); b covers u1's four unmasked items i0 i3 i4 i5.
    assert a["coverage@10"] == pytest.approx(1.0)
    assert b["coverage@10"] == pytest.approx(4 / 6)
    # User-weighted segment means give the overall means back.
    for key, overall in result.metrics.items():
        if key != "coverage@10":
            weighted = sum(s[key] * s["users"] for s in result.per_segment.values()) / result.users
            assert weighted == pytest.approx(overall), key


def test_worked_example_matches_reference(toy):
    dataset, task = toy
    result = evaluate(matrix_scorer(TOY_SCORES), task, ks=(2, 4), curve_max_k=6)
    assert_matches_reference(
        result, reference(TOY_SCORES, dataset, pairs(TOY_TRAIN), pairs(TOY_HOLDOUT), (2, 4), 6)
    )


def test_masked_top_item_is_never_ranked_or_counted():
    # 1 user, 5 items; the train item i0 has by far the highest score and is also
    # (wrongly) listed in the holdout. Holdout {i0, i3} minus train {i0} = {i3}.
    dataset = toy_dataset(1, 5)
    task = EvaluationTask.build(dataset, pairs({0: [0]}), pairs({0: [0, 3]}))
    assert task.dropped_holdout_pairs == 1
    np.testing.assert_array_equal(task.holdout_counts, [1])
    scores = np.array([[100.0, 1.0, 2.0, 3.0, 4.0]], dtype=np.float32)
    result = evaluate(matrix_scorer(scores), task, ks=(1, 2), curve_max_k=5)
    # Ranking i4, i3, i2, i1 (i0 masked): i3 at rank 2, over 1 holdout item.
    assert result.metrics["recall@1"] == 0.0
    assert result.metrics["recall@2"] == 1.0
    assert result.metrics["ndcg@2"] == pytest.approx(L3)
    # Coverage counts i1..i4 only, never the masked i0.
    assert result.metrics["coverage@10"] == pytest.approx(4 / 5)


def test_fewer_rankable_items_than_k_leaves_misses():
    # 4 items, train {i0, i1, i2} with the highest scores: only i3 is rankable.
    dataset = toy_dataset(1, 4)
    task = EvaluationTask.build(dataset, pairs({0: [0, 1, 2]}), pairs({0: [3]}))
    scores = np.array([[9.0, 8.0, 7.0, -1.0]], dtype=np.float32)
    result = evaluate(matrix_scorer(scores), task)  # default ks (10, 50) > 4 items
    m = result.metrics
    assert m["recall@10"] == 1.0 and m["hit_rate@50"] == 1.0
    assert m["precision@10"] == pytest.approx(1 / 10)  # hits / K, K = 10
    assert m["precision@50"] == pytest.approx(1 / 50)
    assert m["ndcg@10"] == 1.0
    assert m["coverage@10"] == pytest.approx(1 / 4)  # i3 only
    assert result.recall_curve.shape == (100,)
    np.testing.assert_array_equal(result.recall_curve, np.ones(100))


def test_minus_inf_scores_are_not_ranked():
    # The scorer itself rules out i1 (a holdout item) with -inf: it is a miss at every K.
    dataset = toy_dataset(1, 3)
    task = EvaluationTask.build(dataset, pairs({}), pairs({0: [1, 2]}))
    scores = np.array([[0.5, NEG_INF, 0.1]], dtype=np.float32)
    result = evaluate(matrix_scorer(scores), task, ks=(1, 3), curve_max_k=3)
    # Ranking i0, i2: recall@3 = 1/2; coverage i0 and i2 -> 2/3.
    assert result.metrics["recall@3"] == 0.5
    assert result.metrics["coverage@10"] == pytest.approx(2 / 3)


def test_ndcg_with_more_holdout_items_than_k():
    # 1 user, 8 items scored -j (ranking i0..i7), holdout {i0 i2 i5 i6 i7}: 5 > K = 3.
    dataset = toy_dataset(1, 8)
    scores = -np.arange(8, dtype=np.float32)[None, :]
    holdout = pairs({0: [0, 2, 5, 6, 7]})
    # Train {i1 i3 i4} masked: ranking i0(H) i2(H) i5(H), a perfect top 3.
    # IDCG is over min(3, 5) = 3 items, so NDCG is 1 though recall is 3/5.
    task = EvaluationTask.build(dataset, pairs({0: [1, 3, 4]}), holdout)
    result = evaluate(matrix_scorer(scores), task, ks=(3,), curve_max_k=3)
    assert result.metrics["ndcg@3"] == pytest.approx(1.0)
    assert result.metrics["recall@3"] == pytest.approx(3 / 5)

    # Nothing masked: ranking i0(H) i1 i2(H): DCG = 1 + 1/log2(4),
    # IDCG = 1 + 1/log2(3) + 1/log2(4).
    task = EvaluationTask.build(dataset, pairs({}), holdout)
    result = evaluate(matrix_scorer(scores), task, ks=(3,), curve_max_k=3)
    assert result.metrics["ndcg@3"] == pytest.approx((L2 + L4) / (L2 + L3 + L4))
    assert result.metrics["recall@3"] == pytest.approx(2 / 5)


def test_coverage_counts_distinct_top10_items():
    # 3 users, 15 items, the same scores for all: item j scores -j.
    # u0 masks i0 -> top-10 i1..i10; u1 masks i0, i3 -> i1 i2 i4..i11;
    # u2 masks i0..i4 -> i5..i14. Distinct: i1..i14 = 14 of 15 (i0 never shown).
    dataset = toy_dataset(3, 15, ["x", "y", "y"])
    train = pairs({0: [0], 1: [0, 3], 2: [0, 1, 2, 3, 4]})
    task = EvaluationTask.build(dataset, train, pairs({0: [14], 1: [14], 2: [14]}))
    scores = np.tile(-np.arange(15, dtype=np.float32), (3, 1))
    result = evaluate(matrix_scorer(scores), task, ks=(10,), curve_max_k=10)
    assert result.metrics["coverage@10"] == pytest.approx(14 / 15)
    assert result.per_segment["x"]["coverage@10"] == pytest.approx(10 / 15)  # i1..i10
    assert result.per_segment["y"]["coverage@10"] == pytest.approx(13 / 15)  # i1, i2, i4..i14
    # i14 is in u2's top 10 only.
    assert result.metrics["hit_rate@10"] == pytest.approx(1 / 3)


def test_curve_is_monotone_and_ends_match_recall(toy):
    _, task = toy
    rng = np.random.default_rng(3)
    result = evaluate(matrix_scorer(rng.random((4, 6), dtype=np.float32)), task)
    assert result.recall_curve.shape == (100,)
    assert np.all(np.diff(result.recall_curve) >= 0)
    assert result.recall_curve[9] == pytest.approx(result.metrics["recall@10"], abs=1e-12)
    assert result.recall_curve[49] == pytest.approx(result.metrics["recall@50"], abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_random_scores_match_reference(seed):
    # 50 users x 40 items: random train/holdout (with overlaps and users without
    # holdout), random scores; seed 2 uses 4 distinct score values (ties
    # everywhere), seed 3 rules out a fifth of the cells with -inf.
    rng = np.random.default_rng(seed)
    n_users, n_items = 50, 40
    groups = list(rng.choice(["p", "q", "r"], size=n_users))
    dataset = toy_dataset(n_users, n_items, groups)
    cells = rng.random((n_users, n_items))
    train = pairs({u: list(np.flatnonzero(cells[u] < 0.25)) for u in range(n_users)})
    holdout_map = {u: list(np.flatnonzero(cells[u] > 0.9)) for u in range(0, n_users, 1) if u % 7}
    holdout_map[1] = holdout_map.get(1, []) + list(np.flatnonzero(cells[1] < 0.25)[:2])  # overlap
    holdout = pairs(holdout_map)
    holdout = pd.concat([holdout, holdout.iloc[:5]])  # repeated rows count once
    if seed == 2:
        scores = rng.integers(0, 4, size=(n_users, n_items)).astype(np.float32)
    else:
        scores = rng.standard_normal((n_users, n_items)).astype(np.float32)
    if seed == 3:
        scores[rng.random((n_users, n_items)) < 0.2] = NEG_INF
    task = EvaluationTask.build(dataset, train, holdout)
    ks, curve_max_k = (1, 5, 10, 20), 45  # curve longer than the catalog
    for batch_size in (7, 1024):
        result = evaluate(
            matrix_scorer(scores), task, ks=ks, curve_max_k=curve_max_k, batch_size=batch_size
        )
        expected = reference(scores, dataset, train, holdout, ks, curve_max_k)
        assert_matches_reference(result, expected)


def test_scorer_sees_batches_of_evaluated_rows_and_its_array_is_untouched(toy):
    _, task = toy
    calls = []
    scores = TOY_SCORES.copy()

    def scorer(rows):
        calls.append(rows)
        return scores[rows]

    evaluate(scorer, task, ks=(2,), curve_max_k=2, batch_size=2)
    assert [list(c) for c in calls] == [[0, 1], [3]]
    assert all(c.dtype == np.int64 for c in calls)
    np.testing.assert_array_equal(scores, TOY_SCORES)  # masking wrote into a copy


def test_tensor_and_float64_scorers_give_the_same_result(toy):
    _, task = toy
    numpy_result = evaluate(matrix_scorer(TOY_SCORES), task, ks=(2, 4), curve_max_k=6)
    tensor_result = evaluate(
        lambda rows: tf.gather(tf.constant(TOY_SCORES), rows), task, ks=(2, 4), curve_max_k=6
    )
    float64_result = evaluate(
        matrix_scorer(TOY_SCORES.astype(np.float64)), task, ks=(2, 4), curve_max_k=6
    )
    assert tensor_result.metrics == numpy_result.metrics == float64_result.metrics


def test_result_to_dict_is_json_and_round_trips(toy):
    _, task = toy
    result = evaluate(matrix_scorer(TOY_SCORES), task, ks=(2, 4), curve_max_k=6)
    data = json.loads(json.dumps(result.to_dict()))
    assert data["metrics"] == result.metrics
    assert data["users"] == 3 and data["split"] == "toy-split" and data["segment"] == "group"
    assert data["per_segment"]["a"]["users"] == 2
    assert len(data["recall_curve"]) == 6
    again = EvaluationResult.from_dict(data)
    assert again.metrics == result.metrics and again.per_segment == result.per_segment
    np.testing.assert_array_equal(again.recall_curve, result.recall_curve)


def test_schema_without_segment_gives_no_breakdown():
    schema = DatasetSchema(
        name="plain",
        user_features=(Feature("user_id", "id"),),
        item_features=(Feature("item_id", "id"),),
    )
    toy = toy_dataset(2, 3)
    dataset = RecDataset(
        schema=schema, users=toy.users[["user_id"]], items=toy.items, interactions=toy.interactions
    )
    task = EvaluationTask.build(dataset, pairs({0: [0]}), pairs({0: [1], 1: [2]}))
    assert task.segments is None
    result = evaluate(matrix_scorer(np.eye(2, 3, dtype=np.float32)), task, ks=(1,), curve_max_k=1)
    assert result.per_segment == {} and result.segment is None
    # u0: ranking i1 (i0 masked) -> hit; u1: ranking i1, i0, i2 -> miss at 1.
    assert result.metrics["recall@1"] == 0.5


# --- Recall@10 by the item's train popularity ----------------------------------------
#
# 4 users x 12 items, every user scores item i as -i (lower rows rank first).
#   train:   u0 {i0}, u1 {i0, i1}, u3 {i11}      (u3 has no holdout: not evaluated)
#   holdout: u0 {i1, i11}, u1 {i2}, u2 {i0, i5}
# Train positives: i0 2, i1 1, i11 1 (u3 counts), i2..i10 0 (cold).
# Top 10: u0 i1..i10 (i1 hit, i11 11th: miss); u1 i2..i11 (i2 hit); u2 i0..i9 (both hit).
# Bin 0: pairs u1-i2, u2-i5, 2 hits; bin 1-4: u0-i1, u0-i11, u2-i0, 2 hits.
TAIL_SCORES = np.tile(-np.arange(12, dtype=np.float32), (4, 1))
TAIL_TRAIN = {0: [0], 1: [0, 1], 3: [11]}
TAIL_HOLDOUT = {0: [1, 11], 1: [2], 2: [0, 5]}


@pytest.fixture
def tail_result():
    task = EvaluationTask.build(toy_dataset(4, 12), pairs(TAIL_TRAIN), pairs(TAIL_HOLDOUT))
    return task, evaluate(matrix_scorer(TAIL_SCORES), task)


def test_item_train_positives_count_every_train_user(tail_result):
    task, _ = tail_result
    assert list(task.item_train_positives) == [2, 1] + [0] * 9 + [1]


def test_items_without_train_positives_are_the_cold_bin(tail_result):
    _, result = tail_result
    bins = result.popularity_bins
    assert bins["0"] == {"items": 9, "pairs": 2, "hits@10": 2, "recall@10": 1.0}
    assert bins["1-4"] == {"items": 3, "pairs": 3, "hits@10": 2, "recall@10": 2 / 3}


def test_empty_popularity_bins_have_no_recall(tail_result):
    _, result = tail_result
    assert list(result.popularity_bins) == ["0", "1-4", "5-19", "20-99", "100-499", "500+"]
    for label in ("5-19", "20-99", "100-499", "500+"):
        assert result.popularity_bins[label] == {
            "items": 0,
            "pairs": 0,
            "hits@10": 0,
            "recall@10": None,
        }
    assert json.loads(json.dumps(result.to_dict()))["popularity_bins"]["500+"]["recall@10"] is None


def test_popularity_bins_round_trip_and_older_results_load(tail_result):
    _, result = tail_result
    data = json.loads(json.dumps(result.to_dict()))
    assert EvaluationResult.from_dict(data).popularity_bins == result.popularity_bins
    del data["popularity_bins"]  # a metrics.json written before the bins existed
    older = EvaluationResult.from_dict(data)
    assert older.popularity_bins == {} and older.metrics == result.metrics


def brute_force_bins(scores, train, holdout, n_items):
    """Per bin: (items, pairs, hits@10) by pandas counts and one full sort per user."""
    edges = [(0, 0), (1, 4), (5, 19), (20, 99), (100, 499), (500, 10**9)]
    train = train.drop_duplicates()
    holdout = holdout.drop_duplicates()
    counts = train.groupby("item_id")["user_id"].nunique()
    positives = [int(counts.get(f"i{i}", 0)) for i in range(n_items)]
    bin_of = [next(b for b, (lo, hi) in enumerate(edges) if lo <= c <= hi) for c in positives]
    train_sets = train.groupby("user_id")["item_id"].agg(set)
    items, pairs_in, hits = [0] * 6, [0] * 6, [0] * 6
    for i in range(n_items):
        items[bin_of[i]] += 1
    for user, group in holdout.groupby("user_id"):
        masked = {int(i[1:]) for i in train_sets.get(user, set())}
        relevant = {int(i[1:]) for i in group["item_id"]} - masked
        row = scores[int(user[1:])]
        ranked = [i for i in np.lexsort((np.arange(n_items), -row)) if i not in masked]
        top = {i for i in ranked if row[i] > NEG_INF}
        top = {i for i in ranked[:10] if i in top}
        for i in relevant:
            pairs_in[bin_of[i]] += 1
            hits[bin_of[i]] += i in top
    return items, pairs_in, hits


@pytest.mark.parametrize("seed", [0, 1])
def test_popularity_bins_match_brute_force(seed):
    # 700 users x 60 items whose train densities range from 0 to ~0.9, so every
    # bin has items; seed 1 has tied scores and -inf cells.
    rng = np.random.default_rng(seed)
    n_users, n_items = 700, 60
    dataset = toy_dataset(n_users, n_items)
    density = np.concatenate([np.zeros(5), np.geomspace(0.001, 0.9, n_items - 5)])
    cells = rng.random((n_users, n_items))
    train = pairs({u: list(np.flatnonzero(cells[u] < density)) for u in range(n_users)})
    holdout = pairs({u: list(np.flatnonzero(cells[u] > 0.93)) for u in range(n_users)})
    if seed == 1:
        scores = rng.integers(0, 5, size=(n_users, n_items)).astype(np.float32)
        scores[rng.random((n_users, n_items)) < 0.3] = NEG_INF
    else:
        scores = rng.standard_normal((n_users, n_items)).astype(np.float32)
    task = EvaluationTask.build(dataset, train, holdout)
    items, pairs_in, hits = brute_force_bins(scores, train, holdout, n_items)
    assert min(items) > 0  # every bin is exercised
    for batch_size in (64, 1024):
        bins = evaluate(matrix_scorer(scores), task, batch_size=batch_size).popularity_bins
        assert [b["items"] for b in bins.values()] == items
        assert [b["pairs"] for b in bins.values()] == pairs_in
        assert [b["hits@10"] for b in bins.values()] == hits
        for b, figures in enumerate(bins.values()):
            expected = hits[b] / pairs_in[b] if pairs_in[b] else None
            assert figures["recall@10"] == pytest.approx(expected, abs=1e-12)


# --- Errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ks": (0, 10)}, "positive integer"),
        ({"ks": (-5,)}, "positive integer"),
        ({"ks": (2.5,)}, "positive integer"),
        ({"ks": ()}, "at least one"),
        ({"ks": (10, 10)}, "repeats"),
        ({"ks": (10, 50), "curve_max_k": 20}, r"curve_max_k \(20\) must be at least the largest"),
        ({"curve_max_k": 0, "ks": (1,)}, "curve_max_k must be a positive integer"),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_bad_cutoffs_raise_config_error(toy, kwargs, message):
    _, task = toy
    with pytest.raises(ConfigError, match=message):
        evaluate(matrix_scorer(TOY_SCORES), task, **kwargs)


def test_wrong_score_shape_names_expected_and_got(toy):
    _, task = toy
    with pytest.raises(ConfigError, match=r"shape \(3, 5\) for 3 user row\(s\); expected \(3, 6\)"):
        evaluate(lambda rows: TOY_SCORES[rows, :5], task)
    with pytest.raises(ConfigError, match=r"shape \(6,\).*expected \(3, 6\)"):
        evaluate(lambda rows: TOY_SCORES[0], task)
    with pytest.raises(ConfigError, match="numeric"):
        evaluate(lambda rows: [["a"] * 6] * len(rows), task)


def test_nan_scores_name_the_user_row(toy):
    _, task = toy
    scores = TOY_SCORES.copy()
    scores[3, 4] = np.nan
    with pytest.raises(ConfigError, match=r"NaN for user row 3 \(user 'u3'\), item row 4"):
        evaluate(matrix_scorer(scores), task)


def test_build_errors():
    dataset = toy_dataset(2, 3)
    # Every holdout pair is also a train pair: nothing to evaluate.
    with pytest.raises(DataValidationError, match="nothing to evaluate"):
        EvaluationTask.build(dataset, pairs({0: [1]}), pairs({0: [1]}))
    with pytest.raises(DataValidationError, match="'i9'"):
        EvaluationTask.build(dataset, pairs({0: [1]}), pairs({0: [9]}))


# --- Seed metric ----------------------------------------------------------------------


# P[u, i] = (10 * u + i) / 100, so every pair has a distinct, readable probability.
SEED_P = (10 * np.arange(4)[:, None] + np.arange(6)[None, :]) / 100.0


def seed_probability(user_rows, item_rows):
    return SEED_P[user_rows, item_rows]


def test_seed_metric_hand_computed_with_one_pair_per_user():
    # One holdout pair per user, so the sample is forced: u0-i1, u1-i0, u3-i5.
    # Probabilities 0.01, 0.10, 0.35 -> mean 0.46 / 3.
    dataset = toy_dataset(4, 6)
    holdout = pairs({0: [1], 1: [0], 3: [5]})
    assert seed_metric(seed_probability, dataset, holdout) == pytest.approx(0.46 / 3)


def test_seed_metric_uses_the_notebooks_groupby_sample():
    dataset = toy_dataset(4, 6)
    holdout = pairs({0: [1, 3, 4], 1: [0, 2], 2: [5], 3: [0, 2, 4, 5]})
    # The notebooks' lines (docs/evaluation.md, the seed metric):
    sampled = holdout.groupby("user_id").sample(n=1, random_state=42)
    users = sampled["user_id"].str[1:].astype(int).to_numpy()
    items = sampled["item_id"].str[1:].astype(int).to_numpy()
    expected = float(np.mean(SEED_P[users, items]))
    assert len(sampled) == 4 and sorted(users) == [0, 1, 2, 3]
    assert seed_metric(seed_probability, dataset, holdout) == pytest.approx(expected, abs=1e-15)
    # Shape [n, 1] (Keras predict) is accepted.
    column = seed_metric(lambda u, i: seed_probability(u, i)[:, None], dataset, holdout)
    assert column == pytest.approx(expected, abs=1e-15)


def test_seed_metric_errors():
    dataset = toy_dataset(4, 6)
    holdout = pairs({0: [1], 1: [0]})
    with pytest.raises(ConfigError, match=r"in \[0, 1\]; got 1.5 for user 'u0', item 'i1'"):
        seed_metric(lambda u, i: np.array([1.5, 0.2]), dataset, holdout)
    with pytest.raises(ConfigError, match=r"in \[0, 1\]; got nan"):
        seed_metric(lambda u, i: np.array([0.5, np.nan]), dataset, holdout)
    with pytest.raises(ConfigError, match=r"shape \(3,\) for 2 pair\(s\)"):
        seed_metric(lambda u, i: np.zeros(3), dataset, holdout)
    with pytest.raises(DataValidationError, match="empty"):
        seed_metric(seed_probability, dataset, holdout.iloc[:0])


# --- A generated tech-products dataset ------------------------------------------------------


@pytest.fixture(scope="module")
def tech_products(tmp_path_factory):
    """500 users x 120 items, written, loaded back and split like the protocol says."""
    out = tmp_path_factory.mktemp("evaluation") / "tech-products"
    write_tech_products(generate(GeneratorConfig(users=500, items=120)), out)
    dataset = load_tech_products(out)
    split = holdout_80_20(dataset.interactions)
    return dataset, split, load_truth(out)


def test_oracle_beats_random_and_matches_reference(tech_products):
    dataset, split, truth = tech_products
    task = EvaluationTask.from_split(dataset, split)
    assert task.split_name == "holdout-80-20" and task.segment == "personality"
    assert task.n_users == split.holdout["user_id"].nunique()

    oracle_scores = truth.probabilities(np.arange(dataset.n_users))
    random_scores = np.random.default_rng(0).random(oracle_scores.shape, dtype=np.float32)
    oracle = evaluate(lambda rows: truth.probabilities(rows), task, batch_size=128)
    chance = evaluate(matrix_scorer(random_scores), task, batch_size=128)
    # Random ranks ~10 of ~110 unmasked items: recall@10 ~ 0.09.
    assert chance.metrics["recall@10"] < 0.15
    assert oracle.metrics["recall@10"] > 3 * chance.metrics["recall@10"]
    assert oracle.metrics["ndcg@10"] > 3 * chance.metrics["ndcg@10"]
    assert len(oracle.per_segment) == 5
    assert sum(s["users"] for s in oracle.per_segment.values()) == task.n_users

    ks, curve_max_k = (10, 50), 100
    expected = reference(
        oracle_scores, dataset, split.train, split.holdout, ks, curve_max_k, "personality"
    )
    assert_matches_reference(oracle, expected)


def test_seed_metric_of_the_oracle(tech_products):
    dataset, split, truth = tech_products

    def probability(user_rows, item_rows):
        return truth.probabilities(user_rows)[np.arange(len(user_rows)), item_rows]

    value = seed_metric(probability, dataset, split.holdout)
    sampled = split.holdout.groupby("user_id").sample(n=1, random_state=42)
    user_rows, item_rows = dataset.encode(sampled)
    expected = np.mean(
        [truth.probabilities(np.array([u]))[0, i] for u, i in zip(user_rows, item_rows)]
    )
    assert value == pytest.approx(expected, rel=1e-6)
    assert 0.0 < value < 1.0


def test_ten_thousand_users_by_a_thousand_items_is_fast():
    # The protocol's default size, built directly as arrays: 10,000 users, 1,000
    # items, ~77 train and ~19 holdout items each. The bound is loose (shared
    # 2-core machine); typical is ~0.4 s excluding the scorer.
    rng = np.random.default_rng(0)
    n_users, n_items = 10_000, 1_000
    cells = rng.random((n_users, n_items))
    train_u, train_i = np.nonzero(cells < 0.077)
    hold_u, hold_i = np.nonzero(cells > 1 - 0.019)

    def offsets(u):
        return np.concatenate([[0], np.cumsum(np.bincount(u, minlength=n_users))])

    task = EvaluationTask(
        dataset_name="synthetic",
        split_name="random",
        n_items=n_items,
        user_rows=np.arange(n_users, dtype=np.int64),
        user_ids=np.array([f"u{u}" for u in range(n_users)], dtype=object),
        train_offsets=offsets(train_u),
        train_items=train_i.astype(np.int64),
        holdout_offsets=offsets(hold_u),
        holdout_items=hold_i.astype(np.int64),
        segment=None,
        segments=None,
    )
    assert task.holdout_counts.min() >= 1
    scores = rng.random((n_users, n_items), dtype=np.float32)
    result = evaluate(matrix_scorer(scores), task)
    assert result.users == n_users
    # Random scores: recall@10 ~ 10 / 923 unmasked items.
    assert result.metrics["recall@10"] == pytest.approx(10 / 923, rel=0.15)
