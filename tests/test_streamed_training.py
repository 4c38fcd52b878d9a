"""``train`` with ``data.stream = true``: cached splits, streamed preprocessing and batches,
early stopping and the holdout on a hash sample of users, resume, ``load_run``
(export of a streamed run: tests/test_export_scale.py).

The data is a tiny ``generate-data --scale`` set written by the tests (600 users x
80 items, about 6k positives in 3 Parquet shards, feature tables with numeric,
categorical and text columns). Expected values come from pandas on the same
files and from the in-memory code paths (``load_declared``, ``fit_preprocessing``).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tfrs_recsys.config import ExperimentConfig, load_config
from tfrs_recsys.data.declared import read_declaration
from tfrs_recsys.data.declared_memory import load_declared
from tfrs_recsys.data.generator_scale import ScaleConfig, write_scale_dataset
from tfrs_recsys.data.stream_pipeline import load_feature_tables
from tfrs_recsys.errors import ConfigError
from tfrs_recsys.evaluation.protocol import EvaluationTask, evaluate
from tfrs_recsys.evaluation.streamed import sample_rows, tables_dataset, user_hash
from tfrs_recsys.features.preprocessing import fit_preprocessing
from tfrs_recsys.training import run
from tfrs_recsys.training.streamed import (
    EVAL_USERS_FILE,
    cached_carve,
    cached_split,
    cached_stats,
    streamed_preprocessing,
)

EVAL_USERS = 250


def _parts(files) -> pd.DataFrame:
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


@pytest.fixture(scope="module")
def streamed(tmp_path_factory):
    """The dataset, a cache directory (TFRS_RECSYS_CACHE) and the module's config."""
    root = tmp_path_factory.mktemp("streamed")
    data = root / "data"
    write_scale_dataset(
        data, ScaleConfig(users=600, items=80, positives_per_user=10, seed=3), shard_users=200
    )
    patch = pytest.MonkeyPatch()
    patch.setenv("TFRS_RECSYS_CACHE", str(root / "cache"))
    config = load_config(
        None,
        [
            f"data.source={json.dumps(str(data))}",
            "data.stream=true",
            'data.split="hash-80-20"',
            "data.shuffle_buffer=1000",
            f"data.eval_users={EVAL_USERS}",
            'model.negatives="in_batch"',
            'model.feature_set="all"',
            "model.hidden=[16]",
            "model.output_dim=16",
            "model.id_dim=8",
            "model.text_dim=8",
            "model.categorical_dim=4",
            "train.epochs=2",
            "train.batch_size=128",
            "train.learning_rate=0.02",
            "train.patience=0",
            "train.refit=true",
        ],
    )
    yield root, data, config
    patch.undo()


@pytest.fixture(scope="module")
def trained(streamed):
    """A streamed run (2 epochs, then the refit) trained once for the module."""
    root, _, config = streamed
    result = run.train(config, root / "run", verbose=0)
    return root / "run", result


def _with(config: ExperimentConfig, *overrides: str) -> ExperimentConfig:
    from tfrs_recsys.config import with_overrides

    return with_overrides(config, list(overrides))


# --- Config checks ------------------------------------------------------------------------------


def test_a_streamed_config_with_an_in_memory_split_and_the_reverse_are_refused():
    with pytest.raises(ConfigError) as streamed_error:
        load_config(None, ["data.stream=true"])
    message = str(streamed_error.value)
    assert "\n" not in message
    assert "data.split = 'holdout-80-20'" in message and "data.stream = true" in message
    assert "hash-80-20, leave-last-out, time-80-20" in message

    with pytest.raises(ConfigError) as memory_error:
        load_config(None, ['data.split="hash-80-20"'])
    message = str(memory_error.value)
    assert "data.split = 'hash-80-20'" in message and "data.stream = false" in message
    assert "holdout-80-20, per-user-random, leave-last-out" in message
    # leave-last-out is both an in-memory and a streamed split.
    assert load_config(None, ['data.split="leave-last-out"']).data.stream is False
    assert load_config(None, ["data.stream=true", 'data.split="leave-last-out"']).data.stream


@pytest.mark.parametrize(
    "overrides, named",
    [
        (['model.negatives="catalog"'], "model.negatives = 'catalog'"),
        (['model.loss="sigmoid"'], "model.loss = 'sigmoid'"),
        (['model.loss="catalog_sigmoid"'], "model.loss = 'catalog_sigmoid'"),
        (['model.kind="ranking"'], "model.kind = 'ranking'"),
        (["model.user_history=true"], "model.user_history = true"),
        (["train.ensemble=2"], "train.ensemble = 2"),
    ],
)
def test_what_cannot_stream_is_a_one_line_error_naming_the_alternative(
    streamed, tmp_path, overrides, named
):
    _, _, config = streamed
    config = _with(config, *overrides)
    with pytest.raises(ConfigError) as error:
        run.train(config, tmp_path / "run", verbose=0)
    message = str(error.value)
    assert "\n" not in message and named in message and "data.stream = true" in message
    if "ensemble" not in named and "user_history" not in named:
        assert "'in_batch' or 'mixed'" in message
    assert not (tmp_path / "run").exists()  # refused before anything is written


def test_a_source_that_is_not_a_declared_dataset_is_refused(streamed, tmp_path):
    _, _, config = streamed
    config = _with(config, f"data.source={json.dumps(str(tmp_path))}")
    with pytest.raises(ConfigError, match="needs a declared dataset"):
        run.train(config, tmp_path / "run", verbose=0)


# --- The cached split and carve -----------------------------------------------------------------


def test_the_split_is_cached_reused_and_invalidated_by_a_changed_source(streamed, tmp_path):
    root, data, _ = streamed
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    cache = tmp_path / "splits"
    first, reused = cached_split(copy, "hash-80-20", root=cache)
    assert not reused and first.directory.parent == cache
    assert first.directory.name.startswith("tech-products-scale-hash-80-20-")
    positives = json.loads((copy / "dataset.json").read_text())["positives"]
    train, holdout = _parts(first.train_files), _parts(first.holdout_files)
    assert len(train) + len(holdout) == positives
    assert 0.15 < len(holdout) / positives < 0.25

    again, reused = cached_split(copy, "hash-80-20", root=cache)
    assert reused and again.directory == first.directory
    carve, carve_reused = cached_carve(again, fraction=0.1, seed=7)
    assert not carve_reused
    fit, validation = _parts(carve.train_files), _parts(carve.holdout_files)
    assert len(fit) + len(validation) == len(train)
    assert set(map(tuple, fit[["user_id", "item_id"]].to_numpy())) | set(
        map(tuple, validation[["user_id", "item_id"]].to_numpy())
    ) == set(map(tuple, train[["user_id", "item_id"]].to_numpy()))
    assert cached_carve(again, fraction=0.1, seed=7)[1]  # reused
    assert not cached_carve(again, fraction=0.2, seed=7)[1]  # another share: another carve

    # Another split name or min_rating is another key; a touched shard is a new split.
    other, reused = cached_split(copy, "leave-last-out", root=cache)
    assert not reused and other.directory != first.directory
    shard = sorted((copy / "interactions").glob("*.parquet"))[0]
    os.utime(shard, (1_000_000_000, 1_000_000_000))
    changed, reused = cached_split(copy, "hash-80-20", root=cache)
    assert not reused and changed.directory != first.directory
    assert changed.manifest["sources"][0]["mtime"] == 1_000_000_000
    assert first.directory.is_dir()  # the old split is left alone


# --- Preprocessing ------------------------------------------------------------------------------


@pytest.mark.parametrize("feature_set", ["all", "ids"])
def test_streamed_preprocessing_equals_the_in_memory_fit_on_the_same_rows(streamed, feature_set):
    _, data, config = streamed
    config = _with(config, f'model.feature_set="{feature_set}"')
    declaration = read_declaration(data)
    split, _ = cached_split(declaration, "hash-80-20")
    carve, _ = cached_carve(split, fraction=0.1, seed=7)
    stats = cached_stats(carve, declaration)
    users, items = load_feature_tables(declaration, stats, split=split)
    streamed_fit = streamed_preprocessing(
        tables_dataset(declaration.schema(), users, items), stats, config.model
    )
    in_memory = load_declared(data)
    fit_rows = _parts(carve.train_files)
    expected = fit_preprocessing(in_memory, fit_rows, config.model)

    np.testing.assert_array_equal(streamed_fit.item_counts, expected.item_counts)
    assert streamed_fit.item_counts.sum() == len(fit_rows)
    assert streamed_fit.n_train_users == expected.n_train_users == fit_rows["user_id"].nunique()
    for side in ("user", "item"):
        got, want = streamed_fit.side(side), expected.side(side)
        assert got.features == want.features
        assert got.train_ids == want.train_ids
        assert dict(got.vocabularies) == dict(want.vocabularies)
        assert sorted(got.normalization) == sorted(want.normalization)
        for name, (mean, variance) in want.normalization.items():
            np.testing.assert_array_equal(got.normalization[name][0], mean)
            np.testing.assert_array_equal(got.normalization[name][1], variance)
        assert sorted(got.bag_of_words) == sorted(want.bag_of_words)
        for name, bow in want.bag_of_words.items():
            assert got.bag_of_words[name].vocabulary == bow.vocabulary
            np.testing.assert_array_equal(got.bag_of_words[name].idf_weights, bow.idf_weights)
    if feature_set == "all":
        assert streamed_fit.item.bag_of_words and streamed_fit.user.normalization


# --- The evaluation sample ----------------------------------------------------------------------


def test_the_user_sample_is_the_bottom_k_of_the_user_hash(streamed):
    _, data, _ = streamed
    split, _ = cached_split(data, "hash-80-20")
    holdout = _parts(split.holdout_files)
    users, rows = sample_rows(split.holdout_files, 40, batch_rows=97)  # many prunes
    distinct = holdout["user_id"].unique()
    order = np.lexsort((distinct.astype(str), user_hash(distinct)))
    assert list(users) == list(distinct[order][:40])
    expected = holdout[holdout["user_id"].isin(users)][["user_id", "item_id"]]
    pd.testing.assert_frame_equal(rows, expected.reset_index(drop=True))
    everyone, _ = sample_rows(split.holdout_files, 10**6)
    assert sorted(everyone) == sorted(distinct)


# --- A streamed run -----------------------------------------------------------------------------


def test_a_streamed_run_beats_popularity_on_the_sampled_users(streamed, trained):
    _, data, _ = streamed
    run_dir, result = trained
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["epochs_run"] == 2 and metrics["refit"]["epochs"] == metrics["best_epoch"]
    split = metrics["stream"]["split"]
    assert split["name"] == "hash-80-20" and Path(split["directory"]).is_dir()
    assert split["rows"]["train"] + split["rows"]["holdout"] == split["positives"]
    assert metrics["stream"]["fit_rows"] == metrics["stream"]["validation"]["rows"]["train"]
    assert metrics["stream"]["steps_per_epoch"] == -(-metrics["stream"]["fit_rows"] // 128)
    evaluation = metrics["evaluation"]
    assert evaluation["sampled"] and "sample" in evaluation["note"]
    assert (
        evaluation["holdout_sample_users"]
        == min(EVAL_USERS, split["users"]["holdout"])
        == EVAL_USERS
    )
    recorded = json.loads((run_dir / EVAL_USERS_FILE).read_text())["users"]
    assert len(recorded) == EVAL_USERS
    assert metrics["holdout"]["users"] == evaluation["holdout_evaluated_users"] <= EVAL_USERS

    # Popularity (train rows of each item over the whole train parts) on the same task.
    declaration = read_declaration(data)
    parts, _ = cached_split(declaration, "hash-80-20")
    train = _parts(parts.train_files)
    dataset = result.data.dataset
    counts = (
        train["item_id"].value_counts().reindex(dataset.table("item").ids, fill_value=0)
    ).to_numpy(dtype=np.float32)
    task = EvaluationTask.from_split(dataset, result.data.split)
    assert set(dataset.table("user").ids[task.user_rows]) <= set(recorded)
    popularity = evaluate(lambda rows: np.tile(counts, (len(rows), 1)), task)
    assert popularity.users == metrics["holdout"]["users"]
    model_recall = metrics["holdout"]["metrics"]["recall@10"]
    assert model_recall > popularity.metrics["recall@10"] + 0.02, (
        model_recall,
        popularity.metrics["recall@10"],
    )


def test_a_killed_streamed_run_resumed_gives_the_same_metrics(streamed, trained, monkeypatch):
    root, _, config = streamed
    _, whole = trained
    original = run.ValidationCheckpoint.on_epoch_begin

    def on_epoch_begin(self, current, logs=None):
        if current == 1:
            raise KeyboardInterrupt
        original(self, current, logs)

    monkeypatch.setattr(run.ValidationCheckpoint, "on_epoch_begin", on_epoch_begin)
    killed = root / "killed"
    with pytest.raises(KeyboardInterrupt):
        run.train(config, killed, verbose=0)
    monkeypatch.undo()
    assert run.has_checkpoint(killed) and not (killed / "metrics.json").exists()
    resumed = run.train(config, killed, resume=True, verbose=0).metrics
    assert resumed["stream"]["split"]["reused"]
    # The refit (a fresh model) gives the holdout figures; the validation score of
    # epoch 2 is what shows the resumed epoch is the uninterrupted one.
    assert resumed["holdout"]["metrics"] == whole.metrics["holdout"]["metrics"]
    assert resumed["best_epoch"] == whole.metrics["best_epoch"]
    assert (
        resumed[f"validation_{config.train.monitor}"]
        == whole.metrics[f"validation_{config.train.monitor}"]
    )


def test_load_run_and_evaluate_reproduce_the_holdout_figures(trained):
    run_dir, whole = trained
    loaded = run.load_run(run_dir)
    assert loaded.data.split.name == "hash-80-20"
    assert len(loaded.data.dataset.interactions) == 0  # tables only
    result = run.evaluate(loaded)
    expected = whole.metrics["holdout"]
    assert result.users == expected["users"]
    for key, value in expected["metrics"].items():
        assert result.metrics[key] == pytest.approx(value, abs=1e-6), key

    # A cleared cache: the split is written again, identically.
    split_dir = Path(whole.metrics["stream"]["split"]["directory"])
    shutil.rmtree(split_dir)
    again = run.evaluate(run.load_run(run_dir))
    assert split_dir.is_dir()
    assert again.metrics == result.metrics


def test_a_leave_last_out_run_with_mixed_negatives_trains_and_reloads(streamed, tmp_path):
    _, data, config = streamed
    config = _with(
        config,
        'data.split="leave-last-out"',
        'model.negatives="mixed"',
        "model.mixed_negatives=16",
        'model.feature_set="ids"',
        "train.epochs=1",
        "train.refit=false",
    )
    metrics = run.train(config, tmp_path / "run", verbose=0).metrics
    split = metrics["stream"]["split"]
    holdout = _parts(cached_split(data, "leave-last-out")[0].holdout_files)
    # One held-out row per user with more than one positive (the generator writes each
    # (user, item) pair once).
    assert split["rows"]["holdout"] == len(holdout) == holdout["user_id"].nunique()
    assert metrics["evaluation"]["holdout_sample_users"] == EVAL_USERS
    assert metrics["holdout"]["users"] == EVAL_USERS  # each held-out item is no train item
    again = run.evaluate(run.load_run(tmp_path / "run"))
    assert again.metrics == metrics["holdout"]["metrics"]
