"""``compare --tune``: each TFRS model's config tuned before it trains.

A comparison with a :class:`TuningPlan` tunes each TFRS model (and each stage
of a two-stage model) with :func:`tfrs_recsys.tuning.tuner.tune`, on the
validation carve of the comparison's train split, under the plan's budget,
before training the best config as usual. The study of model ``M`` lives in
``OUT/tuning/M.tuning/`` and its config in ``OUT/tuning/M.toml``; a resumed
comparison reuses a finished study and continues an interrupted one.

The search starts from the configs known without tuning: the one the
comparison would use (shipped, ``--config-dir`` or the statistics-based
default) and the statistics-based default.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from tfrs_recsys.config import ExperimentConfig, load_config
from tfrs_recsys.errors import ConfigError
from tfrs_recsys.progress import logger as progress
from tfrs_recsys.tuning.defaults import DatasetStats, known_configs
from tfrs_recsys.tuning.tuner import RESULT_FILE, study_dir_of, tune

TUNING_DIR = "tuning"


@dataclasses.dataclass(frozen=True)
class TuningPlan:
    """How ``compare --tune`` tunes each TFRS model.

    Attributes:
        budget_s: Seconds of trials per model (the trial running when they are
            spent finishes).
        trials: Trials per model at most (None: as many as the budget allows).
        seed: The sampler's seed.
    """

    budget_s: float | None = 600.0
    trials: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.budget_s is None and self.trials is None:
            raise ConfigError("--tune needs a budget: --tune-budget-s or --tune-trials")

    def settings(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def tuned_config(
    name: str,
    config: ExperimentConfig,
    origin: str,
    plan: TuningPlan,
    out: Path,
    stats: DatasetStats,
) -> tuple[ExperimentConfig, str, dict[str, Any]]:
    """``name``'s tuned config, tuning it into ``out/tuning`` unless done already.

    Returns:
        ``(config, origin, details)``: ``details`` for the report (``tuning_s``,
        trials by state, best validation value, what the search started from).
    """
    path = Path(out) / TUNING_DIR / f"{name}.toml"
    result_path = study_dir_of(path) / RESULT_FILE
    if path.is_file() and result_path.is_file():
        progress.info("%s: tuned already (%s)", name, path)
        summary = json.loads(result_path.read_text(encoding="utf-8"))
    else:
        progress.info("%s: tuning (%s) ...", name, _budget_text(plan))
        result = tune(
            config,
            path,
            known=known_configs(config, origin, stats),
            trials=plan.trials,
            budget_s=plan.budget_s,
            seed=plan.seed,
            resume=True,
        )
        summary = result.summary()
    tuned = dataclasses.replace(load_config(path), name=name)
    details = {
        "tuning_s": summary["tuning_s"],
        "tuning_trials": summary["trials"],
        "tuning_validation": {summary["metric"]: summary["best_validation"]},
        "tuned_from": origin,
    }
    trials = summary["trials"]
    text = (
        f"tuned config {path} ({trials['complete']} trials, {trials['pruned']} pruned, "
        f"{summary['tuning_s']:.0f} s; started from {origin})"
    )
    return tuned, text, details


def _budget_text(plan: TuningPlan) -> str:
    parts = []
    if plan.budget_s is not None:
        parts.append(f"{plan.budget_s:.0f} s")
    if plan.trials is not None:
        parts.append(f"{plan.trials} trials")
    return " or ".join(parts) + " at most"
