"""Wall time, peak memory and disk size of ``generate-data --scale``.

Runs the real command, ``python -m tfrs_recsys generate-data --scale``, in a
child process per size and reads the child's peak resident set size from
``wait4`` (the parent has not imported TensorFlow yet: a child's peak counts
the parent's memory at the fork):

- ``baseline``: 1,000 users x 100 items (the interpreter, the imports, the fixed costs);
- ``small``: 100,000 users x 10,000 items x 100 positives a user (~10M positives);
- ``large``: 1,000,000 users x 100,000 items x 100 positives a user (~100M).

``large`` runs in full only if ``small``, scaled by the number of positives,
predicts it under ``--max-minutes``; otherwise it runs on the first fraction of
the users that fits (the same items and model; the sampling cost is per
positive and the set-up cost per item) and the full time is extrapolated,
saying so. The datasets go to a temporary directory (``--keep DIR`` keeps them).

Measured (2 cores AMD EPYC, shared with a training run, load average 5): baseline
1 s and 170 MB peak RSS; small 9.9M positives in 6 s, 490 MB, 83 MB on disk;
large 100.1M positives in 64 s (5 s of set-up), 743 MB, 1.18 GB on disk.

Run: ``.venv/bin/python -m benchmarks.generate_scale [--sizes baseline,small,large]
[--max-minutes 15]`` (about 2 minutes).
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

from benchmarks.machine import describe

SIZES = {
    "baseline": (1_000, 100, 10.0),
    "small": (100_000, 10_000, 100.0),
    "large": (1_000_000, 100_000, 100.0),
}


def _run(out: Path, users: int, items: int, positives: float) -> dict[str, float]:
    command = [
        sys.executable,
        "-m",
        "tfrs_recsys",
        "generate-data",
        "--out",
        str(out),
        "--scale",
        "--users",
        str(users),
        "--items",
        str(items),
        "--positives-per-user",
        f"{positives:g}",
        "--json",
    ]
    start = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert child.stdout is not None
    output = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - start
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed with exit status {child.returncode}")
    manifest = json.loads((out / "dataset.json").read_text())
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    return {
        "users": users,
        "items": items,
        "positives": json.loads(output)["positives"],
        "seconds": seconds,
        "setup_seconds": manifest["seconds"]["setup"],
        "peak_rss_mb": usage.ru_maxrss / 1024,
        "disk_mb": size / 2**20,
    }


def _row(name: str, r: dict[str, float]) -> str:
    return (
        f"| {name} | {r['users']:,} | {r['items']:,} | {r['positives']:,} | "
        f"{r['seconds']:.0f} | {r['setup_seconds']:.0f} | {r['peak_rss_mb']:,.0f} | "
        f"{r['disk_mb']:,.0f} | {r['positives'] / r['seconds'] / 1e6:.2f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", default="baseline,small,large", help="comma-separated: baseline, small, large"
    )
    parser.add_argument("--max-minutes", type=float, default=15.0)
    parser.add_argument("--keep", type=Path, default=None, help="keep the datasets here")
    args = parser.parse_args()
    load_at_start = os.getloadavg()
    root = args.keep or Path(tempfile.mkdtemp(prefix="generate-scale-"))
    rows: list[str] = []
    results: dict[str, dict[str, float]] = {}
    try:
        for name in args.sizes.split(","):
            users, items, positives = SIZES[name]
            budget = args.max_minutes * 60
            fraction = 1.0
            if "small" in results:  # predict from the small run: set-up per item, rest per positive
                small = results["small"]
                per_positive = (small["seconds"] - small["setup_seconds"]) / small["positives"]
                setup = small["setup_seconds"] * items / small["items"]
                predicted = setup + per_positive * users * positives
                if predicted > budget:
                    fraction = max(0.01, (budget - setup) / (predicted - setup))
            run_users = max(1, int(users * fraction))
            result = _run(root / name, run_users, items, positives)
            results[name] = result
            rows.append(_row(name, result))
            print(rows[-1], file=sys.stderr, flush=True)
            if fraction < 1.0:
                per_positive = (result["seconds"] - result["setup_seconds"]) / result["positives"]
                full = result["setup_seconds"] + per_positive * result["positives"] / fraction
                rows.append(
                    f"| {name}, extrapolated from {fraction:.0%} of the users | {users:,} | "
                    f"{items:,} | ~{result['positives'] / fraction:,.0f} | ~{full:.0f} | | | | |"
                )
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    # Only now: describe() imports TensorFlow, and a child's peak RSS counts the parent's
    # memory at the fork (Linux keeps the high-water mark across exec).
    print(describe())
    print(f"load average at start: {', '.join(f'{x:.1f}' for x in load_at_start)}")
    print(f"load average at end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print()
    print(
        "| size | users | items | positives | wall s | set-up s | peak RSS MB | disk MB "
        "| M positives/s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
