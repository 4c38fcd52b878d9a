"""Training throughput by batch size, and the share of a step outside the matrix products.

For each batch size, a retrieval config is trained for ``--steps`` steps with
the scalable loss (in-batch softmax with logQ correction) on the default
tech-products data, after ``--warmup`` steps that trace the graph; the result
is examples (train positives) per second.

The matrix-product floor of a step is measured apart: every dense kernel
``[in, out]`` of the model as a ``[batch, in] x [in, out]`` product and the
in-batch logits ``[batch, d] x [d, batch]``, each timed three times over (the
forward product and its two gradient products) on random tensors in one traced
function. ``1 - floor / step`` is the share of a step spent elsewhere: the
input pipeline, id lookups and feature gathers, the softmax, the optimizer's
updates of the embedding tables, and Python / Keras overhead.

Run: ``.venv/bin/python -m benchmarks.train_throughput [--config tech_ids]
[--batch-sizes 256,1024,4096,8192] [--steps 50]``
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import tfrs_recsys  # noqa: F401  (Keras 2 before TensorFlow)
from benchmarks.machine import describe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data/tech-products"))
    parser.add_argument("--config", default="tech_ids", help="shipped config name or TOML file")
    parser.add_argument("--batch-sizes", default="256,1024,4096,8192")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    args = parser.parse_args()

    import tensorflow as tf

    from tfrs_recsys.config import load_config
    from tfrs_recsys.features.preprocessing import fit_preprocessing
    from tfrs_recsys.models.factory import build_model, training_dataset
    from tfrs_recsys.training.run import optimizer_for, prepare_data

    print(describe())
    print(
        f"command: python -m benchmarks.train_throughput --config {args.config} "
        f"--batch-sizes {args.batch_sizes} --steps {args.steps}"
    )
    base = load_config(
        args.config,
        [
            f'data.source="{args.data}"',
            'model.loss="softmax"',
            'model.negatives="in_batch"',
            "model.logq_correction=true",
        ],
    )
    data = prepare_data(base)
    preprocessing = fit_preprocessing(data.dataset, data.split.train, base.model)
    print(
        f"{base.name} ({base.model.feature_set}), in-batch softmax with logQ; "
        f"{len(data.split.train):,} train positives"
    )
    print("| batch | examples/s | step ms | matrix products ms | share outside the products |")
    print("|---:|---:|---:|---:|---:|")
    for batch in [int(b) for b in args.batch_sizes.split(",")]:
        from tfrs_recsys.config import with_overrides

        config = with_overrides(base, [f"train.batch_size={batch}"])
        tf.keras.backend.clear_session()
        model = build_model(config.model, preprocessing, data.dataset)
        model.compile(optimizer=optimizer_for(config), steps_per_execution=min(args.steps, 10))
        pipeline = training_dataset(model, data.dataset, data.split.train, config).repeat()
        model.fit(pipeline, steps_per_epoch=args.warmup, epochs=1, verbose=0)
        start = time.perf_counter()
        model.fit(pipeline, steps_per_epoch=args.steps, epochs=1, verbose=0)
        step_s = (time.perf_counter() - start) / args.steps
        floor_s = _matmul_floor(model, batch, args.steps)
        print(
            f"| {batch:,} | {batch / step_s:,.0f} | {step_s * 1e3:.1f} | {floor_s * 1e3:.1f} | "
            f"{1 - floor_s / step_s:.0%} |",
            flush=True,
        )


def _matmul_floor(model, batch: int, repeats: int) -> float:
    """Seconds per step of the model's matrix products alone (forward and both gradients)."""
    import tensorflow as tf

    kernels = [v for v in model.trainable_variables if v.name.endswith("kernel:0")]
    dim = int(model.item_embeddings().shape[1])
    shapes = [(int(k.shape[0]), int(k.shape[1])) for k in kernels]
    inputs = [tf.random.normal([batch, n_in]) for n_in, _ in shapes]
    weights = [tf.random.normal(shape) for shape in shapes]
    queries = tf.random.normal([batch, dim])
    candidates = tf.random.normal([batch, dim])

    @tf.function
    def products():
        total = tf.constant(0.0)
        for x, w in zip(inputs, weights):
            for _ in range(3):  # forward, and the gradients of x and w (same cost)
                total += tf.reduce_sum(tf.matmul(x, w)[:1, :1])
        for _ in range(3):
            total += tf.reduce_sum(tf.matmul(queries, candidates, transpose_b=True)[:1, :1])
        return total

    products()  # trace
    start = time.perf_counter()
    for _ in range(repeats):
        products().numpy()
    return (time.perf_counter() - start) / repeats


if __name__ == "__main__":
    main()
