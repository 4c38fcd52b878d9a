"""Speed of the full-catalog evaluation against the notebooks' per-pair scoring.

On the default tech-products data (holdout-80-20), times:

1. ``evaluate`` for all users with at least one holdout item (10,000), full
   catalog, train items masked, recall/precision/hit rate/NDCG at 10 and 50,
   coverage, the recall@K curve and the per-personality breakdown; with a
   two-tower scorer (a [users, 64] x [64, items] product), popularity and the
   oracle;
2. the notebooks' seed-metric loop: one ``model.predict`` call per (user, item)
   pair, timed on a sample of pairs and extrapolated to the 10,000 pairs the
   notebooks scored (they printed 25 min 17 s).

Run: ``.venv/bin/python -m benchmarks.evaluation_speed [--data DIR]``
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import tfrs_recsys  # noqa: F401  (Keras 2 before TensorFlow)

# isort: split
import numpy as np
import tensorflow as tf

from benchmarks.machine import dataset_dir, describe
from tfrs_recsys.baselines.oracle import OracleScorer
from tfrs_recsys.baselines.popularity import PopularityScorer
from tfrs_recsys.data.splits import holdout_80_20
from tfrs_recsys.data.techproducts import load_tech_products, load_truth
from tfrs_recsys.evaluation.protocol import EvaluationTask, evaluate
from tfrs_recsys.notebook_models.seed_subset import notebook_network


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--pairs", type=int, default=200, help="pairs timed for the per-pair loop")
    args = parser.parse_args()
    print(describe())
    args.data, _tmp = dataset_dir(args.data)
    dataset = load_tech_products(args.data)
    split = holdout_80_20(dataset.interactions)
    start = time.perf_counter()
    task = EvaluationTask.build(dataset, split.train, split.holdout)
    build_s = time.perf_counter() - start
    print(
        f"data: {args.data}; {task.n_users} evaluated users x {dataset.n_items} items; task built in {build_s:.2f} s"
    )
    print()
    rng = np.random.default_rng(0)
    users = tf.constant(rng.standard_normal((dataset.n_users, 64)).astype(np.float32))
    items = tf.constant(rng.standard_normal((dataset.n_items, 64)).astype(np.float32))
    scorers = {
        "two-tower scorer (64-d dot products)": lambda rows: tf.matmul(
            tf.gather(users, rows), items, transpose_b=True
        ),
        "popularity": PopularityScorer.fit(dataset, split.train),
        "oracle (true probabilities)": OracleScorer(load_truth(args.data)),
    }
    print("| scorer | evaluate, all users (median s) | of which scorer (s) |")
    print("|---|---:|---:|")
    for name, scorer in scorers.items():
        runs = [evaluate(scorer, task) for _ in range(args.repeats)]
        print(
            f"| {name} | {statistics.median(r.eval_s for r in runs):.2f} | "
            f"{statistics.median(r.scorer_s for r in runs):.2f} |"
        )

    model = notebook_network(dataset.n_users, dataset.n_items, 32)
    pairs = rng.integers([dataset.n_users, dataset.n_items], size=(args.pairs, 2))
    start = time.perf_counter()
    for u, i in pairs:
        model.predict(
            {
                "user_id": np.array([u], np.int32),
                "user_age": np.array([[0.5]], np.float32),
                "item_id": np.array([i], np.int32),
                "item_price": np.array([[0.5]], np.float32),
            },
            verbose=0,
        )
    per_pair = (time.perf_counter() - start) / args.pairs
    print(
        f"| notebooks' loop: one model.predict per pair ({args.pairs} pairs timed) | "
        f"{per_pair * 10_000:.0f} (est. for 10,000 pairs, seed metric only) | - |"
    )


if __name__ == "__main__":
    main()
