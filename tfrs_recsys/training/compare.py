"""``tfrs-recsys compare``: several models, one dataset, one split, one protocol.

Every model is trained on the same train split and evaluated by the same
:func:`tfrs_recsys.evaluation.protocol.evaluate` on the same holdout. TFRS
models are trained with :func:`tfrs_recsys.training.run.train` from the shipped
config for the dataset (``<prefix>_<feature_set>``, see
:func:`tfrs_recsys.config.config_names`), into ``OUT/runs/<name>``; peers are
tuned on a validation split carved from train.

Outputs in ``OUT``: ``comparison.md`` (table), ``comparison.json`` (figures,
see :func:`compare`), ``recall_at_k.png`` (recall@K, K = 1..100, per model);
the table and the plot come from :mod:`tfrs_recsys.reporting`.

Progress (which model, with which config, how long it took) goes to the
:mod:`tfrs_recsys.progress` logger; Keras prints one line per epoch.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tfrs_recsys.atomic import write_json_atomic, write_text_atomic
from tfrs_recsys.config import ExperimentConfig, config_names, config_origin, load_config
from tfrs_recsys.data.loading import load_dataset
from tfrs_recsys.data.splits import make_split
from tfrs_recsys.errors import ConfigError
from tfrs_recsys.evaluation.protocol import EvaluationResult, EvaluationTask, evaluate
from tfrs_recsys.evaluation.seed_metric import seed_metric
from tfrs_recsys.progress import logger as progress
from tfrs_recsys.recommender import Recommender, probability_fn
from tfrs_recsys.reporting import COMPARISON_KEYS, comparison_markdown, save_recall_curves

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
MODEL_NAMES = PEERS + TFRS_MODELS
# Config file prefix per dataset name.
CONFIG_PREFIX = {"tech-products": "tech", "movielens-100k": "ml100k"}
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
) -> tuple[ExperimentConfig, str]:
    """The config of a TFRS model for a dataset, pointed at ``source``.

    The config is ``<prefix>_<feature_set>`` (retrieval) or
    ``<prefix>_ranking_<feature_set>`` (ranking), ``<prefix>`` being the
    dataset's (``tech``, ``ml100k``): a shipped config, or
    ``config_dir/<that>.toml`` when ``config_dir`` is given. Without one, the
    built-in defaults with the model's kind and feature set.

    Returns:
        ``(config, origin)``: ``origin`` says in words which config it is
        (``shipped config tech_all``, ``config file DIR/tech_all.toml`` or ``built-in
        defaults because ...``), for the user to see.
    """
    kind, feature_set = name.split("_", 1)
    prefix = CONFIG_PREFIX.get(dataset_name)
    stem = f"{prefix}_{feature_set}" if kind == "retrieval" else f"{prefix}_ranking_{feature_set}"
    base_overrides = [f'data.source="{source}"']
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
    if found is None:
        base_overrides += [f'model.kind="{kind}"', f'model.feature_set="{feature_set}"']
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
) -> dict[str, Any]:
    """Trains and evaluates ``models`` on one split; writes the report to ``out``.

    Each TFRS model's config comes from :func:`model_config` (the shipped
    configs, or ``config_dir`` when given); which one is logged per model and
    recorded as the model's ``"config"`` in the report.

    Args:
        source: A dataset directory or name (:func:`~tfrs_recsys.data.loading.load_dataset`).
        models: Names among :data:`MODEL_NAMES`, in the report's order.
        out: The report directory (must not hold a comparison already).
        config_dir: A folder of ``<prefix>_<feature_set>.toml`` configs to use
            instead of the shipped ones.
        overrides: ``KEY=VALUE`` overrides of every TFRS model's config.
        split_name: The split every model is trained and evaluated on.
        verbose: Keras verbosity of the Keras models (2: one line per epoch, 0: silent).

    Returns:
        ``{"dataset", "split", "models": {name: {"recall@10", "ndcg@10",
        "recall@50", "coverage@10", "train_s", "eval_s", ...}}}``, also written
        to ``out/comparison.json``.
    """
    from tfrs_recsys.training.run import train as train_run

    out = Path(out)
    runs_dir = out / "runs"
    if runs_dir.exists() and any(runs_dir.iterdir()):
        raise ConfigError(f"{out}: already holds a comparison (choose a new --out)")
    dataset = load_dataset(source)
    split = make_split(split_name, dataset.interactions)
    task = EvaluationTask.build(dataset, split.train, split.holdout, split_name=split.name)
    results: list[ModelRun] = []
    for number, name in enumerate(models, 1):
        step = f"[{number}/{len(models)}] {name}"
        start = time.perf_counter()
        details: dict[str, Any] = {}
        if name in TFRS_MODELS:
            config, origin = model_config(name, dataset.schema.name, source, config_dir, overrides)
            if origin.startswith("built-in"):
                logger.warning("%s: %s", name, origin)
            progress.info("%s: training with %s ...", step, origin)
            if config.data.split != split.name:
                config = dataclasses.replace(
                    config, data=dataclasses.replace(config.data, split=split.name)
                )
            metrics = train_run(config, runs_dir / name, verbose=verbose).metrics
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
            results.append(
                ModelRun(name, result, train_s, details, metrics.get("holdout_seed_metric"))
            )
        else:
            progress.info("%s: fitting ...", step)
            model, details = _fit_peer(name, dataset, split, verbose)
            train_s = time.perf_counter() - start
            result = evaluate(model.scorer(), task)
            probabilities = probability_fn(model)
            seed = (
                None
                if probabilities is None
                else float(seed_metric(probabilities, dataset, split.holdout))
            )
            results.append(ModelRun(name, result, train_s, details, seed))
        progress.info(
            "%s: recall@10 %.4f (train %.1f s, evaluation %.1f s)",
            step,
            result.metrics["recall@10"],
            results[-1].train_s,
            result.eval_s,
        )
    report = _report(dataset.schema.name, split.name, results)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "comparison.json", report)
    write_text_atomic(out / "comparison.md", comparison_markdown(report) + "\n")
    save_recall_curves(
        {run.name: run.result for run in results},
        out / "recall_at_k.png",
        title=f"{dataset.schema.name}, {split.name}",
    )
    return report


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


def _report(dataset_name: str, split_name: str, runs: Sequence[ModelRun]) -> dict[str, Any]:
    oracle = next((r for r in runs if r.name == "oracle"), None)
    models = {}
    for run in runs:
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
        if oracle is not None:
            entry["recall@10_vs_oracle"] = entry["recall@10"] / float(
                oracle.result.metrics["recall@10"]
            )
        if run.result.per_segment:
            entry["per_segment_recall@10"] = {
                seg: float(values["recall@10"]) for seg, values in run.result.per_segment.items()
            }
        entry["recall_curve"] = [float(v) for v in run.result.recall_curve]
        entry.update(run.details)
        models[run.name] = entry
    return {"dataset": dataset_name, "split": split_name, "models": models}
