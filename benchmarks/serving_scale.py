"""Serving at 1M items: a streamed run exported with brute force and with tuned ScaNN.

On a ``generate-data --scale`` dataset (default 200,000 users x 1,000,000 items
x 20 positives a user, ~4M positives; generated under ``--work`` unless it is
there already), this benchmark runs the real commands in child processes and
reads each child's wall time and peak RSS (``wait4``):

1. ``tfrs-recsys train`` of a streamed ids model (``data.stream = true``,
   ``hash-80-20``, in-batch softmax, ``--optimizer`` (default ``lazy_adam``), at most ``--epochs`` epochs
   with early stopping (patience 1), no refit);
2. ``tfrs-recsys export --index brute_force`` (the streaming pass over the
   train parts for the mask and popularity, the towers in batches, save,
   reload, verify);
3. ``tfrs-recsys export --index scann --scann-recall R`` (the same plus the
   tuning: exact top 10 of up to 2,000 sampled users, three trees, the grid).

Then, in this process, both SavedModels are loaded (``tf.saved_model.load``;
the ScaNN ops are loaded first) and ``serving_default`` (top 10, train items
masked) is timed at batch 1 and 256 on random known users: p50 / p99 in ms.
Last, the recall@10 of the ScaNN export against the brute-force export's
exact answers (``recommend_k``, k = 10, train items masked) on a fixed sample
of ``--recall-users`` users drawn with seed 1 (not the tuning's sample, seed 0).

Run: ``.venv/bin/python -m benchmarks.serving_scale [--work runs/serving-scale]``
(about 15-25 minutes on 2 shared cores; prints the machine, the command and
the load averages at the start and the end).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.machine import run_child

CONFIG = """\
name = "serving_scale_ids"

[data]
stream = true
split = "hash-80-20"
eval_users = {eval_users}

[model]
feature_set = "ids"
negatives = "in_batch"

[train]
epochs = {epochs}
batch_size = {batch_size}
optimizer = "{optimizer}"
patience = 1
refit = false
"""


def _latency(call, users: np.ndarray, batch: int, repeats: int, seed: int) -> tuple[float, float]:
    """p50 / p99 ms of ``call`` on random batches of known users (3 untimed calls first)."""
    rng = np.random.default_rng(seed)
    times = []
    for k in range(repeats + 3):
        ids = users[rng.integers(len(users), size=batch)].tolist()
        started = time.perf_counter()
        call(ids)
        if k >= 3:
            times.append((time.perf_counter() - started) * 1000)
    return float(np.percentile(times, 50)), float(np.percentile(times, 99))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("runs/serving-scale"))
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--positives-per-user", type=float, default=20.0)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument(
        "--optimizer", default="lazy_adam", choices=("adam", "lazy_adam", "adagrad", "sgd")
    )
    parser.add_argument("--eval-users", type=int, default=2000)
    parser.add_argument("--scann-recall", type=float, default=0.95)
    parser.add_argument("--recall-users", type=int, default=2000)
    parser.add_argument("--calls", type=int, default=200, help="timed calls at batch 1")
    parser.add_argument("--calls-256", type=int, default=30, help="timed calls at batch 256")
    parser.add_argument(
        "--synthetic-items",
        type=int,
        default=1_000_000,
        help="also tune ScaNN on this many random Gaussian item vectors (no structure; 0: skip)",
    )
    args = parser.parse_args()

    load_start = os.getloadavg()
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "TFRS_RECSYS_CACHE": str(work / "cache"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    os.environ.update(env)
    python = [sys.executable, "-m", "tfrs_recsys"]
    rows: list[tuple[str, str, str, str]] = []

    data = work / "data"
    if (data / "dataset.toml").exists():
        rows.append(("generate-data --scale", "reused", "", f"{data}"))
    else:
        command = python + ["generate-data", "--scale", "--out", str(data), "--json"]
        command += ["--users", str(args.users), "--items", str(args.items)]
        command += ["--positives-per-user", f"{args.positives_per_user:g}"]
        seconds, peak, _ = run_child(command, work / "generate.log")
        rows.append(("generate-data --scale", f"{seconds:.1f}", f"{peak:,.0f}", ""))
    summary = json.loads((data / "dataset.json").read_text(encoding="utf-8"))

    config = work / "serving_scale_ids.toml"
    config.write_text(
        CONFIG.format(
            eval_users=args.eval_users,
            epochs=args.epochs,
            batch_size=args.batch_size,
            optimizer=args.optimizer,
        ),
        encoding="utf-8",
    )
    run_dir = work / "run"
    if (run_dir / "metrics.json").is_file():
        rows.append(("train (streamed, ids)", "reused", "", str(run_dir)))
    else:
        command = python + ["train", "--config", str(config), "--run-dir", str(run_dir)]
        command += ["--set", f"data.source={json.dumps(str(data / 'dataset.toml'))}"]
        seconds, peak, _ = run_child(command, work / "train.log")
        rows.append(("train (streamed, ids)", f"{seconds:.1f}", f"{peak:,.0f}", ""))
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))

    exports = {}
    for index in ("brute_force", "scann"):
        out = work / "exported" / f"scale_{index}"
        command = python + ["export", "--run-dir", str(run_dir), "--out", str(out), "--json"]
        command += ["--index", index, "--no-warmup"]
        if index == "scann":
            command += ["--scann-recall", f"{args.scann_recall:g}"]
        seconds, peak, out_text = run_child(command, work / f"export-{index}.log", capture=True)
        exports[index] = json.loads(out_text)
        size = sum(f.stat().st_size for f in Path(exports[index]["path"]).rglob("*") if f.is_file())
        stages = json.loads(
            (Path(exports[index]["path"]) / "assets.extra" / "export.json").read_text("utf-8")
        )["seconds"]
        note = f"SavedModel {size / 2**20:,.0f} MB; " + ", ".join(
            f"{name} {value:g} s" for name, value in stages.items()
        )
        rows.append((f"export --index {index}", f"{seconds:.1f}", f"{peak:,.0f}", note))

    # The package first: it selects Keras 2 (tf_keras) before TensorFlow is imported.
    from tfrs_recsys.serving.index import import_scann

    import_scann()  # the ScaNN ops, to load the ScaNN export
    import tensorflow as tf

    from benchmarks.machine import describe

    manifest = json.loads(
        (Path(exports["scann"]["path"]) / "assets.extra" / "export.json").read_text("utf-8")
    )
    users = np.asarray(
        __import__("pandas").read_parquet(data / "users.parquet", columns=["user_id"])["user_id"],
        dtype=object,
    )
    models = {index: tf.saved_model.load(exports[index]["path"]) for index in exports}
    latencies = []
    for index, model in models.items():
        serve = model.signatures["serving_default"]

        def call(ids, serve=serve):
            return serve(user_id=tf.constant(ids))["item_ids"].numpy()

        for batch, repeats in ((1, args.calls), (256, args.calls_256)):
            p50, p99 = _latency(call, users, batch, repeats, seed=batch)
            latencies.append((index, batch, p50, p99))

    rng = np.random.default_rng(1)
    sample = users[
        np.sort(rng.choice(len(users), size=min(args.recall_users, len(users)), replace=False))
    ]
    answers = {}
    for index, model in models.items():
        found = []
        for start in range(0, len(sample), 256):
            answer = model.signatures["recommend_k"](
                user_id=tf.constant(sample[start : start + 256].tolist()), k=tf.constant(10)
            )
            found.extend(answer["item_ids"].numpy().astype(str).tolist())
        answers[index] = found
    shares = []
    for exact, approx in zip(answers["brute_force"], answers["scann"]):
        want = {i for i in exact if i}
        if want:
            shares.append(len(want & {i for i in approx if i}) / len(want))
    recall = float(np.mean(shares))
    del models

    synthetic = None
    if args.synthetic_items:
        from tfrs_recsys.serving import scann_tuning
        from tfrs_recsys.serving.tables import ServingTables

        rng = np.random.default_rng(2)
        dim, n = 32, args.synthetic_items
        tables = ServingTables.build(
            [f"u{i}" for i in range(2000)],
            rng.normal(size=(2000, dim)).astype(np.float32),
            [f"i{i}" for i in range(n)],
            rng.normal(size=(n, dim)).astype(np.float32),
        )
        started = time.perf_counter()
        try:
            synthetic = scann_tuning.tune_scann(tables, exclude=False, target=args.scann_recall)
            synthetic = (synthetic.manifest(), time.perf_counter() - started)
        except Exception as error:  # noqa: BLE001 - the benchmark reports a failed tuning
            synthetic = ({"error": str(error)}, time.perf_counter() - started)
    load_end = os.getloadavg()

    print(describe())
    print(
        f"load average at start {load_start[0]:.2f} {load_start[1]:.2f} {load_start[2]:.2f}, "
        f"at end {load_end[0]:.2f} {load_end[1]:.2f} {load_end[2]:.2f}"
    )
    print(
        f"data: {summary['users']:,} users x {summary['items']:,} items, "
        f"{summary['positives']:,} positives; train parts {manifest['stream']['train_rows']:,} "
        f"rows, masked pairs {manifest['stream']['masked_pairs']:,} (at most "
        f"{manifest['stream']['most_masked_for_one_user']} for one user)"
    )
    print(
        f"model: {metrics['model']}, {metrics['epochs_run']} epoch(s) of "
        f"{metrics['stream']['fit_rows']:,} fit rows, {metrics['examples_per_s']} examples/s; "
        f"holdout recall@10 on {metrics['evaluation']['holdout_sample_users']} sampled users "
        f"{metrics['holdout']['metrics'].get('recall@10')}"
    )
    print("\n| step | wall s | peak RSS MB | note |\n|---|---:|---:|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print("\n| index | batch | p50 ms | p99 ms | p50 ms per user |\n|---|---:|---:|---:|---:|")
    for index, batch, p50, p99 in latencies:
        print(f"| {index} | {batch} | {p50:.2f} | {p99:.2f} | {p50 / batch:.3f} |")
    scann = manifest["scann"]
    chosen = scann["chosen"]
    print(
        f"\nScaNN tuned: num_leaves {chosen['num_leaves']}, num_leaves_to_search "
        f"{chosen['num_leaves_to_search']}, reorder {chosen['reorder']}; recall@10 "
        f"{scann['recall_at_k']} on the tuning sample ({scann['sample_users']} users, seed "
        f"{scann['sample_seed']}, target {scann['target_recall']}), reloaded SavedModel "
        f"{scann['saved_model_recall_at_k']}; seconds {scann['seconds']}"
    )
    print(
        f"recall@10 of the ScaNN export against the brute-force export on {len(shares)} other "
        f"users (seed 1): {recall:.4f}"
    )
    _print_grid("the trained model", scann["grid"])
    if synthetic is not None:
        result, seconds = synthetic
        if "error" in result:
            print(f"\nsynthetic {args.synthetic_items:,} x 32 Gaussian items: {result['error']}")
        else:
            chosen = result["chosen"]
            print(
                f"\nsynthetic {args.synthetic_items:,} x 32 Gaussian items, 2,000 Gaussian "
                f"queries, nothing masked: num_leaves {chosen['num_leaves']}, "
                f"num_leaves_to_search {chosen['num_leaves_to_search']}, reorder "
                f"{chosen['reorder']}; recall@10 {result['recall_at_k']} (target "
                f"{result['target_recall']}); tuning {seconds:.1f} s {result['seconds']}"
            )
            _print_grid("the synthetic catalog", result["grid"])


def _print_grid(what: str, grid: list[dict]) -> None:
    print(
        f"\ngrid on {what} (num_leaves, num_leaves_to_search, reorder: recall@10, est. cost, ms/query):"
    )
    for point in grid:
        print(
            f"  {point['num_leaves']}, {point['num_leaves_to_search']}, {point['reorder']}: "
            f"{point['recall_at_k']:.4f}, {point['estimated_cost']:,}, {point['ms_per_query']}"
        )


if __name__ == "__main__":
    main()
