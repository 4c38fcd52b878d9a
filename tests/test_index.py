"""The top-k index and the serving module on hand-made vectors (no training, no dataset).

Expected answers come from numpy: scores ``queries @ items.T`` in float64,
ranked by a stable ``argsort`` (ties: the lower row first), excluded items set
to ``-inf``.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
import tensorflow as tf

from tfrs_recsys.errors import ConfigError
from tfrs_recsys.serving.index import BruteForceIndex, build_index
from tfrs_recsys.serving.module import RecommenderModule
from tfrs_recsys.serving.tables import ServingTables

RNG = np.random.default_rng(7)
ITEMS = RNG.standard_normal((9, 4)).astype(np.float32)
QUERIES = RNG.standard_normal((5, 4)).astype(np.float32)
# Item rows each query must not get (query 2 keeps only items 7 and 8).
EXCLUDE = [[0, 3], [], [0, 1, 2, 3, 4, 5, 6], [8], [1, 1, 2]]


def _ragged(rows: list[list[int]]) -> tf.RaggedTensor:
    return tf.ragged.constant(rows, dtype=tf.int64, ragged_rank=1, inner_shape=())


def _numpy_top_k(queries, items, k, exclude=None):
    """``(scores, rows)`` best first; masked cells -inf, rows -1 where the score is -inf."""
    scores = queries.astype(np.float64) @ items.astype(np.float64).T
    for row, masked in enumerate(exclude or []):
        scores[row, masked] = -np.inf
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    values = np.take_along_axis(scores, top, axis=1)
    return values, np.where(np.isfinite(values), top, -1)


def _top_k(index, queries, k, exclude=None):
    scores, rows = index.top_k(
        tf.constant(queries), k, None if exclude is None else _ragged(exclude)
    )
    return scores.numpy(), rows.numpy()


# --- BruteForceIndex ----------------------------------------------------------------------------


def test_top_k_is_numpys_argsort():
    scores, rows = _top_k(BruteForceIndex(ITEMS), QUERIES, 4)
    want_scores, want_rows = _numpy_top_k(QUERIES, ITEMS, 4)
    assert rows.dtype == np.int32 and rows.tolist() == want_rows.tolist()
    np.testing.assert_allclose(scores, want_scores, rtol=1e-5, atol=1e-6)


def test_excluded_items_are_never_returned():
    scores, rows = _top_k(BruteForceIndex(ITEMS), QUERIES, 2, EXCLUDE)
    want_scores, want_rows = _numpy_top_k(QUERIES, ITEMS, 2, EXCLUDE)
    assert rows.tolist() == want_rows.tolist()
    np.testing.assert_allclose(scores, want_scores, rtol=1e-5, atol=1e-6)
    for masked, got in zip(EXCLUDE, rows):
        assert not set(masked) & set(got.tolist())


def test_fewer_items_than_k_after_the_mask_are_padded_with_minus_inf_and_row_minus_1():
    scores, rows = _top_k(BruteForceIndex(ITEMS), QUERIES, 4, EXCLUDE)
    # Query 2 has only items 7 and 8 left: two answers, then padding.
    kept = sorted([7, 8], key=lambda i: -float(QUERIES[2].astype(np.float64) @ ITEMS[i]))
    assert rows[2].tolist() == [*kept, -1, -1]
    assert np.isfinite(scores[2, :2]).all() and scores[2, 2:].tolist() == [-np.inf, -np.inf]
    assert (rows[[0, 1, 3, 4]] >= 0).all()


@pytest.mark.parametrize("k", [0, -3])
def test_k_at_most_zero_gives_no_items(k):
    scores, rows = _top_k(BruteForceIndex(ITEMS), QUERIES, k, EXCLUDE)
    assert scores.shape == rows.shape == (len(QUERIES), 0)


def test_k_above_the_catalog_gives_the_whole_catalog():
    scores, rows = _top_k(BruteForceIndex(ITEMS), QUERIES, 1000)
    assert rows.shape == (len(QUERIES), len(ITEMS))
    assert rows.tolist() == _numpy_top_k(QUERIES, ITEMS, len(ITEMS))[1].tolist()
    assert all(sorted(row) == list(range(len(ITEMS))) for row in rows.tolist())


def test_ties_go_to_the_lower_row():
    items = np.array([[0, 1], [1, 0], [1, 0], [0, 0], [1, 0]], np.float32)
    scores, rows = _top_k(BruteForceIndex(items), np.array([[1, 0]], np.float32), 5)
    # Scores [0, 1, 1, 0, 1]: the 1s by row (1, 2, 4), then the 0s (0, 3).
    assert rows.tolist() == [[1, 2, 4, 0, 3]]
    assert scores.tolist() == [[1, 1, 1, 0, 0]]


def test_chunks_of_users_answer_as_one_matrix():
    # 9 items x 2 users per chunk: three chunks, the last one padded.
    chunked = _top_k(BruteForceIndex(ITEMS, cells_per_chunk=2 * len(ITEMS)), QUERIES, 3, EXCLUDE)
    whole = _top_k(BruteForceIndex(ITEMS), QUERIES, 3, EXCLUDE)
    # A matrix product of another shape may round the last bit differently.
    np.testing.assert_allclose(chunked[0], whole[0], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(chunked[1], whole[1])


def test_an_empty_batch():
    scores, rows = _top_k(BruteForceIndex(ITEMS), np.zeros((0, 4), np.float32), 3, [])
    assert scores.shape == rows.shape == (0, 3)


def test_a_custom_score_function_ranks_the_catalog():
    def negative_distance(queries, items):
        return -tf.reduce_sum(tf.square(queries[:, None, :] - items[None, :, :]), axis=-1)

    index = BruteForceIndex(ITEMS, score_chunk=negative_distance)
    _, rows = _top_k(index, QUERIES, 3)
    distances = ((QUERIES[:, None, :].astype(np.float64) - ITEMS[None, :, :]) ** 2).sum(-1)
    assert rows.tolist() == np.argsort(distances, axis=1, kind="stable")[:, :3].tolist()


def test_in_graph_with_k_as_a_tensor_answers_as_eagerly():
    index = BruteForceIndex(ITEMS)
    exclude = _ragged(EXCLUDE)
    traced = tf.function(lambda q, k: index.top_k(q, k, exclude), autograph=False)
    scores, rows = traced(tf.constant(QUERIES), tf.constant(3))
    want_scores, want_rows = _top_k(index, QUERIES, 3, EXCLUDE)
    np.testing.assert_array_equal(scores.numpy(), want_scores)
    np.testing.assert_array_equal(rows.numpy(), want_rows)


# --- build_index -------------------------------------------------------------------------------------


def test_scann_without_the_extra_is_a_config_error_naming_it(monkeypatch):
    for name in [m for m in sys.modules if m.split(".")[0] == "scann"] + ["scann"]:
        monkeypatch.setitem(sys.modules, name, None)  # an import of scann now fails
    with pytest.raises(ConfigError, match=r"tfrs-recsys\[scann\]"):
        build_index("scann", ITEMS)


def test_scann_with_a_score_function_and_unknown_indexes_are_config_errors():
    with pytest.raises(ConfigError, match="dot product"):
        build_index("scann", ITEMS, score_chunk=lambda q, i: tf.matmul(q, i, transpose_b=True))
    with pytest.raises(ConfigError, match="brute_force, scann"):
        build_index("annoy", ITEMS)


# --- ServingTables and RecommenderModule --------------------------------------------------------------

USERS = [f"u{i}" for i in range(len(QUERIES))]
ITEM_IDS = [f"i{i}" for i in range(len(ITEMS))]
# Train counts: items 4 and 6 tie at 5 (row 4 first), then 2.
POPULARITY = np.array([0, 1, 3, 0, 5, 0, 5, 2, 0], np.float32)


def _tables() -> ServingTables:
    users = [u for u, rows in enumerate(EXCLUDE) for _ in rows]
    items = [i for rows in EXCLUDE for i in rows]
    return ServingTables.build(
        USERS, QUERIES, ITEM_IDS, ITEMS,
        exclude_user_rows=np.array(users), exclude_item_rows=np.array(items), popularity=POPULARITY,
    )  # fmt: skip


def test_tables_hold_each_users_distinct_excluded_items_as_csr():
    tables = _tables()
    assert tables.exclude_splits.tolist() == [0, 2, 2, 9, 10, 12]  # user 4's duplicate 1 once
    assert tables.exclude_items.tolist() == [0, 3, 0, 1, 2, 3, 4, 5, 6, 8, 1, 2]
    assert tables.max_excluded == 7


def test_tables_refuse_vectors_that_do_not_match_the_ids():
    with pytest.raises(ConfigError, match="4 user vectors for 5 user ids"):
        ServingTables.build(USERS, QUERIES[:4], ITEM_IDS, ITEMS)


def _strings(values) -> list[list[str]]:
    return [[v.decode() for v in row] for row in values.numpy()]


def test_module_known_users_get_the_masked_top_n_unknown_ones_the_popular_items():
    module = RecommenderModule(_tables(), n=3)
    answer = module.serving_default(tf.constant(["u0", "nobody", "u2", "", "u0"]))
    _, want_rows = _numpy_top_k(QUERIES[[0, 2]], ITEMS, 3, [EXCLUDE[0], EXCLUDE[2]])
    ids = _strings(answer["item_ids"])
    assert answer["known_user"].numpy().tolist() == [True, False, True, False, True]
    assert ids[0] == ids[4] == [ITEM_IDS[r] for r in want_rows[0]]
    assert ids[2] == [ITEM_IDS[r] for r in want_rows[1] if r >= 0] + [""]  # one pad: 2 items left
    popular = np.argsort(-POPULARITY, kind="stable")[:3]  # rows 4, 6, 2
    assert ids[1] == ids[3] == [ITEM_IDS[r] for r in popular]
    np.testing.assert_array_equal(answer["scores"].numpy()[1], POPULARITY[popular])
    assert answer["scores"].numpy()[2, 2] == -np.inf


def test_module_without_exclusion_masks_nothing():
    module = RecommenderModule(_tables(), n=3, exclude=False)
    answer = module.serving_default(tf.constant(["u2"]))
    _, want_rows = _numpy_top_k(QUERIES[[2]], ITEMS, 3)
    assert _strings(answer["item_ids"]) == [[ITEM_IDS[r] for r in want_rows[0]]]


def test_module_recommend_k_clips_k_for_known_and_unknown_users():
    module = RecommenderModule(_tables(), n=3)
    users = tf.constant(["u1", "nobody"])
    assert module.recommend_k(users, tf.constant(-1))["item_ids"].shape == (2, 0)
    everything = module.recommend_k(users, tf.constant(50))
    assert everything["item_ids"].shape == (2, len(ITEMS))
    assert sorted(_strings(everything["item_ids"])[0]) == sorted(ITEM_IDS)  # u1 excludes nothing
    assert _strings(everything["item_ids"])[1] == [
        ITEM_IDS[r] for r in np.argsort(-POPULARITY, kind="stable")
    ]
