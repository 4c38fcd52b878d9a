"""``tfrs-recsys compare``: several models, one dataset, one split, one protocol.

Every model is trained on the same train split and evaluated by the same
:func:`tfrs_recsys.evaluation.protocol.evaluate` on the same holdout. TFRS
models are trained with :func:`tfrs_recsys.training.run.train` from the shipped
config for the dataset (``<prefix>_<feature_set>``, see
:func:`tfrs_recsys.config.config_names`), into ``OUT/runs/<name>``; peers are
tuned on a validation split carved from train.

Every model is checked against the dataset before the first one trains
(:mod:`tfrs_recsys.training.compare_checks`). Outputs in ``OUT``:
``comparison.md`` (table), ``comparison.json`` (figures, see :func:`compare`),
``recall_at_k.png`` (recall@K, K = 1..100, per model), rewritten after each
model; ``models/<model>.json``, each model's result, written as it finishes;
``settings.json``, what ``--resume`` must find unchanged (layout:
:mod:`tfrs_recsys.training.comparison_dir`). The table and the plot come from
:mod:`tfrs_recsys.reporting`.

Progress (which model, with which config, how long it took) goes to the
:mod:`tfrs_recsys.progress` logger; Keras prints one line per epoch.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tfrs_recsys.config import (
    ExperimentConfig,
    config_matches,
    config_names,
    config_origin,
    load_config,
    with_overrides,
)
from tfrs_recsys.data.dataset import RecDataset
from tfrs_recsys.data.loading import load_dataset
from tfrs_recsys.data.splits import Split, make_split
from tfrs_recsys.errors import ConfigError, RecsysError
from tfrs_recsys.evaluation.protocol import EvaluationResult, EvaluationTask, evaluate
from tfrs_recsys.evaluation.seed_metric import seed_metric
from tfrs_recsys.progress import logger as progress
from tfrs_recsys.recommender import Recommender, probability_fn
from tfrs_recsys.reporting import COMPARISON_KEYS
from tfrs_recsys.training.compare_checks import check_model
from tfrs_recsys.training.comparison_dir import ComparisonDir, comparison_settings
from tfrs_recsys.tuning.defaults import DatasetStats, dataset_stats
from tfrs_recsys.tuning.plan import TuningPlan, tuned_config

logger = logging.getLogger(__name__)

PEERS = ("popularity", "oracle", "seed_subset", "seed_all", "ease", "als")
TFRS_MODELS = (
    "retrieval_ids",
    "retrieval_subset",
    "retrieval_all",
    "ranking_ids",
    "ranking_subset",
    "ranking_all",
)
# Retrieval then ranking: two_stage_<fs> re-ranks retrieval_<fs>'s top candidates with ranking_<fs>.
TWO_STAGE_MODELS = ("two_stage_ids", "two_stage_subset", "two_stage_all")
MODEL_NAMES = PEERS + TFRS_MODELS + TWO_STAGE_MODELS
# Config file prefix per dataset name.
CONFIG_PREFIX = {"tech-products": "tech", "movielens-100k": "ml100k"}
# The min_rating of the data compare loads (load_dataset's default); peers train on it.
LOADED_MIN_RATING = inspect.signature(load_dataset).parameters["min_rating"].default
LEAKY_NEGATIVES = "leaky: notebook's, drawn from the full matrix's zeros"


@dataclasses.dataclass(frozen=True)
class ModelRun:
    """One model's result in a comparison."""

    name: str
    result: EvaluationResult
    train_s: float
    details: dict[str, Any]
    seed_metric: float | None = None


def parse_models(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in MODEL_NAMES]
    if unknown or not names:
        raise ConfigError(
            f"unknown model(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(MODEL_NAMES)}"
        )
    return names


def model_config(
    name: str,
    dataset_name: str,
    source: str,
    config_dir: Path | None = None,
    overrides: Sequence[str] = (),
    stats: DatasetStats | None = None,
) -> tuple[ExperimentConfig, str]:
    """The config of a TFRS model for a dataset, pointed at ``source``.

    The config is ``<prefix>_<feature_set>`` (retrieval) or
    ``<prefix>_ranking_<feature_set>`` (ranking), ``<prefix>`` being the
    dataset's (``tech``, ``ml100k``): a shipped config, or
    ``config_dir/<that>.toml`` when ``config_dir`` is given. Without one, the
    default chosen from the dataset's statistics ``stats``
    (:func:`~tfrs_recsys.tuning.defaults.default_config`), or without ``stats``
    the built-in defaults with the model's kind and feature set.

    Returns:
        ``(config, origin)``: ``origin`` says in words which config it is
        (``shipped config tech_all``, ``config file DIR/tech_all.toml``, ``defaults
        from the dataset's statistics because ...`` or ``built-in defaults because
        ...``), for the user to see.
    """
    kind, feature_set = name.split("_", 1)
    prefix = CONFIG_PREFIX.get(dataset_name)
    stem = f"{prefix}_{feature_set}" if kind == "retrieval" else f"{prefix}_ranking_{feature_set}"
    base_overrides = [f"data.source={json.dumps(str(source))}"]
    found: Path | str | None = None
    if prefix is None:
        origin = f"built-in defaults because no configs ship for dataset {dataset_name}"
    elif config_dir is not None:
        path = Path(config_dir) / f"{stem}.toml"
        found = path if path.is_file() else None
        origin = f"built-in defaults because there is no {path}"
    else:
        found = stem if stem in config_names() else None
        origin = (
            f"built-in defaults because no config named {stem} ships for dataset {dataset_name}"
        )
    if found is None and stats is not None:
        from tfrs_recsys.tuning.defaults import default_config

        origin = origin.replace("built-in defaults", "defaults from the dataset's statistics")
        config = with_overrides(default_config(name, source, stats), overrides)
    elif found is None:
        base_overrides += [f'model.kind="{kind}"', f'model.feature_set="{feature_set}"']
        config = load_config(found, [*base_overrides, *overrides])
    else:
        origin = config_origin(found)
        config = load_config(found, [*base_overrides, *overrides])
    if (config.model.kind, config.model.feature_set) != (kind, feature_set):
        raise ConfigError(f"{found}: is not a {name} config (model.kind / model.feature_set)")
    return dataclasses.replace(config, name=name), origin


def compare(
    source: str,
    models: Sequence[str],
    out: Path,
    *,
    config_dir: Path | None = None,
    overrides: Sequence[str] = (),
    split_name: str = "holdout-80-20",
    verbose: int = 2,
    resume: bool = False,
    tuning: TuningPlan | None = None,
) -> dict[str, Any]:
    """Trains and evaluates ``models`` on one split; writes the report to ``out``.

    Each TFRS model's config comes from :func:`model_config` (the shipped
    configs, or ``config_dir`` when given); which one is logged per model and
    recorded as the model's ``"config"`` in the report.

    Before anything trains, every model is checked against the dataset
    (:func:`~tfrs_recsys.training.compare_checks.check_model`). Each model's
    result is written to ``out/models/<model>.json`` as soon as it is
    evaluated, and the report is rewritten after each model, so a crash keeps
    every finished model (layout: :mod:`tfrs_recsys.training.comparison_dir`).

    Args:
        source: A dataset directory or name (:func:`~tfrs_recsys.data.loading.load_dataset`).
        models: Names among :data:`MODEL_NAMES`, in the report's order.
        out: The report directory (must not hold a comparison already, unless ``resume``).
        config_dir: A folder of ``<prefix>_<feature_set>.toml`` configs to use
            instead of the shipped ones.
        overrides: ``KEY=VALUE`` overrides of every TFRS model's config.
        split_name: The split every model is trained and evaluated on.
        verbose: Keras verbosity of the Keras models (2: one line per epoch, 0: silent).
        resume: Continue the comparison in ``out``: models whose result is
            written there are not trained again (a TFRS model's interrupted run
            directory is resumed); the others run. The settings (data, split,
            ``config_dir``, ``overrides``) must be those ``out`` recorded.
        tuning: Tune each TFRS model's config first (``compare --tune``,
            :mod:`tfrs_recsys.tuning.plan`), under this plan's budget per model.

    Returns:
        ``{"dataset", "split", "models": {name: {"recall@10", "ndcg@10",
        "recall@50", "coverage@10", "train_s", "eval_s", "popularity_bins",
        ...}}}``, also written to ``out/comparison.json``; ``popularity_bins``
        is recall@10 by the item's train positives
        (:mod:`tfrs_recsys.evaluation.popularity_bins`).

    Raises:
        ConfigError: ``out`` holds a comparison (without ``resume``) or one with
            other settings (with ``resume``); a model cannot run on the dataset.
    """
    models = list(models)
    directory = ComparisonDir(out)
    if not resume:
        directory.check_new()
    dataset = load_dataset(source)
    split = make_split(split_name, dataset.interactions)
    settings = comparison_settings(source, dataset, split, config_dir, overrides)
    if tuning is not None:
        settings["tune"] = tuning.settings()
    if resume:
        directory.check_resume(settings)
        if directory.recorded_settings() is None:
            progress.info("%s holds no comparison yet; starting one", directory.out)

    done = {name: directory.finished(name) for name in models} if resume else {}
    progress.info("checking %d model(s) against %s ...", len(models), dataset.schema.name)
    configs = {}
    datasets = {LOADED_MIN_RATING: (dataset, split)}
    stats = dataset_stats(dataset, split.train)
    for name in models:
        config = origin = None
        if name in TFRS_MODELS:
            try:
                config, origin = model_config(
                    name, dataset.schema.name, source, config_dir, overrides, stats
                )
            except RecsysError as exc:
                raise ConfigError(f"model {name}: {exc}") from None
            if config.data.split != split.name:
                config = dataclasses.replace(
                    config, data=dataclasses.replace(config.data, split=split.name)
                )
            configs[name] = (config, origin)
        if name in TWO_STAGE_MODELS:
            configs[name] = [
                _stage_config(
                    stage, dataset.schema.name, source, config_dir, overrides, split, stats
                )
                for stage in two_stage_parts(name)
            ]
            if done.get(name) is None:
                for stage, (stage_config, _) in zip(two_stage_parts(name), configs[name]):
                    check_model(
                        stage, *_model_data(datasets, stage_config, split_name), stage_config
                    )
            continue
        if done.get(name) is not None:
            if tuning is None:
                _check_recorded_config(directory, name, done[name], config)
            continue
        model_data = _model_data(datasets, config, split_name)
        check_model(name, *model_data, config=config)

    directory.write_settings(settings)
    entries = {name: record["entry"] for name, record in done.items() if record is not None}
    task: EvaluationTask | None = None
    for number, name in enumerate(models, 1):
        step = f"[{number}/{len(models)}] {name}"
        if done.get(name) is not None:
            progress.info(
                "%s: done already (%s), not trained again", step, directory.model_path(name)
            )
            continue
        config_toml = None
        if name in TFRS_MODELS:
            config, origin = configs[name]
            tuned: dict[str, Any] = {}
            if tuning is not None:
                config, origin, tuned = tuned_config(name, config, origin, tuning, out, stats)
            run = _train_tfrs(config, origin, directory.runs_dir / name, step, verbose)
            run.details.update(tuned)
            config_toml = config.to_toml()
        elif name in TWO_STAGE_MODELS:
            stages = configs[name]
            if tuning is not None:
                stages = [
                    tuned_config(stage, *stages[i], tuning, out, stats)[:2]
                    for i, stage in enumerate(two_stage_parts(name))
                ]
            run = _run_two_stage(name, stages, directory.runs_dir, step, verbose)
        else:
            if task is None:
                task = EvaluationTask.build(
                    dataset, split.train, split.holdout, split_name=split.name
                )
            run = _run_peer(name, dataset, split, task, step, verbose)
        progress.info(
            "%s: recall@10 %.4f (train %.1f s, evaluation %.1f s)",
            step,
            run.result.metrics["recall@10"],
            run.train_s,
            run.result.eval_s,
        )
        entries[name] = _entry(run)
        directory.write_model(name, entries[name], config_toml)
        if len(entries) < len(models):
            directory.write_report(_report(dataset.schema.name, split.name, models, entries))
    report = _report(dataset.schema.name, split.name, models, entries)
    directory.write_report(report)
    return report


def two_stage_parts(name: str) -> tuple[str, str]:
    """``two_stage_<fs>`` -> ``("retrieval_<fs>", "ranking_<fs>")``, its two stages."""
    feature_set = name.removeprefix("two_stage_")
    return f"retrieval_{feature_set}", f"ranking_{feature_set}"


def _stage_config(stage, dataset_name, source, config_dir, overrides, split, stats=None):
    """A two-stage model's stage config: as its own row would be configured."""
    try:
        config, origin = model_config(stage, dataset_name, source, config_dir, overrides, stats)
    except RecsysError as exc:
        raise ConfigError(f"model {stage}: {exc}") from None
    data = dataclasses.replace(config.data, split=split.name)
    return dataclasses.replace(config, data=data), origin


def _run_two_stage(name: str, stages, runs_dir: Path, step: str, verbose: int) -> ModelRun:
    """Retrieval then ranking: each stage's run in ``runs_dir/<stage>`` (reused when
    finished with the same config, trained otherwise), the ranking run re-ordering the
    retrieval run's top :data:`~tfrs_recsys.models.two_stage.DEFAULT_CANDIDATES`."""
    from tfrs_recsys.models.two_stage import DEFAULT_CANDIDATES, TwoStageRecommender
    from tfrs_recsys.training.run import load_run

    details: dict[str, Any] = {}
    train_s = 0.0
    for stage, (config, origin) in zip(two_stage_parts(name), stages):
        run = _train_tfrs(config, origin, runs_dir / stage, f"{step} ({stage})", verbose)
        train_s += run.train_s
        details[stage.split("_")[0]] = f"{stage} ({origin})"
    first, second = (load_run(runs_dir / stage) for stage in two_stage_parts(name))
    model = TwoStageRecommender.from_runs(first, second, candidates=DEFAULT_CANDIDATES)
    details["candidates"] = model.candidates
    progress.info(
        "%s: %s re-orders the top %d unseen items of %s", step, second.config.name,
        model.candidates, first.config.name,
    )  # fmt: skip
    task = EvaluationTask.from_split(first.data.dataset, first.data.split)
    return ModelRun(name, evaluate(model.scorer(), task), train_s, details)


def _model_data(
    datasets: dict[float, tuple[RecDataset, Split]],
    config: ExperimentConfig | None,
    split_name: str,
) -> tuple[RecDataset, Split]:
    """The dataset and split a model trains on: a TFRS model's with its ``data.min_rating``.

    ``datasets`` maps ``min_rating`` to the data loaded with it (loaded once).
    """
    key = LOADED_MIN_RATING if config is None else config.data.min_rating
    if key not in datasets:
        dataset = load_dataset(config.data.source, min_rating=key)
        datasets[key] = (dataset, make_split(split_name, dataset.interactions))
    return datasets[key]


def _check_recorded_config(
    directory: ComparisonDir, name: str, record: dict[str, Any], config: ExperimentConfig | None
) -> None:
    """Refuses a finished TFRS model whose recorded config is not the one resolved now."""
    if config is None or config_matches(record.get("config_toml"), config):
        return
    old = (record.get("config_toml") or "").splitlines()
    new = config.to_toml().splitlines()
    first = next(
        (f"{a!r} became {b!r}" for a, b in zip(old, new) if a != b), "lines added or removed"
    )
    raise ConfigError(
        f"{directory.model_path(name)}: {name} was trained with another config than the one "
        f"it resolves to now ({first}); restore that config or choose a new --out"
    )


def _train_tfrs(
    config: ExperimentConfig, origin: str, run_dir: Path, step: str, verbose: int
) -> ModelRun:
    """Trains a TFRS model into ``run_dir``, continuing an interrupted run found there."""
    from tfrs_recsys.training.run import CONFIG_FILE, METRICS_FILE
    from tfrs_recsys.training.run import train as train_run

    name = config.name
    if origin.startswith("built-in"):
        logger.warning("%s: %s", name, origin)
    recorded = run_dir / CONFIG_FILE
    same_config = recorded.is_file() and config_matches(
        recorded.read_text(encoding="utf-8"), config
    )
    if same_config and (run_dir / METRICS_FILE).is_file():
        progress.info("%s: its run %s had finished; reading its metrics", step, run_dir)
        metrics = json.loads((run_dir / METRICS_FILE).read_text(encoding="utf-8"))
    elif recorded.is_file():
        progress.info("%s: resuming its interrupted run %s (%s) ...", step, run_dir, origin)
        metrics = train_run(config, run_dir, resume=True, verbose=verbose).metrics
    else:
        progress.info("%s: training with %s ...", step, origin)
        metrics = train_run(config, run_dir, verbose=verbose).metrics
    result = EvaluationResult.from_dict(metrics["holdout"])
    details = {
        "config": origin,
        "best_epoch": metrics["best_epoch"],
        "epochs_run": metrics["epochs_run"],
    }
    train_s = metrics["train_s"]
    if metrics.get("refit"):
        # Training time includes the refit on the whole train split.
        details["refit_epochs"] = metrics["refit"]["epochs"]
        train_s += metrics["refit"]["train_s"]
    if metrics.get("ensemble"):
        # A seed ensemble: the other members' whole runs count too.
        runs = metrics["ensemble"]["runs"]
        details["ensemble"] = len(runs)
        train_s += sum(run["total_s"] or 0.0 for run in runs[1:])
    return ModelRun(name, result, train_s, details, metrics.get("holdout_seed_metric"))


def _run_peer(
    name: str, dataset: RecDataset, split: Split, task: EvaluationTask, step: str, verbose: int
) -> ModelRun:
    """Fits and evaluates the non-TFRS model ``name``."""
    progress.info("%s: fitting ...", step)
    start = time.perf_counter()
    model, details = _fit_peer(name, dataset, split, verbose)
    train_s = time.perf_counter() - start
    result = evaluate(model.scorer(), task)
    probabilities = probability_fn(model)
    seed = (
        None if probabilities is None else float(seed_metric(probabilities, dataset, split.holdout))
    )
    return ModelRun(name, result, train_s, details, seed)


def _fit_peer(name: str, dataset, split, verbose: int) -> tuple[Recommender, dict[str, Any]]:
    """Fits the non-TFRS model ``name`` on ``split.train``: ``(model, report details)``."""
    if name == "popularity":
        from tfrs_recsys.baselines.popularity import PopularityScorer

        return PopularityScorer.fit(dataset, split.train), {}
    if name == "oracle":
        from tfrs_recsys.baselines.oracle import OracleScorer

        return OracleScorer.for_dataset(dataset), {}
    if name == "seed_subset":
        from tfrs_recsys.notebook_models.seed_subset import SeedSubsetModel

        model = SeedSubsetModel.fit(dataset, split.train, split.holdout, verbose=verbose)
        return model, {"negatives": LEAKY_NEGATIVES}
    if name == "seed_all":
        from tfrs_recsys.notebook_models.seed_all import SeedAllModel

        model = SeedAllModel.fit(dataset, split.train, split.holdout, verbose=verbose)
        return model, {
            "negatives": LEAKY_NEGATIVES,
            "text": "TF Hub all-MiniLM-L6-v2 (the notebook: bert-base-uncased)",
        }
    if name == "ease":
        from tfrs_recsys.baselines.tuning import tune_ease

        scorer, best, _ = tune_ease(dataset, split.train)
        return scorer, {"tuned": best}
    if name == "als":
        from tfrs_recsys.baselines.tuning import tune_als

        scorer, best, _ = tune_als(dataset, split.train)
        return scorer, {
            "tuned": {k: (v.item() if isinstance(v, np.generic) else v) for k, v in best.items()}
        }
    raise ConfigError(f"unknown model {name!r}")  # pragma: no cover


def _entry(run: ModelRun) -> dict[str, Any]:
    """A model's report entry, without ``recall@10_vs_oracle`` (see :func:`_report`)."""
    entry = {key: float(run.result.metrics[key]) for key in COMPARISON_KEYS}
    entry.update(
        {
            "precision@10": float(run.result.metrics["precision@10"]),
            "hit_rate@10": float(run.result.metrics["hit_rate@10"]),
            "train_s": round(run.train_s, 2),
            "eval_s": round(run.result.eval_s, 3),
            "seed_metric": run.seed_metric,
        }
    )
    if run.result.per_segment:
        entry["per_segment_recall@10"] = {
            seg: float(values["recall@10"]) for seg, values in run.result.per_segment.items()
        }
    entry["recall_curve"] = [float(v) for v in run.result.recall_curve]
    if run.result.popularity_bins:
        entry["popularity_bins"] = run.result.popularity_bins
    entry.update(run.details)
    return entry


def _report(
    dataset_name: str,
    split_name: str,
    models: Sequence[str],
    entries: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """The report of the finished ``models`` (those with ``entries``), in ``models``' order.

    With an oracle among them, every entry gets ``recall@10_vs_oracle`` (after
    ``seed_metric``). Models without an entry yet are listed under ``"pending"``.
    """
    oracle = entries.get("oracle")
    finished = {}
    for name in (m for m in models if m in entries):
        entry = entries[name]
        if oracle is None:
            finished[name] = dict(entry)
            continue
        finished[name] = {}
        for key, value in entry.items():
            finished[name][key] = value
            if key == "seed_metric":
                finished[name]["recall@10_vs_oracle"] = entry["recall@10"] / oracle["recall@10"]
    report: dict[str, Any] = {"dataset": dataset_name, "split": split_name, "models": finished}
    pending = [m for m in models if m not in entries]
    if pending:
        report["pending"] = pending
    return report
