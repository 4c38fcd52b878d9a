"""Wall time of the main job (``tfrs-recsys demo``) on a fresh data directory.

Runs the demo as ``make demo`` does (data generation, training of the default
model, evaluation beside popularity and the oracle, recommendations, export) in a
subprocess, ``--repeats`` times, each into a new temporary directory, and prints
the median. Target: under 3 minutes on a 2-core machine. By default each run
also gets an empty cache directory (``TFRS_RECSYS_CACHE``), so the BERT text
encoder is converted and every text embedded from scratch, as on a fresh
machine; ``--warm-cache`` reuses the user's cache instead.

Run: ``.venv/bin/python -m benchmarks.main_job [--repeats N] [--warm-cache]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.machine import describe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--config", default="tech_all")
    parser.add_argument(
        "--warm-cache",
        action="store_true",
        help="reuse the user's cache (text encoder, embeddings)",
    )
    args = parser.parse_args()
    print(describe())
    seconds = []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            command = [
                sys.executable,
                "-m",
                "tfrs_recsys",
                "demo",
                "--data",
                str(Path(tmp) / "tech-products"),
                "--run-dir",
                str(Path(tmp) / "run"),
                "--config",
                args.config,
                "--export",
                str(Path(tmp) / "exported_models" / "main_job"),
            ]
            env = dict(os.environ)
            if not args.warm_cache:
                env["TFRS_RECSYS_CACHE"] = str(Path(tmp) / "cache")
            start = time.perf_counter()
            done = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True, env=env)
            seconds.append(time.perf_counter() - start)
            # The demo's own account of where the time went (its last line).
            print(done.stdout.strip().splitlines()[-1], flush=True)
    cache = "warm cache" if args.warm_cache else "empty cache: encoder built, texts embedded"
    print(
        f"main job (tfrs-recsys demo, {args.config}, {cache}): median {statistics.median(seconds):.0f} s "
        f"over {len(seconds)} run(s): {', '.join(f'{s:.0f}' for s in seconds)}"
    )


if __name__ == "__main__":
    main()
