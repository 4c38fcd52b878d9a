"""One tuning trial: a config trained on train minus validation, scored on validation.

A trial sees the same data a run of :func:`tfrs_recsys.training.run.train`
sees before its refit: the model is fitted on the train split minus the
validation carve (``data.validation_fraction``) and scored on that carve after
every epoch; early stopping (``train.patience``) ends it. The protocol's holdout
is not an argument: it cannot reach the choice. Nothing is written to disk.

The fitted preprocessing is shared by trials whose configs read the data the
same way (feature set, text encoder, id mode, numeric buckets, user histories), so a study fits
it once per distinct setting.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from typing import Any

import tensorflow as tf

from tfrs_recsys.config import ExperimentConfig
from tfrs_recsys.evaluation.protocol import EvaluationTask
from tfrs_recsys.evaluation.protocol import evaluate as evaluate_scorer
from tfrs_recsys.features.preprocessing import Preprocessing, fit_preprocessing
from tfrs_recsys.models.factory import build_model, training_dataset
from tfrs_recsys.training.run import PreparedData, optimizer_for

#: ``report(epoch, value)`` after each epoch (1-based); returns True to stop the trial.
EpochReport = Callable[[int, float], bool]


@dataclasses.dataclass(frozen=True)
class TrialResult:
    """What a trial measured on validation.

    Attributes:
        best: The best validation value of the monitored metric.
        best_epoch: The epoch (1-based) that reached it.
        epochs_run: Epochs trained (early stopping or pruning may end it).
        metrics: Validation recall@10, ndcg@10 and recall@50 of the best epoch.
        seconds: Wall time of the trial (training and validation).
        stopped_by_report: Whether ``report`` ended it (pruned).
        stopped_at_deadline: Whether the study's time budget ended it (its
            value is that of the epochs it had).
        best_se: The standard error of ``best`` over the validation users.
    """

    best: float
    best_epoch: int
    epochs_run: int
    metrics: dict[str, float]
    seconds: float
    stopped_by_report: bool
    stopped_at_deadline: bool = False
    best_se: float = 0.0


class TrialData:
    """Prepared data and a cache of fitted preprocessing, shared by a study's trials."""

    def __init__(self, data: PreparedData) -> None:
        self.data = data
        self.task = EvaluationTask.build(
            data.dataset, data.fit.train, data.fit.holdout, split_name="validation"
        )
        self._preprocessing: dict[tuple[Any, ...], Preprocessing] = {}

    def preprocessing(self, config: ExperimentConfig) -> Preprocessing:
        model = config.model
        key = (
            model.feature_set,
            model.text_encoder,
            model.text_model,
            model.text_trainable,
            model.id_mode,
            model.numeric_buckets,
            model.user_history,
        )
        if key not in self._preprocessing:
            self._preprocessing[key] = fit_preprocessing(
                self.data.dataset, self.data.fit.train, model
            )
        return self._preprocessing[key]


class _Validate(tf.keras.callbacks.Callback):
    def __init__(
        self,
        trial: TrialData,
        config: ExperimentConfig,
        report: EpochReport | None,
        deadline: float | None = None,
    ):
        super().__init__()
        self.deadline = deadline
        self.stopped_at_deadline = False
        self.trial = trial
        self.monitor = config.train.monitor
        self.patience = config.train.patience
        self.report = report
        self.best = -math.inf
        self.best_epoch = 0
        self.best_metrics: dict[str, float] = {}
        self.best_se = 0.0
        self.epochs_run = 0
        self.wait = 0
        self.stopped_by_report = False

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        result = evaluate_scorer(self.model.scorer(), self.trial.task)
        score = float(result.metrics[self.monitor])
        self.epochs_run = epoch + 1
        if not math.isfinite(score):
            score = -math.inf
        if score > self.best:
            self.best, self.best_epoch, self.wait = score, epoch + 1, 0
            self.best_se = float(result.standard_errors.get(self.monitor, 0.0))
            self.best_metrics = {
                key: float(result.metrics[key]) for key in ("recall@10", "ndcg@10", "recall@50")
            }
        else:
            self.wait += 1
            if self.patience and self.wait >= self.patience:
                self.model.stop_training = True
        if self.report is not None and self.report(epoch + 1, score):
            self.stopped_by_report = True
            self.model.stop_training = True
        elif (
            not self.model.stop_training
            and self.deadline is not None
            and time.perf_counter() >= self.deadline
        ):
            self.stopped_at_deadline = True
            self.model.stop_training = True


def run_trial(
    trial: TrialData,
    config: ExperimentConfig,
    report: EpochReport | None = None,
    *,
    deadline: float | None = None,
) -> TrialResult:
    """Trains ``config`` on ``trial``'s fit split; returns its best validation score.

    Seeds, data and epoch length as :func:`tfrs_recsys.training.run.train`
    has them before its refit; the epochs' shuffles differ (see the code), so a
    trial's value and best epoch are close to, not equal to, the run's.

    ``deadline`` (a ``time.perf_counter()`` value) ends the trial after the
    first epoch that finishes past it, so one slow trial cannot overrun a
    study's time budget by more than an epoch.
    """
    start = time.perf_counter()
    tf.keras.backend.clear_session()
    tf.keras.utils.set_random_seed(config.train.seed)
    data = trial.data
    model = build_model(config.model, trial.preprocessing(config), data.dataset)
    pipeline = training_dataset(model, data.dataset, data.fit.train, config)
    # One endless iterator with a known epoch length runs the same epochs about
    # a third faster than Keras' new iterator per epoch (measured on ML-100K);
    # the epochs' shuffles then differ from a run's, their number does not.
    steps = int(pipeline.reduce(0, lambda count, _: count + 1))
    model.compile(optimizer=optimizer_for(config), steps_per_execution=min(steps, 16))
    callback = _Validate(trial, config, report, deadline)
    model.fit(
        pipeline.repeat(),
        epochs=config.train.epochs,
        steps_per_epoch=steps,
        callbacks=[callback],
        verbose=0,
    )
    return TrialResult(
        best=callback.best,
        best_epoch=callback.best_epoch,
        epochs_run=callback.epochs_run,
        metrics=callback.best_metrics,
        seconds=time.perf_counter() - start,
        stopped_by_report=callback.stopped_by_report,
        stopped_at_deadline=callback.stopped_at_deadline,
        best_se=callback.best_se,
    )
