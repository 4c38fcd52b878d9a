"""Quality at scale: a streamed model on a 1M-user generated set, next to popularity and the oracle.

1. ``generate-data --scale`` writes ``--users`` users x ``--items`` items x
   ``--positives-per-user`` positives a user (Parquet shards, ``dataset.toml``,
   the true model), unless ``--work``/data exists.
2. ``tfrs-recsys train`` trains a streamed run (``data.stream = true``,
   ``hash-80-20``, in-batch softmax with logQ; ``--feature-set``, ``--epochs``
   with early stopping on the validation carve; ``data.eval_users`` users in the
   holdout sample), in a child process.
3. In this process: the run's holdout sample (the ``eval_users`` users with the
   smallest user hash; fixed by the user ids alone) is ranked by the trained
   model, by popularity (train rows of each item over the whole train side)
   and by the generator's oracle (the true like-probabilities), all with the
   protocol of docs/evaluation.md (train items masked, full catalog).

Run: ``.venv/bin/python -m benchmarks.scale_quality --work runs/scale-quality
[--users 1000000] [--items 100000] [--positives-per-user 10] [--feature-set ids]
[--epochs 3] [--eval-users 20000] [--optimizer lazy_adam]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--positives-per-user", type=float, default=10.0)
    parser.add_argument("--feature-set", default="ids", choices=("ids", "subset", "all"))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--eval-users", type=int, default=20_000)
    parser.add_argument(
        "--optimizer", default="lazy_adam", choices=("adam", "lazy_adam", "adagrad", "sgd")
    )
    args = parser.parse_args()

    load_at_start = os.getloadavg()
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    os.environ["TFRS_RECSYS_CACHE"] = str(work / "cache")
    data = work / "data"
    timings: dict[str, float] = {}
    python = [sys.executable, "-m", "tfrs_recsys"]
    if not (data / "dataset.toml").exists():
        started = time.perf_counter()
        command = [*python, "generate-data", "--scale", "--out", str(data)]
        command += ["--users", str(args.users), "--items", str(args.items)]
        command += ["--positives-per-user", f"{args.positives_per_user:g}", "--json"]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        timings["generate-data --scale"] = time.perf_counter() - started

    config = work / f"stream_{args.feature_set}.toml"
    config.write_text(
        "\n".join(
            [
                "[data]",
                f"source = {json.dumps(str(data.resolve()))}",
                "stream = true",
                'split = "hash-80-20"',
                f"eval_users = {args.eval_users}",
                "[model]",
                'negatives = "in_batch"',
                f'feature_set = "{args.feature_set}"',
                "[train]",
                f"epochs = {args.epochs}",
                f"batch_size = {args.batch_size}",
                f'optimizer = "{args.optimizer}"',
                "patience = 1",
                "refit = false",
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    run_dir = work / f"run_{args.feature_set}"
    if not (run_dir / "metrics.json").is_file():
        started = time.perf_counter()
        command = [*python, "train", "--config", str(config), "--run-dir", str(run_dir)]
        command += ["--resume"] if run_dir.exists() else []
        subprocess.run(command, check=True)
        timings["train (streamed, child process)"] = time.perf_counter() - started

    from tfrs_recsys.baselines.oracle import OracleScorer
    from tfrs_recsys.baselines.popularity import PopularityScorer
    from tfrs_recsys.data.techproducts import load_truth
    from tfrs_recsys.evaluation.protocol import EvaluationTask, evaluate
    from tfrs_recsys.training.run import load_run
    from tfrs_recsys.training.streamed import cached_stats

    started = time.perf_counter()
    run = load_run(run_dir)
    timings["load the run and its holdout sample"] = time.perf_counter() - started
    dataset, split = run.data.dataset, run.data.split
    truth = load_truth(data)
    users = dataset.table("user").ids
    width = max(4, len(str(truth.n_users)))
    expected = [f"user_{n:0{width}d}" for n in range(1, truth.n_users + 1)]
    if list(users) != expected:
        sys.exit(
            "the user table is not in the generator's order: the oracle's rows would not match"
        )
    task = EvaluationTask.build(dataset, split.train, split.holdout, split_name=split.name)
    counts = cached_stats(run.data.parts, run.data.declaration).counts_for(
        "item", dataset.table("item").ids
    )
    scorers = {
        "popularity": PopularityScorer(counts),
        f"retrieval_{args.feature_set} (streamed)": run.model.scorer(),
        "oracle": OracleScorer(truth).check_dataset(dataset),
    }
    results = {}
    for name, scorer in scorers.items():
        started = time.perf_counter()
        results[name] = evaluate(scorer, task)
        timings[f"evaluate {name}"] = time.perf_counter() - started
    metrics = json.loads((run_dir / "metrics.json").read_text())

    from benchmarks.machine import describe

    print(describe())
    print(f"load average at start: {', '.join(f'{x:.1f}' for x in load_at_start)}")
    print(f"load average at end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    split_record = metrics["stream"]["split"]
    print(
        f"data: generate-data --scale --users {args.users} --items {args.items} "
        f"--positives-per-user {args.positives_per_user:g}: {split_record.get('positives', 0):,} "
        f"positives; split {split_record['name']} (train {split_record['rows']['train']:,} / "
        f"holdout {split_record['rows']['holdout']:,} rows)"
    )
    print(
        f"model: retrieval, feature_set {args.feature_set}, in-batch softmax with logQ, "
        f"optimizer {args.optimizer}, batch "
        f"{args.batch_size}, best epoch {metrics.get('best_epoch')} of at most {args.epochs} "
        "(early stopping on the validation carve), no refit"
    )
    print(
        f"users: the run's holdout sample, {task.n_users:,} users (the {args.eval_users:,} "
        "smallest user hashes of the holdout side)"
    )
    print()
    oracle = results["oracle"].metrics["recall@10"]
    print("| model | recall@10 | ndcg@10 | recall@50 | recall@10 / oracle |")
    print("|---|---|---|---|---|")
    for name, result in results.items():
        m = result.metrics
        print(
            f"| {name} | {m['recall@10']:.4f} | {m['ndcg@10']:.4f} | {m['recall@50']:.4f} | "
            f"{m['recall@10'] / oracle:.3f} |"
        )
    print()
    for name, seconds in timings.items():
        print(f"{name}: {seconds:.1f} s")


if __name__ == "__main__":
    main()
