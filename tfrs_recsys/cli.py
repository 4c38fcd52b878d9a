"""The ``tfrs-recsys`` command (also ``python -m tfrs_recsys``).

The commands parse their arguments, call the library and print what it returns
(tables from :mod:`tfrs_recsys.reporting`). Every user error (bad flags, bad
files) is printed as one line on stderr with exit status 2, and so is a failure
of the machine (a full or read-only disk, no memory: :mod:`tfrs_recsys.os_errors`,
with the traceback too under ``-v``); nothing is left half-written. Progress lines of long commands go to stderr
(:mod:`tfrs_recsys.progress`); ``--json`` output on stdout is JSON only.
TensorFlow's log noise is off unless ``-v`` is given.

Longer than 500 lines: one argument parser and one short print-only function for
each of the ten subcommands, kept together so the whole command line reads in one place.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import time
import traceback
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


def _add_set_flag(parser: argparse.ArgumentParser, help: str) -> None:
    """The repeatable ``--set KEY=VALUE`` config override of ``parser``."""
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=help
    )


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (value > 0 and value != float("inf")):
        raise argparse.ArgumentTypeError(f"expected a positive finite number, got {text}")
    return value


#: The models ``tune`` takes: compare's TFRS models (tfrs_recsys.training.compare.TFRS_MODELS).
TUNABLE_MODELS = (
    "retrieval_ids",
    "retrieval_subset",
    "retrieval_all",
    "ranking_ids",
    "ranking_subset",
    "ranking_all",
)


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
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log details, including TensorFlow's own log"
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    gen = sub.add_parser("generate-data", help="generate the tech-products dataset")
    gen.add_argument("--out", type=Path, required=True, help="dataset directory to create")
    gen.add_argument("--seed", type=_non_negative_int, default=42)
    gen.add_argument("--users", type=_positive_int, default=10_000)
    gen.add_argument("--items", type=_positive_int, default=1_000)
    gen.add_argument(
        "--layout",
        choices=("auto", "wide", "long"),
        default=None,
        help="wide matrix CSV as the notebooks read, long sharded interactions, or auto "
        "(wide up to 20M cells; the default)",
    )
    gen.add_argument(
        "--shard-format", choices=("parquet", "csv"), default=None, help="default parquet"
    )
    gen.add_argument("--force", action="store_true", help="replace an existing directory")
    gen.add_argument("--json", action="store_true", help="print the summary as JSON")
    gen.add_argument(
        "--scale",
        action="store_true",
        help="scale mode: sample each user's positives directly (1M users x 100k items in "
        "minutes); Parquet shards, dataset.toml and truth_scale.npz",
    )
    gen.add_argument(
        "--positives-per-user",
        type=_positive_float,
        default=None,
        help="with --scale: mean distinct positives per user (default 100 or --items / 10 if "
        "smaller; at most --items / 2)",
    )
    gen.add_argument(
        "--shard-users",
        type=_positive_int,
        default=None,
        help="with --scale: users per interactions shard (default 20000)",
    )

    fetch = sub.add_parser("fetch-data", help="download a public dataset into the cache")
    fetch.add_argument("name", help="dataset name, e.g. movielens-100k")
    fetch.add_argument("--cache", type=Path, default=None, help="cache directory")
    fetch.add_argument("--force", action="store_true", help="download again")

    inspect = sub.add_parser("inspect-data", help="validate a dataset and print its summary")
    inspect.add_argument(
        "source", nargs="?", help="dataset directory, dataset.toml or name (movielens-100k)"
    )
    inspect.add_argument("--data", default=None, help="the same as SOURCE, given as a flag")
    inspect.add_argument(
        "--min-rating", type=float, default=4.0, help="explicit ratings >= this are positives"
    )
    inspect.add_argument("--json", action="store_true", help="print the summary as JSON")

    train = sub.add_parser("train", help="train a model from a config into a run directory")
    train.add_argument(
        "--config",
        default=None,
        help="a shipped config name (tech_all, ml100k_subset, ...) or a TOML file (default: built-in defaults)",
    )
    _add_set_flag(train, "override a config key, e.g. --set model.temperature=0.2 (repeatable)")
    train.add_argument("--run-dir", type=Path, required=True, help="run directory to create")
    train.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --run-dir from its latest checkpoint",
    )
    train.add_argument(
        "--local-workers",
        type=int,
        default=None,
        metavar="N",
        help="start a cluster of N worker processes on 127.0.0.1 (train.strategy = "
        "multi_worker or parameter_server; docs/distributed.md)",
    )
    train.add_argument(
        "--local-ps",
        type=int,
        default=None,
        metavar="M",
        help="with --local-workers and train.strategy = parameter_server: parameter-server "
        "processes (default 1)",
    )
    train.add_argument(
        "--restarts",
        type=int,
        default=2,
        help="with --local-workers: times the cluster is started again, with --resume, "
        "after a process died (default 2)",
    )

    evaluate = sub.add_parser("evaluate", help="evaluate a trained run on its holdout")
    evaluate.add_argument("--run-dir", type=Path, required=True)
    evaluate.add_argument(
        "--rerank",
        type=Path,
        default=None,
        metavar="RANKING_RUN",
        help="two stages: --run-dir (a retrieval run) proposes each user's top --candidates "
        "unseen items, this ranking run (same data and split) re-orders them; prints the "
        "retrieval run alone and the two stages",
    )
    evaluate.add_argument(
        "--candidates",
        type=int,
        default=None,
        metavar="M",
        help="candidates per user with --rerank (default 200)",
    )
    evaluate.add_argument(
        "--all-users",
        action="store_true",
        help="a streamed run: rank for every holdout user, a block of users at a time, instead "
        "of the run's sample of data.eval_users users",
    )
    evaluate.add_argument(
        "--block-users",
        type=int,
        default=None,
        metavar="N",
        help="holdout users per block with --all-users (default 100000)",
    )
    evaluate.add_argument("--json", action="store_true", help="print the result as JSON")

    compare = sub.add_parser("compare", help="train and evaluate several models on one split")
    compare.add_argument("--data", required=True, help="dataset directory or name")
    compare.add_argument(
        "--models",
        required=True,
        help="comma-separated: popularity, oracle, seed_subset, ease, als, retrieval_ids, "
        "retrieval_subset, retrieval_all, ranking_ids, ranking_subset, ranking_all, "
        "two_stage_ids, two_stage_subset, two_stage_all (retrieval_<set> then ranking_<set>)",
    )
    compare.add_argument(
        "--out", type=Path, required=True, help="report directory (comparison.md/.json, plot)"
    )
    compare.add_argument(
        "--json", type=Path, default=None, help="also write the figures to this JSON file"
    )
    compare.add_argument(
        "--config-dir",
        type=Path,
        default=None,
        help="a folder of <prefix>_<feature_set>.toml configs to use instead of the shipped ones",
    )
    _add_set_flag(compare, "override a key of every TFRS model's config, e.g. --set train.epochs=3")
    compare.add_argument(
        "--resume",
        action="store_true",
        help="continue the comparison in --out: models whose result is written there are not "
        "trained again (the settings must be the same)",
    )

    compare.add_argument(
        "--tune",
        action="store_true",
        help="tune each TFRS model's config on the validation carve of train first "
        "(Optuna; see docs/tuning.md), within --budget-s / --trials per model",
    )
    compare.add_argument(
        "--budget-s",
        type=_positive_float,
        default=None,
        metavar="S",
        help="with --tune: seconds of tuning trials per TFRS model (default 600)",
    )
    compare.add_argument(
        "--trials",
        type=_positive_int,
        default=None,
        metavar="N",
        help="with --tune: tuning trials per TFRS model at most",
    )

    tune = sub.add_parser(
        "tune",
        help="search a TFRS model's config on the validation carve of train (Optuna)",
        description="Trains trial configs on train minus its validation carve and scores them "
        "on the carve (never the holdout); pruned trials stop early. Writes the best config to "
        "--out and the study (journal, trials.csv) next to it, in NAME.tuning/.",
    )
    tune.add_argument("--data", required=True, help="dataset directory or name")
    tune.add_argument("--model", required=True, choices=TUNABLE_MODELS, help="the model to tune")
    tune.add_argument(
        "--config",
        default=None,
        help="the config to start from (default: the dataset's shipped config, or defaults "
        "chosen from the dataset's statistics)",
    )
    _add_set_flag(
        tune, "override a key of the starting config, e.g. --set data.min_rating=3 (repeatable)"
    )
    tune.add_argument(
        "--trials", type=_positive_int, default=None, metavar="N", help="trials in all"
    )
    tune.add_argument(
        "--budget-s",
        type=_positive_float,
        default=None,
        metavar="S",
        help="seconds of trials in all",
    )
    tune.add_argument(
        "--out", type=Path, required=True, help="the tuned config to write, e.g. configs/NAME.toml"
    )
    tune.add_argument("--seed", type=int, default=0, help="the sampler's seed (default 0)")
    tune.add_argument("--resume", action="store_true", help="continue the study next to --out")

    export = sub.add_parser(
        "export",
        help="export a trained run as a TF Serving SavedModel version",
        description="Writes the next integer version directory OUT/<version>/ (the layout TF Serving "
        "watches) atomically, verified before it appears, and updates OUT/../models.config. "
        "Signatures: serving_default (user_id -> item_ids, scores, known_user), recommend_k "
        "(+ scalar k), recommend_from_features (raw user features, new users), for retrieval runs "
        "score_items (user_id + raw item columns of new or known items -> scores) and, for ranking "
        "runs, score (user_id, item_id -> probability). The default export uses stock TensorFlow ops "
        "only (any TF Serving). With --cold-start-text (runs with model.text_encoder = 'bert'), "
        "text no precomputed table holds goes through the TF Hub encoder in recommend_from_features "
        "and score_items; the SavedModel then needs TF Text to load: TF Serving >= 2.20, or "
        "`import tensorflow_text` before tf.saved_model.load.",
    )
    export.add_argument("--run-dir", type=Path, required=True, help="a trained run directory")
    export.add_argument(
        "--out", type=Path, required=True, help="model directory, e.g. exported_models/tech_ids"
    )
    export.add_argument(
        "-n", type=_positive_int, default=10, help="items per user of serving_default (default 10)"
    )
    export.add_argument(
        "--no-exclude",
        dest="exclude",
        action="store_false",
        help="do not mask known users' train positives",
    )
    export.add_argument(
        "--index",
        choices=("brute_force", "scann"),
        default="brute_force",
        help="brute_force: exact, stock TF Serving (default); scann: approximate, needs the optional "
        "'scann' extra to export and a TF Serving build with the ScaNN ops to serve (stock "
        "tensorflow/serving cannot load it)",
    )
    export.add_argument(
        "--serving-root",
        default="/models",
        help="where the server sees the directory above --out; models.config base_path is "
        "SERVING_ROOT/<model name> (default /models, the docker mount of the README)",
    )
    export.add_argument(
        "--no-warmup", dest="warmup", action="store_false", help="write no warm-up requests"
    )
    export.add_argument(
        "--cold-start-text",
        action="store_true",
        help="bert text runs only: strings outside the precomputed text tables (a new user's "
        "profession, a new item's description) go through the TF Hub encoder in "
        "recommend_from_features and score_items instead of getting the zero vector; the whole "
        "SavedModel then needs TF Text to load (TF Serving >= 2.20; in Python `import tensorflow_text`)",
    )
    export.add_argument(
        "--rerank",
        type=Path,
        default=None,
        metavar="RANKING_RUN",
        help="a two-stage export: --run-dir (a retrieval run) proposes each user's top "
        "--candidates unseen items, this ranking run (same data and split) re-orders them, in "
        "one SavedModel (serving_default and recommend_k; stock TensorFlow ops)",
    )
    export.add_argument(
        "--candidates",
        type=int,
        default=None,
        metavar="M",
        help="candidates per user with --rerank (default 200; -n must not exceed it)",
    )
    export.add_argument(
        "--scann-recall",
        type=float,
        default=None,
        metavar="R",
        help="--index scann: the recall@10 against the exact top 10, on up to 2,000 sampled known "
        "users, that the tuned ScaNN settings must reach, in (0, 1] (default 0.95); the cheapest "
        "setting of a small grid that reaches it is exported, none reaching it is an error",
    )
    export.add_argument("--json", action="store_true", help="print the result as JSON")

    rec = sub.add_parser("recommend", help="top-N items with metadata from an exported SavedModel")
    rec.add_argument(
        "--model",
        type=Path,
        required=True,
        help="exported model directory (exported_models/<name>)",
    )
    rec.add_argument(
        "--version", type=_positive_int, default=None, help="model version (default: the latest)"
    )
    rec.add_argument(
        "--user",
        dest="users",
        action="append",
        default=[],
        metavar="USER_ID",
        help="user id (repeatable)",
    )
    rec.add_argument(
        "--representative",
        action="store_true",
        help="three users of each segment (personality), sampled at export",
    )
    rec.add_argument("-n", type=_positive_int, default=5, help="items per user (default 5)")
    rec.add_argument("--json", action="store_true", help="print the result as JSON")
    text_encoder = sub.add_parser(
        "build-text-encoder",
        help="convert BERT weights into a TF Hub SavedModel pair (all-MiniLM-L6-v2 by default)",
    )
    text_encoder.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output directory (default: <cache>/text_encoders/all-minilm-l6-v2, or the --from-dir name)",
    )
    text_encoder.add_argument(
        "--from-dir",
        type=Path,
        default=None,
        help="convert this BERT checkpoint directory (config.json, vocab.txt, model.safetensors) instead",
    )
    text_encoder.add_argument(
        "--seq-length", type=_positive_int, default=128, help="default tokens per text"
    )
    text_encoder.add_argument(
        "--force", action="store_true", help="rebuild and replace an existing directory"
    )

    demo = sub.add_parser("demo", help="the main job on the embedded default data")
    demo.add_argument("--data", type=Path, default=DEFAULT_DATA_DIR, help="dataset directory")
    demo.add_argument(
        "--config",
        default="tech_all",
        help="a shipped config name or a TOML file (default tech_all)",
    )
    demo.add_argument(
        "--run-dir", type=Path, default=None, help="run directory (default runs/demo-<time>)"
    )
    demo.add_argument(
        "--export",
        type=Path,
        default=None,
        help="export the trained model as the next TF Serving version here (default exported_models/<config name>)",
    )
    demo.add_argument("--no-export", dest="do_export", action="store_false", help="skip the export")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from tfrs_recsys.progress import show_on_stderr
    from tfrs_recsys.tensorflow_logs import filtered_native_stderr, quiet_tensorflow

    args = build_parser().parse_args(argv)
    quiet_tensorflow(args.verbose)  # before anything imports TensorFlow
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s: %(message)s",
    )
    show_on_stderr()
    with contextlib.nullcontext() if args.verbose else filtered_native_stderr():
        try:
            return COMMANDS[args.command](args)
        except RecsysError as exc:
            print(f"{PROG}: error: {_with_notes(str(exc), exc)}", file=sys.stderr)
            return 2
        except KeyboardInterrupt as exc:
            print(f"{PROG}: {_with_notes('interrupted', exc)}", file=sys.stderr)
            return 130
        except Exception as exc:
            # The machine failed the command (disk full, no permission, no memory): one line.
            from tfrs_recsys.os_errors import describe

            line = describe(exc, _output_of(args))
            if line is None:
                raise
            if isinstance(exc, BrokenPipeError):  # stdout went away (| head): nothing to say
                with contextlib.suppress(OSError, ValueError):  # no flush error at exit
                    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                return 141
            if args.verbose:
                traceback.print_exc()
            print(f"{PROG}: error: {_with_notes(line, exc)}", file=sys.stderr)
            return 2


#: The flag naming what each command writes, for the error line of a failed write.
_OUTPUT_FLAGS = {
    "generate-data": "out",
    "fetch-data": "cache",
    "train": "run_dir",
    "compare": "out",
    "tune": "out",
    "export": "out",
    "build-text-encoder": "out",
    "demo": "run_dir",
}


def _output_of(args: argparse.Namespace) -> Path | None:
    return getattr(args, _OUTPUT_FLAGS.get(args.command, ""), None)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _with_notes(message: str, exc: BaseException) -> str:
    """The message and the notes added on the way up (what became of the output), on one line."""
    return _one_line("; ".join([message, *getattr(exc, "__notes__", ())]))


def _print_summary(summary: dict[str, Any], as_json: bool) -> None:
    from tfrs_recsys.reporting import format_summary

    if as_json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        print(format_summary(summary))


def _cmd_generate(args: argparse.Namespace) -> int:
    from tfrs_recsys.atomic import check_writable_target
    from tfrs_recsys.data.generator import GeneratorConfig, generate
    from tfrs_recsys.data.techproducts import write_tech_products
    from tfrs_recsys.errors import ConfigError

    if args.scale:
        return _cmd_generate_scale(args)
    for flag in ("positives_per_user", "shard_users"):
        if getattr(args, flag) is not None:
            raise ConfigError(f"--{flag.replace('_', '-')} needs --scale")
    check_writable_target(args.out, overwrite=args.force)
    config = GeneratorConfig(users=args.users, items=args.items, seed=args.seed)
    start = time.perf_counter()
    manifest = write_tech_products(
        generate(config),
        args.out,
        layout=args.layout or "auto",
        overwrite=args.force,
        shard_format=args.shard_format or "parquet",
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


def _cmd_generate_scale(args: argparse.Namespace) -> int:
    from tfrs_recsys.atomic import check_writable_target
    from tfrs_recsys.data.generator_scale import SEED_MAX, ScaleConfig, write_scale_dataset
    from tfrs_recsys.errors import ConfigError

    for flag in ("layout", "shard_format"):
        if getattr(args, flag) is not None:
            raise ConfigError(
                f"--{flag.replace('_', '-')} does not apply with --scale "
                "(it writes Parquet shards of the long layout)"
            )
    positives = args.positives_per_user or min(100.0, args.items / 10)
    if args.items < 8:
        raise ConfigError(
            f"--items must be at least 8 with --scale (one per product type), got {args.items}"
        )
    if positives > args.items / 2:
        raise ConfigError(
            f"--positives-per-user must be at most --items / 2 = {args.items / 2:g}, "
            f"got {positives:g}"
        )
    if args.seed > SEED_MAX:
        raise ConfigError(f"--seed must be at most 2**64 - 1, got {args.seed}")
    check_writable_target(args.out, overwrite=args.force)
    config = ScaleConfig(
        users=args.users, items=args.items, positives_per_user=positives, seed=args.seed
    )
    manifest = write_scale_dataset(
        args.out,
        config,
        shard_users=args.shard_users or 20_000,
        overwrite=args.force,
    )
    summary = {
        "out": str(args.out),
        "layout": "long (scale mode)",
        "users": manifest["users"],
        "items": manifest["items"],
        "positives": manifest["positives"],
        "density": manifest["density"],
        "positives_per_user": manifest["positives_per_user"]["mean"],
        "shards": manifest["shards"],
        "seconds": manifest["seconds"]["total"],
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
    from tfrs_recsys.reporting import dataset_summary

    return dataset_summary(load_dataset(source, min_rating=min_rating))


def _cmd_inspect(args: argparse.Namespace) -> int:
    from tfrs_recsys.errors import ConfigError

    if (args.source is None) == (args.data is None):
        raise ConfigError("inspect-data takes the dataset as SOURCE or as --data, once")
    _print_summary(_inspect(args.data or args.source, args.min_rating), args.json)
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from tfrs_recsys.config import config_origin, load_config
    from tfrs_recsys.errors import ConfigError
    from tfrs_recsys.reporting import metrics_markdown
    from tfrs_recsys.training.run import CONFIG_FILE, train

    if args.run_dir.exists() and not args.run_dir.is_dir():
        raise ConfigError(
            f"--run-dir {args.run_dir}: exists and is not a directory; name a new run directory"
        )
    config_path = args.config
    if args.resume and config_path is None and not args.overrides:
        config_path = args.run_dir / CONFIG_FILE
    config = load_config(config_path, args.overrides)
    if args.local_workers is not None:
        return _train_local_cluster(args, config)
    if args.local_ps is not None:
        raise ConfigError("--local-ps goes with --local-workers")
    print(f"config: {config_origin(config_path)}")
    trained = train(config, args.run_dir, resume=args.resume)
    if trained is None:  # a multi_worker worker that is not the chief
        print(f"worker done: the chief writes {args.run_dir}")
        return 0
    metrics = trained.metrics
    print()
    print(
        f"run {args.run_dir}: best epoch {metrics['best_epoch']} of {metrics['epochs_run']}, "
        f"train {metrics['train_s']:.0f} s"
    )
    print(
        metrics_markdown(
            {metrics["model"]: metrics["holdout"]["metrics"]}, metrics["dataset"], metrics["split"]
        )
    )
    return 0


def _train_local_cluster(args: argparse.Namespace, config: Any) -> int:
    """``train --local-workers N``: the same ``train`` in N processes on 127.0.0.1."""
    from tfrs_recsys.errors import ConfigError
    from tfrs_recsys.training.local_cluster import run_local_cluster

    ps = args.local_ps
    if config.train.strategy == "parameter_server" and ps is None:
        ps = 1
    if args.restarts < 0:
        raise ConfigError(f"--restarts must be >= 0, got {args.restarts}")
    train_args = ["--run-dir", str(args.run_dir)]
    if args.config is not None:
        train_args += ["--config", str(args.config)]
    elif args.resume and not args.overrides:
        train_args += ["--config", str(args.run_dir / "config.toml")]
    for item in args.overrides:
        train_args += ["--set", item]
    if args.resume:
        train_args.append("--resume")
    return run_local_cluster(
        train_args,
        strategy=config.train.strategy,
        workers=args.local_workers,
        ps=ps or 0,
        run_dir=args.run_dir,
        restarts=args.restarts,
    )


def _candidates(args: argparse.Namespace) -> int:
    """``--candidates`` (default 200), refused without ``--rerank`` or below 1."""
    from tfrs_recsys.errors import ConfigError
    from tfrs_recsys.models.two_stage import DEFAULT_CANDIDATES, check_candidates

    if args.rerank is None:
        if args.candidates is not None:
            raise ConfigError("--candidates goes with --rerank RANKING_RUN (the second stage)")
        return DEFAULT_CANDIDATES
    if args.candidates is None:
        return DEFAULT_CANDIDATES
    return check_candidates(args.candidates)


def _cmd_evaluate_two_stage(args: argparse.Namespace) -> int:
    from tfrs_recsys.errors import ConfigError
    from tfrs_recsys.models.two_stage import TwoStageRecommender
    from tfrs_recsys.reporting import metrics_markdown
    from tfrs_recsys.training.run import evaluate, load_run

    candidates = _candidates(args)
    if not args.rerank.is_dir():
        raise ConfigError(f"--rerank {args.rerank}: no such directory")
    run, ranking = load_run(args.run_dir), load_run(args.rerank)
    model = TwoStageRecommender.from_runs(run, ranking, candidates=candidates)
    data = run.data
    first_name = f"{run.config.model.kind}_{run.config.model.feature_set}"
    second_name = f"{ranking.config.model.kind}_{ranking.config.model.feature_set}"
    results = {
        first_name: evaluate(run),
        "two_stage": evaluate(model, data.dataset, data.split),
    }
    if args.json:
        print(
            json.dumps(
                {
                    "dataset": data.dataset.schema.name,
                    "split": data.split.name,
                    "model": "two_stage",
                    "retrieval": {"run_dir": str(args.run_dir), "model": first_name},
                    "ranking": {"run_dir": str(args.rerank), "model": second_name},
                    "candidates": model.candidates,
                    **results["two_stage"].to_dict(),
                    "retrieval_alone": results[first_name].to_dict(),
                },
                indent=2,
                default=str,
            )
        )
        return 0
    print(metrics_markdown(results, data.dataset.schema.name, data.split.name))
    print(
        f"\ntwo_stage: {first_name} ({args.run_dir}) proposes the top {model.candidates} unseen "
        f"items per user, {second_name} ({args.rerank}) re-orders them; the other items follow "
        "in retrieval order"
    )
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from tfrs_recsys.errors import ConfigError
    from tfrs_recsys.reporting import metrics_markdown
    from tfrs_recsys.training.run import evaluate, load_run, model_seed_metric

    if args.rerank is not None or args.candidates is not None:
        if args.all_users or args.block_users is not None:
            raise ConfigError("--all-users and --block-users do not go with --rerank")
        return _cmd_evaluate_two_stage(args)
    if args.block_users is not None and not args.all_users:
        raise ConfigError("--block-users goes with --all-users")
    if args.block_users is not None and args.block_users < 1:
        raise ConfigError(f"--block-users must be a positive integer, got {args.block_users}")
    run = load_run(args.run_dir)
    config, data = run.config, run.data
    if args.all_users:
        from tfrs_recsys.evaluation.blocks import DEFAULT_BLOCK_USERS, evaluate_run_all_users

        result = evaluate_run_all_users(run, block_users=args.block_users or DEFAULT_BLOCK_USERS)
    else:
        result = evaluate(run)
    seed = model_seed_metric(run.model, data)
    model_name = f"{config.model.kind}_{config.model.feature_set}"
    if args.json:
        print(
            json.dumps(
                {
                    "dataset": data.dataset.schema.name,
                    "split": data.split.name,
                    "model": model_name,
                    **result.to_dict(),
                    "seed_metric": seed,
                },
                indent=2,
                default=str,
            )
        )
    else:
        print(metrics_markdown({model_name: result}, data.dataset.schema.name, data.split.name))
        if seed is not None:
            print(
                f"\nseed metric (the notebooks' mean p of one holdout positive per user): {seed:.4f}"
            )
        print(f"\nevaluated {result.users} users in {result.eval_s:.2f} s")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from tfrs_recsys.atomic import write_json_atomic
    from tfrs_recsys.reporting import COMPARISON_KEYS, comparison_markdown
    from tfrs_recsys.training.compare import compare, parse_models

    models = parse_models(args.models)
    # Progress and Keras' epoch lines go to stderr; stdout gets the table.
    with contextlib.redirect_stdout(sys.stderr):
        report = compare(
            args.data,
            models,
            args.out,
            config_dir=args.config_dir,
            overrides=args.overrides,
            resume=args.resume,
            tuning=_tuning_plan(args),
        )
    if args.json is not None:
        keep = (*COMPARISON_KEYS, "train_s", "eval_s", "recall@10_vs_oracle")
        summary = {
            "dataset": report["dataset"],
            "split": report["split"],
            "models": {
                name: {k: v for k, v in m.items() if k in keep}
                for name, m in report["models"].items()
            },
        }
        write_json_atomic(args.json, summary)
    print(comparison_markdown(report))
    print(f"\nreport: {args.out}/comparison.md, comparison.json, recall_at_k.png")
    return 0


def _tuning_plan(args: argparse.Namespace):
    """``compare --tune``'s plan, or None; --budget-s / --trials need --tune."""
    from tfrs_recsys.errors import ConfigError
    from tfrs_recsys.tuning.plan import TuningPlan

    if not args.tune:
        if args.budget_s is not None or args.trials is not None:
            raise ConfigError("--budget-s and --trials go with --tune")
        return None
    if args.budget_s is None and args.trials is None:
        return TuningPlan()
    return TuningPlan(budget_s=args.budget_s, trials=args.trials)


def _cmd_tune(args: argparse.Namespace) -> int:
    from tfrs_recsys.tuning.starting import starting_point
    from tfrs_recsys.tuning.tuner import tune

    base, known = starting_point(args.data, args.model, args.config, args.overrides)
    result = tune(
        base,
        args.out,
        known=known,
        trials=args.trials,
        budget_s=args.budget_s,
        seed=args.seed,
        resume=args.resume,
    )
    summary = result.summary()
    trials = summary["trials"]
    print(
        f"best validation {summary['metric']} {summary['best_validation']:.4f} "
        f"(trial {summary['best_trial'] + 1}; {trials['complete']} complete, "
        f"{trials['pruned']} pruned, {trials['fail']} failed; {summary['tuning_s']:.0f} s)"
    )
    print(f"config: {result.out}\ntrials: {result.study_dir}/trials.csv")
    return 0


def _cmd_build_text_encoder(args: argparse.Namespace) -> int:
    from tfrs_recsys.text_encoder.convert import (
        MINILM,
        build_minilm,
        convert_checkpoint,
        default_encoder_dir,
        is_complete,
        load_converted,
    )

    started = time.perf_counter()
    reused = False
    if args.from_dir is None:
        target = args.out if args.out is not None else default_encoder_dir(MINILM.name)
        reused = (
            not args.force
            and is_complete(target)
            and load_converted(target).seq_length == args.seq_length
        )
        converted = build_minilm(args.out, seq_length=args.seq_length, force=args.force)
    else:
        out = (
            args.out if args.out is not None else default_encoder_dir(args.from_dir.resolve().name)
        )
        converted = convert_checkpoint(
            args.from_dir, out, seq_length=args.seq_length, overwrite=args.force
        )
    print(converted.path)
    print(
        f"preprocessor {converted.preprocessor}, encoder {converted.encoder}: {converted.dim}-d, "
        f"seq length {converted.seq_length}, pooling {converted.pooling}, normalize {converted.normalize}"
    )
    built = (
        "already built (--force rebuilds)"
        if reused
        else f"build {time.perf_counter() - started:.1f} s"
    )
    print(f"{built}, {converted.size_bytes() / 1e6:.1f} MB on disk")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from tfrs_recsys.reporting import (
        dataset_summary,
        format_summary,
        metrics_markdown,
        segment_markdown,
    )
    from tfrs_recsys.training.demo import run_demo

    result = run_demo(
        args.data,
        config=args.config,
        run_dir=args.run_dir,
        export=args.do_export,
        export_dir=args.export,
        notice=lambda text: print(text, file=sys.stderr),
    )
    data = result.run.data
    print(format_summary(dataset_summary(data.dataset)))
    print()
    print(metrics_markdown(result.results, data.dataset.schema.name, data.split.name))
    ratios = result.oracle_ratios()
    if ratios:
        print()
        for name, ratio in ratios.items():
            print(f"  {name:>22}: recall@10 / oracle recall@10 = {ratio:.3f}")
    if result.segment:
        print(f"\nrecall@10 by {result.segment}:")
        print(segment_markdown(result.results, result.segment))

    print("\nTop-5 recommendations for three users per personality (train items excluded):")
    for value, users in result.recommendations.items():
        print(f"\n== {value}")
        for user in users:
            profile = ", ".join(f"{k} {v}" for k, v in user.profile.items())
            print(f"  {user.user_id} ({profile})")
            for rec in user.items:
                extra = ", ".join(
                    f"{k} {v}"
                    for k, v in rec.items()
                    if k not in ("item_id", "score", "description")
                )
                print(f"    {rec['item_id']}  score {rec['score']:.3f}  {extra}")
    if result.export is not None:
        exported = result.export
        print(
            f"\nExported version {exported.version} to {exported.path} (TF Serving config {exported.models_config});"
        )
        first_user = data.dataset.users["user_id"].iloc[0]
        print(f"try: tfrs-recsys recommend --model {exported.path.parent} --user {first_user} -n 5")
    print(f"\nMain job done in {result.seconds:.0f} s; run directory {result.run.run_dir}")
    print(f"time: {result.time_line()}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from tfrs_recsys.serving.export import export_run

    result = export_run(
        args.run_dir,
        args.out,
        n=args.n,
        exclude=args.exclude,
        index=args.index,
        serving_root=args.serving_root,
        warmup=args.warmup,
        cold_start_text=args.cold_start_text,
        notice=lambda text: print(text, file=sys.stderr),
        rerank=args.rerank,
        candidates=_candidates(args),
        scann_recall=args.scann_recall,
    )
    summary = {
        "model": result.model_name,
        "version": result.version,
        "path": str(result.path),
        "models_config": str(result.models_config),
        "signatures": result.signatures,
        "warmup_requests": result.warmup_requests,
        "custom_ops": result.custom_ops,
        "cold_start_text": result.cold_start_text,
        "custom_ops_to_load": result.custom_ops_to_load,
        "streamed": result.streamed,
        "scann": result.scann,
        "seconds": round(result.seconds, 2),
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(
        f"exported {result.model_name} version {result.version} to {result.path} ({result.seconds:.1f} s)"
    )
    for name, signature in result.signatures.items():
        inputs = ", ".join(f"{k} {v['dtype']}{v['shape']}" for k, v in signature["inputs"].items())
        outputs = ", ".join(
            f"{k} {v['dtype']}{v['shape']}" for k, v in signature["outputs"].items()
        )
        print(f"  {name}: {inputs} -> {outputs}")
    for name, ops in result.custom_ops.items():
        print(f"  note: {name} uses ops outside stock TensorFlow ({', '.join(ops)})")
    if result.custom_ops_to_load:
        print(
            f"  note: loading the SavedModel needs ops outside stock TensorFlow ({', '.join(result.custom_ops_to_load)})"
        )
    if result.scann is not None:
        chosen, scann = result.scann["chosen"], result.scann
        setting = (
            "exhaustive search (small catalog)"
            if chosen["num_leaves"] == 0
            else f"num_leaves {chosen['num_leaves']}, num_leaves_to_search "
            f"{chosen['num_leaves_to_search']}, reorder {chosen['reorder']}"
        )
        print(
            f"  scann: {setting}; recall@{scann['k']} {scann['recall_at_k']:.4f} against the exact "
            f"top {scann['k']} (target {scann['target_recall']:g}; reloaded SavedModel "
            f"{scann['saved_model_recall_at_k']:.4f}) on {scann['sample_users']} sampled users, "
            f"{len(scann['grid'])} settings tried (export.json: scann.grid)"
        )
    print(f"warm-up requests: {result.warmup_requests}; TF Serving config: {result.models_config}")
    return 0


def _cmd_recommend(args: argparse.Namespace) -> int:
    from tfrs_recsys.errors import ConfigError
    from tfrs_recsys.serving.exported import ExportedRecommender, resolve_version

    if not args.users and not args.representative:
        raise ConfigError("name at least one --user, or pass --representative")
    recommender = ExportedRecommender(resolve_version(args.model, args.version))
    groups: dict[str, list[dict[str, Any]]] = {}
    if args.users:
        groups["requested"] = [{"user_id": u} for u in args.users]
    segment = None
    if args.representative:
        segment, sampled = recommender.representative_users()
        groups.update(sampled)
    output = []
    for group, profiles in groups.items():
        answers = recommender.recommend([p["user_id"] for p in profiles], k=args.n)
        for profile, answer in zip(profiles, answers):
            answer["group"] = group
            answer["profile"] = {k: v for k, v in profile.items() if k != "user_id"}
            output.append(answer)
    if args.json:
        print(
            json.dumps(
                {"model": str(args.model), "version": recommender.version, "users": output},
                indent=2,
                ensure_ascii=False,
            )
        )
        return 0
    print(
        f"{args.model} version {recommender.version}: top-{args.n} (train items excluded: "
        f"{'yes' if recommender.manifest.get('exclude_train') else 'no'})"
    )
    current = None
    for answer in output:
        if answer["group"] != current and answer["group"] != "requested":
            print(f"\n== {segment or 'segment'}: {answer['group']}")
        current = answer["group"]
        profile = ", ".join(f"{k} {v}" for k, v in answer["profile"].items())
        status = "" if answer["known_user"] else " - unknown user: most popular items"
        print(f"\n{answer['user_id']}" + (f" ({profile})" if profile else "") + status)
        for rank, item in enumerate(answer["items"], 1):
            extra = ", ".join(
                f"{k} {v}" for k, v in item.items() if k not in ("item_id", "score", "description")
            )
            print(f"  {rank}. {item.get('item_id')}  score {item['score']:.4f}  {extra}")
            if item.get("description"):
                print(f"     {item['description']}")
    return 0


COMMANDS = {
    "generate-data": _cmd_generate,
    "fetch-data": _cmd_fetch,
    "inspect-data": _cmd_inspect,
    "train": _cmd_train,
    "evaluate": _cmd_evaluate,
    "compare": _cmd_compare,
    "tune": _cmd_tune,
    "demo": _cmd_demo,
    "export": _cmd_export,
    "recommend": _cmd_recommend,
    "build-text-encoder": _cmd_build_text_encoder,
}
