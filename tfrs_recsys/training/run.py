"""``tfrs-recsys train``: one experiment from a config into a run directory.

Run directory layout:

- ``config.toml``: the resolved config (file + ``--set`` overrides);
- ``history.csv``: Keras progress per epoch (loss, validation metrics, seconds);
- ``tensorboard/``: TensorBoard logs;
- ``checkpoints/``: the model, optimizer and early-stopping state after every
  epoch (``--resume`` continues from the latest one after a crash or a kill);
- ``best/``: the weights of the best validation epoch;
- ``refit/``: with ``train.refit``, the weights of a fresh model trained on the
  whole train split for the best epoch count (the model that is evaluated and
  exported);
- ``metrics.json``: holdout metrics of the best weights (the protocol of
  EVALUATION.md), validation history, timings, and ``holdout_seed_metric``
  (the notebooks' mean probability of one holdout positive per user) for
  models that output probabilities (logistic losses, ranking; ``null``
  otherwise); written last, atomically.

The validation split is carved from train (``data.validation_fraction``); the
model is fitted on the rest and early stopping watches ``train.monitor`` on the
validation split, so the holdout is only used once, at the end.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from tfrs_recsys.config import ExperimentConfig
from tfrs_recsys.data.dataset import RecDataset
from tfrs_recsys.data.loading import load_dataset
from tfrs_recsys.data.splits import Split, carve_validation, make_split
from tfrs_recsys.errors import ConfigError
from tfrs_recsys.evaluation.protocol import EvaluationTask, evaluate, seed_metric
from tfrs_recsys.models.factory import build_model, training_dataset

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.toml"
METRICS_FILE = "metrics.json"
HISTORY_FILE = "history.csv"
REFIT_DIR = "refit"


@dataclasses.dataclass(frozen=True)
class PreparedData:
    """The dataset and the three splits every run of a config sees identically."""

    dataset: RecDataset
    split: Split  # train / holdout of the protocol
    fit: Split  # train minus validation / validation


def prepare_data(config: ExperimentConfig) -> PreparedData:
    dataset = load_dataset(config.data.source, min_rating=config.data.min_rating)
    split = make_split(config.data.split, dataset.interactions)
    fit = carve_validation(
        split.train, fraction=config.data.validation_fraction, seed=config.data.validation_seed
    )
    return PreparedData(dataset=dataset, split=split, fit=fit)


def write_json_atomic(path: Path, data: Any) -> None:
    staging = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    staging.write_text(json.dumps(data, indent=2, default=_json_default) + "\n", encoding="utf-8")
    os.replace(staging, path)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


class _EarlyStoppingState(tf.Module):
    """What must survive a kill: epochs done, best score, its epoch, patience used."""

    def __init__(self) -> None:
        super().__init__()
        self.epochs_done = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.best = tf.Variable(-1.0, dtype=tf.float64, trainable=False)
        self.best_epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.wait = tf.Variable(0, dtype=tf.int64, trainable=False)


class ValidationCheckpoint(tf.keras.callbacks.Callback):
    """After every epoch: validate, keep the best weights, checkpoint, maybe stop."""

    def __init__(
        self,
        task: EvaluationTask,
        monitor: str,
        patience: int,
        state: _EarlyStoppingState,
        best_checkpoint: tf.train.Checkpoint,
        best_prefix: Path,
    ) -> None:
        super().__init__()
        self.task = task
        self.monitor = monitor
        self.patience = patience
        self.state = state
        self.best_checkpoint = best_checkpoint
        self.best_prefix = best_prefix
        self._epoch_start = 0.0

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        self._epoch_start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        logs = logs if logs is not None else {}
        result = evaluate(self.model.scorer(), self.task)
        score = float(result.metrics[self.monitor])
        for key in ("recall@10", "ndcg@10", "recall@50"):
            logs[f"val_{key}"] = result.metrics[key]
        logs["epoch_s"] = time.perf_counter() - self._epoch_start
        self.state.epochs_done.assign(epoch + 1)
        if score > float(self.state.best.numpy()):
            self.state.best.assign(score)
            self.state.best_epoch.assign(epoch + 1)
            self.state.wait.assign(0)
            self.best_checkpoint.write(str(self.best_prefix))
        else:
            self.state.wait.assign_add(1)
            if self.patience and int(self.state.wait.numpy()) >= self.patience:
                self.model.stop_training = True
        logger.info("epoch %d: validation %s %.4f", epoch + 1, self.monitor, score)


class EpochCheckpoint(tf.keras.callbacks.Callback):
    """Saves the resumable checkpoint; placed after the loggers, so that a kill
    never leaves a checkpoint whose epoch is missing from ``history.csv``."""

    def __init__(self, manager: tf.train.CheckpointManager) -> None:
        super().__init__()
        self.manager = manager

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        self.manager.save(checkpoint_number=epoch + 1)


def _truncate_history(path: Path, epochs: int) -> None:
    """Drops rows of epochs after the checkpoint (killed before it was saved)."""
    if not path.is_file():
        return
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = lines[:1] + [line for line in lines[1:] if line.split(",", 1)[0].strip().isdigit() and int(line.split(",", 1)[0]) < epochs]
    if len(kept) != len(lines):
        staging = path.with_name(f".{path.name}.tmp")
        staging.write_text("".join(kept), encoding="utf-8")
        os.replace(staging, path)


def _optimizer(config: ExperimentConfig) -> tf.keras.optimizers.Optimizer:
    rate = config.train.learning_rate
    if config.train.optimizer == "adam":
        return tf.keras.optimizers.Adam(rate)
    if config.train.optimizer == "adagrad":
        return tf.keras.optimizers.Adagrad(rate)
    return tf.keras.optimizers.SGD(rate)


@dataclasses.dataclass(frozen=True)
class TrainedRun:
    """A finished run: its ``metrics.json`` content, data and best-weights model."""

    metrics: dict[str, Any]
    data: PreparedData
    model: tf.keras.Model


def train(
    config: ExperimentConfig, run_dir: Path, *, resume: bool = False, verbose: int = 2
) -> dict[str, Any]:
    """Trains ``config`` into ``run_dir`` and returns the ``metrics.json`` content.

    See :func:`run_training` for the arguments and errors.
    """
    return run_training(config, run_dir, resume=resume, verbose=verbose).metrics


def run_training(
    config: ExperimentConfig, run_dir: Path, *, resume: bool = False, verbose: int = 2
) -> TrainedRun:
    """Trains ``config`` into ``run_dir``; returns the metrics, data and model.

    The model holds the best validation epoch's weights.

    Args:
        config: The experiment.
        run_dir: Output directory; must be new or empty unless ``resume``.
        resume: Continue from the latest checkpoint in ``run_dir``.
        verbose: Keras verbosity (2: one line per epoch).

    Raises:
        ConfigError: ``run_dir`` holds another run (without ``resume``), or
            ``resume`` finds a different config or no checkpoint.
    """
    run_dir = Path(run_dir)
    config_path = run_dir / CONFIG_FILE
    if resume:
        if not config_path.is_file():
            raise ConfigError(f"{run_dir}: nothing to resume (no {CONFIG_FILE})")
        if config_path.read_text(encoding="utf-8") != config.to_toml():
            raise ConfigError(
                f"{run_dir}: --resume with a config different from the run's {CONFIG_FILE}; "
                "resume with the same config (or no --config: the run's own is used)"
            )
    elif run_dir.exists() and any(run_dir.iterdir()):
        raise ConfigError(f"{run_dir}: already holds a run (use --resume to continue it, or a new --run-dir)")
    run_dir.mkdir(parents=True, exist_ok=True)
    if not resume:
        staging = config_path.with_name(f".{CONFIG_FILE}.tmp")
        staging.write_text(config.to_toml(), encoding="utf-8")
        os.replace(staging, config_path)

    tf.keras.utils.set_random_seed(config.train.seed)
    start = time.perf_counter()
    data = prepare_data(config)
    model = build_model(data.dataset, data.fit.train, config.model)
    model.compile(optimizer=_optimizer(config))
    pipeline = training_dataset(model, data.dataset, data.fit.train, config)
    validation_task = EvaluationTask.build(
        data.dataset, data.fit.train, data.fit.holdout, split_name="validation"
    )

    state = _EarlyStoppingState()
    checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer, state=state)
    manager = tf.train.CheckpointManager(checkpoint, run_dir / "checkpoints", max_to_keep=2)
    best_checkpoint = tf.train.Checkpoint(model=model)
    best_prefix = run_dir / "best" / "weights"
    initial_epoch = 0
    if resume:
        if manager.latest_checkpoint is None:
            raise ConfigError(f"{run_dir}: no checkpoint to resume from")
        checkpoint.restore(manager.latest_checkpoint)
        initial_epoch = int(state.epochs_done.numpy())
        _truncate_history(run_dir / HISTORY_FILE, initial_epoch)
        logger.info("resuming %s after epoch %d", run_dir, initial_epoch)
    stopped_early = bool(
        resume
        and config.train.patience
        and int(state.wait.numpy()) >= config.train.patience
    )

    callbacks = [
        ValidationCheckpoint(
            validation_task,
            config.train.monitor,
            config.train.patience,
            state,
            best_checkpoint,
            best_prefix,
        ),
        tf.keras.callbacks.CSVLogger(str(run_dir / HISTORY_FILE), append=resume),
        tf.keras.callbacks.TensorBoard(str(run_dir / "tensorboard"), write_graph=False, profile_batch=0),
        EpochCheckpoint(manager),
    ]
    fit_start = time.perf_counter()
    if initial_epoch < config.train.epochs and not stopped_early:
        model.fit(
            pipeline,
            epochs=config.train.epochs,
            initial_epoch=initial_epoch,
            callbacks=callbacks,
            verbose=verbose,
        )
    train_s = time.perf_counter() - fit_start

    best_checkpoint.read(str(best_prefix)).expect_partial()
    best_epoch = int(state.best_epoch.numpy())
    refit = None
    if config.train.refit and best_epoch > 0:
        model, refit = _refit(config, data, best_epoch, run_dir, verbose)
    holdout_task = EvaluationTask.build(
        data.dataset, data.split.train, data.split.holdout, split_name=data.split.name
    )
    result = evaluate(model.scorer(), holdout_task)
    seed = model_seed_metric(model, data)
    examples = len(data.fit.train) * int(state.epochs_done.numpy() - initial_epoch)
    metrics = {
        "name": config.name,
        "dataset": data.dataset.schema.name,
        "split": data.split.name,
        "model": f"{config.model.kind}_{config.model.feature_set}",
        "epochs_run": int(state.epochs_done.numpy()),
        "best_epoch": best_epoch,
        f"validation_{config.train.monitor}": float(state.best.numpy()),
        "train_s": round(train_s, 2),
        "examples_per_s": round(examples / train_s, 1) if train_s > 0 and examples else None,
        "refit": refit,
        "total_s": round(time.perf_counter() - start, 2),
        "holdout": result.to_dict(),
        "holdout_seed_metric": seed,
    }
    write_json_atomic(run_dir / METRICS_FILE, metrics)
    return TrainedRun(metrics=metrics, data=data, model=model)


def model_seed_metric(model, data: PreparedData) -> float | None:
    """The notebooks' seed metric of ``model`` on ``data``'s holdout, or None if it gives no probabilities."""
    if not getattr(model, "has_probabilities", True) or not hasattr(model, "probabilities"):
        return None
    return float(seed_metric(model.probabilities, data.dataset, data.split.holdout))


def _refit(
    config: ExperimentConfig, data: PreparedData, epochs: int, run_dir: Path, verbose: int
) -> tuple[tf.keras.Model, dict[str, Any]]:
    """A fresh model trained on the whole train split for ``epochs`` epochs."""
    logger.info("refitting on the whole train split for %d epochs", epochs)
    tf.keras.utils.set_random_seed(config.train.seed)
    model = build_model(data.dataset, data.split.train, config.model)
    model.compile(optimizer=_optimizer(config))
    pipeline = training_dataset(model, data.dataset, data.split.train, config)
    start = time.perf_counter()
    model.fit(pipeline, epochs=epochs, verbose=verbose)
    train_s = time.perf_counter() - start
    tf.train.Checkpoint(model=model).write(str(run_dir / REFIT_DIR / "weights"))
    return model, {
        "epochs": epochs,
        "train_s": round(train_s, 2),
        "examples_per_s": round(len(data.split.train) * epochs / train_s, 1) if train_s > 0 else None,
    }


def load_trained_model(run_dir: Path):
    """Rebuilds a run's model from its config and data and restores its best weights.

    Returns:
        ``(config, prepared_data, model)``.
    """
    from tfrs_recsys.config import load_config

    run_dir = Path(run_dir)
    config_path = run_dir / CONFIG_FILE
    if not config_path.is_file():
        raise ConfigError(f"{run_dir}: not a run directory (no {CONFIG_FILE})")
    config = load_config(config_path)
    if not (run_dir / "best").is_dir():
        raise ConfigError(f"{run_dir}: the run has no trained weights yet (no best/)")
    data = prepare_data(config)
    if config.train.refit:
        if not (run_dir / METRICS_FILE).is_file():
            raise ConfigError(f"{run_dir}: the run has not finished its refit yet (no {METRICS_FILE})")
        model = build_model(data.dataset, data.split.train, config.model)
        tf.train.Checkpoint(model=model).read(str(run_dir / REFIT_DIR / "weights")).expect_partial()
        return config, data, model
    model = build_model(data.dataset, data.fit.train, config.model)
    tf.train.Checkpoint(model=model).read(str(run_dir / "best" / "weights")).expect_partial()
    return config, data, model
