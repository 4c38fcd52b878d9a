"""Speed and peak memory of the streamed building blocks on ~10M positives.

On a ``generate-data --scale`` dataset (default 100,000 users x 10,000 items x
100 positives a user, ~10M positives, generated into a temporary directory
unless ``--data`` names one), each step runs in a child process of its own,
whose peak resident set size is read from ``wait4``:

- ``baseline:data`` / ``baseline:tf``: the imports alone (pandas and pyarrow;
  and TensorFlow), the floor of the other steps' peak RSS;
- ``split hash-80-20``, ``split leave-last-out`` and ``split time-80-20``:
  :func:`tfrs_recsys.data.stream_split.split_declared` (wall time, rows/s);
- ``stats``: :func:`tfrs_recsys.data.stream_stats.compute_stream_stats` over
  the hash split's train parts, with the feature tables' numeric columns;
- ``pipeline``: one full epoch of
  :func:`tfrs_recsys.data.stream_pipeline.stream_dataset` over the hash
  split's train parts at batch 1024 and 8192, without and with the feature
  join (every user and item column), the pipeline alone (nothing consumes the
  batches but the loop). Examples/s count the whole epoch after the first
  batch; the first batch's seconds (graph and table set-up) are given apart.

The parent imports neither TensorFlow nor the package until the children are
done (a child's peak RSS counts the parent's memory at the fork).

Run: ``.venv/bin/python -m benchmarks.stream_pipeline [--data DIR] [--users 100000]
[--items 10000] [--positives-per-user 100] [--keep DIR]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STEPS = (
    "baseline:data",
    "baseline:tf",
    "split:hash-80-20",
    "split:leave-last-out",
    "split:time-80-20",
    "stats",
    "pipeline:1024:none",
    "pipeline:8192:none",
    "pipeline:1024:join",
    "pipeline:8192:join",
)


def _child(step: str, data: Path, work: Path) -> dict:
    """Runs one step in this process (the child) and returns its figures."""
    started = time.perf_counter()
    kind, *rest = step.split(":")
    if kind == "baseline":  # the imports alone: what the peak RSS of a step starts from
        import tfrs_recsys.data.stream_split  # noqa: F401
        import tfrs_recsys.data.stream_stats  # noqa: F401

        if rest[0] == "tf":
            import tfrs_recsys.data.stream_pipeline  # noqa: F401
        return {"seconds": time.perf_counter() - started, "rows": 0, "rows_per_s": 0.0}
    if kind == "split":
        from tfrs_recsys.data.stream_split import split_declared

        split = split_declared(data, work / f"split-{rest[0]}", rest[0], overwrite=True)
        seconds = time.perf_counter() - started
        rows = split.manifest["raw_rows"]
        return {
            "seconds": seconds,
            "rows": rows,
            "rows_per_s": rows / seconds,
            "train": split.manifest["rows"]["train"],
            "holdout": split.manifest["rows"]["holdout"],
        }
    from tfrs_recsys.data.stream_stats import StreamStats, compute_stream_stats

    split_dir = work / "split-hash-80-20"
    if kind == "stats":
        stats = compute_stream_stats(split_dir, data)
        seconds = time.perf_counter() - started
        stats.save(work / "stats.json")
        return {
            "seconds": seconds,
            "rows": stats.n_rows,
            "rows_per_s": stats.n_rows / seconds,
            "users": stats.n_users,
            "items": stats.n_items,
        }
    from tfrs_recsys.data.stream_pipeline import FeatureJoin, load_feature_tables, stream_dataset

    batch_size, join = int(rest[0]), rest[1] == "join"
    features = None
    if join:
        stats = StreamStats.load(work / "stats.json")
        features = FeatureJoin(*load_feature_tables(data, stats))
    dataset = stream_dataset(split_dir, batch_size=batch_size, features=features)
    iterator = iter(dataset)
    first = next(iterator)
    first_seconds = time.perf_counter() - started
    columns = len(first)
    rows = 0
    epoch_started = time.perf_counter()
    for batch in iterator:
        rows += int(batch["user_id"].shape[0])
    seconds = time.perf_counter() - epoch_started
    return {
        "first_batch_seconds": first_seconds,
        "seconds": seconds,
        "rows": rows,
        "rows_per_s": rows / seconds,
        "columns": columns,
    }


def _run(step: str, data: Path, work: Path) -> dict:
    command = [sys.executable, "-m", "benchmarks.stream_pipeline", "--child", step]
    command += ["--data", str(data), "--work", str(work)]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert child.stdout is not None
    output = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed with exit status {status}")
    result = json.loads(output.decode().strip().splitlines()[-1])
    result["peak_rss_mb"] = usage.ru_maxrss / 1024
    return result


def _generate(out: Path, users: int, items: int, positives: float) -> None:
    command = [sys.executable, "-m", "tfrs_recsys", "generate-data", "--out", str(out)]
    command += ["--scale", "--users", str(users), "--items", str(items)]
    command += ["--positives-per-user", f"{positives:g}", "--json"]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="a scale dataset directory")
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--positives-per-user", type=float, default=100.0)
    parser.add_argument("--keep", type=Path, default=None, help="keep data and splits here")
    parser.add_argument("--steps", default=",".join(STEPS), help="comma-separated steps")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args.child, args.data, args.work)))
        return
    load_at_start = os.getloadavg()
    root = args.keep or Path(tempfile.mkdtemp(prefix="stream-pipeline-"))
    root.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict] = {}
    try:
        data = args.data
        if data is None:
            data = root / "data"
            if not (data / "dataset.toml").exists():
                _generate(data, args.users, args.items, args.positives_per_user)
        for step in args.steps.split(","):
            results[step] = _run(step, data, root)
            print(step, json.dumps(results[step]), file=sys.stderr, flush=True)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    # Only now: describe() imports TensorFlow.
    from benchmarks.machine import describe

    print(describe())
    print(f"load average at start: {', '.join(f'{x:.1f}' for x in load_at_start)}")
    print(f"load average at end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print()
    print("| step | rows | wall s | rows/s | first batch s | peak RSS MB |")
    print("|---|---|---|---|---|---|")
    for step, r in results.items():
        first = f"{r['first_batch_seconds']:.1f}" if "first_batch_seconds" in r else ""
        speed = f"{r['rows_per_s']:,.0f}" if r["rows"] else ""
        print(
            f"| {step} | {r['rows']:,} | {r['seconds']:.1f} | {speed} | "
            f"{first} | {r['peak_rss_mb']:,.0f} |"
        )


if __name__ == "__main__":
    main()
