"""Long tail: recall@10 by the item's train popularity, peers against TFRS retrieval models.

Runs ``compare`` (by default popularity, EASE, ALS, ``retrieval_ids``,
``retrieval_subset`` and ``retrieval_all``, shipped configs, split
holdout-80-20) on one dataset into ``--out``, then prints its two tables: the
protocol's metrics and recall@10 of the holdout pairs binned by the item's
number of train positives (bins 0, 1-4, 5-19, 20-99, 100-499, 500+; defined in
docs/evaluation.md), with each bin's pair count.

``--out`` holding a comparison of the same settings is resumed: finished models
are not trained again, so the tables can be printed again for free. A TFRS
model whose finished run recorded no bins (a run older than them) is evaluated
again from its run directory, by the same protocol.

Run (one at a time, ~15 min for ML-100K, ~25 min for the default data)::

    TFRS_RECSYS_CACHE=... nice -n 5 .venv/bin/python -m benchmarks.long_tail \\
        --data movielens-100k --out runs/long_tail_ml100k
    nice -n 5 .venv/bin/python -m benchmarks.long_tail \\
        --data data/tech-products --out runs/long_tail_tech
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import tfrs_recsys  # noqa: F401  (Keras 2 before TensorFlow)

# isort: split
from benchmarks.machine import describe
from tfrs_recsys.reporting import comparison_markdown, popularity_bins_of
from tfrs_recsys.training.compare import TFRS_MODELS, compare, parse_models
from tfrs_recsys.training.comparison_dir import SETTINGS_FILE, ComparisonDir

DEFAULT_MODELS = "popularity,ease,als,retrieval_ids,retrieval_subset,retrieval_all"


def fill_missing_bins(report: dict, out: Path) -> list[str]:
    """Evaluates again each finished TFRS run of ``report`` recorded without bins."""
    import tfrs_recsys as tr

    filled = []
    for name, entry in report["models"].items():
        if popularity_bins_of(entry) or name not in TFRS_MODELS:
            continue
        result = tr.evaluate(tr.load_run(ComparisonDir(out).runs_dir / name))
        if abs(result.metrics["recall@10"] - entry["recall@10"]) > 5e-5:
            raise RuntimeError(f"{name}: evaluated again, recall@10 differs from the report")
        entry["popularity_bins"] = result.popularity_bins
        filled.append(name)
    return filled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data/tech-products", help="dataset directory or name")
    parser.add_argument("--out", type=Path, required=True, help="compare's report directory")
    parser.add_argument("--models", default=DEFAULT_MODELS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("tfrs_recsys.progress").setLevel(logging.INFO)
    print(describe(), flush=True)
    resume = (args.out / SETTINGS_FILE).is_file()
    report = compare(args.data, parse_models(args.models), args.out, verbose=0, resume=resume)
    filled = fill_missing_bins(report, args.out)
    print()
    print(comparison_markdown(report))
    if filled:
        print(f"\n(binned figures of {', '.join(filled)} evaluated again from their runs)")
    print()
    print(json.dumps({n: m.get("popularity_bins") for n, m in report["models"].items()}))


if __name__ == "__main__":
    main()
