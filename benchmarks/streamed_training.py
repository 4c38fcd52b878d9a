"""Speed and peak memory of streamed training (``data.stream = true``) on ~10M positives.

On a ``generate-data --scale`` dataset (default 100,000 users x 10,000 items x
100 positives a user, ~10M positives; generated under ``--work`` unless
``--data`` names one), runs the steps of
:func:`tfrs_recsys.training.streamed.train_streamed` one by one in this
process, with a split cache of its own under ``--work``:

- ``split``: :func:`~tfrs_recsys.training.streamed.cached_split` (``hash-80-20``);
- ``carve``: the validation carve of the train parts;
- ``stats``: the fit parts' statistics;
- ``tables``: the feature tables;
- ``samples``: the validation and holdout samples of ``--eval-users`` users
  (two passes over each side's parts);
- ``preprocessing``: :func:`~tfrs_recsys.training.streamed.streamed_preprocessing`;
- ``model``: the model and the streamed pipeline;
- ``train``: ``--steps`` training steps (after ``--warmup`` steps that trace the
  graph and fill the pipeline), examples/s over the timed steps;
- ``validate``: one validation of the sampled users (what every epoch adds).

Each line gives the step's wall seconds and the process's peak RSS so far
(``ru_maxrss``). A full epoch is not run: its time is the fit rows over the
examples/s.

Run: ``.venv/bin/python -m benchmarks.streamed_training [--data DIR] [--work DIR]
[--steps 300] [--batch-size 4096] [--eval-users 20000]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.machine import peak_rss_mb


def stream_config(
    data: Path,
    *,
    feature_set: str,
    negatives: str,
    batch_size: int,
    eval_users: int = 20_000,
    optimizer: str = "adam",
):
    """The benchmarks' streamed config on ``data`` (``hash-80-20``)."""
    from tfrs_recsys.config import load_config

    return load_config(
        None,
        [
            f"data.source={json.dumps(str(data))}",
            "data.stream=true",
            'data.split="hash-80-20"',
            f"data.eval_users={eval_users}",
            f'model.feature_set="{feature_set}"',
            f'model.negatives="{negatives}"',
            f"train.batch_size={batch_size}",
            f'train.optimizer="{optimizer}"',
        ],
    )


def _generate(out: Path, users: int, items: int, positives: float) -> None:
    command = [sys.executable, "-m", "tfrs_recsys", "generate-data", "--out", str(out)]
    command += ["--scale", "--users", str(users), "--items", str(items)]
    command += ["--positives-per-user", f"{positives:g}", "--json"]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="a scale dataset directory")
    parser.add_argument("--work", type=Path, default=None, help="data (if generated) and splits")
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--positives-per-user", type=float, default=100.0)
    parser.add_argument("--steps", type=int, default=300, help="timed training steps")
    parser.add_argument("--warmup", type=int, default=20, help="untimed steps first")
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--eval-users", type=int, default=20_000)
    parser.add_argument("--feature-set", default="all", choices=("ids", "subset", "all"))
    parser.add_argument("--negatives", default="in_batch", choices=("in_batch", "mixed"))
    parser.add_argument(
        "--optimizer", default="adam", choices=("adam", "lazy_adam", "adagrad", "sgd")
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument(
        "--save-weights", type=Path, default=None, help="save the model's weights here at the end"
    )
    args = parser.parse_args()

    load_at_start = os.getloadavg()
    work = args.work or Path(tempfile.mkdtemp(prefix="streamed-training-"))
    work.mkdir(parents=True, exist_ok=True)
    data = args.data
    rows: list[tuple[str, float, float, str]] = []
    started = time.perf_counter()
    if data is None:
        data = work / "data"
        if not (data / "dataset.toml").exists():
            _generate(data, args.users, args.items, args.positives_per_user)
            rows.append(
                ("generate-data --scale (child process)", time.perf_counter() - started, 0.0, "")
            )
    os.environ["TFRS_RECSYS_CACHE"] = str(work / "cache")

    def step(name: str, since: float, note: str = "") -> float:
        now = time.perf_counter()
        rows.append((name, now - since, peak_rss_mb(), note))
        print(
            f"{name}: {now - since:.1f} s, peak RSS {peak_rss_mb():,.0f} MB {note}", file=sys.stderr
        )
        return now

    t = time.perf_counter()
    # The package first: it selects Keras 2 (tf_keras) before TensorFlow is imported.
    from tfrs_recsys.data.declared import read_declaration
    from tfrs_recsys.evaluation.protocol import evaluate
    from tfrs_recsys.evaluation.streamed import rows_of_users, sample_rows, sample_task
    from tfrs_recsys.models.factory import build_model
    from tfrs_recsys.training.run import optimizer_for
    from tfrs_recsys.training.streamed import (
        SPLIT_SEED,
        _tables,
        cached_carve,
        cached_split,
        cached_stats,
        streamed_pipeline,
        streamed_preprocessing,
    )

    t = step("imports (TensorFlow, package)", t)
    config = stream_config(
        data,
        feature_set=args.feature_set,
        negatives=args.negatives,
        batch_size=args.batch_size,
        eval_users=args.eval_users,
        optimizer=args.optimizer,
    )
    import tensorflow as tf  # imported by the package already (after selecting Keras 2)

    tf.keras.utils.set_random_seed(config.train.seed)
    declaration = read_declaration(data)
    split, _ = cached_split(declaration, "hash-80-20", seed=SPLIT_SEED)
    positives = split.manifest["positives"]
    t = step("split hash-80-20", t, f"{positives:,} positives")
    carve, _ = cached_carve(split, fraction=0.1, seed=7)
    t = step("validation carve", t, f"{carve.manifest['rows']['train']:,} fit rows")
    stats = cached_stats(carve, declaration)
    t = step("statistics (fit parts)", t)
    users, items, dataset = _tables(declaration, split)
    t = step("feature tables", t, f"{len(users):,} users, {len(items):,} items")
    samples = {}
    for name, parts in (("validation", carve), ("holdout", split)):
        sampled, holdout = sample_rows(parts.holdout_files, args.eval_users)
        train = rows_of_users(parts.train_files, sampled)
        samples[name] = sample_task(dataset, train, holdout, split_name=name)
    t = step(
        "evaluation samples (validation, holdout)",
        t,
        f"{samples['validation'].n_users:,} / {samples['holdout'].n_users:,} users",
    )
    preprocessing = streamed_preprocessing(dataset, stats, config.model)
    t = step("preprocessing", t)
    model = build_model(config.model, preprocessing, dataset)
    model.compile(optimizer=optimizer_for(config))
    pipeline, steps_per_epoch = streamed_pipeline(model, carve, stats, config, dataset)
    t = step("model and pipeline", t, f"{steps_per_epoch:,} steps an epoch")
    model.fit(pipeline, epochs=1, steps_per_epoch=args.warmup, verbose=0)
    t = step(f"train: {args.warmup} warm-up steps (tracing)", t)
    model.fit(pipeline, epochs=1, steps_per_epoch=args.steps, verbose=0)
    now = time.perf_counter()
    speed = args.steps * args.batch_size / (now - t)
    t = step(
        f"train: {args.steps} steps of {args.batch_size}",
        t,
        f"{speed:,.0f} examples/s; an epoch of {stats.n_rows:,} rows ~ {stats.n_rows / speed:,.0f} s",
    )
    result = evaluate(model.scorer(), samples["validation"])
    step(
        "one validation", t, f"{result.users:,} users, recall@10 {result.metrics['recall@10']:.4f}"
    )

    if args.save_weights is not None:
        model.save_weights(str(args.save_weights))
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {
                    "positives": positives,
                    "fit_rows": stats.n_rows,
                    "examples_per_s": speed,
                    "epoch_s": stats.n_rows / speed,
                    "peak_rss_mb": peak_rss_mb(),
                    "steps": [
                        {"step": name, "s": seconds, "peak_rss_mb": peak, "note": note}
                        for name, seconds, peak, note in rows
                    ],
                },
                indent=2,
            ),
            encoding="utf-8",
        )

    from benchmarks.machine import describe

    print(describe())
    print(f"data: {data} ({positives:,} positives); work: {work}")
    print(
        f"config: feature_set {args.feature_set}, negatives {args.negatives}, "
        f"batch {args.batch_size}, eval_users {args.eval_users}, optimizer {args.optimizer}"
    )
    print(f"load average at start: {', '.join(f'{x:.1f}' for x in load_at_start)}")
    print(f"load average at end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"peak RSS of the process: {peak_rss_mb():,.0f} MB")
    print()
    print("| step | wall s | peak RSS so far MB | note |")
    print("|---|---|---|---|")
    for name, seconds, peak, note in rows:
        print(f"| {name} | {seconds:.1f} | {peak:,.0f} | {note} |")


if __name__ == "__main__":
    main()
