"""Do the statistics-based defaults transfer? ``compare`` on data without a shipped config.

Builds variants of the data the package was developed on into ``--scratch``
(never committed) and runs ``compare`` on each with ``config_dir`` an empty
directory, so that every TFRS model gets the config
:func:`~tfrs_recsys.tuning.defaults.default_config` chooses from the
dataset's statistics, as a user with data of their own would. The peers
(popularity, EASE and ALS, tuned on the validation carve of train) run as
always. The variants:

- ``ml100k``: ML-100K itself (ratings >= 4), its shipped configs bypassed;
- ``ml100k-r3``: ML-100K with the ratings >= 3 as positives (rating remapped
  onto the scale: r >= 3 -> 5, else 1, so that ``compare``'s loader, which
  keeps ratings >= 4, keeps them);
- ``ml100k-r5``: ML-100K with only the ratings of 5 as positives (5 -> 5, else 1);
- ``ml100k-half``: ML-100K, a random half of the users (seed 0), ratings as they are;
- ``ml100k-time``: ML-100K under the ``leave-last-out`` split (each user's
  latest positive is the holdout) instead of holdout-80-20;
- ``tech-sparse``: generated tech-products data, 3,000 users x 2,000 items at
  density 0.02 (the default data: 10,000 x 1,000 at 0.0966);
- ``tech-dense``: generated tech-products data, 8,000 users x 300 items at density 0.15.

The ML-100K variants are written as RecBole atomic files under stems of their
own (``ml100k_r3.inter``, ...), so the dataset carries the variant's name, and
ratings stay whole stars 1-5. Prints the machine, then one table: the
variant's statistics (users, items, train positives, density), recall@10 and
NDCG@10 of each model, and the ratio of the best TFRS model to the best of
EASE and ALS on both metrics.

``--set KEY=VALUE`` overrides every TFRS model's default config (with
``--tag`` naming the comparison directories apart), for experiments on the
rules of the defaults.

An ``--scratch`` holding a finished variant's comparison is resumed (nothing
is trained again), so the table can be printed again for free.

Run (one at a time; on a shared 2-core machine 6 to 15 min per ML-100K variant and
about 15 min for ``tech-sparse``, with the five models of the docs' table)::

    nice -n 5 .venv/bin/python -m benchmarks.transfer \\
        --scratch runs/transfer
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import tfrs_recsys  # noqa: F401  (Keras 2 before TensorFlow)

# isort: split
import numpy as np
import pandas as pd

from benchmarks.machine import describe
from tfrs_recsys.data.loading import load_dataset
from tfrs_recsys.data.splits import make_split
from tfrs_recsys.training.compare import TFRS_MODELS, compare, parse_models
from tfrs_recsys.training.comparison_dir import SETTINGS_FILE
from tfrs_recsys.tuning.defaults import dataset_stats, default_batch_size

DEFAULT_MODELS = "popularity,ease,als,retrieval_ids,retrieval_subset,retrieval_all"
VARIANTS = (
    "ml100k",
    "ml100k-r3",
    "ml100k-r5",
    "ml100k-half",
    "ml100k-time",
    "tech-sparse",
    "tech-dense",
)
# Generated variants: (users, items, density).
GENERATED = {"tech-sparse": (3_000, 2_000, 0.02), "tech-dense": (8_000, 300, 0.15)}
ML100K_STEM = "ml-100k"


def _read_atomic(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)


def _write_atomic(frame: pd.DataFrame, path: Path) -> None:
    frame.to_csv(path, sep="\t", index=False)


def build_ml100k_variant(name: str, ml100k: Path, out: Path, seed: int = 0) -> Path:
    """ML-100K's atomic files rewritten as variant ``name`` under ``out/name``."""
    directory = out / name
    stem = name.replace("-", "_")
    if (directory / f"{stem}.inter").is_file():
        return directory
    directory.mkdir(parents=True, exist_ok=True)
    inter = _read_atomic(ml100k / f"{ML100K_STEM}.inter")
    users = _read_atomic(ml100k / f"{ML100K_STEM}.user")
    items = _read_atomic(ml100k / f"{ML100K_STEM}.item")
    rating = inter.columns[2]
    stars = inter[rating].astype(float)
    if name == "ml100k-r3":
        inter[rating] = np.where(stars >= 3, "5", "1")
    elif name == "ml100k-r5":
        inter[rating] = np.where(stars >= 5, "5", "1")
    elif name == "ml100k-half":
        user_ids = users[users.columns[0]].to_numpy()
        keep = np.random.default_rng(seed).choice(user_ids, size=len(user_ids) // 2, replace=False)
        users = users[users[users.columns[0]].isin(keep)]
        inter = inter[inter[inter.columns[0]].isin(keep)]
    else:
        raise ValueError(f"unknown ML-100K variant {name!r}")
    for frame, ext in ((users, "user"), (items, "item"), (inter, "inter")):
        _write_atomic(frame, directory / f"{stem}.{ext}")
    return directory


def build_generated_variant(name: str, out: Path, seed: int = 42) -> Path:
    """Generated tech-products data of the shape ``GENERATED[name]`` under ``out/name``."""
    from tfrs_recsys.data.generator import GeneratorConfig, generate
    from tfrs_recsys.data.techproducts import write_tech_products

    directory = out / name
    if directory.is_dir():
        return directory
    users, items, density = GENERATED[name]
    config = GeneratorConfig(users=users, items=items, density=density, seed=seed)
    write_tech_products(generate(config), directory)
    return directory


def variant_source(name: str, scratch: Path) -> tuple[str, str]:
    """``(source, split_name)`` of variant ``name``, building its data if needed."""
    from tfrs_recsys.data.fetch import dataset_dir

    data = scratch / "data"
    if name == "ml100k":
        return "movielens-100k", "holdout-80-20"
    if name == "ml100k-time":
        return "movielens-100k", "leave-last-out"
    if name.startswith("ml100k-"):
        return str(build_ml100k_variant(name, dataset_dir("movielens-100k"), data)), "holdout-80-20"
    if name in GENERATED:
        return str(build_generated_variant(name, data)), "holdout-80-20"
    raise SystemExit(f"unknown variant {name!r}; choose among {', '.join(VARIANTS)}")


def run_variant(
    name: str, scratch: Path, models: list[str], overrides: list[str], tag: str = ""
) -> tuple[dict, dict, float]:
    """``compare`` on variant ``name`` with the defaults: ``(report, stats, seconds)``."""
    source, split_name = variant_source(name, scratch)
    dataset = load_dataset(source)
    stats = dataset_stats(dataset, make_split(split_name, dataset.interactions).train).to_dict()
    empty = scratch / "no-configs"
    empty.mkdir(parents=True, exist_ok=True)
    out = scratch / "compare" / f"{name}{tag}"
    resume = (out / SETTINGS_FILE).is_file()
    started = time.perf_counter()
    report = compare(
        source,
        models,
        out,
        config_dir=empty,
        overrides=overrides,
        split_name=split_name,
        verbose=0,
        resume=resume,
    )
    return report, stats, time.perf_counter() - started


def ratio_row(report: dict) -> tuple[float | None, float | None]:
    """Best TFRS model over the best of EASE and ALS, on recall@10 and NDCG@10."""
    entries = report["models"]
    out = []
    for key in ("recall@10", "ndcg@10"):
        tfrs = [e[key] for n, e in entries.items() if n in TFRS_MODELS]
        peers = [entries[n][key] for n in ("ease", "als") if n in entries]
        out.append(max(tfrs) / max(peers) if tfrs and peers and max(peers) > 0 else None)
    return out[0], out[1]


def table(rows: list[tuple[str, dict, dict]], models: list[str]) -> str:
    """The markdown table of every variant: statistics, each model's metrics, the ratios."""
    head = ["variant", "split", "users", "items", "train pos.", "density"]
    head += [f"{m} R@10 / N@10" for m in models]
    head += ["best TFRS / best peer R@10", "N@10"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, report, stats in rows:
        cells = [
            name,
            report["split"],
            f"{stats['users']:,}",
            f"{stats['items']:,}",
            f"{stats['positives']:,}",
            f"{stats['density']:.4f}",
        ]
        for model in models:
            entry = report["models"].get(model)
            cells.append(
                "-" if entry is None else f"{entry['recall@10']:.4f} / {entry['ndcg@10']:.4f}"
            )
        cells += ["-" if r is None else f"{r:.3f}" for r in ratio_row(report)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--scratch", type=Path, required=True, help="data and comparisons (not committed)"
    )
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--models", default=DEFAULT_MODELS)
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override of every TFRS model's default config (repeatable)",
    )
    parser.add_argument(
        "--tag", default="", help="suffix of each comparison's directory (runs with --set)"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("tfrs_recsys.progress").setLevel(logging.INFO)
    print(describe(), flush=True)
    models = parse_models(args.models)
    rows = []
    for name in [v for v in args.variants.split(",") if v]:
        report, stats, seconds = run_variant(name, args.scratch, models, args.overrides, args.tag)
        print(
            f"{name}: {seconds:.0f} s; stats {json.dumps(stats)}; default batch size "
            f"{default_batch_size(stats['positives'])}",
            flush=True,
        )
        for model, entry in report["models"].items():
            if model in TFRS_MODELS:
                print(
                    f"  {model}: best epoch {entry.get('best_epoch')}, "
                    f"train {entry['train_s']:.0f} s",
                    flush=True,
                )
        rows.append((name, report, stats))
        print(table(rows[-1:], models), flush=True)
    print()
    print(table(rows, models))


if __name__ == "__main__":
    main()
