"""Throughput of the tf.data pipelines against the notebooks' numpy feeding.

Measures, on the default tech-products data (holdout-80-20 train split):

1. iterating the retrieval and ranking pipelines alone (examples/s);
2. training the first seed notebook's model for a fixed number of examples,
   fed (a) the notebook's way: pre-encoded numpy arrays into ``model.fit`` with
   batch 64, and (b) by the ranking pipeline, raw strings and numbers with
   ``StringLookup`` / ``Normalization`` inside the model, at batch 64 and 1024.

Run: ``.venv/bin/python benchmarks/pipeline_throughput.py [--data DIR] [--examples N]``
Figures are medians over ``--repeats`` runs in one process on one machine.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import tfrs_recsys  # noqa: F401  (routes tf.keras to Keras 2 before TensorFlow loads)

# isort: split
import numpy as np
import tensorflow as tf

from benchmarks.machine import dataset_dir, describe
from tfrs_recsys.data.pipelines import ranking_dataset, retrieval_dataset
from tfrs_recsys.data.splits import holdout_80_20
from tfrs_recsys.data.techproducts import load_tech_products
from tfrs_recsys.notebook_models.seed_subset import notebook_network

EMBEDDING_DIM = 32


def _median_rate(run, repeats: int, setup=None) -> tuple[float, float]:
    """Median examples/s and seconds of ``run`` (``setup()``, untimed, feeds it)."""
    rates, seconds = [], []
    for _ in range(repeats):
        argument = setup() if setup is not None else None
        start = time.perf_counter()
        examples = run(argument) if setup is not None else run()
        elapsed = time.perf_counter() - start
        rates.append(examples / elapsed)
        seconds.append(elapsed)
    return statistics.median(rates), statistics.median(seconds)


def _iterate(ds: tf.data.Dataset) -> int:
    n = 0
    for batch in ds:
        n += int(tf.shape(batch["user_id"])[0])
    return n


def notebook_model(n_users: int, n_items: int) -> tf.keras.Model:
    """The first seed notebook's two-tower model on encoded ids and scaled numbers."""
    return notebook_network(n_users, n_items, EMBEDDING_DIM)


class InGraphNotebookModel(tf.keras.Model):
    """The same model taking raw feature dicts: lookups and scaling in the graph."""

    def __init__(self, dataset) -> None:
        super().__init__()
        users, items = dataset.table("user"), dataset.table("item")
        self.user_lookup = tf.keras.layers.StringLookup(vocabulary=list(users.ids))
        self.item_lookup = tf.keras.layers.StringLookup(vocabulary=list(items.ids))
        self.age_norm = tf.keras.layers.Normalization(axis=None)
        self.age_norm.adapt(users.columns["age"])
        self.price_norm = tf.keras.layers.Normalization(axis=None)
        self.price_norm.adapt(items.columns["price"])
        self.inner = notebook_model(len(users) + 1, len(items) + 1)

    def call(self, features):
        return self.inner(
            {
                "user_id": tf.cast(self.user_lookup(features["user_id"]), tf.int32),
                "user_age": self.age_norm(features["age"])[:, None],
                "item_id": tf.cast(self.item_lookup(features["item_id"]), tf.int32),
                "item_price": self.price_norm(features["price"])[:, None],
            }
        )

    def train_step(self, features):
        with tf.GradientTape() as tape:
            prediction = self(features, training=True)[:, 0]
            loss = tf.reduce_mean(
                tf.keras.losses.binary_crossentropy(features["label"][:, None], prediction[:, None])
            )
        self.optimizer.apply_gradients(
            zip(tape.gradient(loss, self.trainable_variables), self.trainable_variables)
        )
        return {"loss": loss}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, default=None, help="tech-products directory (default: generate)"
    )
    parser.add_argument(
        "--examples", type=int, default=300_000, help="examples per training measurement"
    )
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    print(describe())
    args.data, _tmp = dataset_dir(args.data)
    dataset = load_tech_products(args.data)
    train = holdout_80_20(dataset.interactions).train
    print(
        f"data: {args.data} ({dataset.n_users} users, {dataset.n_items} items), holdout-80-20 train {len(train)} pairs"
    )
    print()
    print("| what | batch | examples/s (median) | seconds per epoch |")
    print("|---|---:|---:|---:|")
    for batch_size in (1024, 64):
        retrieval = retrieval_dataset(dataset, train, batch_size=batch_size)
        rate, secs = _median_rate(lambda: _iterate(retrieval), args.repeats)
        print(f"| retrieval pipeline, iterate only | {batch_size} | {rate:,.0f} | {secs:.2f} |")
        ranking = ranking_dataset(dataset, train, negatives_per_user=100, batch_size=batch_size)
        rate, secs = _median_rate(lambda: _iterate(ranking), args.repeats)
        print(
            f"| ranking pipeline (+100 negatives/user), iterate only | {batch_size} | {rate:,.0f} | {secs:.2f} |"
        )

    # Training: the notebook's numpy feeding vs the pipeline, same model, same examples.
    examples = args.examples
    rng = np.random.default_rng(0)
    users, items = dataset.table("user"), dataset.table("item")
    user_index, item_index = dataset.encode(train)
    neg_users = rng.integers(len(users), size=examples)
    pos = rng.integers(len(user_index), size=examples)
    u = np.where(np.arange(examples) % 2 == 0, user_index[pos], neg_users).astype(np.int32)
    i = np.where(
        np.arange(examples) % 2 == 0, item_index[pos], rng.integers(len(items), size=examples)
    ).astype(np.int32)
    age, price = users.columns["age"], items.columns["price"]
    x = {
        "user_id": u,
        "user_age": ((age[u] - age.min()) / (age.max() - age.min()))[:, None],
        "item_id": i,
        "item_price": ((price[i] - price.min()) / (price.max() - price.min()))[:, None],
    }
    y = (np.arange(examples) % 2 == 0).astype(np.float32)

    def warmed_numpy_model() -> tf.keras.Model:
        model = notebook_model(len(users), len(items))
        # Trace the train step outside the timed region.
        model.fit({k: v[:640] for k, v in x.items()}, y[:640], epochs=1, batch_size=64, verbose=0)
        return model

    def numpy_fit(model: tf.keras.Model) -> int:
        model.fit(x, y, epochs=1, batch_size=64, verbose=0)
        return examples

    rate, secs = _median_rate(numpy_fit, args.repeats, warmed_numpy_model)
    print(
        f"| notebook 1 model, numpy arrays into fit (notebook's way) | 64 | {rate:,.0f} | {secs * 1_773_028 / examples:.0f} (est., 1,773,028 ex) |"
    )
    for batch_size in (64, 1024):
        pipe = ranking_dataset(dataset, train, negatives_per_user=100, batch_size=batch_size)

        steps = examples // batch_size
        stream = iter(pipe.repeat())

        def warmed_pipeline_model() -> tf.keras.Model:
            model = InGraphNotebookModel(dataset)
            model.compile(optimizer="adam")
            model.fit(stream, steps_per_epoch=5, epochs=1, verbose=0)
            return model

        def pipeline_fit(model: tf.keras.Model) -> int:
            model.fit(stream, steps_per_epoch=steps, epochs=1, verbose=0)
            return steps * batch_size

        rate, secs = _median_rate(pipeline_fit, args.repeats, warmed_pipeline_model)
        print(
            f"| notebook 1 model, ranking pipeline + in-graph lookups | {batch_size} | {rate:,.0f} | "
            f"{secs * 1_773_028 / examples:.0f} (est., 1,773,028 ex) |"
        )


if __name__ == "__main__":
    main()
