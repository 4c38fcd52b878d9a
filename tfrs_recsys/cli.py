"""The ``tfrs-recsys`` command (also ``python -m tfrs_recsys``).

Every user error (bad flags, bad files) is printed as one line on stderr with
exit status 2; nothing is left half-written.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from tfrs_recsys.errors import RecsysError

PROG = "tfrs-recsys"
DEFAULT_DATA_DIR = Path("data") / "tech-products"


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Two-tower recommenders with TensorFlow Recommenders.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    gen = sub.add_parser("generate-data", help="generate the tech-products dataset")
    gen.add_argument("--out", type=Path, required=True, help="dataset directory to create")
    gen.add_argument("--seed", type=_non_negative_int, default=42)
    gen.add_argument("--users", type=_positive_int, default=10_000)
    gen.add_argument("--items", type=_positive_int, default=1_000)
    gen.add_argument(
        "--layout",
        choices=("auto", "wide", "long"),
        default="auto",
        help="wide matrix CSV as the notebooks read, long sharded interactions, or auto "
        "(wide up to 20M cells)",
    )
    gen.add_argument("--shard-format", choices=("parquet", "csv"), default="parquet")
    gen.add_argument("--force", action="store_true", help="replace an existing directory")
    gen.add_argument("--json", action="store_true", help="print the summary as JSON")

    fetch = sub.add_parser("fetch-data", help="download a public dataset into the cache")
    fetch.add_argument("name", help="dataset name, e.g. movielens-100k")
    fetch.add_argument("--cache", type=Path, default=None, help="cache directory")
    fetch.add_argument("--force", action="store_true", help="download again")

    inspect = sub.add_parser("inspect-data", help="validate a dataset and print its summary")
    inspect.add_argument("source", help="dataset directory or name (movielens-100k)")
    inspect.add_argument("--min-rating", type=float, default=4.0, help="explicit ratings >= this are positives")
    inspect.add_argument("--json", action="store_true", help="print the summary as JSON")

    train = sub.add_parser("train", help="train a model from a config into a run directory")
    train.add_argument("--config", type=Path, default=None, help="TOML config (default: built-in defaults)")
    train.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a config key, e.g. --set model.temperature=0.2 (repeatable)",
    )
    train.add_argument("--run-dir", type=Path, required=True, help="run directory to create")
    train.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its latest checkpoint")

    evaluate = sub.add_parser("evaluate", help="evaluate a trained run on its holdout")
    evaluate.add_argument("--run-dir", type=Path, required=True)
    evaluate.add_argument("--json", action="store_true", help="print the result as JSON")

    demo = sub.add_parser("demo", help="the main job on the embedded default data")
    demo.add_argument("--data", type=Path, default=DEFAULT_DATA_DIR, help="dataset directory")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s: %(message)s",
    )
    try:
        return COMMANDS[args.command](args)
    except RecsysError as exc:
        print(f"{PROG}: error: {_one_line(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _print_summary(summary: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(summary, indent=2, default=str))
        return
    for key, value in summary.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in value.items())
        elif isinstance(value, float):
            value = f"{value:.4%}" if key == "density" else f"{value:.4g}"
        print(f"{key:>22}: {value}")


def _cmd_generate(args: argparse.Namespace) -> int:
    from tfrs_recsys.data.generator import GeneratorConfig, generate
    from tfrs_recsys.data.techproducts import write_tech_products
    from tfrs_recsys.atomic import check_writable_target

    check_writable_target(args.out, overwrite=args.force)
    config = GeneratorConfig(users=args.users, items=args.items, seed=args.seed)
    start = time.perf_counter()
    manifest = write_tech_products(
        generate(config), args.out, layout=args.layout, overwrite=args.force, shard_format=args.shard_format
    )
    summary = {
        "out": str(args.out),
        "layout": manifest["layout"],
        "users": manifest["users"],
        "items": manifest["items"],
        "positives": manifest["positives"],
        "density": manifest["density"],
        "seconds": round(time.perf_counter() - start, 2),
    }
    _print_summary(summary, args.json)
    return 0


def _cmd_fetch(args: argparse.Namespace) -> int:
    from tfrs_recsys.data.fetch import fetch_dataset

    path = fetch_dataset(args.name, args.cache, force=args.force)
    print(path)
    return 0


def _inspect(source: str | Path, min_rating: float = 4.0) -> dict[str, Any]:
    from tfrs_recsys.data.loading import load_dataset
    from tfrs_recsys.data.splits import holdout_80_20

    dataset = load_dataset(source, min_rating=min_rating)
    summary = dataset.summary()
    summary.update({f"holdout-80-20 {k}": v for k, v in holdout_80_20(dataset.interactions).summary().items() if k != "split"})
    return summary


def _cmd_inspect(args: argparse.Namespace) -> int:
    _print_summary(_inspect(args.source, args.min_rating), args.json)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from tfrs_recsys.data.generator import generate
    from tfrs_recsys.data.techproducts import MANIFEST_FILE, write_tech_products

    data_dir: Path = args.data
    if (data_dir / MANIFEST_FILE).is_file():
        print(f"Using the generated dataset in {data_dir}")
    else:
        print(f"Generating the default tech-products dataset into {data_dir} ...")
        start = time.perf_counter()
        write_tech_products(generate(), data_dir)
        print(f"  done in {time.perf_counter() - start:.1f} s")
    print()
    _print_summary(_inspect(data_dir), as_json=False)
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from tfrs_recsys.config import load_config
    from tfrs_recsys.training.run import CONFIG_FILE, train

    config_path = args.config
    if args.resume and config_path is None and not args.overrides:
        config_path = args.run_dir / CONFIG_FILE
    config = load_config(config_path, args.overrides)
    metrics = train(config, args.run_dir, resume=args.resume)
    print()
    print(f"run {args.run_dir}: best epoch {metrics['best_epoch']} of {metrics['epochs_run']}, "
          f"train {metrics['train_s']:.0f} s")
    print(format_metrics_table({metrics["model"]: metrics["holdout"]["metrics"]}, metrics["dataset"], metrics["split"]))
    return 0


def format_metrics_table(rows: dict[str, dict[str, float]], dataset: str, split: str) -> str:
    """A Markdown table of ranking metrics, one row per model."""
    keys = ["recall@10", "precision@10", "hit_rate@10", "ndcg@10", "recall@50", "ndcg@50", "coverage@10"]
    lines = [
        f"dataset {dataset}, split {split}, full-catalog ranking (train items masked)",
        "",
        "| model | " + " | ".join(keys) + " |",
        "|---|" + "---:|" * len(keys),
    ]
    for name, metrics in rows.items():
        lines.append(f"| {name} | " + " | ".join(f"{metrics[k]:.4f}" for k in keys) + " |")
    return "\n".join(lines)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from tfrs_recsys.evaluation.protocol import EvaluationTask, evaluate
    from tfrs_recsys.training.run import load_trained_model

    config, data, model = load_trained_model(args.run_dir)
    task = EvaluationTask.build(data.dataset, data.split.train, data.split.holdout, split_name=data.split.name)
    result = evaluate(model.scorer(), task)
    if args.json:
        print(json.dumps({"dataset": data.dataset.schema.name, "split": data.split.name,
                          "model": f"{config.model.kind}_{config.model.feature_set}", **result.to_dict()},
                         indent=2, default=str))
    else:
        print(format_metrics_table({f"{config.model.kind}_{config.model.feature_set}": result.metrics},
                                   data.dataset.schema.name, data.split.name))
        print(f"\nevaluated {result.users} users in {result.eval_s:.2f} s")
    return 0


COMMANDS = {
    "generate-data": _cmd_generate,
    "fetch-data": _cmd_fetch,
    "inspect-data": _cmd_inspect,
    "train": _cmd_train,
    "evaluate": _cmd_evaluate,
    "demo": _cmd_demo,
}
