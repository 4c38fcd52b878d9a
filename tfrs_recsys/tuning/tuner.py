"""``tfrs-recsys tune``: an Optuna search for one model's config on the validation carve.

A study searches :mod:`tfrs_recsys.tuning.space` with Optuna's TPE sampler
(seeded) and its median pruner: after every epoch a trial reports its
validation value, and a trial below the median of earlier trials at the same
epoch stops there. Each trial is :func:`tfrs_recsys.tuning.trial.run_trial`:
trained on train minus the validation carve, scored on the carve; the
protocol's holdout is never read. The first trials are the configs known
before the search: the statistics-based default
(:func:`~tfrs_recsys.tuning.defaults.default_config`) and the shipped config
for the dataset, if there is one, so the study's best is never worse on
validation than either.

Outputs, next to the config it writes (``--out configs/NAME.toml``), in
``configs/NAME.tuning/``: ``journal.log`` (Optuna's journal: the study, which
``--resume`` continues), ``study.json`` (what the study tunes: data, model,
metric, seed, base config), ``trials.csv`` (one row per trial: state, value,
parameters, epochs, seconds), rewritten after every trial, and ``result.json``
(the best trial, trial counts, seconds) at the end. The config is
written last, atomically: a complete config file for ``tfrs-recsys train``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
import warnings
from pathlib import Path
from typing import Any

import tensorflow as tf

from tfrs_recsys.atomic import write_json_atomic, write_text_atomic
from tfrs_recsys.config import ExperimentConfig
from tfrs_recsys.errors import ConfigError
from tfrs_recsys.progress import logger as progress
from tfrs_recsys.training.run import prepare_data
from tfrs_recsys.tuning.space import FixedParams, params_of, suggest_config
from tfrs_recsys.tuning.trial import TrialData, TrialResult, run_trial

logger = logging.getLogger(__name__)

JOURNAL_FILE = "journal.log"
STUDY_FILE = "study.json"
TRIALS_FILE = "trials.csv"
RESULT_FILE = "result.json"

MONITORS = ("recall@10", "ndcg@10", "recall@50", "ndcg@50")
#: Trials (known configs included) the TPE sampler draws at random before it models them.
STARTUP_TRIALS = 5
#: Trials of the median pruner that are never pruned, and epochs before it prunes.
PRUNER_STARTUP_TRIALS = 3
PRUNER_WARMUP_EPOCHS = 3


@dataclasses.dataclass(frozen=True)
class TuneResult:
    """A finished study.

    Attributes:
        config: The selected trial's config (written to ``out``).
        out: The config file written.
        study_dir: The study's directory (journal, trials table).
        best_value: The selected trial's validation value of ``metric``.
        best_trial: Its number.
        trials: Trials in the study, by state (``complete``, ``pruned``, ``fail``).
        seconds: Wall time of the study's trials (this call and earlier ones).
        metric: The validation metric searched.
    """

    config: ExperimentConfig
    out: Path
    study_dir: Path
    best_value: float
    best_trial: int
    trials: dict[str, int]
    seconds: float
    metric: str
    selection: str = ""

    def summary(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "metric": self.metric,
            "best_validation": self.best_value,
            "best_trial": self.best_trial,
            "trials": self.trials,
            "tuning_s": round(self.seconds, 1),
            "selection": self.selection,
        }


def import_optuna():
    """Optuna, or a one-line error saying how to install it."""
    try:
        import optuna
    except ImportError:
        raise ConfigError(
            "tuning needs optuna, which is not installed: pip install 'tfrs_recsys[tune]'"
        ) from None
    return optuna


def study_dir_of(out: Path) -> Path:
    """``configs/NAME.toml`` -> ``configs/NAME.tuning``."""
    return out.with_name(out.stem + ".tuning")


def tune(
    base: ExperimentConfig,
    out: str | Path,
    *,
    known: dict[str, ExperimentConfig] | None = None,
    trials: int | None = None,
    budget_s: float | None = None,
    seed: int = 0,
    resume: bool = False,
) -> TuneResult:
    """Searches configs around ``base`` on its data's validation carve; writes the best to ``out``.

    Args:
        base: The model and data to tune: its data section, model kind, feature
            set and text encoder are kept; the space's keys are searched.
        out: The config file to write (a ``.toml`` path).
        known: Configs tried first, by a name for the progress lines (the
            statistics-based default, the shipped config).
        trials: Trials to run in all (those of an earlier call included).
        budget_s: Seconds of trials in all (those of an earlier call included);
            the trial running when it is spent finishes. At least one of
            ``trials`` and ``budget_s``.
        seed: The sampler's seed (each trial trains with ``base.train.seed``).
        resume: Continue the study found next to ``out``.

    Raises:
        ConfigError: Neither ``trials`` nor ``budget_s``; ``out`` or its study
            exists (without ``resume``) or holds another study (with it).
    """
    optuna = import_optuna()
    out = Path(out)
    if trials is None and budget_s is None:
        raise ConfigError("tune needs --trials or --budget-s (or both)")
    if trials is not None and trials < 1:
        raise ConfigError(f"--trials must be at least 1, got {trials}")
    if budget_s is not None and not (math.isfinite(budget_s) and budget_s > 0):
        raise ConfigError(f"--budget-s must be a positive number of seconds, got {budget_s}")
    if out.suffix != ".toml":
        raise ConfigError(f"--out {out}: the tuned config is a .toml file")
    study_dir = study_dir_of(out)
    settings = {
        "data": dataclasses.asdict(base.data),
        "model": f"{base.model.kind}_{base.model.feature_set}",
        "metric": base.train.monitor,
        "seed": seed,
        "base": base.to_toml(),
    }
    _check_study_dir(study_dir, out, settings, resume)
    study_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(study_dir / STUDY_FILE, settings)

    progress.info("tuning %s on %s: preparing the data ...", settings["model"], base.data.source)
    data = TrialData(prepare_data(base))
    n_items = data.data.dataset.n_items
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # TPE's ``group`` (conditional parameters: the temperature only with
    # normalised vectors, ...) is marked experimental; it is what the space needs.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(study_dir / JOURNAL_FILE))
    )
    study = optuna.create_study(
        study_name="tune",
        storage=storage,
        direction="maximize",
        load_if_exists=True,
        sampler=optuna.samplers.TPESampler(
            seed=seed, multivariate=True, group=True, n_startup_trials=STARTUP_TRIALS
        ),
        pruner=optuna.pruners.MedianPruner(
            n_startup_trials=PRUNER_STARTUP_TRIALS, n_warmup_steps=PRUNER_WARMUP_EPOCHS
        ),
    )
    state = optuna.trial.TrialState
    for old in study.get_trials(deepcopy=False, states=(state.RUNNING,)):
        # A trial a killed study left running is failed and tried again.
        study.tell(old.number, state=state.FAIL)
        study.enqueue_trial(old.params, user_attrs={"origin": "rerun after a kill"})
    if not study.trials:
        for name, config in (known or {}).items():
            study.enqueue_trial(
                params_of(config, base, n_items), user_attrs={"origin": name}, skip_if_exists=True
            )

    def objective(trial) -> float:
        config = suggest_config(trial, base, n_items)

        def report(epoch: int, value: float) -> bool:
            trial.report(value if math.isfinite(value) else 0.0, epoch)
            return trial.should_prune()

        result = run_trial(data, config, report, deadline=deadline)
        _record(trial, result)
        if result.stopped_by_report:
            raise optuna.TrialPruned()
        return result.best if math.isfinite(result.best) else 0.0

    def after_trial(study, trial) -> None:
        _write_trials(study, study_dir / TRIALS_FILE)
        _progress_line(study, trial, trials)

    done = len(study.get_trials(deepcopy=False, states=(state.COMPLETE, state.PRUNED)))
    spent = _seconds(study)
    remaining_trials = None if trials is None else max(trials - done, 0)
    remaining_s = None if budget_s is None else max(budget_s - spent, 0.0)
    # Optuna's timeout only stops starting trials; the deadline also ends a running one.
    deadline = None if remaining_s is None else time.perf_counter() + remaining_s
    if remaining_trials != 0 and remaining_s != 0.0:
        study.optimize(
            objective,
            n_trials=remaining_trials,
            timeout=remaining_s,
            callbacks=[after_trial],
            catch=(tf.errors.ResourceExhaustedError,),
        )
    _write_trials(study, study_dir / TRIALS_FILE)
    complete = study.get_trials(deepcopy=False, states=(state.COMPLETE,))
    if not complete:
        raise ConfigError(f"{study_dir}: no trial finished; see {TRIALS_FILE} for why")
    best, selection = select_trial(study.best_trial, complete)
    config = dataclasses.replace(
        suggest_config(FixedParams(best.params), base, n_items), name=out.stem
    )
    counts = {
        "complete": len(complete),
        "pruned": len(study.get_trials(deepcopy=False, states=(state.PRUNED,))),
        "fail": len(study.get_trials(deepcopy=False, states=(state.FAIL,))),
    }
    result = TuneResult(
        config=config,
        out=out,
        study_dir=study_dir,
        best_value=float(best.value),
        best_trial=best.number,
        trials=counts,
        seconds=_seconds(study),
        metric=base.train.monitor,
        selection=selection,
    )
    write_json_atomic(study_dir / RESULT_FILE, result.summary())
    write_text_atomic(out, _header(result, base) + config.to_toml())
    return result


def select_trial(best, complete) -> tuple[Any, str]:
    """The trial whose config the study writes, and why, in words.

    The starting config (the study's first trial, the shipped config or
    ``--config``) is kept unless the best trial beats it on validation by more
    than one standard error of the validation metric over the validation users
    (the larger of the two trials'): a smaller lead is within what another draw
    of validation users could reverse, and on small data such leads have
    reversed on the holdout (docs/tuning.md).
    """
    start = next((t for t in complete if t.number == 0), None)
    if start is None or best.number == start.number:
        return best, f"trial {best.number + 1}, the best on validation"
    lead = float(best.value) - float(start.value)
    noise = max(
        float(best.user_attrs.get("validation_se", 0.0)),
        float(start.user_attrs.get("validation_se", 0.0)),
    )
    if lead <= noise:
        return start, (
            f"trial 1 (the starting config): the best, trial {best.number + 1}, led it by "
            f"{lead:.4f}, within one standard error of the validation metric ({noise:.4f})"
        )
    return best, (
        f"trial {best.number + 1}, the best on validation: it led the starting config by "
        f"{lead:.4f}, more than one standard error ({noise:.4f})"
    )


def _check_study_dir(study_dir: Path, out: Path, settings: dict[str, Any], resume: bool) -> None:
    recorded = study_dir / STUDY_FILE
    if not resume:
        for path in (out, study_dir):
            if path.exists():
                raise ConfigError(
                    f"{path}: exists (use --resume to continue its study, or choose a new --out)"
                )
        return
    if not recorded.is_file():
        return
    try:
        old = json.loads(recorded.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{recorded}: cannot be read ({exc}); choose a new --out") from None
    changed = [key for key in settings if old.get(key) != settings[key]]
    if changed:
        raise ConfigError(
            f"{recorded}: --resume with other settings than the study's ({', '.join(changed)} "
            "changed); use the same command or a new --out"
        )


def _record(trial, result: TrialResult) -> None:
    trial.set_user_attr("best_epoch", result.best_epoch)
    trial.set_user_attr("epochs_run", result.epochs_run)
    trial.set_user_attr("seconds", round(result.seconds, 2))
    trial.set_user_attr("validation_se", result.best_se)
    if result.stopped_at_deadline:
        trial.set_user_attr("stopped_at_budget", True)
    for key, value in result.metrics.items():
        trial.set_user_attr(f"validation_{key}", value)


def _seconds(study) -> float:
    return float(sum(t.user_attrs.get("seconds", 0.0) for t in study.get_trials(deepcopy=False)))


def _write_trials(study, path: Path) -> None:
    frame = study.trials_dataframe(attrs=("number", "state", "value", "params", "user_attrs"))
    write_text_atomic(path, frame.to_csv(index=False))


def _progress_line(study, trial, trials: int | None) -> None:
    attrs = trial.user_attrs
    total = f"/{trials}" if trials is not None else ""
    value = "failed" if trial.value is None and trial.state.name == "FAIL" else None
    if value is None:
        shown = (
            trial.value
            if trial.value is not None
            else max(trial.intermediate_values.values(), default=float("nan"))
        )
        value = f"{shown:.4f}" + (
            " (pruned at epoch %d)" % attrs.get("epochs_run", 0)
            if trial.state.name == "PRUNED"
            else " (stopped at the time budget)"
            if attrs.get("stopped_at_budget")
            else ""
        )
    try:
        best = f"best {study.best_value:.4f} (trial {study.best_trial.number + 1})"
    except ValueError:
        best = "no trial finished yet"
    origin = f" [{attrs['origin']}]" if "origin" in attrs else ""
    params = " ".join(f"{k}={_short(v)}" for k, v in trial.params.items())
    progress.info(
        "trial %d%s%s: %s -> %s in %.0f s, %d epochs; %s",
        trial.number + 1,
        total,
        origin,
        params,
        value,
        attrs.get("seconds", 0.0),
        attrs.get("epochs_run", 0),
        best,
    )


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _header(result: TuneResult, base: ExperimentConfig) -> str:
    counts = ", ".join(f"{n} {state}" for state, n in result.trials.items())
    return (
        f"# Tuned by tfrs-recsys tune on {base.data.source} ({base.data.split}, the validation "
        f"carve of train: {base.data.validation_fraction} of it, seed {base.data.validation_seed}).\n"
        f"# Validation {result.metric} {result.best_value:.4f} (trial {result.best_trial + 1}); "
        f"trials: {counts}; {result.seconds:.0f} s of trials.\n"
        f"# Selected: {result.selection}.\n"
        f"# The study: {result.study_dir.name}/ ({TRIALS_FILE}, {JOURNAL_FILE}).\n"
    )
