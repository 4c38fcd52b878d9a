"""Examples/s of one process vs two ``multi_worker`` workers on 127.0.0.1, and the
communication share of a step, on the ~10M-positive ``generate-data --scale`` set.

Both runs train the streamed retrieval model (``data.stream = true``, in-batch
negatives, ids only unless ``--feature-set``) on the cached ``hash-80-20`` split
of the same data, with the same global batch (``--batch-size``):

- ``1 process``: no strategy; ``--steps`` steps of ``model.train_step`` (each
  one ``tf.function`` call, as ``Model.fit`` runs them) after ``--warmup``
  untimed steps; then the same with half the batch (one replica's share: the
  work of a worker's step without the other worker);
- ``2 workers``: two processes with ``TF_CONFIG`` and
  ``MultiWorkerMirroredStrategy`` (one CPU replica each, half the global batch
  each, each streaming its share of the part files); the same timed
  synchronous steps (the replicas' gradients all-reduced), then as many
  *local* steps: the same step with the all-reduce left out
  (``apply_gradients(skip_gradients_aggregation=True)``, each worker applying
  its own gradients). The communication share of a step is
  ``1 - local step time / synchronous step time``: the all-reduce and the wait
  for the other worker.

Examples/s is the global examples of the timed steps over their wall time (the
chief's). On a machine of 2 cores the two workers share the cores that one
process had to itself, so two workers cannot be faster here; the figure says
what the synchronisation costs, not what a cluster gains (docs/distributed.md).

Run: ``.venv/bin/python -m benchmarks.distributed [--data DIR] [--work DIR]
[--steps 200] [--warmup 20] [--batch-size 4096]`` (the data is generated under
``--work`` when ``--data`` is not given, once).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: Seconds a measuring process may run before it is stopped.
PROCESS_TIMEOUT_S = 3600


def _generate(out: Path, users: int, items: int, positives: float) -> None:
    command = [sys.executable, "-m", "tfrs_recsys", "generate-data", "--out", str(out)]
    command += ["--scale", "--users", str(users), "--items", str(items)]
    command += ["--positives-per-user", f"{positives:g}", "--json"]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _config(args: argparse.Namespace, strategy: str):
    from tfrs_recsys.config import load_config

    return load_config(
        None,
        [
            f"data.source={json.dumps(str(args.data))}",
            "data.stream=true",
            'data.split="hash-80-20"',
            f'model.feature_set="{args.feature_set}"',
            'model.negatives="in_batch"',
            f"train.batch_size={args.batch_size}",
            f'train.strategy="{strategy}"',
        ],
    )


def measure(args: argparse.Namespace) -> None:
    """One measuring process (``--measure one`` or ``--measure two`` with ``TF_CONFIG``)."""
    strategy_name = "multi_worker" if args.measure == "two" else "default"
    config = _config(args, strategy_name)
    distribution = None
    if strategy_name == "multi_worker":
        from tfrs_recsys.training.distributed import start_strategy

        distribution = start_strategy(config)  # before any other TensorFlow op
    import tensorflow as tf

    from tfrs_recsys.data.declared import read_declaration
    from tfrs_recsys.models.factory import build_model
    from tfrs_recsys.training.run import optimizer_for
    from tfrs_recsys.training.streamed import (
        SPLIT_SEED,
        _cache_lock,
        _streamed_cluster_fit,
        _tables,
        cached_carve,
        cached_split,
        cached_stats,
        streamed_pipeline,
        streamed_preprocessing,
    )

    tf.keras.utils.set_random_seed(config.train.seed)
    declaration = read_declaration(config.data.source)
    with _cache_lock():
        split, _ = cached_split(declaration, "hash-80-20", seed=SPLIT_SEED)
        carve, _ = cached_carve(split, fraction=0.1, seed=7)
        stats = cached_stats(carve, declaration)
    _, _, dataset = _tables(declaration, split)
    preprocessing = streamed_preprocessing(dataset, stats, config.model)
    strategy = tf.distribute.get_strategy() if distribution is None else distribution.strategy
    with strategy.scope():
        model = build_model(config.model, preprocessing, dataset)
        model.compile(optimizer=optimizer_for(config))
    if distribution is None:
        pipeline, _ = streamed_pipeline(model, carve, stats, config, dataset)
        batches = pipeline.repeat()
    else:
        fit = _streamed_cluster_fit(model, carve, stats, config, dataset, distribution, Path("."))
        creator, _ = fit.fit_input(0)
        batches = strategy.distribute_datasets_from_function(creator.dataset_fn)
    iterator = iter(batches)

    def local_step(batch):
        with tf.GradientTape() as tape:
            summed, averaged = model._loss_parts(batch, training=True)
            loss = (summed if summed is not None else 0.0) + (
                averaged if averaged is not None else 0.0
            )
        gradients = tape.gradient(loss, model.trainable_variables)
        model.optimizer.apply_gradients(
            zip(gradients, model.trainable_variables), skip_gradients_aggregation=True
        )
        return loss

    @tf.function
    def sync(it):
        strategy.run(model.train_step, args=(next(it),))

    @tf.function
    def local(it):
        strategy.run(local_step, args=(next(it),))

    def timed(step, count: int) -> float:
        for _ in range(args.warmup):
            step(iterator)
        model.optimizer.iterations.numpy()  # waits for the warm-up steps
        start = time.perf_counter()
        for _ in range(count):
            step(iterator)
        model.optimizer.iterations.numpy()
        return time.perf_counter() - start

    result = {"fit_rows": stats.n_rows, "sync_s": timed(sync, args.steps)}
    if distribution is not None:
        result["local_s"] = timed(local, args.steps)
        result["replicas"] = distribution.replicas
    else:
        result["replicas"] = 1
    if distribution is None or distribution.is_chief:
        Path(args.out).write_text(json.dumps(result), encoding="utf-8")


def _run(commands: list[tuple[list[str], dict[str, str]]], logs: Path) -> None:
    """Runs the measuring processes together; stops every one of them at the end."""
    processes = []
    try:
        for index, (command, env) in enumerate(commands):
            with open(logs / f"process-{index}.log", "wb") as out:
                processes.append(
                    subprocess.Popen(
                        command,
                        env=env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
        deadline = time.monotonic() + PROCESS_TIMEOUT_S
        while any(p.poll() is None for p in processes):
            failed = [p for p in processes if p.poll() not in (None, 0)]
            if failed or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        codes = [p.poll() for p in processes]
        if any(code != 0 for code in codes):
            for index in range(len(processes)):
                text = (logs / f"process-{index}.log").read_text(errors="replace")
                print(
                    f"--- process {index} (exit {codes[index]}) ---\n{text[-3000:]}",
                    file=sys.stderr,
                )
            raise SystemExit(f"a measuring process failed or ran past {PROCESS_TIMEOUT_S} s")
    finally:
        for process in processes:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="a scale dataset directory")
    parser.add_argument("--work", type=Path, default=None, help="data (if generated) and splits")
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--positives-per-user", type=float, default=100.0)
    parser.add_argument("--steps", type=int, default=200, help="timed steps of each kind")
    parser.add_argument("--warmup", type=int, default=20, help="untimed steps first")
    parser.add_argument("--batch-size", type=int, default=4096, help="the global batch")
    parser.add_argument("--feature-set", default="ids", choices=("ids", "subset", "all"))
    parser.add_argument("--measure", choices=("one", "two"), default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure is not None:
        measure(args)
        return

    load_at_start = os.getloadavg()
    work = args.work or Path(tempfile.mkdtemp(prefix="distributed-benchmark-"))
    work.mkdir(parents=True, exist_ok=True)
    if args.data is None:
        args.data = work / "data"
        if not (args.data / "dataset.toml").exists():
            _generate(args.data, args.users, args.items, args.positives_per_user)
    env = {**os.environ, "TFRS_RECSYS_CACHE": str(work / "cache"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    base = [sys.executable, "-m", "benchmarks.distributed", "--data", str(args.data)]
    base += ["--steps", str(args.steps), "--warmup", str(args.warmup)]
    base += ["--batch-size", str(args.batch_size), "--feature-set", args.feature_set]
    logs = work / "logs"
    logs.mkdir(exist_ok=True)
    one, two, half = work / "one.json", work / "two.json", work / "half.json"
    _run([(base + ["--measure", "one", "--out", str(one)], env)], logs)
    # One process on one replica's share: the work of a step without a second worker.
    halved = [a if a != str(args.batch_size) else str(args.batch_size // 2) for a in base]
    _run([(halved + ["--measure", "one", "--out", str(half)], env)], logs)

    from tfrs_recsys.training.local_cluster import local_tf_config

    cluster = local_tf_config("multi_worker", 2, 0)
    commands = []
    for index in range(2):
        tf_config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
        commands.append(
            (
                base + ["--measure", "two", "--out", str(two)],
                {**env, "TF_CONFIG": json.dumps(tf_config)},
            )
        )
    _run(commands, logs)

    from benchmarks.machine import describe

    single, pair = json.loads(one.read_text()), json.loads(two.read_text())
    alone = json.loads(half.read_text())
    batch = args.batch_size
    one_speed = args.steps * batch / single["sync_s"]
    two_speed = args.steps * batch / pair["sync_s"]
    sync_ms = 1000 * pair["sync_s"] / args.steps
    local_ms = 1000 * pair["local_s"] / args.steps
    print(describe())
    print(f"data: {args.data} ({single['fit_rows']:,} fit rows); work: {work}")
    print(
        f"config: streamed, feature_set {args.feature_set}, in-batch negatives, global batch "
        f"{batch}, {args.steps} timed steps after {args.warmup} warm-up steps"
    )
    print(f"load average at start: {', '.join(f'{x:.1f}' for x in load_at_start)}")
    print(f"load average at end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print()
    print("| run | replicas x batch | step ms | examples/s | communication share |")
    print("|---|---|---:|---:|---:|")
    print(
        f"| 1 process | 1 x {batch} | {1000 * single['sync_s'] / args.steps:.1f} | "
        f"{one_speed:,.0f} | - |"
    )
    print(
        f"| 1 process, one replica's share | 1 x {batch // 2} | "
        f"{1000 * alone['sync_s'] / args.steps:.1f} | {args.steps * (batch // 2) / alone['sync_s']:,.0f} | - |"
    )
    print(
        f"| 2 workers (MultiWorkerMirroredStrategy, 127.0.0.1) | 2 x {batch // 2} | "
        f"{sync_ms:.1f} | {two_speed:,.0f} | {1 - local_ms / sync_ms:.0%} "
        f"(local step {local_ms:.1f} ms) |"
    )
    print(f"\n2 workers / 1 process: {two_speed / one_speed:.2f}x")


if __name__ == "__main__":
    main()
