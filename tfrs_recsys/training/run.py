"""``tfrs-recsys train``: one experiment from a config into a run directory.

(Over 450 lines: a run directory's whole life, train, checkpoints, resume,
refit, load and evaluate, which read and write the same files.)

Run directory layout:

- ``config.toml``: the resolved config (file + ``--set`` overrides);
- ``preprocessing/``: the fitted preprocessing of the early-stopped model
  (vocabularies, normalisation statistics, text tables, item frequencies,
  fitted from the train split minus validation); ``refit/preprocessing/`` the
  refit's, fitted from the whole train split;
- ``history.csv``: Keras progress per epoch (loss, validation metrics, seconds);
- ``tensorboard/``: TensorBoard logs;
- ``checkpoints/``: the model, optimizer and early-stopping state after every
  epoch (``--resume`` continues from the latest one after a crash or a kill);
- ``best/``: the weights of the best validation epoch;
- ``refit/``: with ``train.refit``, the weights of a fresh model trained on the
  whole train split for the best epoch count (the model that is evaluated and
  exported);
- ``members/<k>/``: with ``train.ensemble = K > 1``, members 1 .. K-1, each a
  run directory of its own (seed ``train.seed + k``); the run's own model is
  member 0 and the evaluated model is their sum
  (:class:`~tfrs_recsys.models.ensemble.EnsembleModel`);
- ``metrics.json``: holdout metrics of the best weights (the protocol of
  docs/evaluation.md), validation history, timings, and ``holdout_seed_metric``
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
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import tensorflow as tf

from tfrs_recsys.atomic import write_json_atomic, write_text_atomic
from tfrs_recsys.config import ExperimentConfig, config_matches, load_config
from tfrs_recsys.data.dataset import RecDataset
from tfrs_recsys.data.loading import load_dataset
from tfrs_recsys.data.splits import Split, carve_validation, make_split
from tfrs_recsys.errors import ConfigError
from tfrs_recsys.evaluation.protocol import EvaluationResult, EvaluationTask
from tfrs_recsys.evaluation.protocol import evaluate as evaluate_scorer
from tfrs_recsys.evaluation.seed_metric import seed_metric
from tfrs_recsys.features.columns import id_only_sides
from tfrs_recsys.features.preprocessing import Preprocessing, fit_preprocessing
from tfrs_recsys.models.ensemble import EnsembleModel
from tfrs_recsys.models.factory import build_model, training_dataset
from tfrs_recsys.recommender import Recommender, probability_fn
from tfrs_recsys.training.epoch_line import EpochLine

if TYPE_CHECKING:
    from tfrs_recsys.training.distributed import Distribution

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.toml"
METRICS_FILE = "metrics.json"
HISTORY_FILE = "history.csv"
REFIT_DIR = "refit"
CHECKPOINTS_DIR = "checkpoints"
MEMBERS_DIR = "members"
PREPROCESSING_DIR = "preprocessing"


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


class _EarlyStoppingState(tf.Module):
    """What must survive a kill: epochs done, best score, its epoch, patience used,
    and the number of batches in an epoch."""

    def __init__(self) -> None:
        super().__init__()
        self.epochs_done = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.epoch_batches = tf.Variable(0, dtype=tf.int64, trainable=False)
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
        epoch_steps: int | None = None,
    ) -> None:
        super().__init__()
        self.epoch_steps = epoch_steps
        self.task = task
        self.monitor = monitor
        self.patience = patience
        self.state = state
        self.best_checkpoint = best_checkpoint
        self.best_prefix = best_prefix
        self._epoch_start = 0.0
        self._batches = 0

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        self._epoch_start = time.perf_counter()
        self._batches = self.epoch_steps or 0

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        logs = logs if logs is not None else {}
        self.state.epoch_batches.assign(self._batches)
        result = evaluate_scorer(self.model.scorer(), self.task)
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


class CountingValidationCheckpoint(ValidationCheckpoint):
    """:class:`ValidationCheckpoint` that counts an epoch's batches (its length is
    unknown before the first epoch of a one-process fit). Under a strategy the
    length is known, and ``ParameterServerStrategy`` refuses batch-level callbacks."""

    def on_train_batch_end(self, batch: int, logs=None) -> None:
        self._batches += 1


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
    kept = lines[:1] + [
        line
        for line in lines[1:]
        if line.split(",", 1)[0].strip().isdigit() and int(line.split(",", 1)[0]) < epochs
    ]
    if len(kept) != len(lines):
        write_text_atomic(path, "".join(kept))


def resumed_pipeline(
    pipeline: tf.data.Dataset, epochs_done: int, epoch_batches: int
) -> tf.data.Dataset:
    """``pipeline`` set up to continue after ``epochs_done`` epochs as if never stopped.

    Two things make an uninterrupted run's later epochs what they are, and a
    resumed run reproduces both:

    - The training pipelines draw each epoch's seed (shuffle order, sampled
      negatives) when Keras starts iterating them, once per epoch, from a
      sequence fixed by ``train.seed``. Starting (and dropping) one iterator
      per finished epoch puts the resumed run on its next epoch's seed.
    - Keras learns the length of a pipeline of unknown size in the first
      epoch of a ``fit``; that epoch's closing end-of-data call also advances
      the optimizer's step counter (Adam's bias correction reads it). An
      uninterrupted run pays this once, in epoch 1; the resumed ``fit`` is
      told the epoch length (``epoch_batches``, checkpointed) so that it does
      not pay it a second time.

    Args:
        pipeline: The training pipeline, as built for a fresh run.
        epochs_done: Epochs in the checkpoint the run resumes from.
        epoch_batches: Batches per epoch, as counted before the kill (0: unknown,
            from a checkpoint that predates the count).
    """
    if epoch_batches > 0:
        pipeline = pipeline.apply(tf.data.experimental.assert_cardinality(epoch_batches))
    for _ in range(epochs_done):
        iter(pipeline)
    return pipeline


def optimizer_for(config: ExperimentConfig) -> tf.keras.optimizers.Optimizer:
    """``train.optimizer`` at ``train.learning_rate``."""
    from tfrs_recsys.training.optimizers import make_optimizer

    return make_optimizer(config.train.optimizer, config.train.learning_rate)


@dataclasses.dataclass(frozen=True)
class TrainedRun:
    """A trained run: its directory, config, data, fitted preprocessing and model.

    Attributes:
        run_dir: The run directory.
        config: The run's config (``config.toml``).
        data: The dataset and its splits.
        preprocessing: What the model's towers were built from (fitted from
            the train positives the model was trained on).
        model: The final model: the refit when ``train.refit``, else the best
            validation epoch's weights.
        metrics: ``metrics.json``'s content (holdout metrics, timings, ...).
    """

    run_dir: Path
    config: ExperimentConfig
    data: PreparedData
    preprocessing: Preprocessing
    model: tf.keras.Model
    metrics: dict[str, Any]


def train(
    config: ExperimentConfig | str | Path,
    run_dir: str | Path,
    *,
    resume: bool = False,
    verbose: int = 2,
) -> TrainedRun | None:
    """Trains ``config`` into ``run_dir``; returns the trained run.

    A run can be continued from any point: ``resume`` picks up after the
    latest checkpointed epoch (or from the start, for a run killed before its
    first checkpoint) and trains to the same weights as a run that was never
    stopped. A run that fails with an exception before its first checkpoint
    leaves nothing behind: the run directory is removed (its contents, if the
    directory existed before) and the exception says so in a note.

    Args:
        config: The experiment, or a shipped config's name or a TOML path
            (:func:`~tfrs_recsys.config.load_config`).
        run_dir: Output directory; must be new or empty unless ``resume``.
        resume: Continue the run in ``run_dir`` (its ``config.toml`` must
            equal ``config``).
        verbose: 0: silent; otherwise one printed line per epoch.

    Returns:
        The run; None in a ``multi_worker`` worker that is not the chief
        (it writes nothing to ``run_dir``; docs/distributed.md). A ``worker``
        or ``ps`` task of ``parameter_server`` serves and does not return.

    Raises:
        ConfigError: ``run_dir`` is a file or holds another run (without
            ``resume``), or ``resume`` finds no run or a config that differs
            in more than ``train.strategy`` / ``train.shard_min_bytes``.
    """
    if not isinstance(config, ExperimentConfig):
        config = load_config(config)
    if config.data.stream:  # streamed training hook: tfrs_recsys.training.streamed
        from tfrs_recsys.training.streamed import check_streamed_config

        check_streamed_config(config)
    run_dir = Path(run_dir)
    distribution = None
    if config.train.strategy != "default":  # first: before any other TensorFlow op
        from tfrs_recsys.training.distributed import scratch_directory, start_strategy

        distribution = start_strategy(config)
        if not distribution.is_chief:
            # A worker of multi_worker: its checkpoints go to a scratch directory,
            # it resumes from the chief's (docs/distributed.md).
            with scratch_directory(distribution.role, run_dir) as scratch:
                write_text_atomic(scratch / CONFIG_FILE, config.to_toml())
                if config.data.stream:  # streamed training hook: tfrs_recsys.training.streamed
                    from tfrs_recsys.training.streamed import train_streamed

                    train_streamed(
                        config, scratch, 0, distribution=distribution, restore_dir=run_dir
                    )
                else:
                    _train_in(config, scratch, 0, distribution=distribution, restore_dir=run_dir)
            return None
    config_path = run_dir / CONFIG_FILE
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"{run_dir}: exists and is not a directory (choose a new --run-dir)")
    if resume:
        if not config_path.is_file():
            raise ConfigError(f"{run_dir}: nothing to resume (no {CONFIG_FILE})")
        recorded = config_path.read_text(encoding="utf-8")
        if not config_matches(recorded, config, any_placement=True):
            raise ConfigError(
                f"{run_dir}: --resume with a config different from the run's {CONFIG_FILE}; "
                "resume with the same config (or no --config: the run's own is used); only "
                "train.strategy and train.shard_min_bytes may change"
            )
        if not config_matches(recorded, config):  # another strategy: record the new one
            write_text_atomic(config_path, config.to_toml())
    elif run_dir.exists() and any(run_dir.iterdir()):
        if not config_path.is_file():
            raise ConfigError(
                f"{run_dir}: is not empty and holds no run (no {CONFIG_FILE}); "
                "choose a new or empty --run-dir"
            )
        state = "a run" if has_checkpoint(run_dir) else "a run stopped before its first checkpoint"
        raise ConfigError(
            f"{run_dir}: already holds {state} (use --resume to continue it, or a new --run-dir)"
        )
    created = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        if not resume:
            write_text_atomic(config_path, config.to_toml())
        if config.data.stream:  # streamed training hook: tfrs_recsys.training.streamed
            from tfrs_recsys.training.streamed import train_streamed

            return train_streamed(config, run_dir, verbose, distribution=distribution)
        return _train_in(config, run_dir, verbose, distribution=distribution)
    except BaseException as exc:
        if has_checkpoint(run_dir):
            exc.add_note(
                f"{run_dir} keeps its last checkpoint; "
                f"`tfrs-recsys train --run-dir {run_dir} --resume` continues the run"
            )
        else:
            _discard_run(run_dir, created)
            exc.add_note(f"{run_dir} was removed: the run stopped before its first checkpoint")
        raise


@dataclasses.dataclass(frozen=True)
class ClusterFit:
    """How :func:`fit_early_stopping` trains under a ``tf.distribute`` strategy.

    Attributes:
        fit_input: ``initial_epoch -> (input, steps_per_epoch)``: what
            ``Model.fit`` iterates from that epoch on (a ``DatasetCreator``).
        restore_dir: The run directory whose checkpoint is resumed (the
            chief's, which every worker reads).
    """

    fit_input: Any
    restore_dir: Path


@dataclasses.dataclass(frozen=True)
class EarlyStopped:
    """What :func:`fit_early_stopping` leaves: the checkpointed state, where this call
    started, and its training seconds; the model holds the best epoch's weights."""

    state: _EarlyStoppingState
    initial_epoch: int
    train_s: float


def fit_early_stopping(
    model: tf.keras.Model,
    pipeline: tf.data.Dataset,
    validation_task: EvaluationTask,
    config: ExperimentConfig,
    run_dir: Path,
    verbose: int,
    *,
    epoch_batches: int | None = None,
    cluster: ClusterFit | None = None,
) -> EarlyStopped:
    """Fits ``model`` with validation after every epoch, early stopping and checkpoints.

    Continues from the run directory's latest checkpoint if there is one (the
    epoch length for the resumed pipeline is ``epoch_batches``, or the count
    checkpointed with the state), and ends with the best epoch's weights in
    ``model``. With ``cluster`` (a ``tf.distribute`` strategy other than the
    default), ``pipeline`` is unused: the input comes from ``cluster``, the
    checkpoint is restored from ``cluster.restore_dir``, and this process
    writes to ``run_dir`` (a worker's own scratch directory but on the chief).
    """
    state = _EarlyStoppingState()
    checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer, state=state)
    manager = tf.train.CheckpointManager(checkpoint, run_dir / CHECKPOINTS_DIR, max_to_keep=2)
    best_checkpoint = tf.train.Checkpoint(model=model)
    best_prefix = run_dir / "best" / "weights"
    initial_epoch = 0
    latest = (
        manager.latest_checkpoint
        if cluster is None
        else tf.train.latest_checkpoint(str(cluster.restore_dir / CHECKPOINTS_DIR))
    )
    resume = latest is not None
    if resume:
        checkpoint.restore(latest)
        initial_epoch = int(state.epochs_done.numpy())
        if cluster is None:
            known = int(state.epoch_batches.numpy()) if epoch_batches is None else epoch_batches
            pipeline = resumed_pipeline(pipeline, initial_epoch, known)
        logger.info("resuming %s after epoch %d", run_dir, initial_epoch)
    # Rows of epochs after the checkpoint (all rows, without one) are redone.
    _truncate_history(run_dir / HISTORY_FILE, initial_epoch)
    stopped_early = bool(
        resume and config.train.patience and int(state.wait.numpy()) >= config.train.patience
    )

    fit_input, steps = pipeline, None
    if cluster is not None and initial_epoch < config.train.epochs:
        fit_input, steps = cluster.fit_input(initial_epoch)
    validation = ValidationCheckpoint if cluster is not None else CountingValidationCheckpoint
    callbacks = [
        validation(
            validation_task,
            config.train.monitor,
            config.train.patience,
            state,
            best_checkpoint,
            best_prefix,
            epoch_steps=steps,
        ),
        tf.keras.callbacks.CSVLogger(str(run_dir / HISTORY_FILE), append=resume),
        tf.keras.callbacks.TensorBoard(
            str(run_dir / "tensorboard"), write_graph=False, profile_batch=0
        ),
        EpochCheckpoint(manager),
    ]
    if verbose:
        callbacks.insert(1, EpochLine(config.train.epochs))
    fit_start = time.perf_counter()
    if initial_epoch < config.train.epochs and not stopped_early:
        model.fit(
            fit_input,
            epochs=config.train.epochs,
            initial_epoch=initial_epoch,
            steps_per_epoch=steps,
            callbacks=callbacks,
            verbose=0,  # EpochLine prints the epochs: Keras's progress bar costs a step's time
        )
    train_s = time.perf_counter() - fit_start

    best_checkpoint.read(str(best_prefix)).expect_partial()
    return EarlyStopped(state, initial_epoch, train_s)


def has_checkpoint(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds a resumable checkpoint (at least one finished epoch)."""
    return tf.train.latest_checkpoint(str(Path(run_dir) / CHECKPOINTS_DIR)) is not None


def _discard_run(run_dir: Path, created: bool) -> None:
    """Removes what a failed run wrote: the directory if it made it, else its contents."""
    if created:
        shutil.rmtree(run_dir, ignore_errors=True)
        return
    for child in run_dir.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def _train_in(
    config: ExperimentConfig,
    run_dir: Path,
    verbose: int,
    *,
    distribution: Distribution | None = None,
    restore_dir: Path | None = None,
) -> TrainedRun | None:
    """The training of :func:`train` in a checked run directory holding ``config.toml``.

    With a ``distribution`` (:mod:`tfrs_recsys.training.distributed`) the model
    trains under its strategy; a worker that is not the chief trains in a
    scratch ``run_dir``, resumes from ``restore_dir`` and returns None after the
    fit. The chief evaluates a one-process model read from the best weights.
    """
    tf.keras.utils.set_random_seed(config.train.seed)
    start = time.perf_counter()
    data = prepare_data(config)
    for side in id_only_sides(data.dataset.schema, config.model):
        logger.warning(
            "%s: the %s side has no feature columns; its tower reads the %s id only",
            data.dataset.schema.name,
            side,
            side,
        )
    preprocessing = fit_preprocessing(data.dataset, data.fit.train, config.model)
    preprocessing.save(run_dir / PREPROCESSING_DIR)
    if distribution is None:
        model = build_model(config.model, preprocessing, data.dataset)
        model.compile(optimizer=optimizer_for(config))
        pipeline, cluster = training_dataset(model, data.dataset, data.fit.train, config), None
    else:
        with distribution.scope():
            model = build_model(config.model, preprocessing, data.dataset)
            model.compile(optimizer=optimizer_for(config))
        pipeline, cluster = (
            None,
            _cluster_fit(model, data, config, distribution, restore_dir or run_dir),
        )
    validation_task = EvaluationTask.build(
        data.dataset, data.fit.train, data.fit.holdout, split_name="validation"
    )

    fitted = fit_early_stopping(
        model, pipeline, validation_task, config, run_dir, verbose, cluster=cluster
    )
    state, initial_epoch, train_s = fitted.state, fitted.initial_epoch, fitted.train_s
    best_epoch = int(state.best_epoch.numpy())
    distributed = None
    if distribution is not None:
        if not distribution.is_chief:
            return None
        from tfrs_recsys.training.distributed import sharded_variables

        distributed = {**distribution.describe(), "sharded_variables": sharded_variables(model)}
        # Evaluated and returned: a one-process model of the best weights, as load_run builds.
        model = build_model(config.model, preprocessing, data.dataset)
        read_weights(model, run_dir / "best" / "weights")
    refit = None
    if config.train.refit and best_epoch > 0:
        model, preprocessing, refit = _refit(config, data, best_epoch, run_dir, verbose)
    holdout_task = EvaluationTask.build(
        data.dataset, data.split.train, data.split.holdout, split_name=data.split.name
    )
    ensemble = None
    if config.train.ensemble > 1:
        model, ensemble = _train_members(config, run_dir, model, holdout_task, verbose)
    result = evaluate_scorer(model.scorer(), holdout_task)
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
        "ensemble": ensemble,
        "total_s": round(time.perf_counter() - start, 2),
        "holdout": result.to_dict(),
        "holdout_seed_metric": seed,
    }
    if distributed is not None:
        metrics["distributed"] = distributed
    write_json_atomic(run_dir / METRICS_FILE, metrics)
    return TrainedRun(
        run_dir=run_dir,
        config=config,
        data=data,
        preprocessing=preprocessing,
        model=model,
        metrics=metrics,
    )


def epoch_examples(config: ExperimentConfig, dataset: RecDataset, train: pd.DataFrame) -> int:
    """Examples of one epoch of :func:`~tfrs_recsys.models.factory.training_dataset`."""
    model = config.model
    if model.kind == "retrieval" and model.loss == "catalog_sigmoid":
        return int(train["user_id"].nunique())
    if model.kind == "retrieval" and model.loss == "softmax":
        return len(train)
    return len(train) + int(train["user_id"].nunique()) * model.negatives_per_user


def _cluster_fit(
    model: tf.keras.Model,
    data: PreparedData,
    config: ExperimentConfig,
    distribution: Distribution,
    restore_dir: Path,
) -> ClusterFit:
    """The input of a strategy's fit: global batches of the fit split, each replica's share."""
    batch_size = config.train.batch_size
    examples = epoch_examples(config, data.dataset, data.fit.train)
    steps = distribution.steps_per_epoch(examples, batch_size)

    def make_dataset(group: int, replica: tuple[int, int]) -> tf.data.Dataset:
        grouped = dataclasses.replace(
            config, train=dataclasses.replace(config.train, batch_size=group)
        )
        return training_dataset(
            model, data.dataset, data.fit.train, grouped, drop_remainder=True, replica=replica
        )

    return ClusterFit(
        fit_input=distribution.fit_input(make_dataset, batch_size, steps),
        restore_dir=restore_dir,
    )


def member_config(config: ExperimentConfig, k: int) -> ExperimentConfig:
    """Member ``k`` (1-based after the run's own model, 0) of ``config``'s ensemble."""
    return dataclasses.replace(
        config,
        name=f"{config.name}-member{k}",
        train=dataclasses.replace(config.train, seed=config.train.seed + k, ensemble=1),
    )


def _train_members(
    config: ExperimentConfig,
    run_dir: Path,
    model: tf.keras.Model,
    holdout_task: EvaluationTask,
    verbose: int,
) -> tuple[EnsembleModel, dict[str, Any]]:
    """Trains (or finds finished) members 1 .. K-1 under ``members/``; the ensemble and its record.

    Each member is a run directory of its own (``members/<k>``, seed ``seed +
    k``), so a killed ensemble resumes member by member like any run.
    """
    members, record = [model], []
    for k in range(config.train.ensemble):
        if k > 0:
            member_dir = run_dir / MEMBERS_DIR / str(k)
            if (member_dir / METRICS_FILE).is_file():
                member = load_run(member_dir)
            else:
                logger.info("training ensemble member %d of %d", k + 1, config.train.ensemble)
                resume = (member_dir / CONFIG_FILE).is_file()
                member = train(member_config(config, k), member_dir, resume=resume, verbose=verbose)
            members.append(member.model)
            train_s = member.metrics.get("total_s")
        else:
            train_s = None
        alone = evaluate_scorer(members[-1].scorer(), holdout_task).metrics
        record.append(
            {
                "seed": config.train.seed + k,
                "total_s": train_s,
                "holdout": {key: float(alone[key]) for key in ("recall@10", "ndcg@10")},
            }
        )
    return EnsembleModel(members), {"members": config.train.ensemble, "runs": record}


def model_seed_metric(model: Recommender, data: PreparedData) -> float | None:
    """The notebooks' seed metric of ``model`` on ``data``'s holdout, or None if it gives no probabilities."""
    probabilities = probability_fn(model)
    if probabilities is None:
        return None
    return float(seed_metric(probabilities, data.dataset, data.split.holdout))


def _refit(
    config: ExperimentConfig, data: PreparedData, epochs: int, run_dir: Path, verbose: int
) -> tuple[tf.keras.Model, Preprocessing, dict[str, Any]]:
    """A fresh model, its preprocessing refitted on the whole train split, trained for ``epochs`` epochs."""
    logger.info("refitting on the whole train split for %d epochs", epochs)
    tf.keras.utils.set_random_seed(config.train.seed)
    preprocessing = fit_preprocessing(data.dataset, data.split.train, config.model)
    preprocessing.save(run_dir / REFIT_DIR / PREPROCESSING_DIR)
    model = build_model(config.model, preprocessing, data.dataset)
    model.compile(optimizer=optimizer_for(config))
    pipeline = training_dataset(model, data.dataset, data.split.train, config)
    start = time.perf_counter()
    model.fit(pipeline, epochs=epochs, callbacks=[EpochLine(epochs)] if verbose else [], verbose=0)
    train_s = time.perf_counter() - start
    tf.train.Checkpoint(model=model).write(str(run_dir / REFIT_DIR / "weights"))
    return (
        model,
        preprocessing,
        {
            "epochs": epochs,
            "train_s": round(train_s, 2),
            "examples_per_s": round(len(data.split.train) * epochs / train_s, 1)
            if train_s > 0
            else None,
        },
    )


def load_run(run_dir: str | Path) -> TrainedRun:
    """Loads a trained run from its directory: config, fitted preprocessing, final weights.

    The model is built from the run's saved preprocessing (nothing is refitted)
    on the dataset's feature tables; the dataset is read for the tables and the
    splits (evaluation and export need the train positives).

    Raises:
        ConfigError: ``run_dir`` is not a run directory, or training has not
            finished writing what the final model needs.
    """
    run_dir = Path(run_dir)
    config_path = run_dir / CONFIG_FILE
    if not config_path.is_file():
        raise ConfigError(f"{run_dir}: not a run directory (no {CONFIG_FILE})")
    config = load_config(config_path)
    if config.data.stream:  # streamed run hook: tfrs_recsys.training.streamed
        from tfrs_recsys.training.streamed import load_streamed_run

        return load_streamed_run(run_dir, config)
    if not (run_dir / "best").is_dir():
        raise ConfigError(f"{run_dir}: the run has no trained weights yet (no best/)")
    if config.train.refit:
        if not (run_dir / METRICS_FILE).is_file():
            raise ConfigError(
                f"{run_dir}: the run has not finished its refit yet (no {METRICS_FILE})"
            )
        weights, fitted = run_dir / REFIT_DIR / "weights", run_dir / REFIT_DIR / PREPROCESSING_DIR
    else:
        weights, fitted = run_dir / "best" / "weights", run_dir / PREPROCESSING_DIR
    preprocessing = Preprocessing.load(fitted)
    data = prepare_data(config)
    model = build_model(config.model, preprocessing, data.dataset)
    read_weights(model, weights)
    if config.train.ensemble > 1:
        members = [model]
        for k in range(1, config.train.ensemble):
            member_dir = run_dir / MEMBERS_DIR / str(k)
            if not (member_dir / METRICS_FILE).is_file():
                raise ConfigError(
                    f"{run_dir}: ensemble member {k + 1} of {config.train.ensemble} has not "
                    f"finished (no {member_dir / METRICS_FILE}); continue the run with --resume"
                )
            members.append(load_run(member_dir).model)
        model = EnsembleModel(members)
    metrics = read_metrics(run_dir)
    return TrainedRun(
        run_dir=run_dir,
        config=config,
        data=data,
        preprocessing=preprocessing,
        model=model,
        metrics=metrics,
    )


def read_weights(model: tf.keras.Model, weights: Path) -> None:
    """Loads a run's checkpointed ``weights`` into ``model``; a one-line ConfigError if damaged."""
    try:
        tf.train.Checkpoint(model=model).read(str(weights)).expect_partial()
    except (tf.errors.OpError, ValueError, IndexError, AssertionError) as exc:
        raise ConfigError(
            f"{weights}: the run's weights cannot be read ({_first_line(exc)}); "
            "the run directory is damaged: train the run again into a new --run-dir"
        ) from exc


def read_metrics(run_dir: Path) -> dict[str, Any]:
    """The run's ``metrics.json`` ({} before it is written); a one-line ConfigError if damaged."""
    metrics_path = run_dir / METRICS_FILE
    if not metrics_path.is_file():
        return {}
    try:
        return json.loads(metrics_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(
            f"{metrics_path}: not the JSON train writes ({_first_line(exc)}); "
            "the run directory is damaged: train the run again into a new --run-dir"
        ) from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def evaluate(
    model: TrainedRun | Recommender,
    dataset: RecDataset | None = None,
    split: Split | None = None,
    **options: Any,
) -> EvaluationResult:
    """Evaluates a run (on its holdout) or any recommender (on ``split``) with the protocol.

    Args:
        model: A :class:`TrainedRun`, or any :class:`~tfrs_recsys.recommender.Recommender`.
        dataset: With a recommender: the dataset it ranks.
        split: With a recommender: train positives (masked) and holdout.
        **options: :func:`tfrs_recsys.evaluation.protocol.evaluate`'s options
            (``ks``, ``curve_max_k``, ``batch_size``).

    Returns:
        recall, precision, hit rate and NDCG at 10 and 50, coverage@10, the
        recall curve and per-segment figures (``result.metrics``).
    """
    if isinstance(model, TrainedRun):
        if dataset is not None or split is not None:
            raise ConfigError(
                "evaluate(run): the run's own dataset and holdout are used; pass no dataset or split"
            )
        dataset, split, model = model.data.dataset, model.data.split, model.model
    elif dataset is None or split is None:
        raise ConfigError(
            "evaluate(recommender, dataset, split): a recommender needs the dataset and the split"
        )
    task = EvaluationTask.from_split(dataset, split)
    return evaluate_scorer(model.scorer(), task, **options)
