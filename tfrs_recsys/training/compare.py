"""``tfrs-recsys compare``: several models, one dataset, one split, one protocol.

Every model is trained on the same train split and evaluated by the same
:func:`tfrs_recsys.evaluation.protocol.evaluate` on the same holdout. TFRS
models are trained with :func:`tfrs_recsys.training.run.train` from the shipped
config for the dataset (``configs/<prefix>_<feature_set>.toml``), into
``OUT/runs/<name>``; peers are tuned on a validation split carved from train.

Outputs in ``OUT``: ``comparison.md`` (table), ``comparison.json`` (figures,
see :func:`compare`), ``recall_at_k.png`` (recall@K, K = 1..100, per model).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tfrs_recsys.config import ExperimentConfig, load_config
from tfrs_recsys.data.loading import load_dataset
from tfrs_recsys.data.splits import make_split
from tfrs_recsys.errors import ConfigError
from tfrs_recsys.evaluation.protocol import EvaluationResult, EvaluationTask, evaluate, seed_metric

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
SUMMARY_KEYS = ("recall@10", "ndcg@10", "recall@50", "coverage@10")


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
    name: str, dataset_name: str, source: str, config_dir: Path, overrides: Sequence[str] = ()
) -> ExperimentConfig:
    """The shipped config of a TFRS model for a dataset, pointed at ``source``."""
    kind, feature_set = name.split("_", 1)
    prefix = CONFIG_PREFIX.get(dataset_name)
    stem = f"{prefix}_{feature_set}" if kind == "retrieval" else f"{prefix}_ranking_{feature_set}"
    path = config_dir / f"{stem}.toml" if prefix else None
    base_overrides = [f'data.source="{source}"']
    if path is None or not path.is_file():
        logger.info("no %s; using the built-in defaults for %s", path, name)
        path = None
        base_overrides += [f'model.kind="{kind}"', f'model.feature_set="{feature_set}"']
    config = load_config(path, [*base_overrides, *overrides])
    if (config.model.kind, config.model.feature_set) != (kind, feature_set):
        raise ConfigError(f"{path}: is not a {name} config (model.kind / model.feature_set)")
    return dataclasses.replace(config, name=name)


def compare(
    source: str,
    models: Sequence[str],
    out: Path,
    *,
    config_dir: Path = Path("configs"),
    overrides: Sequence[str] = (),
    split_name: str = "holdout-80-20",
) -> dict[str, Any]:
    """Trains and evaluates ``models`` on one split; writes the report to ``out``.

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
    for name in models:
        logger.info("comparing %s", name)
        start = time.perf_counter()
        details: dict[str, Any] = {}
        if name in TFRS_MODELS:
            config = model_config(name, dataset.schema.name, source, config_dir, overrides)
            if config.data.split != split.name:
                config = dataclasses.replace(config, data=dataclasses.replace(config.data, split=split.name))
            metrics = train_run(config, runs_dir / name, verbose=0)
            result = EvaluationResult.from_dict(metrics["holdout"])
            details = {"best_epoch": metrics["best_epoch"], "epochs_run": metrics["epochs_run"]}
            train_s = metrics["train_s"]
            if metrics.get("refit"):
                # Training time includes the refit on the whole train split.
                details["refit_epochs"] = metrics["refit"]["epochs"]
                train_s += metrics["refit"]["train_s"]
            results.append(ModelRun(name, result, train_s, details, metrics.get("holdout_seed_metric")))
            continue
        scorer, details, probabilities = _fit_peer(name, dataset, split, source)
        train_s = time.perf_counter() - start
        result = evaluate(scorer, task)
        seed = float(seed_metric(probabilities, dataset, split.holdout)) if probabilities is not None else None
        results.append(ModelRun(name, result, train_s, details, seed))
    report = _report(dataset.schema.name, split.name, results)
    out.mkdir(parents=True, exist_ok=True)
    from tfrs_recsys.training.run import write_json_atomic

    write_json_atomic(out / "comparison.json", report)
    (out / "comparison.md").write_text(markdown_table(report) + "\n", encoding="utf-8")
    plot_recall_curves(results, out / "recall_at_k.png", title=f"{dataset.schema.name}, {split.name}")
    return report


def _fit_peer(name: str, dataset, split, source: str):
    from tfrs_recsys.baselines.oracle import OracleScorer
    from tfrs_recsys.baselines.popularity import PopularityScorer

    if name == "popularity":
        scorer = PopularityScorer.fit(dataset, split.train)
        return scorer, {}, scorer.probabilities
    if name == "oracle":
        from tfrs_recsys.data.techproducts import load_truth

        truth = load_truth(Path(dataset.source)) if dataset.source else None
        if truth is None:
            raise ConfigError(f"oracle: {source} has no true model (truth.npz); only generated data has one")
        scorer = OracleScorer(truth)
        return scorer, {}, scorer.probabilities
    if name == "seed_subset":
        from tfrs_recsys.notebook_models.seed_subset import SeedSubsetModel

        model = SeedSubsetModel.fit(dataset, split.train, split.holdout)
        return (
            model.scorer(),
            {"negatives": "leaky: notebook's, drawn from the full matrix's zeros"},
            model.probabilities,
        )
    if name == "seed_all":
        from tfrs_recsys.notebook_models.seed_all import SeedAllModel

        model = SeedAllModel.fit(dataset, split.train, split.holdout)
        return model.scorer(), {
            "negatives": "leaky: notebook's, drawn from the full matrix's zeros",
            "text": "TF Hub all-MiniLM-L6-v2 (the notebook: bert-base-uncased)",
        }, model.probabilities
    if name == "ease":
        from tfrs_recsys.baselines.tuning import tune_ease

        scorer, best, _ = tune_ease(dataset, split.train)
        return scorer, {"tuned": best}, None
    if name == "als":
        from tfrs_recsys.baselines.tuning import tune_als

        scorer, best, _ = tune_als(dataset, split.train)
        return scorer, {"tuned": {k: (v.item() if isinstance(v, np.generic) else v) for k, v in best.items()}}, None
    raise ConfigError(f"unknown model {name!r}")  # pragma: no cover


def _report(dataset_name: str, split_name: str, runs: Sequence[ModelRun]) -> dict[str, Any]:
    oracle = next((r for r in runs if r.name == "oracle"), None)
    models = {}
    for run in runs:
        entry = {key: float(run.result.metrics[key]) for key in SUMMARY_KEYS}
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
            entry["recall@10_vs_oracle"] = entry["recall@10"] / float(oracle.result.metrics["recall@10"])
        if run.result.per_segment:
            entry["per_segment_recall@10"] = {
                seg: float(values["recall@10"]) for seg, values in run.result.per_segment.items()
            }
        entry["recall_curve"] = [float(v) for v in run.result.recall_curve]
        entry.update(run.details)
        models[run.name] = entry
    return {"dataset": dataset_name, "split": split_name, "models": models}


def markdown_table(report: dict[str, Any]) -> str:
    has_oracle = any("recall@10_vs_oracle" in m for m in report["models"].values())
    header = (
        ["model", *SUMMARY_KEYS]
        + (["recall@10 / oracle"] if has_oracle else [])
        + ["seed metric", "train s", "eval s"]
    )
    lines = [
        f"Dataset `{report['dataset']}`, split `{report['split']}`; full-catalog ranking, train items masked "
        "(shared/EVALUATION.md).",
        "",
        "| " + " | ".join(header) + " |",
        "|---|" + "---:|" * (len(header) - 1),
    ]
    for name, m in report["models"].items():
        cells = [name, *(f"{m[k]:.4f}" for k in SUMMARY_KEYS)]
        if has_oracle:
            cells.append(f"{m['recall@10_vs_oracle']:.3f}")
        seed = m.get("seed_metric")
        cells += ["-" if seed is None else f"{seed:.3f}", f"{m['train_s']:.1f}", f"{m['eval_s']:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_recall_curves(runs: Sequence[ModelRun], path: Path, *, title: str) -> None:
    try:
        # The Figure API draws without pyplot, so the caller's matplotlib backend
        # (e.g. a notebook's inline backend) is left as it was.
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - matplotlib is a dependency
        raise ConfigError("the recall@K plot needs matplotlib (pip install matplotlib)") from exc
    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    for run in runs:
        curve = run.result.recall_curve
        ax.plot(np.arange(1, len(curve) + 1), curve, label=run.name, lw=1.6)
    ax.set_xlabel("K")
    ax.set_ylabel("recall@K")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
