"""Named train / holdout splits (docs/evaluation.md)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import train_test_split

from tfrs_recsys.data.splits import (
    SPLITS,
    carve_validation,
    holdout_80_20,
    leave_last_out,
    make_split,
    per_user_random,
    split_dataset,
)
from tfrs_recsys.data.techproducts import MATRIX_FILE
from tfrs_recsys.errors import ConfigError, DataValidationError


def _notebook_split(positives: pd.DataFrame, test_size: float = 0.2):
    """The seed notebooks' pandas + scikit-learn code, verbatim apart from the input."""
    interactions_shuffled = positives.sample(frac=1, random_state=42).reset_index(drop=True)
    return train_test_split(interactions_shuffled, test_size=test_size, random_state=42)


def _assert_same_rows(ours: pd.DataFrame, theirs: pd.DataFrame) -> None:
    """Same rows in the same order, with the same index labels."""
    assert len(ours) == len(theirs)
    np.testing.assert_array_equal(ours.index.to_numpy(), theirs.index.to_numpy())
    for column in ("user_id", "item_id"):
        np.testing.assert_array_equal(
            ours[column].to_numpy(dtype=object), theirs[column].to_numpy(dtype=object)
        )


def _row_keys(frame: pd.DataFrame) -> list[tuple]:
    return list(frame.itertuples(index=True, name=None))


# --- holdout-80-20 -----------------------------------------------------------------------


def test_holdout_80_20_equals_the_notebook_code_on_default_data(default_dir, default_dataset):
    ratings_df = pd.read_csv(default_dir / MATRIX_FILE)
    interactions_df = ratings_df.melt(id_vars=["user_id"], var_name="item_id", value_name="label")
    interactions_positve = interactions_df[interactions_df["label"] == 1]
    interactions_shuffled = interactions_positve.sample(frac=1, random_state=42).reset_index(
        drop=True
    )
    interactions_train, interactions_holdout = train_test_split(
        interactions_shuffled, test_size=0.2, random_state=42
    )

    split = holdout_80_20(default_dataset.interactions)
    assert split.name == "holdout-80-20"
    _assert_same_rows(split.train, interactions_train)
    _assert_same_rows(split.holdout, interactions_holdout)
    n = len(interactions_positve)
    assert len(split.holdout) == math.ceil(0.2 * n)
    assert len(split.train) == n - math.ceil(0.2 * n)


@pytest.mark.parametrize("n", [2, 3, 4, 5, 7, 10, 15, 33, 101])
def test_holdout_80_20_equals_sklearn_for_small_sizes(n):
    """Includes n = 15, where 0.2 * 15 = 3.0000000000000004 makes ceil() give 4."""
    positives = pd.DataFrame(
        {"user_id": [f"u{k % 4}" for k in range(n)], "item_id": [f"i{k}" for k in range(n)]}
    )
    train, holdout = _notebook_split(positives)
    split = holdout_80_20(positives)
    _assert_same_rows(split.train, train)
    _assert_same_rows(split.holdout, holdout)
    assert len(split.holdout) == math.ceil(0.2 * n)


def test_holdout_80_20_other_seed_and_size_match_sklearn():
    positives = pd.DataFrame(
        {"user_id": [f"u{k % 7}" for k in range(50)], "item_id": [f"i{k}" for k in range(50)]}
    )
    shuffled = positives.sample(frac=1, random_state=3).reset_index(drop=True)
    train, holdout = train_test_split(shuffled, test_size=0.3, random_state=3)
    split = holdout_80_20(positives, seed=3, test_size=0.3)
    _assert_same_rows(split.train, train)
    _assert_same_rows(split.holdout, holdout)


def test_holdout_80_20_is_a_partition(small_dataset):
    split = holdout_80_20(small_dataset.interactions)

    def pairs(frame):
        return list(zip(frame["user_id"], frame["item_id"]))

    assert sorted(pairs(split.train) + pairs(split.holdout)) == sorted(
        pairs(small_dataset.interactions)
    )


@pytest.mark.parametrize("test_size", [0.0, 1.0, -0.1, 1.5])
def test_holdout_80_20_rejects_bad_test_size(test_size):
    positives = pd.DataFrame({"user_id": ["a", "b"], "item_id": ["1", "2"]})
    with pytest.raises(ConfigError):
        holdout_80_20(positives, test_size=test_size)


def test_holdout_80_20_needs_two_rows():
    with pytest.raises(DataValidationError):
        holdout_80_20(pd.DataFrame({"user_id": ["a"], "item_id": ["1"]}))


def test_split_summary_counts_holdout_users():
    """10 rows: holdout ceil(0.2 * 10) = 2 rows; holdout_users = their distinct users."""
    positives = pd.DataFrame(
        {"user_id": list("aab") * 3 + ["c"], "item_id": [str(k) for k in range(10)]}
    )
    split = holdout_80_20(positives)
    summary = split.summary()
    assert (summary["train"], summary["holdout"]) == (8, 2)
    assert summary["holdout_users"] == split.holdout["user_id"].nunique()
    assert summary["split"] == "holdout-80-20"


# --- per-user-random -------------------------------------------------------------------


def _per_user_frame() -> pd.DataFrame:
    """Users with 1, 2, 7 and 13 positives, interleaved in file order."""
    counts = {"a": 1, "b": 2, "c": 7, "d": 13}
    rows = [(u, f"i{k}") for u, n in counts.items() for k in range(n)]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id"])
    return frame.sample(frac=1, random_state=0).reset_index(drop=True)


def test_per_user_random_holds_out_round_fraction_per_user():
    """round(0.2 n), at least 1, and 0 for a single positive:
    a: 1 -> 0; b: 2 -> max(1, round(0.4)) = 1; c: 7 -> round(1.4) = 1; d: 13 -> round(2.6) = 3."""
    split = per_user_random(_per_user_frame(), fraction=0.2, seed=42)
    held = split.holdout["user_id"].value_counts().to_dict()
    assert held == {"b": 1, "c": 1, "d": 3}


def test_per_user_random_is_a_disjoint_complete_partition():
    frame = _per_user_frame()
    split = per_user_random(frame, seed=42)
    assert set(split.train.index).isdisjoint(split.holdout.index)
    assert sorted(split.train.index.tolist() + split.holdout.index.tolist()) == frame.index.tolist()
    pd.testing.assert_frame_equal(frame.loc[split.holdout.index], split.holdout)


def test_per_user_random_on_generated_data(small_dataset):
    interactions = small_dataset.interactions
    split = per_user_random(interactions, fraction=0.2, seed=42)
    n_u = interactions.groupby("user_id").size()
    expected = {u: (max(1, round(0.2 * n)) if n >= 2 else 0) for u, n in n_u.items()}
    held = split.holdout.groupby("user_id").size().reindex(n_u.index, fill_value=0).to_dict()
    assert held == expected
    assert split.name == "per-user-random"


def test_per_user_random_is_deterministic_by_seed(small_dataset):
    interactions = small_dataset.interactions
    a = per_user_random(interactions, seed=1)
    b = per_user_random(interactions, seed=1)
    c = per_user_random(interactions, seed=2)
    assert a.holdout.index.tolist() == b.holdout.index.tolist()
    assert a.holdout.index.tolist() != c.holdout.index.tolist()


@pytest.mark.parametrize("fraction", [0.0, 1.0])
def test_per_user_random_rejects_bad_fraction(fraction):
    with pytest.raises(ConfigError):
        per_user_random(_per_user_frame(), fraction=fraction)


# --- leave-last-out -------------------------------------------------------------------


def _timed_frame() -> pd.DataFrame:
    return pd.DataFrame(
        [
            ("u1", "i1", 10),
            ("u1", "i2", 30),  # u1's latest -> holdout (row 1)
            ("u1", "i3", 20),
            ("u2", "i1", 5),
            ("u2", "i4", 7),  # tie at 7 ...
            ("u2", "i5", 7),  # ... the later row wins -> holdout (row 5)
            ("u3", "i2", 100),  # single positive -> stays in train
            ("u4", "i3", 3),  # u4's latest -> holdout (row 7)
            ("u4", "i1", 1),
        ],
        columns=["user_id", "item_id", "timestamp"],
    )


def test_leave_last_out_holds_out_each_users_latest():
    split = leave_last_out(_timed_frame())
    assert split.holdout.index.tolist() == [1, 5, 7]
    assert split.train.index.tolist() == [0, 2, 3, 4, 6, 8]
    assert split.name == "leave-last-out"


def test_leave_last_out_custom_column_name():
    frame = _timed_frame().rename(columns={"timestamp": "when"})
    assert leave_last_out(frame, timestamp="when").holdout.index.tolist() == [1, 5, 7]


def test_leave_last_out_without_timestamp_column():
    with pytest.raises(DataValidationError, match="timestamp"):
        leave_last_out(_timed_frame().drop(columns="timestamp"))


# --- carve_validation ---------------------------------------------------------------------


def test_carve_validation_is_a_partition_with_the_fraction(small_dataset):
    train = holdout_80_20(small_dataset.interactions).train
    split = carve_validation(train, fraction=0.1, seed=7)
    assert len(split.holdout) == round(0.1 * len(train))
    assert set(split.train.index).isdisjoint(split.holdout.index)
    assert sorted(split.train.index.tolist() + split.holdout.index.tolist()) == sorted(
        train.index.tolist()
    )
    assert split.name == "validation"


def test_carve_validation_keeps_at_least_one_row():
    """round(0.1 * 3) = 0 -> still 1 validation row."""
    train = pd.DataFrame({"user_id": ["a", "b", "c"], "item_id": ["1", "2", "3"]})
    assert len(carve_validation(train, fraction=0.1).holdout) == 1


def test_carve_validation_is_deterministic_by_seed(small_dataset):
    train = small_dataset.interactions
    a = carve_validation(train, seed=7).holdout.index.tolist()
    assert a == carve_validation(train, seed=7).holdout.index.tolist()
    assert a != carve_validation(train, seed=8).holdout.index.tolist()


@pytest.mark.parametrize("fraction", [0.0, 1.0])
def test_carve_validation_rejects_bad_fraction(fraction):
    with pytest.raises(ConfigError):
        carve_validation(_per_user_frame(), fraction=fraction)


# --- make_split ----------------------------------------------------------------------------


def test_make_split_unknown_name():
    with pytest.raises(ConfigError, match="unknown split 'random-80-20'"):
        make_split("random-80-20", _per_user_frame())


def test_make_split_names():
    assert set(SPLITS) == {"holdout-80-20", "per-user-random", "leave-last-out"}


def test_make_split_dispatches_with_kwargs():
    frame = _per_user_frame()
    split = make_split("holdout-80-20", frame, seed=5)
    assert _row_keys(split.holdout) == _row_keys(holdout_80_20(frame, seed=5).holdout)
    assert make_split("leave-last-out", _timed_frame()).holdout.index.tolist() == [1, 5, 7]


# --- split_dataset (the public entry point) ------------------------------------------------


def test_split_dataset_defaults_to_the_notebook_holdout(small_dataset):
    """split_dataset(ds) is holdout-80-20 of ds.interactions: the notebooks' own code."""
    split = split_dataset(small_dataset)
    train, holdout = _notebook_split(small_dataset.interactions)
    assert split.name == "holdout-80-20"
    _assert_same_rows(split.train, train)
    _assert_same_rows(split.holdout, holdout)
    same = make_split("holdout-80-20", small_dataset.interactions)
    assert _row_keys(split.holdout) == _row_keys(same.holdout)


def test_split_dataset_by_name_passes_the_split_arguments(small_dataset):
    split = split_dataset(small_dataset, "per-user-random", seed=3, fraction=0.5)
    expected = per_user_random(small_dataset.interactions, seed=3, fraction=0.5)
    assert split.name == "per-user-random"
    assert _row_keys(split.train) == _row_keys(expected.train)
    assert _row_keys(split.holdout) == _row_keys(expected.holdout)


def test_split_dataset_unknown_name(small_dataset):
    with pytest.raises(ConfigError, match="holdout-80-20"):
        split_dataset(small_dataset, "random-50-50")
