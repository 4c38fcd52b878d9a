"""A training run is restartable from any point, and a resumed run is the run it resumes.

- kill + ``resume`` gives bit-identical weights and holdout metrics to a run that
  was never stopped (retrieval with Adam and in-batch shuffling; ranking with
  negatives resampled every epoch; a refit run; tower dropout);
- a run directory left by a kill before the first checkpoint (``config.toml``
  only, or preprocessing too) is resumable and trains from the start;
- a run that fails with an exception before its first checkpoint removes what
  it wrote, and says so; after its first checkpoint it keeps it, and says how
  to resume.

Kills are simulated in process by an exception raised from a Keras callback hook
(``KeyboardInterrupt``, what SIGINT raises), at the point where a SIGKILL would
stop the process; the fault-injection tests (tests/test_faults.py) use real
SIGKILLs of the CLI.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from model_fixtures import tiny_experiment

from tfrs_recsys.errors import ConfigError
from tfrs_recsys.training import run
from tfrs_recsys.training.run import train

RANKING = {"kind": "ranking", "negatives_per_user": 3}


def _variables(checkpoint_prefix) -> dict[str, np.ndarray]:
    reader = tf.train.load_checkpoint(str(checkpoint_prefix))
    return {
        name: reader.get_tensor(name)
        for name in reader.get_variable_to_shape_map()
        if name != "_CHECKPOINTABLE_OBJECT_GRAPH"
    }


def _crash_at_epoch_begin(monkeypatch, epoch: int) -> None:
    """Raises KeyboardInterrupt when epoch ``epoch`` (0-based) begins."""
    original = run.ValidationCheckpoint.on_epoch_begin

    def on_epoch_begin(self, current, logs=None):
        if current == epoch:
            raise KeyboardInterrupt
        original(self, current, logs)

    monkeypatch.setattr(run.ValidationCheckpoint, "on_epoch_begin", on_epoch_begin)


def _holdout(metrics: dict) -> dict[str, float]:
    return metrics["holdout"]["metrics"]


@pytest.mark.parametrize(
    "model, train_kw",
    [
        ({}, {"epochs": 4}),
        (RANKING, {"epochs": 4}),
        ({}, {"epochs": 3, "refit": True}),
        ({"dropout": 0.3}, {"epochs": 3}),
    ],
    ids=["retrieval-adam", "ranking-resampled-negatives", "retrieval-refit", "dropout"],
)
def test_kill_and_resume_equals_the_uninterrupted_run(
    small_dir, tmp_path, monkeypatch, model, train_kw
):
    config = tiny_experiment(small_dir, model=model, train=train_kw)
    whole = train(config, tmp_path / "whole", verbose=0).metrics

    _crash_at_epoch_begin(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "killed", verbose=0)
    monkeypatch.undo()
    resumed = train(config, tmp_path / "killed", resume=True, verbose=0).metrics

    assert _holdout(resumed) == _holdout(whole)  # exact float equality
    assert resumed["best_epoch"] == whole["best_epoch"]
    last = f"ckpt-{config.train.epochs}"
    expected = _variables(tmp_path / "whole" / "checkpoints" / last)
    got = _variables(tmp_path / "killed" / "checkpoints" / last)
    assert sorted(got) == sorted(expected)
    for name, value in expected.items():
        np.testing.assert_array_equal(got[name], value, err_msg=name)


def test_the_optimizer_step_count_of_a_resumed_run_is_the_uninterrupted_one(
    small_dir, tmp_path, monkeypatch
):
    """Adam's bias correction reads the step count: a resumed fit must not add an
    extra end-of-data step (Keras learns an unknown epoch length in the first
    epoch of every fit)."""
    config = tiny_experiment(small_dir, train={"epochs": 3})
    train(config, tmp_path / "whole", verbose=0)
    _crash_at_epoch_begin(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "killed", verbose=0)
    monkeypatch.undo()
    train(config, tmp_path / "killed", resume=True, verbose=0)
    key = "optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE"
    for number in (2, 3):
        whole = _variables(tmp_path / "whole" / "checkpoints" / f"ckpt-{number}")[key]
        again = _variables(tmp_path / "killed" / "checkpoints" / f"ckpt-{number}")[key]
        assert int(again) == int(whole)


def test_the_checkpoint_records_the_batches_of_an_epoch(small_dir, tmp_path):
    config = tiny_experiment(small_dir, train={"epochs": 1, "batch_size": 256})
    train(config, tmp_path / "run", verbose=0)
    variables = _variables(tmp_path / "run" / "checkpoints" / "ckpt-1")
    counted = [v for k, v in variables.items() if k.startswith("state/epoch_batches")]
    train_rows = len(run.prepare_data(config).fit.train)
    assert [int(v) for v in counted] == [-(-train_rows // 256)]


@pytest.mark.parametrize("left", ["config only", "config and preprocessing"])
def test_a_run_killed_before_its_first_checkpoint_resumes_from_the_start(small_dir, tmp_path, left):
    config = tiny_experiment(small_dir)
    whole = train(config, tmp_path / "whole", verbose=0).metrics
    dead = tmp_path / "dead"
    dead.mkdir()
    (dead / "config.toml").write_text(config.to_toml(), encoding="utf-8")
    if left == "config and preprocessing":
        (dead / "preprocessing").mkdir()
        (dead / "history.csv").write_text("epoch,loss\n", encoding="utf-8")

    resumed = train(config, dead, resume=True, verbose=0).metrics
    assert _holdout(resumed) == _holdout(whole)
    assert resumed["epochs_run"] == config.train.epochs
    history = (dead / "history.csv").read_text(encoding="utf-8").splitlines()
    assert [line.split(",", 1)[0] for line in history[1:]] == ["0", "1"]


def test_a_dead_run_directory_is_refused_without_resume_saying_how_to_continue(small_dir, tmp_path):
    config = tiny_experiment(small_dir)
    dead = tmp_path / "dead"
    dead.mkdir()
    (dead / "config.toml").write_text(config.to_toml(), encoding="utf-8")
    with pytest.raises(ConfigError, match="stopped before its first checkpoint.*--resume"):
        train(config, dead, verbose=0)


def test_a_failure_before_the_first_checkpoint_removes_the_run_directory(
    small_dir, tmp_path, monkeypatch
):
    config = tiny_experiment(small_dir)
    _crash_at_epoch_begin(monkeypatch, 0)
    run_dir = tmp_path / "new" / "run"
    with pytest.raises(KeyboardInterrupt) as raised:
        train(config, run_dir, verbose=0)
    assert not run_dir.exists()
    assert any("was removed" in note for note in raised.value.__notes__)
    monkeypatch.undo()
    # Nothing blocks the same command afterwards.
    assert train(config, run_dir, verbose=0).metrics["epochs_run"] == config.train.epochs


def test_a_failure_in_a_directory_that_existed_keeps_the_directory_empty(
    small_dir, tmp_path, monkeypatch
):
    def fail(*args, **kwargs):
        raise RuntimeError("injected failure while building the model")

    monkeypatch.setattr(run, "build_model", fail)
    run_dir = tmp_path / "mine"
    run_dir.mkdir()
    with pytest.raises(RuntimeError, match="injected"):
        train(tiny_experiment(small_dir), run_dir, verbose=0)
    assert run_dir.is_dir()
    assert list(run_dir.iterdir()) == []


def test_a_failure_after_the_first_checkpoint_keeps_the_run_and_says_how_to_resume(
    small_dir, tmp_path, monkeypatch
):
    config = tiny_experiment(small_dir, train={"epochs": 3})
    _crash_at_epoch_begin(monkeypatch, 1)
    run_dir = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt) as raised:
        train(config, run_dir, verbose=0)
    assert (run_dir / "checkpoints" / "ckpt-1.index").is_file()
    assert any("--resume" in note for note in raised.value.__notes__)


def test_a_file_as_the_run_directory_is_refused(small_dir, tmp_path):
    path = tmp_path / "a-file"
    path.write_text("not a run", encoding="utf-8")
    with pytest.raises(ConfigError, match="not a directory"):
        train(tiny_experiment(small_dir), path, verbose=0)
    assert path.read_text(encoding="utf-8") == "not a run"


def test_a_directory_of_other_files_is_not_called_a_run(small_dir, tmp_path):
    other = tmp_path / "photos"
    other.mkdir()
    (other / "cat.jpg").write_bytes(b"\xff\xd8")
    with pytest.raises(ConfigError, match="holds no run.*new or empty --run-dir"):
        train(tiny_experiment(small_dir), other, verbose=0)
    assert (other / "cat.jpg").read_bytes() == b"\xff\xd8"


def test_a_run_recorded_before_a_config_key_existed_resumes(small_dir, tmp_path):
    config = tiny_experiment(small_dir, train={"epochs": 1})
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    older = "\n".join(
        line for line in config.to_toml().splitlines() if not line.startswith("user_history")
    )
    (run_dir / "config.toml").write_text(older + "\n")
    run = train(config, run_dir, resume=True, verbose=0)
    assert run.metrics["epochs_run"] == 1
