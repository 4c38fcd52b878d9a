"""Seed ensembles (``train.ensemble``): trained, evaluated, reloaded and exported as one two-tower."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest
from model_fixtures import tiny_experiment

from tfrs_recsys.config import ExperimentConfig, ModelConfig, TrainConfig
from tfrs_recsys.errors import ConfigError
from tfrs_recsys.evaluation.protocol import EvaluationTask
from tfrs_recsys.evaluation.protocol import evaluate as evaluate_scorer
from tfrs_recsys.training.run import (
    MEMBERS_DIR,
    METRICS_FILE,
    load_run,
    member_config,
    train,
)


def _config(small_dir, **train):
    return tiny_experiment(
        small_dir,
        model={"feature_set": "subset", "item_bias": True},
        train={"ensemble": 2, "refit": True, "patience": 1, **train},
    )


@pytest.fixture(scope="module")
def ensemble_run(small_dir, tmp_path_factory):
    return train(_config(small_dir), tmp_path_factory.mktemp("ens") / "run", verbose=0)


def test_members_are_runs_of_the_config_with_the_next_seeds(small_dir):
    config = _config(small_dir, ensemble=3)
    member = member_config(config, 2)
    assert member.train.seed == config.train.seed + 2 and member.train.ensemble == 1
    assert dataclasses.replace(member, name=config.name, train=config.train) == config


def test_the_ensemble_scores_with_the_sum_of_its_members(ensemble_run):
    run_dir = ensemble_run.run_dir
    member = load_run(run_dir / MEMBERS_DIR / "1")
    assert member.config.train.seed == ensemble_run.config.train.seed + 1
    first, second = ensemble_run.model.members
    rows = np.arange(20, dtype=np.int64)
    expected = np.asarray(first.scorer()(rows)) + np.asarray(member.model.scorer()(rows))
    np.testing.assert_allclose(
        np.asarray(ensemble_run.model.scorer()(rows)), expected, rtol=1e-5, atol=1e-5
    )
    # The holdout figure is that of the summed scores, and each member is recorded alone.
    data = ensemble_run.data
    task = EvaluationTask.build(data.dataset, data.split.train, data.split.holdout)
    summed = evaluate_scorer(
        lambda r: np.asarray(first.scorer()(r)) + np.asarray(member.model.scorer()(r)), task
    )
    metrics = ensemble_run.metrics
    assert metrics["holdout"]["metrics"]["recall@10"] == pytest.approx(
        summed.metrics["recall@10"], abs=1e-6
    )
    record = metrics["ensemble"]
    assert record["members"] == 2 and [r["seed"] for r in record["runs"]] == [42, 43]
    assert record["runs"][1]["holdout"]["recall@10"] == pytest.approx(
        member.metrics["holdout"]["metrics"]["recall@10"], abs=1e-9
    )


def test_the_served_vectors_are_the_members_side_by_side(ensemble_run):
    model = ensemble_run.model
    parts = model.serving_parts(ensemble_run.data.dataset)
    dims = [m.item_embeddings().shape[1] for m in model.members]
    assert parts.item_vectors.shape[1] == parts.user_vectors.shape[1] == sum(dims)
    rows = np.arange(15)
    # One dot product of the concatenated vectors = the sum of the members' scores.
    np.testing.assert_allclose(
        parts.user_vectors[rows] @ parts.item_vectors.T,
        np.asarray(model.scorer()(rows.astype(np.int64))),
        rtol=1e-4,
        atol=1e-4,
    )


def test_a_reloaded_ensemble_gives_the_same_figures(ensemble_run):
    again = load_run(ensemble_run.run_dir)
    rows = np.arange(30, dtype=np.int64)
    np.testing.assert_allclose(
        np.asarray(again.model.scorer()(rows)), np.asarray(ensemble_run.model.scorer()(rows))
    )


def test_a_run_whose_member_did_not_finish_cannot_be_loaded(ensemble_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(ensemble_run.run_dir, copy)
    (copy / MEMBERS_DIR / "1" / METRICS_FILE).unlink()
    with pytest.raises(ConfigError, match=r"ensemble member 2 of 2 has not finished.*--resume"):
        load_run(copy)


def test_resume_trains_the_member_a_kill_left_unfinished(ensemble_run, tmp_path):
    """A kill during member 2, before its first checkpoint: --resume gives the same ensemble."""
    copy = tmp_path / "run"
    shutil.copytree(ensemble_run.run_dir, copy)
    member = copy / MEMBERS_DIR / "1"
    for path in member.iterdir():
        if path.name != "config.toml":
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    (copy / METRICS_FILE).unlink()
    resumed = train(ensemble_run.config, copy, resume=True, verbose=0)
    assert json.loads((member / METRICS_FILE).read_text())["holdout"] is not None
    assert resumed.metrics["holdout"]["metrics"] == pytest.approx(
        ensemble_run.metrics["holdout"]["metrics"], abs=1e-6
    )


def test_the_export_answers_with_the_ensembles_top_items(ensemble_run, tmp_path):
    import tensorflow as tf

    from tfrs_recsys.serving.export import export_run

    result = export_run(ensemble_run.run_dir, tmp_path / "models" / "ens", n=5, warmup=False)
    data = ensemble_run.data
    users = list(data.dataset.users["user_id"].iloc[:4])
    answer = tf.saved_model.load(str(result.path)).signatures["serving_default"](
        user_id=tf.constant(users)
    )
    rows = np.arange(4, dtype=np.int64)
    scores = np.array(ensemble_run.model.scorer()(rows))  # a writable copy
    item_ids = np.asarray(data.dataset.items["item_id"])
    user_of = {u: n for n, u in enumerate(data.dataset.users["user_id"])}
    item_of = {i: n for n, i in enumerate(item_ids)}
    seen = data.split.train
    for row, user in enumerate(users):
        train_items = [item_of[i] for i in seen.loc[seen["user_id"] == user, "item_id"]]
        assert user_of[user] == row
        scores[row, train_items] = -np.inf
    expected = item_ids[np.argsort(-scores, axis=1, kind="stable")[:, :5]]
    assert answer["item_ids"].numpy().astype(str).tolist() == expected.tolist()


@pytest.mark.parametrize("value", [0, 17])
def test_an_ensemble_size_out_of_range_is_refused(value):
    with pytest.raises(ConfigError, match=r"train.ensemble must be in \[1, 16\]"):
        TrainConfig(ensemble=value)


def test_only_retrieval_models_make_ensembles():
    with pytest.raises(ConfigError, match="train.ensemble = 2 needs model.kind = 'retrieval'"):
        ExperimentConfig(model=ModelConfig(kind="ranking"), train=TrainConfig(ensemble=2))
