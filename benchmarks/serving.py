"""Latency of the exported SavedModel, against the notebooks' way of scoring a user.

1. Default catalog: generates the default tech-products data, trains
   the shipped ``tech_ids`` config briefly (``--epochs``, default 2), exports it
   (``serving_default``, top 10, train items masked), loads the SavedModel with
   ``tf.saved_model.load`` and times ``serving_default`` for batches of 1 and
   256 random known users (p50 / p99 over ``--repeats`` calls after a warm-up).
2. The notebooks' way, in the same run: one ``model.predict`` over all 1,000
   items of the catalog per user, with the first notebook's Keras network
   (user id + age and item id + price concatenated per pair).
3. A synthetic catalog of ``--items`` (default 1M) random item vectors of
   ``--dim`` (default 32), 10,000 random users, nothing masked: the same
   SavedModel with the brute-force top-k, and with a ScaNN index (tree + AH +
   reordering) if the optional ``scann`` extra is installed, with ScaNN's
   recall@10 against the exact top 10 of 1,000 users.

Run: ``.venv/bin/python -m benchmarks.serving [--data DIR] [--run-dir RUN] [--items N]``
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import tfrs_recsys  # noqa: F401  (Keras 2 before TensorFlow)

# isort: split
import numpy as np
import tensorflow as tf

from benchmarks.machine import dataset_dir, describe


def latency(call, make_batch, repeats: int, warmup: int = 3) -> tuple[float, float]:
    """p50 and p99 in milliseconds of ``call(make_batch())`` (batch made outside the timing)."""
    for _ in range(warmup):
        call(make_batch())
    times = []
    for _ in range(repeats):
        batch = make_batch()
        start = time.perf_counter()
        call(batch)
        times.append((time.perf_counter() - start) * 1000)
    return float(np.percentile(times, 50)), float(np.percentile(times, 99))


def row(what: str, batch: int, p50: float, p99: float, note: str = "") -> str:
    per_user = p50 / batch
    return f"| {what} | {batch} | {p50:.2f} | {p99:.2f} | {per_user:.3f} | {note} |"


def default_catalog(args, tmp: Path) -> list[str]:
    from tfrs_recsys.config import load_config
    from tfrs_recsys.notebook_models.seed_subset import notebook_network
    from tfrs_recsys.serving.export import export_run
    from tfrs_recsys.training.run import train

    data, _handle = dataset_dir(args.data)
    run_dir = args.run_dir
    if run_dir is None:
        run_dir = tmp / "run"
        config = load_config(
            "tech_ids",
            [f'data.source="{data}"', f"train.epochs={args.epochs}", "train.patience=0"],
        )
        start = time.perf_counter()
        metrics = train(config, run_dir, verbose=0).metrics
        print(
            f"trained tech_ids for {args.epochs} epochs in {time.perf_counter() - start:.0f} s "
            f"(holdout recall@10 {metrics['holdout']['metrics']['recall@10']:.4f})"
        )
    result = export_run(
        run_dir, tmp / "exported_models" / "tech_ids", n=10, notice=lambda text: None
    )
    print(f"exported in {result.seconds:.1f} s: {result.path}")
    loaded = tf.saved_model.load(str(result.path))
    serve = loaded.signatures["serving_default"]
    users = np.array(
        [line.split(",", 1)[0] for line in (Path(data) / "users.csv").read_text().splitlines()[1:]],
        dtype=object,
    )
    rng = np.random.default_rng(0)
    lines = []
    for batch in (1, 256):
        p50, p99 = latency(
            lambda ids: serve(user_id=ids),
            lambda: tf.constant(rng.choice(users, size=batch)),
            args.repeats if batch == 1 else max(20, args.repeats // 4),
        )
        lines.append(
            row(
                "SavedModel `serving_default` (top 10, train items masked), 1,000 items",
                batch,
                p50,
                p99,
            )
        )

    n_users, n_items = len(users), 1000
    network = notebook_network(n_users, n_items, 32)

    def notebook_predict(user: int) -> None:
        network.predict(
            {
                "user_id": np.full(n_items, user, np.int32),
                "user_age": np.full((n_items, 1), 0.5, np.float32),
                "item_id": np.arange(n_items, dtype=np.int32),
                "item_price": rng.random((n_items, 1)).astype(np.float32),
            },
            verbose=0,
        )

    p50, p99 = latency(
        notebook_predict, lambda: int(rng.integers(n_users)), max(10, args.repeats // 5)
    )
    lines.append(
        row(
            "notebooks: one `model.predict` over the 1,000 items of one user",
            1,
            p50,
            p99,
            "scores only; no top-k, no mask",
        )
    )
    return lines


def synthetic_catalog(args, tmp: Path) -> list[str]:
    from tfrs_recsys.serving.module import RecommenderModule
    from tfrs_recsys.serving.tables import ServingTables

    rng = np.random.default_rng(1)
    n_users = 10_000
    tables = ServingTables.build(
        [f"u{i}" for i in range(n_users)],
        rng.standard_normal((n_users, args.dim), dtype=np.float32),
        [f"i{i}" for i in range(args.items)],
        rng.standard_normal((args.items, args.dim), dtype=np.float32),
        popularity=rng.integers(0, 100, args.items).astype(np.float32),
    )
    ids = np.array([f"u{i}" for i in range(n_users)], dtype=object)
    lines = []
    answers = {}
    try:
        import scann  # noqa: F401

        indexes = ["brute_force", "scann"]
    except ImportError:
        indexes = ["brute_force"]
    for index in indexes:
        start = time.perf_counter()
        module = RecommenderModule(tables, n=10, exclude=False, index=index)
        path = tmp / f"synthetic_{index}"
        tf.saved_model.save(
            module,
            str(path),
            signatures={"serving_default": module.serving_default.get_concrete_function()},
        )
        del module
        build_s = time.perf_counter() - start
        serve = tf.saved_model.load(str(path)).signatures["serving_default"]
        label = f"synthetic {args.items:,} items x {args.dim}, {index}"
        for batch in (1, 256):
            p50, p99 = latency(
                lambda q: serve(user_id=q),
                lambda: tf.constant(rng.choice(ids, size=batch)),
                args.repeats if batch == 1 else max(5, args.repeats // 20),
                warmup=2,
            )
            lines.append(
                row(
                    label,
                    batch,
                    p50,
                    p99,
                    f"index built and saved in {build_s:.0f} s" if batch == 1 else "",
                )
            )
        sample = tf.constant(ids[:1000])
        answers[index] = np.concatenate(
            [serve(user_id=sample[s : s + 100])["item_ids"].numpy() for s in range(0, 1000, 100)]
        )
    if "scann" in answers:
        exact, approx = answers["brute_force"], answers["scann"]
        recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact)])
        lines.append(f"\nScaNN recall@10 against the exact top 10 (1,000 users): {recall:.4f}")
    else:
        lines.append("\nScaNN: not installed (optional extra: pip install 'tfrs-recsys[scann]')")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, default=None, help="default tech-products data (default: generate)"
    )
    parser.add_argument(
        "--run-dir", type=Path, default=None, help="a trained tech_ids run (default: train one)"
    )
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=32)
    args = parser.parse_args()
    print(describe())
    header = [
        "",
        "| what | batch | p50 ms | p99 ms | p50 ms per user | note |",
        "|---|---:|---:|---:|---:|---|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        lines = default_catalog(args, Path(tmp))
        print("\n".join(header + lines), flush=True)
        lines = synthetic_catalog(args, Path(tmp))
        print("\n".join(header + lines))


if __name__ == "__main__":
    main()
