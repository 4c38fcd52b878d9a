"""Cold items: does text let the two-tower model rank items it never saw?

On the default tech-products data, starting from the protocol's holdout-80-20
split:

1. ``--cold-fraction`` of the catalog (random, ``--seed``) becomes *cold*:
   every train pair of those items is removed, so no model sees them in
   training (their ids fall into the OOV bucket);
2. each model is trained on the remaining (warm) train pairs with the in-batch
   softmax of ``tfrs.tasks.Retrieval`` (with logQ correction), so cold items
   are never even sampled as negatives, for ``--epochs`` epochs;
3. evaluation follows the protocol (docs/evaluation.md) on the cold items only: each user
   with a holdout positive among the cold items ranks the cold items (warm
   items are masked like train items), recall/NDCG at 10.

A cold item's id and bias are the same OOV vectors for every cold item, so its
rank among cold items comes from its features only: product type and price
(``subset``: price only), plus the text columns when the model reads them.
The oracle ranks the same cold items by their true probabilities.

Run: ``.venv/bin/python -m benchmarks.cold_items [--text bow,bert,none] [--epochs 8]``
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import tfrs_recsys  # noqa: F401  (Keras 2 before TensorFlow)

# isort: split
import numpy as np
import tensorflow as tf

from benchmarks.machine import dataset_dir, describe
from tfrs_recsys.baselines.oracle import OracleScorer
from tfrs_recsys.config import ExperimentConfig, ModelConfig, TrainConfig
from tfrs_recsys.data.schema import ITEM_ID
from tfrs_recsys.data.splits import holdout_80_20
from tfrs_recsys.data.techproducts import load_tech_products, load_truth
from tfrs_recsys.evaluation.protocol import EvaluationTask, evaluate
from tfrs_recsys.features.preprocessing import fit_preprocessing
from tfrs_recsys.models.factory import build_model, training_dataset

MODEL = ModelConfig(
    kind="retrieval",
    feature_set="all",
    id_mode="input",
    loss="softmax",
    negatives="in_batch",
    logq_correction=True,
    item_bias=True,
    normalize=False,
    hidden=(),
    temperature=1.0,
    id_dim=32,
    output_dim=32,
)


def cold_only(scorer, cold_mask: np.ndarray):
    """Scores of ``scorer`` with every warm item set to ``-inf``."""
    warm = tf.constant(~cold_mask)

    def score(user_rows: np.ndarray) -> tf.Tensor:
        scores = tf.cast(tf.convert_to_tensor(scorer(user_rows)), tf.float32)
        return tf.where(warm[None, :], tf.constant(-np.inf, tf.float32), scores)

    return score


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--cold-fraction", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--text", default="none,bow,bert", help="text encoders of the `all` rows")
    args = parser.parse_args()
    print(describe())
    args.data, _tmp = dataset_dir(args.data)
    dataset = load_tech_products(args.data)
    split = holdout_80_20(dataset.interactions)
    item_ids = dataset.table("item").ids
    rng = np.random.default_rng(args.seed)
    cold_rows = np.sort(
        rng.choice(
            len(item_ids), size=int(round(args.cold_fraction * len(item_ids))), replace=False
        )
    )
    cold_mask = np.zeros(len(item_ids), dtype=bool)
    cold_mask[cold_rows] = True
    cold_ids = set(item_ids[cold_rows].astype(str))
    train = split.train[~split.train[ITEM_ID].astype(str).isin(cold_ids)].reset_index(drop=True)
    holdout = split.holdout[split.holdout[ITEM_ID].astype(str).isin(cold_ids)].reset_index(
        drop=True
    )
    task = EvaluationTask.build(
        dataset, train, holdout, split_name="holdout-80-20, cold items only"
    )
    print(
        f"data: {args.data}; {len(cold_rows)} cold items of {len(item_ids)}; warm train pairs {len(train):,}; "
        f"cold holdout pairs {len(holdout):,}; {task.n_users:,} evaluated users; {args.epochs} epochs per model"
    )
    print()
    print("| model | recall@10 | ndcg@10 | recall@10 / oracle | train s |")
    print("|---|---:|---:|---:|---:|")
    truth = load_truth(args.data)
    oracle = evaluate(cold_only(OracleScorer(truth), cold_mask), task).metrics
    print(
        f"| oracle (true probabilities) | {oracle['recall@10']:.4f} | {oracle['ndcg@10']:.4f} | 1.000 | - |"
    )
    variants = [("subset (ids + age + price)", dataclasses.replace(MODEL, feature_set="subset"))]
    for text in [t.strip() for t in args.text.split(",") if t.strip()]:
        variants.append((f"all, text {text}", dataclasses.replace(MODEL, text_encoder=text)))
    for name, model_config in variants:
        tf.keras.utils.set_random_seed(42)
        experiment = ExperimentConfig(
            model=model_config, train=TrainConfig(batch_size=1024, learning_rate=0.005)
        )
        model = build_model(model_config, fit_preprocessing(dataset, train, model_config), dataset)
        model.compile(optimizer=tf.keras.optimizers.Adam(experiment.train.learning_rate))
        pipeline = training_dataset(model, dataset, train, experiment)
        start = time.perf_counter()
        model.fit(pipeline, epochs=args.epochs, verbose=0)
        train_s = time.perf_counter() - start
        metrics = evaluate(cold_only(model.scorer(), cold_mask), task).metrics
        print(
            f"| {name} | {metrics['recall@10']:.4f} | {metrics['ndcg@10']:.4f} | "
            f"{metrics['recall@10'] / oracle['recall@10']:.3f} | {train_s:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
