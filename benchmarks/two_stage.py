"""Does a second stage help? Retrieval alone vs retrieval then ranking, on one split.

Given a finished retrieval run and a finished ranking run on the same data and
split (e.g. ``OUT/runs/retrieval_all`` and ``OUT/runs/ranking_all`` of
``tfrs-recsys compare``), prints recall@10, NDCG@10 and recall@50 on the
protocol's holdout (docs/evaluation.md) of:

1. the retrieval run alone;
2. the ranking run alone (full catalog);
3. the two stages for each ``--candidates`` M (the ranking run as trained:
   pointwise, negatives drawn uniformly from the items the user has not seen);
4. with ``--hard-negatives``: the same ranking config trained again, from the
   same seed, on the whole train split for the ranking run's epoch count, but
   with each user's negatives drawn from the retrieval run's top
   ``--hard-pool`` unseen items (:func:`~tfrs_recsys.models.two_stage.candidate_negative_exclusions`),
   the items a second stage has to re-order; then the two stages again.

Nothing is selected on the holdout: every figure is one evaluation of a model
whose training never read it.

Run: ``.venv/bin/python -m benchmarks.two_stage --retrieval-run R --ranking-run K
[--candidates 20,50,200] [--hard-negatives] [--hard-pool 200]``
"""

from __future__ import annotations

import argparse
import time

import tfrs_recsys  # noqa: F401  (Keras 2 before TensorFlow)

# isort: split
import tensorflow as tf

from tfrs_recsys.data.pipelines import ranking_dataset
from tfrs_recsys.evaluation.protocol import EvaluationTask, evaluate
from tfrs_recsys.features.preprocessing import fit_preprocessing
from tfrs_recsys.models.factory import build_model
from tfrs_recsys.models.two_stage import TwoStageRecommender, candidate_negative_exclusions
from tfrs_recsys.training.run import load_run

KEYS = ("recall@10", "ndcg@10", "recall@50")


def _epochs(metrics: dict) -> int:
    refit = metrics.get("refit") or {}
    return int(refit.get("epochs") or metrics["best_epoch"])


def hard_negative_ranking(retrieval_run, ranking_run, pool: int, verbose: int = 2):
    """The ranking run's config trained on the whole train split with candidate negatives."""
    config, data = ranking_run.config, ranking_run.data
    epochs = _epochs(ranking_run.metrics)
    tf.keras.utils.set_random_seed(config.train.seed)
    preprocessing = fit_preprocessing(data.dataset, data.split.train, config.model)
    model = build_model(config.model, preprocessing, data.dataset)
    if config.train.optimizer != "adam":
        raise SystemExit(f"this benchmark trains with adam; the run uses {config.train.optimizer}")
    model.compile(optimizer=tf.keras.optimizers.Adam(config.train.learning_rate))
    exclude = candidate_negative_exclusions(
        retrieval_run.model, data.dataset, data.split.train, pool
    )
    pipeline = ranking_dataset(
        data.dataset,
        data.split.train,
        negatives_per_user=config.model.negatives_per_user,
        exclude=exclude,
        batch_size=config.train.batch_size,
        seed=config.train.seed,
        user_columns=model.user_columns,
        item_columns=model.item_columns,
    )
    started = time.perf_counter()
    model.fit(pipeline, epochs=epochs, verbose=verbose)
    return model, epochs, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--retrieval-run", required=True)
    parser.add_argument("--ranking-run", required=True)
    parser.add_argument("--candidates", default="20,50,200")
    parser.add_argument("--hard-negatives", action="store_true")
    parser.add_argument("--hard-pool", type=int, default=200)
    args = parser.parse_args()
    ms = [int(m) for m in args.candidates.split(",")]

    first, second = load_run(args.retrieval_run), load_run(args.ranking_run)
    data = first.data
    task = EvaluationTask.from_split(data.dataset, data.split)
    rows = {
        f"{first.config.name} alone": evaluate(first.model.scorer(), task),
        f"{second.config.name} alone": evaluate(second.model.scorer(), task),
    }
    for m in ms:
        model = TwoStageRecommender.from_runs(first, second, candidates=m)
        rows[f"two stages, M={m}"] = evaluate(model.scorer(), task)
    if args.hard_negatives:
        ranking, epochs, seconds = hard_negative_ranking(first, second, args.hard_pool)
        print(f"hard-negative ranking model: {epochs} epochs in {seconds:.0f} s")
        rows[f"{second.config.name} (hard negatives) alone"] = evaluate(ranking.scorer(), task)
        for m in ms:
            model = TwoStageRecommender(
                first.model, ranking, data.dataset, data.split.train, candidates=m
            )
            rows[f"two stages, hard negatives (pool {args.hard_pool}), M={m}"] = evaluate(
                model.scorer(), task
            )
    print(
        f"\ndataset {data.dataset.schema.name}, split {data.split.name}; retrieval "
        f"{args.retrieval_run} ({first.config.name}), ranking {args.ranking_run} "
        f"({second.config.name})\n"
    )
    print("| model | " + " | ".join(KEYS) + " |")
    print("|---|" + "---:|" * len(KEYS))
    for name, result in rows.items():
        print(f"| {name} | " + " | ".join(f"{result.metrics[k]:.4f}" for k in KEYS) + " |")


if __name__ == "__main__":
    main()
