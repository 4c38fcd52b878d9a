"""EASE, implicit ALS and their validation tuning, on small hand-made data."""

from __future__ import annotations

import tfrs_recsys  # noqa: F401  (routes tf.keras before anything imports TensorFlow)

# isort: split
import inspect
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from tfrs_recsys.baselines.als import ALSScorer
from tfrs_recsys.baselines.ease import EASEScorer, ease_weights
from tfrs_recsys.baselines.tuning import default_metric, tune_als, tune_ease
from tfrs_recsys.baselines.user_items import UserItems
from tfrs_recsys.data.dataset import RecDataset
from tfrs_recsys.data.schema import DatasetSchema, Feature
from tfrs_recsys.data.splits import carve_validation
from tfrs_recsys.errors import ConfigError
from tfrs_recsys.evaluation import EvaluationTask, evaluate

TOY_SCHEMA = DatasetSchema(
    name="toy", user_features=(Feature("user_id", "id"),), item_features=(Feature("item_id", "id"),)
)


def toy_dataset(n_users: int, n_items: int, positives) -> RecDataset:
    users = pd.DataFrame({"user_id": [f"u{k}" for k in range(n_users)]})
    items = pd.DataFrame({"item_id": [f"i{k}" for k in range(n_items)]})
    return RecDataset(
        schema=TOY_SCHEMA, users=users, items=items, interactions=pairs_frame(positives)
    )


def pairs_frame(positives) -> pd.DataFrame:
    return pd.DataFrame([(f"u{u}", f"i{i}") for u, i in positives], columns=["user_id", "item_id"])


def frame_pairs(frame: pd.DataFrame) -> set[tuple[str, str]]:
    return set(zip(frame["user_id"], frame["item_id"]))


# 4 users x 4 items, user 4 has no train positive.
X4 = np.array(
    [
        [1, 1, 0, 0],
        [0, 1, 1, 0],
        [1, 1, 1, 1],
        [0, 0, 1, 1],
        [0, 0, 0, 0],
    ],
    dtype=np.float64,
)


@pytest.fixture
def matrix_data():
    positives = [(int(u), int(i)) for u, i in zip(*np.nonzero(X4))]
    return toy_dataset(5, 4, positives), pairs_frame(positives)


# --- The train matrix -----------------------------------------------------------------------


def test_user_items_dense_and_gram_match_numpy(matrix_data):
    dataset, train = matrix_data
    doubled = pd.concat([train, train.iloc[:3]], ignore_index=True)  # duplicates count once
    matrix = UserItems.from_frame(dataset, doubled)
    assert matrix.nnz == int(X4.sum())
    np.testing.assert_array_equal(matrix.counts(), X4.sum(axis=1))
    np.testing.assert_array_equal(matrix.dense(np.array([2, 4, 0])), X4[[2, 4, 0]])
    np.testing.assert_array_equal(matrix.gram(), X4.T @ X4)
    np.testing.assert_array_equal(matrix.to_scipy().toarray(), X4)


# --- EASE -----------------------------------------------------------------------------------


def ease_by_regression(x: np.ndarray, l2: float) -> np.ndarray:
    """EASE column by column: ridge-regress item j on the other items (b_jj = 0).

    Independent of the closed form: the constrained EASE problem separates over
    columns, and with b_jj fixed at 0 column j is an ordinary ridge regression.
    """
    n = x.shape[1]
    b = np.zeros((n, n))
    for j in range(n):
        others = [k for k in range(n) if k != j]
        xo = x[:, others]
        b[others, j] = np.linalg.solve(xo.T @ xo + l2 * np.eye(n - 1), xo.T @ x[:, j])
    return b


@pytest.mark.parametrize("l2", [0.5, 3.0])
def test_ease_weights_match_a_direct_solve(matrix_data, l2):
    dataset, train = matrix_data
    scorer = EASEScorer.fit(dataset, train, l2=l2)
    expected = ease_by_regression(X4, l2)
    np.testing.assert_allclose(scorer.weights, expected, rtol=1e-5, atol=1e-6)
    assert scorer.weights.dtype == np.float32
    np.testing.assert_array_equal(np.diag(scorer.weights), 0.0)


def test_ease_scores_are_train_rows_times_weights(matrix_data):
    dataset, train = matrix_data
    scorer = EASEScorer.fit(dataset, train, l2=1.0)
    rows = np.array([3, 0, 4], dtype=np.int64)
    scores = scorer(rows)
    assert scores.shape == (3, 4) and scores.dtype == np.float32
    np.testing.assert_allclose(scores, X4[rows] @ ease_by_regression(X4, 1.0), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(scores[2], 0.0)  # no train positive, no signal


def test_ease_rejects_bad_settings(matrix_data):
    dataset, train = matrix_data
    with pytest.raises(ConfigError, match="positive"):
        EASEScorer.fit(dataset, train, l2=0.0)
    with pytest.raises(ConfigError, match="max_items=3"):
        EASEScorer.fit(dataset, train, max_items=3)
    with pytest.raises(ConfigError):
        EASEScorer.fit(dataset, train)(np.array([5]))
    with pytest.raises(ConfigError):
        ease_weights(np.eye(2), -1.0)


# --- ALS ------------------------------------------------------------------------------------


def block_data(seed: int = 0):
    """60 users x 30 items in 3 blocks of 20 users x 10 items; every user likes
    the 10 items of their block. Two in-block cells per user are held out."""
    rng = np.random.default_rng(seed)
    train, held = [], []
    for u in range(60):
        block = np.arange(10) + 10 * (u // 20)
        hidden = rng.choice(block, size=2, replace=False)
        train += [(u, int(i)) for i in block if i not in hidden]
        held += [(u, int(i)) for i in hidden]
    return toy_dataset(60, 30, train + held), pairs_frame(train), pairs_frame(held)


ALS_SMALL = dict(factors=4, regularization=0.1, alpha=10.0, iterations=8, random_state=3)


def test_als_scores_shape_and_determinism():
    pytest.importorskip("implicit")
    dataset, train, _ = block_data()
    first = ALSScorer.fit(dataset, train, **ALS_SMALL)
    second = ALSScorer.fit(dataset, train, **ALS_SMALL)
    rows = np.array([0, 59, 21], dtype=np.int64)
    scores = first(rows)
    assert scores.shape == (3, 30) and scores.dtype == np.float32
    np.testing.assert_array_equal(scores, second(rows))
    np.testing.assert_allclose(scores, first.user_factors[rows] @ first.item_factors.T)
    assert first.user_factors.shape == (60, 4) and first.item_factors.shape == (30, 4)
    assert first.params["factors"] == 4


def recall_at_10(scorer, dataset, train, holdout) -> float:
    return evaluate(scorer, EvaluationTask.build(dataset, train, holdout)).metrics["recall@10"]


def test_als_recovers_a_block_structure():
    pytest.importorskip("implicit")
    dataset, train, held = block_data()
    als = recall_at_10(ALSScorer.fit(dataset, train, **ALS_SMALL), dataset, train, held)
    random = recall_at_10(
        lambda rows: np.random.default_rng(0).random((len(rows), 30)), dataset, train, held
    )
    # Every held-out item is one of the 2 unseen in-block items among 22 unseen
    # items: a random ranking finds about 10/22 of them, the block structure all.
    assert als > 0.95
    assert random < 0.7


def test_als_without_implicit_asks_for_the_dev_extra(monkeypatch, matrix_data):
    monkeypatch.setitem(sys.modules, "implicit", None)
    monkeypatch.setitem(sys.modules, "implicit.als", None)
    dataset, train = matrix_data
    with pytest.raises(ConfigError, match=r"pip install -e '\.\[dev\]'"):
        ALSScorer.fit(dataset, train)
    with pytest.raises(ConfigError, match="implicit"):
        tune_als(dataset, train, grid={"factors": [2]})


def test_als_rejects_bad_hyperparameters(matrix_data):
    dataset, train = matrix_data
    with pytest.raises(ConfigError):
        ALSScorer.fit(dataset, train, factors=0)
    with pytest.raises(ConfigError):
        ALSScorer.fit(dataset, train, alpha=0.0)


# --- The default validation metric ------------------------------------------------------------


def test_default_metric_is_the_evaluators_recall_at_10_with_fit_train_masked():
    # 3 users x 12 items. Scores rank items 0, 1, 2, ... first.
    dataset = toy_dataset(3, 12, [])
    fit_train = pairs_frame([(0, 0), (0, 1)])  # user 0's two best items are masked
    validation = pairs_frame([(0, 11), (0, 2), (1, 10), (1, 11)])  # user 2: none, skipped

    def scorer(rows):
        return np.tile(-np.arange(12, dtype=np.float32), (len(rows), 1))

    metric = default_metric(dataset)
    # user 0: top 10 after masking = items 2..11 -> 2/2; user 1: items 0..9 -> 0/2.
    assert metric(scorer, fit_train, validation) == 0.5
    assert metric(scorer, fit_train, validation) == 0.5  # the cached task
    # New frames, new task: user 1 alone, items 0..9 -> item 3 found, 1/2.
    assert metric(scorer, fit_train, pairs_frame([(1, 3), (1, 11)])) == 0.5
    assert metric(scorer, fit_train.iloc[:0], validation) == 0.25  # user 0 now misses 10, 11


# --- Tuning -----------------------------------------------------------------------------------


def tuning_data():
    """A block dataset plus a holdout of pairs found nowhere in train."""
    dataset, train, held = block_data(seed=1)
    return dataset, train, held


def recording_metric(values_by_key, key_of):
    calls = []

    def metric(scorer, fit_train, validation):
        calls.append({"scorer": scorer, "fit_train": fit_train, "validation": validation})
        return values_by_key[key_of(scorer)]

    return metric, calls


def test_tuning_takes_no_holdout():
    for function in (tune_ease, tune_als):
        names = set(inspect.signature(function).parameters)
        assert not {n for n in names if "holdout" in n or "test" in n}


def test_tune_ease_picks_the_best_lambda_on_validation_and_refits():
    dataset, train, holdout = tuning_data()
    metric, calls = recording_metric({1.0: 0.2, 10.0: 0.7, 100.0: 0.4}, lambda s: s.l2)
    scorer, best, table = tune_ease(
        dataset,
        train,
        lambdas=(1.0, 10.0, 100.0),
        validation_fraction=0.2,
        seed=5,
        metric_fn=metric,
    )
    assert best == {"l2": 10.0}
    assert list(table["l2"]) == [1.0, 10.0, 100.0]
    assert list(table["validation_metric"]) == [0.2, 0.7, 0.4]
    assert {"fit_seconds", "eval_seconds"} <= set(table.columns)

    expected = carve_validation(train, fraction=0.2, seed=5)
    train_pairs, holdout_pairs = frame_pairs(train), frame_pairs(holdout)
    for call in calls:
        fit_pairs = frame_pairs(call["fit_train"])
        validation_pairs = frame_pairs(call["validation"])
        assert validation_pairs == frame_pairs(expected.holdout)
        assert fit_pairs | validation_pairs == train_pairs and not fit_pairs & validation_pairs
        assert not (fit_pairs | validation_pairs) & holdout_pairs
        # The candidate was fitted on the fit part only.
        assert call["scorer"].user_items.nnz == len(fit_pairs)

    # Refit on the whole train with the chosen lambda.
    assert scorer.l2 == 10.0 and scorer.user_items.nnz == len(train_pairs)
    np.testing.assert_array_equal(scorer.weights, EASEScorer.fit(dataset, train, l2=10.0).weights)


def test_tune_ease_with_the_default_metric_finds_the_blocks():
    dataset, train, _ = tuning_data()
    _, best, table = tune_ease(dataset, train, lambdas=(1.0, 10.0))
    # The validation pairs are unseen in-block items: EASE ranks them first.
    assert best["l2"] in (1.0, 10.0)
    assert (table["validation_metric"] > 0.9).all() and (table["validation_metric"] <= 1.0).all()


def test_tune_als_picks_the_best_setting_on_validation_and_refits():
    pytest.importorskip("implicit")
    dataset, train, holdout = tuning_data()
    grid = {"factors": [2, 4], "regularization": [0.1], "alpha": [1.0, 10.0], "iterations": [3]}
    values = {(2, 1.0): 0.1, (2, 10.0): 0.3, (4, 1.0): 0.6, (4, 10.0): 0.5}
    metric, calls = recording_metric(values, lambda s: (s.params["factors"], s.params["alpha"]))
    scorer, best, table = tune_als(dataset, train, grid=grid, metric_fn=metric, random_state=1)
    assert best == {"factors": 4, "regularization": 0.1, "alpha": 1.0, "iterations": 3}
    assert len(table) == 4 and list(table["validation_metric"]) == [0.1, 0.3, 0.6, 0.5]
    train_pairs, holdout_pairs = frame_pairs(train), frame_pairs(holdout)
    for call in calls:
        fit_pairs = frame_pairs(call["fit_train"])
        validation_pairs = frame_pairs(call["validation"])
        assert fit_pairs | validation_pairs == train_pairs and not fit_pairs & validation_pairs
        assert not validation_pairs & holdout_pairs
    refit = ALSScorer.fit(dataset, train, random_state=1, **best)
    np.testing.assert_array_equal(scorer.item_factors, refit.item_factors)


def test_tune_als_accepts_a_list_of_settings_and_rejects_unknown_names():
    pytest.importorskip("implicit")
    dataset, train, _ = tuning_data()
    settings = [{"factors": 4, "alpha": 10.0, "iterations": 4}, {"factors": 2, "iterations": 2}]
    _, best, table = tune_als(dataset, train, grid=settings)
    assert len(table) == 2 and best in settings
    with pytest.raises(ConfigError, match="unknown ALS hyperparameter"):
        tune_als(dataset, train, grid={"factor": [2]})
    with pytest.raises(ConfigError):
        tune_als(dataset, train, grid=[])
    with pytest.raises(ConfigError):
        tune_ease(dataset, train, lambdas=())


def test_peer_modules_import_without_implicit():
    # implicit (and scipy) are dev dependencies: importing the peers must not load them.
    code = (
        "import sys; import tfrs_recsys.baselines.als, tfrs_recsys.baselines.ease, "
        "tfrs_recsys.baselines.tuning, tfrs_recsys.baselines.user_items; "
        "print(sorted(m for m in ('implicit', 'scipy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
