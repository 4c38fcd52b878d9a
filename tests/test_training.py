"""``train``: the run directory, refusing to overwrite, resume after a crash,
restoring the best weights, and early stopping."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pandas as pd
import pytest
from model_fixtures import tiny_experiment

from tfrs_recsys.errors import ConfigError
from tfrs_recsys.evaluation.protocol import EvaluationTask, evaluate
from tfrs_recsys.features.preprocessing import Preprocessing
from tfrs_recsys.training import run
from tfrs_recsys.training.run import evaluate as evaluate_run
from tfrs_recsys.training.run import load_run, train

METRIC_KEYS = ("recall@10", "ndcg@10", "recall@50", "coverage@10", "precision@10", "hit_rate@10")


@pytest.fixture(scope="module")
def basic_run(small_dir, tmp_path_factory):
    """A 2-epoch run of the tiny config: ``(run_dir, config, returned metrics)``."""
    config = tiny_experiment(small_dir, train={"epochs": 2})
    run_dir = tmp_path_factory.mktemp("basic") / "run"
    metrics = train(config, run_dir, verbose=0).metrics
    return run_dir, config, metrics


def _history(run_dir) -> pd.DataFrame:
    return pd.read_csv(run_dir / run.HISTORY_FILE)


# --- The run directory ------------------------------------------------------------------------


def test_config_toml_is_the_resolved_config(basic_run):
    run_dir, config, _ = basic_run
    assert (run_dir / "config.toml").read_text(encoding="utf-8") == config.to_toml()


def test_history_has_one_row_per_epoch_with_validation_metrics(basic_run):
    history = _history(basic_run[0])
    assert history["epoch"].tolist() == [0, 1]
    for column in ("loss", "val_recall@10", "val_ndcg@10", "val_recall@50", "epoch_s"):
        assert column in history.columns
    assert history["val_recall@10"].between(0, 1).all()


def test_checkpoint_best_and_tensorboard_directories_are_written(basic_run):
    run_dir = basic_run[0]
    for name in ("checkpoints", "best", "tensorboard"):
        assert (run_dir / name).is_dir(), name
        assert any((run_dir / name).iterdir()), name
    assert (run_dir / "checkpoints" / "checkpoint").is_file()
    assert list((run_dir / "best").glob("weights.index"))


def test_metrics_json_holds_the_returned_metrics(basic_run):
    run_dir, config, metrics = basic_run
    written = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    assert written == json.loads(json.dumps(metrics))
    assert written["dataset"] == "tech-products"
    assert written["split"] == "holdout-80-20"
    assert written["model"] == "retrieval_ids"
    assert written["name"] == config.name
    assert written["epochs_run"] == 2
    assert written["train_s"] > 0
    assert written["holdout"]["split"] == "holdout-80-20"
    for key in METRIC_KEYS:
        assert 0.0 <= written["holdout"]["metrics"][key] <= 1.0, key


def test_best_epoch_is_the_argmax_of_the_validation_history(basic_run):
    run_dir, _, metrics = basic_run
    history = _history(run_dir)
    best = int(history["val_recall@10"].to_numpy().argmax())
    assert metrics["best_epoch"] == best + 1
    assert metrics["validation_recall@10"] == pytest.approx(history["val_recall@10"].max())


def test_a_second_run_into_the_same_directory_is_refused(basic_run):
    run_dir, config, _ = basic_run
    before = (run_dir / "metrics.json").read_bytes()
    with pytest.raises(ConfigError, match="already holds a run"):
        train(config, run_dir, verbose=0)
    assert (run_dir / "metrics.json").read_bytes() == before


def test_load_run_restores_the_best_weights(basic_run):
    run_dir, config, metrics = basic_run
    loaded = load_run(run_dir)
    loaded_config, data, model = loaded.config, loaded.data, loaded.model
    assert loaded_config == config
    task = EvaluationTask.build(data.dataset, data.split.train, data.split.holdout)
    result = evaluate(model.scorer(), task)
    for key in ("recall@10", "ndcg@10", "recall@50"):
        assert result.metrics[key] == pytest.approx(metrics["holdout"]["metrics"][key], abs=1e-6)


def test_resuming_a_finished_run_reproduces_its_metrics(basic_run, tmp_path):
    run_dir, config, metrics = basic_run
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    again = train(config, copy, resume=True, verbose=0).metrics
    assert again["epochs_run"] == 2
    assert again["best_epoch"] == metrics["best_epoch"]
    assert again["holdout"]["metrics"]["recall@10"] == pytest.approx(
        metrics["holdout"]["metrics"]["recall@10"], abs=1e-6
    )
    assert len(_history(copy)) == 2


def test_the_same_config_trains_to_the_same_metrics(basic_run, tmp_path):
    _, config, metrics = basic_run
    again = train(config, tmp_path / "again", verbose=0).metrics
    assert again["best_epoch"] == metrics["best_epoch"]
    for key in ("recall@10", "ndcg@10", "recall@50"):
        assert again["holdout"]["metrics"][key] == pytest.approx(
            metrics["holdout"]["metrics"][key], abs=1e-6
        )


def test_a_ranking_run_restores_its_best_weights(small_dir, tmp_path):
    config = tiny_experiment(
        small_dir,
        model={"kind": "ranking", "feature_set": "subset", "negatives_per_user": 5},
        train={"epochs": 1, "learning_rate": 0.01},
    )
    metrics = train(config, tmp_path / "run", verbose=0).metrics
    assert metrics["model"] == "ranking_subset"
    loaded = load_run(tmp_path / "run")
    data, model = loaded.data, loaded.model
    task = EvaluationTask.build(data.dataset, data.split.train, data.split.holdout)
    recall = evaluate(model.scorer(), task).metrics["recall@10"]
    assert recall == pytest.approx(metrics["holdout"]["metrics"]["recall@10"], abs=1e-6)


def test_load_run_builds_the_model_from_the_saved_preprocessing_without_refitting(
    basic_run, monkeypatch
):
    run_dir, _, metrics = basic_run
    assert (run_dir / "preprocessing" / "preprocessing.json").is_file()

    def refuse(*args, **kwargs):
        raise AssertionError("load_run refitted the preprocessing")

    monkeypatch.setattr(run, "fit_preprocessing", refuse)
    loaded = load_run(run_dir)
    assert (
        loaded.preprocessing.user.vocabularies
        == Preprocessing.load(run_dir / "preprocessing").user.vocabularies
    )
    assert loaded.metrics == metrics
    assert evaluate_run(loaded).metrics["recall@10"] == pytest.approx(
        metrics["holdout"]["metrics"]["recall@10"], abs=1e-6
    )


def test_load_run_needs_a_run_directory(tmp_path):
    with pytest.raises(ConfigError, match="not a run directory"):
        load_run(tmp_path)


# --- Resume errors -------------------------------------------------------------------------------


def test_resume_with_a_different_config_is_refused(basic_run, small_dir):
    run_dir = basic_run[0]
    other = tiny_experiment(small_dir, train={"epochs": 3})
    with pytest.raises(ConfigError, match="different"):
        train(other, run_dir, resume=True, verbose=0)


def test_resume_without_a_run_is_refused(small_dir, tmp_path):
    config = tiny_experiment(small_dir)
    with pytest.raises(ConfigError, match="nothing to resume"):
        train(config, tmp_path / "missing", resume=True, verbose=0)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="nothing to resume"):
        train(config, tmp_path / "empty", resume=True, verbose=0)


# --- Crash and resume ----------------------------------------------------------------------------


def test_resume_after_a_crash_continues_from_the_last_epoch(small_dir, tmp_path, monkeypatch):
    config = tiny_experiment(small_dir, train={"epochs": 3})
    run_dir = tmp_path / "run"
    original_begin = run.ValidationCheckpoint.on_epoch_begin
    begun: list[int] = []
    crash = {"at": 2}

    def on_epoch_begin(self, epoch, logs=None):
        begun.append(epoch)
        if epoch == crash["at"]:
            raise KeyboardInterrupt  # killed after epoch 2 was fully recorded
        original_begin(self, epoch, logs)

    monkeypatch.setattr(run.ValidationCheckpoint, "on_epoch_begin", on_epoch_begin)
    with pytest.raises(KeyboardInterrupt):
        train(config, run_dir, verbose=0)
    assert begun == [0, 1, 2]
    assert not (run_dir / "metrics.json").exists()
    assert _history(run_dir)["epoch"].tolist() == [0, 1]

    begun.clear()
    crash["at"] = None
    metrics = train(config, run_dir, resume=True, verbose=0).metrics
    assert begun == [2]  # picked up after the two checkpointed epochs, not from 0
    assert metrics["epochs_run"] == 3
    history = _history(run_dir)
    assert history["epoch"].tolist() == [0, 1, 2]
    assert list(history.columns).count("epoch") == 1  # no second header appended
    assert metrics["best_epoch"] == int(history["val_recall@10"].to_numpy().argmax()) + 1
    assert (run_dir / "checkpoints" / "ckpt-3.index").is_file()
    assert json.loads((run_dir / "metrics.json").read_text())["epochs_run"] == 3


def test_kill_between_checkpoint_and_history_row_keeps_every_epoch_in_history(
    small_dir, tmp_path, monkeypatch
):
    config = tiny_experiment(small_dir, train={"epochs": 3})
    run_dir = tmp_path / "run"
    original_end = run.ValidationCheckpoint.on_epoch_end
    crash = {"at": 1}

    def on_epoch_end(self, epoch, logs=None):
        original_end(self, epoch, logs)  # validates and checkpoints epoch `epoch`
        if epoch == crash["at"]:
            raise KeyboardInterrupt

    monkeypatch.setattr(run.ValidationCheckpoint, "on_epoch_end", on_epoch_end)
    with pytest.raises(KeyboardInterrupt):
        train(config, run_dir, verbose=0)
    crash["at"] = None
    metrics = train(config, run_dir, resume=True, verbose=0).metrics
    assert metrics["epochs_run"] == 3
    assert _history(run_dir)["epoch"].tolist() == [0, 1, 2]


# --- Early stopping ------------------------------------------------------------------------------


def test_early_stopping_stops_and_keeps_the_best_epoch(small_dir, tmp_path, monkeypatch):
    config = tiny_experiment(small_dir, train={"epochs": 5, "patience": 1})
    run_dir = tmp_path / "run"
    real_evaluate = run.evaluate_scorer
    scripted = [0.5, 0.4, 0.3, 0.2, 0.1]  # validation never improves after epoch 1
    probe_rows = np.arange(0, 500, 25)
    scores_per_epoch: list[np.ndarray] = []

    def fake_evaluate(scorer, task, **kwargs):
        result = real_evaluate(scorer, task, **kwargs)
        if task.split_name != "validation":
            return result
        scores_per_epoch.append(np.asarray(scorer(probe_rows)))
        score = scripted[len(scores_per_epoch) - 1]
        return dataclasses.replace(result, metrics={**result.metrics, "recall@10": score})

    monkeypatch.setattr(run, "evaluate_scorer", fake_evaluate)
    metrics = train(config, run_dir, verbose=0).metrics
    assert metrics["epochs_run"] == 2
    assert metrics["best_epoch"] == 1
    assert metrics["validation_recall@10"] == pytest.approx(0.5)
    assert len(_history(run_dir)) == 2

    # The kept weights are epoch 1's, not the last epoch's.
    loaded = load_run(run_dir)
    model = loaded.model
    restored = np.asarray(model.scorer()(probe_rows))
    assert not np.allclose(scores_per_epoch[0], scores_per_epoch[1], atol=1e-4)
    np.testing.assert_allclose(restored, scores_per_epoch[0], rtol=1e-5, atol=1e-6)


def test_patience_zero_never_stops_early(small_dir, tmp_path, monkeypatch):
    config = tiny_experiment(small_dir, train={"epochs": 3, "patience": 0})
    real_evaluate = run.evaluate_scorer
    calls = []

    def fake_evaluate(scorer, task, **kwargs):
        result = real_evaluate(scorer, task, **kwargs)
        if task.split_name != "validation":
            return result
        calls.append(1)
        return dataclasses.replace(
            result, metrics={**result.metrics, "recall@10": 1.0 / len(calls)}
        )

    monkeypatch.setattr(run, "evaluate_scorer", fake_evaluate)
    metrics = train(config, tmp_path / "run", verbose=0).metrics
    assert metrics["epochs_run"] == 3
    assert metrics["best_epoch"] == 1


# --- Refit on the whole train split -----------------------------------------------------------


@pytest.fixture(scope="module")
def refit_run(small_dir, tmp_path_factory):
    config = tiny_experiment(small_dir, train={"epochs": 2, "refit": True, "patience": 0})
    run_dir = tmp_path_factory.mktemp("refit") / "run"
    metrics = train(config, run_dir, verbose=0).metrics
    return run_dir, config, metrics


def test_refit_trains_on_the_whole_train_split_for_the_best_epoch_count(refit_run):
    run_dir, _, metrics = refit_run
    assert metrics["refit"]["epochs"] == metrics["best_epoch"]
    assert metrics["refit"]["train_s"] > 0
    assert list((run_dir / run.REFIT_DIR).glob("weights.index"))
    loaded = load_run(run_dir)
    data, model = loaded.data, loaded.model
    # The refit model's vocabulary covers the whole train split, not only the fit part.
    train_users = set(data.split.train["user_id"])
    fit_users = set(data.fit.train["user_id"])
    assert train_users > fit_users
    lookup = model.query_tower.encoder.lookups["user_id"]
    assert lookup.vocabulary_size() == len(train_users) + 1


def test_load_run_returns_the_refit_model_that_was_evaluated(refit_run):
    run_dir, _, metrics = refit_run
    loaded = load_run(run_dir)
    data, model = loaded.data, loaded.model
    task = EvaluationTask.build(data.dataset, data.split.train, data.split.holdout)
    result = evaluate(model.scorer(), task)
    for key in ("recall@10", "ndcg@10", "recall@50"):
        assert result.metrics[key] == pytest.approx(metrics["holdout"]["metrics"][key], abs=1e-6)


def test_load_run_refuses_an_unfinished_refit_run(refit_run, tmp_path):
    run_dir = tmp_path / "unfinished"
    shutil.copytree(refit_run[0], run_dir)
    (run_dir / "metrics.json").unlink()
    with pytest.raises(ConfigError, match="refit"):
        load_run(run_dir)


def test_load_run_names_truncated_weights_in_one_line(refit_run, tmp_path):
    run_dir = tmp_path / "damaged"
    shutil.copytree(refit_run[0], run_dir)
    (data,) = (run_dir / "refit").glob("weights.data-*")
    data.write_bytes(data.read_bytes()[:10])
    with pytest.raises(ConfigError, match="weights cannot be read.*damaged") as raised:
        load_run(run_dir)
    assert "\n" not in str(raised.value)


def test_load_run_names_a_damaged_metrics_json(refit_run, tmp_path):
    run_dir = tmp_path / "damaged"
    shutil.copytree(refit_run[0], run_dir)
    (run_dir / "metrics.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError, match="metrics.json: not the JSON train writes"):
        load_run(run_dir)


# --- Data without user features ----------------------------------------------------------------


def test_feature_set_all_trains_on_data_whose_users_have_no_features(tmp_path, caplog):
    """An interactions-only user side (the ml-latest format: ratings.csv and movies.csv)
    falls back to the user id, says so, and keeps the items' genres."""
    rng = np.random.default_rng(0)
    data = tmp_path / "ml-latest-small"
    data.mkdir()
    movies = ["movieId,title,genres"]
    movies += [f"{m},Movie {m} (199{m % 10}),Drama|Comedy" for m in range(1, 21)]
    (data / "movies.csv").write_text("\n".join(movies) + "\n", encoding="utf-8")
    ratings = ["userId,movieId,rating,timestamp"]
    for user in range(1, 31):
        for movie in rng.choice(np.arange(1, 21), size=8, replace=False):
            ratings.append(f"{user},{movie},{rng.choice([3.0, 4.0, 5.0])},{1000 + user}")
    (data / "ratings.csv").write_text("\n".join(ratings) + "\n", encoding="utf-8")
    config = tiny_experiment(data, model={"feature_set": "all"}, train={"epochs": 1})
    with caplog.at_level("WARNING", logger=run.__name__):
        trained = train(config, tmp_path / "run", verbose=0)
    assert trained.model.query_tower.encoder.feature_names == ["user_id"]
    assert "genres" in trained.model.candidate_tower.encoder.feature_names
    assert "the user side has no feature columns" in caplog.text
