"""Wall time of the main job (``tfrs-recsys demo``) on a fresh data directory.

Runs the demo as ``make demo`` does (data generation, training of the default
model, evaluation beside popularity and the oracle, recommendations, export) in a
subprocess, ``--repeats`` times, each into a new temporary directory, and prints
the median. Target: under 3 minutes on a 2-core machine.

Run: ``.venv/bin/python -m benchmarks.main_job [--repeats N]``
"""

from __future__ import annotations

import argparse
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
    parser.add_argument("--config", default="configs/tech_all.toml")
    args = parser.parse_args()
    print(describe())
    seconds = []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            command = [
                sys.executable, "-m", "tfrs_recsys", "demo",
                "--data", str(Path(tmp) / "tech-products"),
                "--run-dir", str(Path(tmp) / "run"),
                "--config", args.config,
                "--export", str(Path(tmp) / "exported_models" / "main_job"),
            ]
            start = time.perf_counter()
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
            seconds.append(time.perf_counter() - start)
    print(f"main job (tfrs-recsys demo, {args.config}): median {statistics.median(seconds):.0f} s "
          f"over {len(seconds)} run(s): {', '.join(f'{s:.0f}' for s in seconds)}")


if __name__ == "__main__":
    main()
