"""Training speed of a TFRS config against the first notebook's way of training.

On the default tech-products data (holdout-80-20), in one process:

1. the first notebook's model trained the notebook's way (``SeedSubsetModel``:
   numpy arrays into ``fit``, batch 64, positives + 100 sampled negatives per
   user), for ``--notebook-epochs`` epochs (the notebook ran 5); its examples/s
   and the time its 5 epochs take at that speed;
2. ``tfrs-recsys train`` of ``--config`` (tf.data pipeline, early stopping on a
   validation split carved from train, refit when configured): examples/s,
   seconds until the best validation epoch ended (time-to-best-recall), total
   training seconds, and the holdout recall@10.

Examples are the rows a model trains on per epoch: the notebook's positives +
negatives; the train positives for the TFRS softmax models; for
``catalog_sigmoid`` the train positives too (each step also scores every
other catalog item of its users, so the work per "example" is larger).

Run: ``.venv/bin/python -m benchmarks.training_speed [--config tech_all]``
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import tfrs_recsys  # noqa: F401  (Keras 2 before TensorFlow)

# isort: split
import pandas as pd

from benchmarks.machine import dataset_dir, describe
from tfrs_recsys.config import load_config
from tfrs_recsys.data.splits import holdout_80_20
from tfrs_recsys.data.techproducts import load_tech_products
from tfrs_recsys.notebook_models.seed_subset import SeedSubsetModel
from tfrs_recsys.training.run import HISTORY_FILE, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--config", default="tech_all", help="shipped config name or TOML file")
    parser.add_argument(
        "--notebook-epochs", type=int, default=1, help="epochs of the notebook's model to time"
    )
    args = parser.parse_args()
    print(describe())
    args.data, _tmp = dataset_dir(args.data)
    dataset = load_tech_products(args.data)
    split = holdout_80_20(dataset.interactions)

    start = time.perf_counter()
    seed = SeedSubsetModel.fit(dataset, split.train, split.holdout, epochs=args.notebook_epochs)
    setup_s = time.perf_counter() - start - seed.train_s
    notebook_examples = len(split.train) + 100 * split.train["user_id"].nunique()
    notebook_rate = notebook_examples * args.notebook_epochs / seed.train_s
    print(
        f"\nnotebook's way (numpy arrays into fit, batch 64): {notebook_examples:,} examples/epoch, "
        f"{args.notebook_epochs} epoch(s) in {seed.train_s:.0f} s (+{setup_s:.0f} s negatives/setup) = "
        f"{notebook_rate:,.0f} examples/s -> its 5 epochs take ~{5 * notebook_examples / notebook_rate:.0f} s"
    )

    config = load_config(args.config, overrides=[f"data.source={args.data}"])
    with tempfile.TemporaryDirectory() as tmp:
        run = train(config, Path(tmp) / "run", verbose=0)
        history = pd.read_csv(Path(tmp) / "run" / HISTORY_FILE)
    metrics = run.metrics
    to_best = float(history["epoch_s"].iloc[: metrics["best_epoch"]].sum())
    refit_s = metrics["refit"]["train_s"] if metrics.get("refit") else 0.0
    recall = metrics["holdout"]["metrics"]["recall@10"]
    print(
        f"\n{args.config} ({config.model.loss} loss, batch {config.train.batch_size}): "
        f"{metrics['examples_per_s']:,.0f} examples/s; best validation epoch {metrics['best_epoch']} "
        f"of {metrics['epochs_run']} reached after {to_best:.0f} s; early-stopped training {metrics['train_s']:.0f} s"
        f" + refit {refit_s:.0f} s = {metrics['train_s'] + refit_s:.0f} s; holdout recall@10 {recall:.4f}"
    )
    notebook_total = 5 * notebook_examples / notebook_rate
    print(
        f"training time vs the notebook's 5 epochs: {(metrics['train_s'] + refit_s) / notebook_total:.2f}x"
    )


if __name__ == "__main__":
    main()
