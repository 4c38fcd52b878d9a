"""Streamed training and evaluation at 1M, 10M and 100M interactions: time and peak memory.

For each size, a ``generate-data --scale`` set of ``size / 100`` users x
``--items`` items x 100 positives a user (Parquet shards, ``dataset.toml``),
then three child processes, each with its own peak RSS (``ru_maxrss`` of the
child, from ``os.wait4``):

1. ``generate``: ``tfrs-recsys generate-data --scale`` (skipped when the
   directory exists; its figures are then not printed);
2. ``train``: :mod:`benchmarks.streamed_training` (the cached hash split, the
   validation carve, statistics, the 20,000-user evaluation samples, the
   model, ``--steps`` timed steps of ``--batch-size`` after 20 warm-up steps,
   one validation), saving the weights;
3. ``evaluate``: :mod:`benchmarks.streamed_evaluation` (every holdout user of
   the split ranked against the whole catalog, in blocks of 100,000 users).

A full epoch is not run at every size: its time is the fit rows over the
measured examples/s (the step does not depend on the data size; the one-pass
steps, split, carve, statistics and samples, are measured in full).

Run: ``.venv/bin/python -m benchmarks.scale --work runs/scale [--sizes 1M,10M,100M]
[--items 100000] [--steps 1000] [--batch-size 1024] [--feature-set ids]
[--optimizer lazy_adam]``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from benchmarks.machine import run_child

SIZES = {"1M": 1_000_000, "10M": 10_000_000, "100M": 100_000_000}
PER_USER = 100


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--sizes", default="1M,10M,100M")
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--feature-set", default="ids", choices=("ids", "subset", "all"))
    parser.add_argument(
        "--optimizer", default="lazy_adam", choices=("adam", "lazy_adam", "adagrad", "sgd")
    )
    args = parser.parse_args()
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    unknown = [s for s in sizes if s not in SIZES]
    if unknown:
        sys.exit(f"--sizes: unknown size(s) {unknown}; choose from {', '.join(SIZES)}")

    python = sys.executable
    load_at_start = os.getloadavg()
    results = []
    for name in sizes:
        work = args.work / name
        work.mkdir(parents=True, exist_ok=True)
        data = work / "data"
        users = SIZES[name] // PER_USER
        record: dict = {"size": name, "users": users}
        if not (data / "dataset.toml").exists():
            command = [python, "-m", "tfrs_recsys", "generate-data", "--scale", "--out", str(data)]
            command += ["--users", str(users), "--items", str(args.items)]
            command += ["--positives-per-user", str(PER_USER), "--json"]
            record["generate"] = run_child(command, work / "generate.log")[:2]
        train_json, eval_json = work / "train.json", work / "evaluate.json"
        weights = work / "weights" / "model"
        command = [python, "-m", "benchmarks.streamed_training", "--data", str(data)]
        command += ["--work", str(work), "--steps", str(args.steps)]
        command += ["--batch-size", str(args.batch_size), "--feature-set", args.feature_set]
        command += ["--json", str(train_json), "--save-weights", str(weights)]
        command += ["--optimizer", args.optimizer]
        record["train"] = run_child(command, work / "train.log")[:2]
        command = [python, "-m", "benchmarks.streamed_evaluation", "--data", str(data)]
        command += ["--work", str(work), "--weights", str(weights)]
        command += ["--batch-size", str(args.batch_size), "--feature-set", args.feature_set]
        command += ["--json", str(eval_json)]
        record["evaluate"] = run_child(command, work / "evaluate.log")[:2]
        record["train_figures"] = json.loads(train_json.read_text())
        record["eval_figures"] = json.loads(eval_json.read_text())
        results.append(record)
        print(f"{name}: done", file=sys.stderr)
    (args.work / "scale.json").write_text(json.dumps(results, indent=2), encoding="utf-8")

    from benchmarks.machine import describe

    print(describe())
    print(f"load average at start: {', '.join(f'{x:.1f}' for x in load_at_start)}")
    print(f"load average at end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(
        f"config: feature_set {args.feature_set}, in-batch softmax with logQ, optimizer "
        f"{args.optimizer}, batch "
        f"{args.batch_size}, {args.steps} timed steps; {args.items:,} items, {PER_USER} "
        "positives a user"
    )
    print()
    print(
        "| interactions | users | generate s (peak MB) | split + carve + statistics s | "
        "eval samples s | examples/s | epoch s (fit rows / examples/s) | train process peak MB | "
        "holdout users evaluated | evaluate s (blocks cut s) | evaluate process peak MB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for record in results:
        steps = {s["step"]: s for s in record["train_figures"]["steps"]}
        one_pass = sum(
            steps[k]["s"]
            for k in ("split hash-80-20", "validation carve", "statistics (fit parts)")
            if k in steps
        )
        samples = steps.get("evaluation samples (validation, holdout)", {}).get("s", 0.0)
        evaluation = record["eval_figures"]
        eval_steps = {s["step"]: s for s in evaluation["steps"]}
        cut = eval_steps.get("blocks of users (both sides cut)", {}).get("s", 0.0)
        generate = record.get("generate")
        generated = f"{generate[0]:.0f} ({generate[1]:,.0f})" if generate else "(existing)"
        train = record["train_figures"]
        print(
            f"| {train['positives']:,} | {record['users']:,} | {generated} | {one_pass:.1f} | "
            f"{samples:.1f} | {train['examples_per_s']:,.0f} | {train['epoch_s']:,.0f} | "
            f"{record['train'][1]:,.0f} | {evaluation['users']:,} | "
            f"{evaluation['eval_s']:.1f} ({cut:.1f}) | {record['evaluate'][1]:,.0f} |"
        )


if __name__ == "__main__":
    main()
