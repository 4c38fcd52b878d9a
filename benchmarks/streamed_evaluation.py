"""Time and peak memory of ranking the catalog for every holdout user of a streamed split.

On a ``generate-data --scale`` dataset and the split cache of a
``benchmarks.streamed_training`` run (same ``--work``; its ``--save-weights``
file gives the model, trained for that run's bounded number of steps), runs
:func:`tfrs_recsys.evaluation.blocks.evaluate_all_users` in this process:

- ``blocks``: cutting both sides of the split into blocks of ``--block-users``
  holdout users (the first time; cached beside the split afterwards);
- ``evaluate``: every holdout user, a block at a time, against the item
  vectors computed once (the second call reuses the blocks).

Each line gives the wall seconds and the process's peak RSS so far
(``ru_maxrss``). The model's figures are printed but are not a quality result:
the weights come from a bounded number of training steps.

Run: ``.venv/bin/python -m benchmarks.streamed_evaluation --data DIR --work DIR
--weights FILE [--block-users 100000] [--feature-set ids] [--json FILE]``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from benchmarks.machine import peak_rss_mb
from benchmarks.streamed_training import stream_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="a scale dataset directory")
    parser.add_argument("--work", type=Path, required=True, help="the training benchmark's work")
    parser.add_argument("--weights", type=Path, required=True, help="its --save-weights file")
    parser.add_argument("--block-users", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=4096, help="the training batch size")
    parser.add_argument("--feature-set", default="ids", choices=("ids", "subset", "all"))
    parser.add_argument("--negatives", default="in_batch", choices=("in_batch", "mixed"))
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()

    load_at_start = os.getloadavg()
    os.environ["TFRS_RECSYS_CACHE"] = str(args.work / "cache")
    rows: list[tuple[str, float, float, str]] = []

    def step(name: str, since: float, note: str = "") -> float:
        now = time.perf_counter()
        rows.append((name, now - since, peak_rss_mb(), note))
        print(
            f"{name}: {now - since:.1f} s, peak RSS {peak_rss_mb():,.0f} MB {note}", file=sys.stderr
        )
        return now

    t = time.perf_counter()
    from tfrs_recsys.data.declared import read_declaration
    from tfrs_recsys.evaluation.blocks import evaluate_all_users, user_blocks
    from tfrs_recsys.models.factory import build_model
    from tfrs_recsys.training.streamed import (
        SPLIT_SEED,
        _tables,
        cached_carve,
        cached_split,
        cached_stats,
        streamed_preprocessing,
    )

    t = step("imports (TensorFlow, package)", t)
    config = stream_config(
        args.data,
        feature_set=args.feature_set,
        negatives=args.negatives,
        batch_size=args.batch_size,
    )
    declaration = read_declaration(args.data)
    split, reused = cached_split(declaration, "hash-80-20", seed=SPLIT_SEED)
    carve, _ = cached_carve(split, fraction=0.1, seed=7)
    fit_stats = cached_stats(carve, declaration)
    train_stats = cached_stats(split, declaration)
    users, items, dataset = _tables(declaration, split)
    t = step("split, statistics, tables (cached)", t, f"split reused: {reused}")
    model = build_model(
        config.model, streamed_preprocessing(dataset, fit_stats, config.model), dataset
    )
    model.load_weights(str(args.weights))
    t = step("model and weights", t)
    blocks = user_blocks(split, block_users=args.block_users)
    t = step(
        "blocks of users (both sides cut)",
        t,
        f"{blocks.n_blocks} blocks of ~{args.block_users:,} holdout users",
    )
    counts = train_stats.counts_for("item", dataset.table("item").ids)
    result = evaluate_all_users(
        model.scorer(), dataset, split, counts, block_users=args.block_users
    )
    t = step(
        "evaluate every holdout user",
        t,
        f"{result.users:,} users x {dataset.n_items:,} items, "
        f"recall@10 {result.metrics['recall@10']:.4f} (a bounded-steps model)",
    )

    from benchmarks.machine import describe

    summary = {
        "positives": split.manifest["positives"],
        "users": result.users,
        "items": dataset.n_items,
        "n_blocks": blocks.n_blocks,
        "eval_s": result.eval_s,
        "scorer_s": result.scorer_s,
        "peak_rss_mb": peak_rss_mb(),
        "recall@10": result.metrics["recall@10"],
        "steps": [
            {"step": name, "s": seconds, "peak_rss_mb": peak, "note": note}
            for name, seconds, peak, note in rows
        ],
    }
    if args.json is not None:
        args.json.write_text(json.dumps(summary, indent=2), encoding="utf-8")
    print(describe())
    print(f"data: {args.data} ({summary['positives']:,} positives)")
    print(f"load average at start: {', '.join(f'{x:.1f}' for x in load_at_start)}")
    print(f"load average at end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print()
    print("| step | wall s | peak RSS so far MB | note |")
    print("|---|---|---|---|")
    for name, seconds, peak, note in rows:
        print(f"| {name} | {seconds:.1f} | {peak:,.0f} | {note} |")


if __name__ == "__main__":
    main()
