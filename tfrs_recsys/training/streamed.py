"""``train`` on a declared dataset without loading its interactions (``data.stream = true``).

(Over 450 lines: the streamed counterpart of training/run.py, every step of a
streamed run, from the cached split to the reload.)

:func:`tfrs_recsys.training.run.train` and :func:`~tfrs_recsys.training.run.load_run`
hand a config with ``data.stream = true`` to :func:`train_streamed` and
:func:`load_streamed_run`. The run directory has the layout of an in-memory
run (``config.toml``, ``preprocessing/``, ``checkpoints/``, ``best/``,
``refit/``, ``history.csv``, ``metrics.json``) plus ``eval_users.json`` (the
evaluated users' sample). The steps:

1. **Split, cached**: :func:`cached_split` writes
   :func:`~tfrs_recsys.data.stream_split.split_declared`'s parts to
   ``<cache>/splits/<dataset>-<split>-<key>/``, the key a hash of the
   declaration, the sizes and mtimes of the interaction shards and feature
   tables, the split name, its seed and ``min_rating``; a later run with the
   same key reuses it, a changed source gets a new directory.
2. **Validation carve**: :func:`split_parts` cuts the train parts again by a
   pair hash (``data.validation_seed``, share ``data.validation_fraction``)
   into fit and validation parts, cached in ``<split>/validation-<share>-<seed>/``.
3. **Preprocessing** from one streaming pass
   (:func:`~tfrs_recsys.data.stream_stats.compute_stream_stats` of the fit
   parts) and the feature tables: :func:`streamed_preprocessing` equals
   :func:`~tfrs_recsys.features.preprocessing.fit_preprocessing` on the same rows.
4. **Training** on :func:`~tfrs_recsys.data.stream_pipeline.stream_dataset`
   batches (``train.batch_size``, ``train.seed``, ``data.shuffle_buffer``),
   ``ceil(rows / batch_size)`` steps an epoch; the sampled-negative softmax
   losses only (``negatives = "in_batch"`` or ``"mixed"``).
5. **Early stopping and the holdout** on a hash sample of ``data.eval_users``
   users (:mod:`tfrs_recsys.evaluation.streamed`): per-epoch validation,
   checkpoints and ``--resume`` as in memory; with ``train.refit`` a fresh model
   trained on the whole train parts for the best epoch count.

``export`` of a streamed run (:mod:`tfrs_recsys.serving.export`) builds the
mask and popularity from one pass over the cached split's train parts; a
two-stage export of one is refused (:func:`check_streamed_export`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import tensorflow as tf

from tfrs_recsys.atomic import atomic_directory, file_lock, write_json_atomic
from tfrs_recsys.config import ExperimentConfig, ModelConfig, load_config
from tfrs_recsys.data.dataset import FeatureTable, RecDataset
from tfrs_recsys.data.declared import DatasetDeclaration, declaration_path, read_declaration
from tfrs_recsys.data.schema import ITEM_ID, USER_ID
from tfrs_recsys.data.splits import Split
from tfrs_recsys.data.stream_pipeline import (
    FeatureJoin,
    check_ids_known,
    load_feature_tables,
    stream_dataset,
)
from tfrs_recsys.data.stream_split import (
    BATCH_ROWS,
    FORMAT,
    ROWS_PER_PART,
    SPLIT_FILE,
    StreamSplit,
    _PartWriter,
    _source_files,
    hash_fraction,
    read_split,
    split_declared,
)
from tfrs_recsys.data.stream_stats import StreamStats, compute_stream_stats
from tfrs_recsys.errors import ConfigError, DatasetNotFoundError, DataValidationError
from tfrs_recsys.evaluation.protocol import evaluate as evaluate_scorer
from tfrs_recsys.evaluation.streamed import rows_of_users, sample_rows, sample_task, tables_dataset
from tfrs_recsys.features.columns import feature_columns, id_only_sides
from tfrs_recsys.features.preprocessing import Preprocessing, fit_side
from tfrs_recsys.models.factory import build_model
from tfrs_recsys.paths import cache_dir
from tfrs_recsys.training.epoch_line import EpochLine
from tfrs_recsys.training.optimizers import LAZY_ADAM_MIN_IDS
from tfrs_recsys.training.run import (
    CONFIG_FILE,
    METRICS_FILE,
    PREPROCESSING_DIR,
    REFIT_DIR,
    ClusterFit,
    PreparedData,
    TrainedRun,
    _first_line,
    fit_early_stopping,
    optimizer_for,
    read_metrics,
    read_weights,
)

if TYPE_CHECKING:
    from tfrs_recsys.training.distributed import Distribution

__all__ = [
    "EVAL_USERS_FILE",
    "SPLIT_SEED",
    "StreamedData",
    "cached_carve",
    "cached_split",
    "cached_stats",
    "check_streamed_config",
    "check_streamed_export",
    "load_streamed_run",
    "split_cache_key",
    "split_parts",
    "streamed_pipeline",
    "streamed_preprocessing",
    "train_streamed",
]

logger = logging.getLogger(__name__)

#: Seed of the streamed split (``hash-80-20``'s hash, ``time-80-20``'s sample), as
#: the in-memory ``holdout-80-20`` uses 42.
SPLIT_SEED = 42
#: Under the package cache (:func:`tfrs_recsys.paths.cache_dir`).
SPLITS_DIR = "splits"
STATS_FILE = "stats.json"
#: The run's evaluated users (the holdout sample), recorded for ``load_run``.
EVAL_USERS_FILE = "eval_users.json"
CARVE_SPLIT = "validation-carve"
_KEY_FORMAT = 1
_SAMPLE_NOTE = (
    "validation and holdout figures are on a hash sample of the users (data.eval_users), "
    "not on every user"
)
_ALTERNATIVE = "use model.loss = 'softmax' with model.negatives = 'in_batch' or 'mixed'"


# --- Config checks ------------------------------------------------------------------------------


def check_streamed_config(config: ExperimentConfig) -> None:
    """Raises a one-line ConfigError if ``config`` cannot train with ``data.stream = true``.

    Only the sampled-negative retrieval losses stream: ``model.loss = "softmax"``
    with ``negatives = "in_batch"`` or ``"mixed"``. A catalog loss, ranking (its
    negatives exclude each user's train items), ``model.user_history`` and
    ``train.ensemble > 1`` are refused, as is a source that is not a declared
    dataset.
    """
    model = config.model
    source = config.data.source
    if declaration_path(source) is None:
        raise ConfigError(
            f"data.source = {source!r}: data.stream = true needs a declared dataset "
            "(a dataset.toml or a directory holding one; docs/own-data.md)"
        )
    if model.kind != "retrieval":
        raise ConfigError(
            f"model.kind = {model.kind!r} cannot train with data.stream = true (its negatives "
            f"need every user's train items in memory); use model.kind = 'retrieval' and "
            f"{_ALTERNATIVE.removeprefix('use ')}, or data.stream = false"
        )
    if model.loss != "softmax":
        raise ConfigError(
            f"model.loss = {model.loss!r} cannot train with data.stream = true; {_ALTERNATIVE}"
        )
    if model.negatives not in ("in_batch", "mixed"):
        raise ConfigError(
            f"model.negatives = {model.negatives!r} cannot train with data.stream = true; "
            f"{_ALTERNATIVE}"
        )
    if model.user_history:
        raise ConfigError(
            "model.user_history = true needs every user's train items in memory and cannot "
            "train with data.stream = true; set model.user_history = false"
        )
    if config.train.ensemble > 1:
        raise ConfigError(
            f"train.ensemble = {config.train.ensemble} is not supported with data.stream = true; "
            "set train.ensemble = 1"
        )


def check_streamed_export(run_dir: str | Path, *, rerank: str | Path | None = None) -> None:
    """Raises a one-line ConfigError if ``run_dir`` holds a streamed run export cannot serve.

    A streamed run (``data.stream = true``) exports like an in-memory one: its
    vectors from the towers, the mask and popularity from one pass over the
    cached split's train parts (:func:`~tfrs_recsys.serving.tables.tables_from_parts`).
    What is refused: a two-stage export (``rerank``): the ranking model does
    not stream, so no ranking run shares a streamed run's split.
    """
    config_path = Path(run_dir) / CONFIG_FILE
    if rerank is None or not config_path.is_file():
        return
    try:
        stream = load_config(config_path).data.stream
    except ConfigError:
        return  # load_run reports the damaged config
    if stream:
        raise ConfigError(
            f"{run_dir}: a streamed run (data.stream = true) cannot be the first stage of "
            "--rerank (the ranking model does not stream, so no ranking run shares its split); "
            "export it without --rerank, or train both runs with data.stream = false"
        )


# --- The cached split and validation carve ------------------------------------------------------


def _stat(path: Path) -> dict[str, Any]:
    stat = os.stat(path)
    return {"path": str(path), "bytes": stat.st_size, "mtime": stat.st_mtime}


def _effective_min_rating(declaration: DatasetDeclaration, min_rating: float) -> float | None:
    spec = declaration.interactions
    if spec.rating is None:
        return None
    return spec.min_rating if spec.min_rating is not None else min_rating


def split_cache_key(
    declaration: DatasetDeclaration, split: str, *, seed: int, min_rating: float
) -> str:
    """12 hex digits naming a split: a SHA-256 of what the split's rows depend on.

    The declaration (its path and bytes), the interaction shards' and the feature
    tables' paths, sizes and mtimes (as ``split.json`` records them), the split
    name, its seed and the effective ``min_rating``.
    """
    tables = [
        _stat(spec.path)
        for spec in (declaration.table("user"), declaration.table("item"))  # type: ignore[arg-type]
        if spec is not None
    ]
    payload = {
        "format": _KEY_FORMAT,
        "declaration": str(Path(declaration.path).resolve()),
        "declaration_sha256": hashlib.sha256(Path(declaration.path).read_bytes()).hexdigest(),
        "sources": _source_files(declaration),
        "tables": tables,
        "split": split,
        "seed": seed,
        "min_rating": _effective_min_rating(declaration, min_rating),
    }
    text = json.dumps(payload, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "dataset"


def _readable_split(directory: Path) -> StreamSplit | None:
    if not (directory / SPLIT_FILE).is_file():
        return None
    try:
        return read_split(directory)
    except (DataValidationError, DatasetNotFoundError):
        return None


def cached_split(
    declaration: DatasetDeclaration | str | Path,
    split: str,
    *,
    seed: int = SPLIT_SEED,
    min_rating: float = 4.0,
    root: str | Path | None = None,
) -> tuple[StreamSplit, bool]:
    """The split of ``declaration`` in the cache, written on first use.

    Args:
        declaration: A parsed declaration, or its ``dataset.toml`` (or directory).
        split: One of the streamed splits (``hash-80-20``, ``leave-last-out``,
            ``time-80-20``).
        seed, min_rating: As :func:`~tfrs_recsys.data.stream_split.split_declared`.
        root: Where splits are kept (default ``<cache>/splits``).

    Returns:
        The split (``root/<dataset>-<split>-<key>``, :func:`split_cache_key`),
        and whether it was reused rather than written.
    """
    if not isinstance(declaration, DatasetDeclaration):
        declaration = read_declaration(declaration)
    key = split_cache_key(declaration, split, seed=seed, min_rating=min_rating)
    base = Path(root) if root is not None else cache_dir() / SPLITS_DIR
    directory = base / f"{_safe_name(declaration.name)}-{split}-{key}"
    existing = _readable_split(directory)
    if (
        existing is not None
        and existing.manifest.get("split") == split
        and existing.manifest.get("seed") == seed
        and existing.manifest.get("sources") == _source_files(declaration)
    ):
        logger.info("reusing the %s split %s", split, directory)
        return existing, True
    base.mkdir(parents=True, exist_ok=True)
    logger.info("splitting %s (%s) into %s", declaration.path, split, directory)
    written = split_declared(
        declaration,
        directory,
        split,
        seed=seed,
        min_rating=min_rating,
        overwrite=directory.exists(),
    )
    return written, False


def split_parts(
    split: StreamSplit,
    out_dir: str | Path,
    *,
    fraction: float,
    seed: int,
    batch_rows: int = BATCH_ROWS,
    rows_per_part: int = ROWS_PER_PART,
    overwrite: bool = False,
) -> StreamSplit:
    """Cuts the train parts of ``split`` into fit (``train``) and validation (``holdout``) parts.

    A row goes to validation when ``hash_fraction(user_id, item_id, seed) <
    fraction`` (:func:`~tfrs_recsys.data.stream_split.hash_fraction`): one pass,
    a repeated pair always on one side, independent of the part layout. The
    output has the layout of a split (``train/``, ``holdout/``, ``split.json``,
    atomic), so :func:`~tfrs_recsys.data.stream_split.read_split` reads it.
    """
    import pyarrow.parquet as pq

    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"fraction must be in (0, 1), got {fraction}")
    started = time.perf_counter()
    columns = list(split.manifest["columns"])
    with atomic_directory(Path(out_dir), overwrite=overwrite) as staging:
        writers = {
            side: _PartWriter(staging / side, columns, rows_per_part)
            for side in ("train", "holdout")
        }
        for file in split.train_files:
            with pq.ParquetFile(file) as parquet:
                for batch in parquet.iter_batches(batch_size=batch_rows, columns=columns):
                    frame = batch.to_pandas()
                    held = hash_fraction(frame[USER_ID], frame[ITEM_ID], seed) < fraction
                    writers["train"].write(frame[~held])
                    writers["holdout"].write(frame[held])
        for writer in writers.values():
            writer.close()
        manifest = {
            "format": FORMAT,
            "split": CARVE_SPLIT,
            "seed": seed,
            "holdout_fraction": fraction,
            "hash": "splitmix64(splitmix64(fnv1a64(user_id) ^ splitmix64(seed)) "
            "^ fnv1a64(item_id)) / 2**64 < holdout_fraction",
            "parent": str(split.directory),
            "columns": columns,
            "rows": {side: writers[side].rows for side in writers},
            "users": {side: len(writers[side].users) for side in writers},
            "parts": {side: writers[side].parts for side in writers},
            "id_files": {},
            "sources": [_stat(file) for file in split.train_files],
            "seconds": round(time.perf_counter() - started, 3),
        }
        (staging / SPLIT_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return StreamSplit(Path(out_dir), manifest)


def cached_carve(split: StreamSplit, *, fraction: float, seed: int) -> tuple[StreamSplit, bool]:
    """The validation carve of ``split`` (``<split>/validation-<fraction>-<seed>/``), written once.

    Returns:
        The carve and whether it was reused.
    """
    directory = split.directory / f"validation-{fraction:g}-{seed}"
    existing = _readable_split(directory)
    if existing is not None and existing.manifest.get("sources") == [
        _stat(f) for f in split.train_files
    ]:
        return existing, True
    carve = split_parts(
        split, directory, fraction=fraction, seed=seed, overwrite=directory.exists()
    )
    return carve, False


def cached_stats(split: StreamSplit, declaration: DatasetDeclaration) -> StreamStats:
    """The statistics of ``split``'s train parts (``<split>/stats.json``), computed once."""
    path = split.directory / STATS_FILE
    files = tuple(str(f) for f in split.train_files)
    if path.is_file():
        try:
            stats = StreamStats.load(path)
        except (ConfigError, DataValidationError, KeyError, TypeError, ValueError):
            stats = None
        if (
            stats is not None
            and stats.files == files
            and (stats.n_rows == split.manifest["rows"]["train"])
        ):
            return stats
    stats = compute_stream_stats(split, declaration)
    stats.save(path)
    return stats


# --- Preprocessing, model input -----------------------------------------------------------------


def streamed_preprocessing(
    dataset: RecDataset, stats: StreamStats, config: ModelConfig
) -> Preprocessing:
    """:func:`~tfrs_recsys.features.preprocessing.fit_preprocessing` from stream statistics.

    The train entities are the ids of ``stats`` (their table rows go to
    :func:`~tfrs_recsys.features.preprocessing.fit_side`), the item counts of
    the logQ correction are the statistics' counts in item-table order: the
    same object ``fit_preprocessing(dataset, rows, config)`` gives on the rows
    ``stats`` counted.
    """
    if config.user_history:
        raise ConfigError("model.user_history cannot be fitted from stream statistics")
    users, items = dataset.table("user"), dataset.table("item")
    user_rows = users.index_of(np.asarray(stats.user_ids, dtype=object), where="train parts")
    item_rows = items.index_of(np.asarray(stats.item_ids, dtype=object), where="train parts")
    return Preprocessing(
        user=fit_side(users, feature_columns(dataset.schema, "user", config), user_rows, config),
        item=fit_side(items, feature_columns(dataset.schema, "item", config), item_rows, config),
        item_counts=stats.counts_for("item", items.ids),
        n_train_users=max(stats.n_users, 1),
        user_history=None,
    )


def streamed_pipeline(
    model: tf.keras.Model,
    split: StreamSplit,
    stats: StreamStats,
    config: ExperimentConfig,
    dataset: RecDataset,
) -> tuple[tf.data.Dataset, int]:
    """The training batches of ``split``'s train parts and the steps of an epoch.

    One iteration is one epoch of ``ceil(rows / batch_size)`` batches (declared
    with ``assert_cardinality``, so Keras knows the epoch length from the start).
    """
    join = FeatureJoin(
        dataset.table("user"),
        dataset.table("item"),
        user_columns=model.user_columns,
        item_columns=model.item_columns,
    )
    steps = -(-stats.n_rows // config.train.batch_size)
    batches = stream_dataset(
        split,
        batch_size=config.train.batch_size,
        shuffle_buffer=config.data.shuffle_buffer,
        seed=config.train.seed,
        features=join,
        columns=(),
    )
    return batches.apply(tf.data.experimental.assert_cardinality(steps)), steps


# --- Data of a streamed run ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class StreamedData(PreparedData):
    """A streamed run's data: the feature tables, the split parts and the evaluation samples.

    ``dataset`` holds the feature tables and no interactions; ``split`` is the
    holdout sample (its users' train rows, masked, and holdout rows) and
    ``fit`` the validation sample (empty for a loaded run), so
    :func:`tfrs_recsys.training.run.evaluate` of the run ranks for the same
    sampled users as ``metrics.json``.

    Attributes:
        declaration: The parsed ``dataset.toml``.
        parts: The cached split (train / holdout part files).
        carve: The validation carve (fit / validation part files), or None.
    """

    declaration: DatasetDeclaration
    parts: StreamSplit
    carve: StreamSplit | None = None


def _split_record(split: StreamSplit, reused: bool) -> dict[str, Any]:
    manifest = split.manifest
    record = {
        "name": manifest["split"],
        "directory": str(split.directory),
        "reused": reused,
        "seed": manifest.get("seed"),
        "rows": manifest["rows"],
        "users": manifest["users"],
    }
    for key in ("positives", "raw_rows", "dropped_rows", "cutoff", "holdout_fraction"):
        if key in manifest:
            record[key] = manifest[key]
    return record


def _sample(
    train_files: list[Path], holdout_files: list[Path], size: int
) -> tuple[np.ndarray, pd.DataFrame, pd.DataFrame]:
    users, holdout = sample_rows(holdout_files, size)
    return users, rows_of_users(train_files, users), holdout


def _tables(
    declaration: DatasetDeclaration, split: StreamSplit
) -> tuple[FeatureTable, FeatureTable, RecDataset]:
    users, items = load_feature_tables(declaration, split=split)
    dataset = tables_dataset(declaration.schema(), users, items, source=str(declaration.path))
    return users, items, dataset


# --- Training -----------------------------------------------------------------------------------


def train_streamed(
    config: ExperimentConfig,
    run_dir: Path,
    verbose: int,
    *,
    distribution: Distribution | None = None,
    restore_dir: Path | None = None,
) -> TrainedRun | None:
    """The training of :func:`~tfrs_recsys.training.run.train` for ``data.stream = true``.

    ``run_dir`` is checked and holds ``config.toml`` (as for ``_train_in``);
    a checkpoint in it is resumed. With a ``distribution``
    (:mod:`tfrs_recsys.training.distributed`) every worker streams its share of
    the train files; a worker that is not the chief trains in a scratch
    ``run_dir``, resumes from ``restore_dir`` and returns None.
    """
    check_streamed_config(config)
    tf.keras.utils.set_random_seed(config.train.seed)
    start = time.perf_counter()
    declaration = read_declaration(config.data.source)
    # the workers of a cluster on one file system split once
    with file_lock(cache_dir() / SPLITS_DIR / ".lock"):
        split, split_reused = cached_split(
            declaration, config.data.split, seed=SPLIT_SEED, min_rating=config.data.min_rating
        )
        carve, carve_reused = cached_carve(
            split, fraction=config.data.validation_fraction, seed=config.data.validation_seed
        )
        fit_stats = cached_stats(carve, declaration)
    users, items, dataset = _tables(declaration, split)
    check_ids_known(fit_stats, users, items)
    for side in id_only_sides(dataset.schema, config.model):
        logger.warning(
            "%s: the %s side has no feature columns; its tower reads the %s id only",
            dataset.schema.name,
            side,
            side,
        )
    ids = len(users) + len(items)
    if config.train.optimizer == "adam" and ids > LAZY_ADAM_MIN_IDS:
        logger.warning(
            "train.optimizer = 'adam' updates all %d user and item embedding rows every step "
            "(its sparse update is dense); train.optimizer = 'lazy_adam' updates the batch's rows "
            "only and trains much faster on vocabularies this large",
            ids,
        )
    # The samples first: a dataset without an evaluable user fails before training.
    val_users, val_train, val_holdout = _sample(
        carve.train_files, carve.holdout_files, config.data.eval_users
    )
    validation_task = sample_task(dataset, val_train, val_holdout, split_name="validation")
    eval_users, hold_train, hold_holdout = _sample(
        split.train_files, split.holdout_files, config.data.eval_users
    )
    holdout_task = sample_task(dataset, hold_train, hold_holdout, split_name=split.name)
    write_json_atomic(run_dir / EVAL_USERS_FILE, {"users": [str(u) for u in eval_users]})

    preprocessing = streamed_preprocessing(dataset, fit_stats, config.model)
    preprocessing.save(run_dir / PREPROCESSING_DIR)
    if distribution is None:
        model = build_model(config.model, preprocessing, dataset)
        model.compile(optimizer=optimizer_for(config))
        pipeline, steps = streamed_pipeline(model, carve, fit_stats, config, dataset)
        cluster = None
    else:
        with distribution.scope():
            model = build_model(config.model, preprocessing, dataset)
            model.compile(optimizer=optimizer_for(config))
        pipeline, steps, cluster = (
            None,
            None,
            _streamed_cluster_fit(
                model, carve, fit_stats, config, dataset, distribution, restore_dir or run_dir
            ),
        )

    fitted = fit_early_stopping(
        model,
        pipeline,
        validation_task,
        config,
        run_dir,
        verbose,
        epoch_batches=steps,
        cluster=cluster,
    )
    state, initial_epoch, train_s = fitted.state, fitted.initial_epoch, fitted.train_s
    best_epoch = int(state.best_epoch.numpy())
    distributed = None
    if distribution is not None:
        if not distribution.is_chief:
            return None
        from tfrs_recsys.training.distributed import sharded_variables

        distributed = {**distribution.describe(), "sharded_variables": sharded_variables(model)}
        steps = distribution.steps_per_epoch(fit_stats.n_rows, config.train.batch_size)
        model = build_model(config.model, preprocessing, dataset)  # one process, best weights
        read_weights(model, run_dir / "best" / "weights")
    refit = None
    if config.train.refit and best_epoch > 0:
        model, preprocessing, refit = _refit_streamed(
            config, declaration, split, dataset, best_epoch, run_dir, verbose
        )
    result = evaluate_scorer(model.scorer(), holdout_task)
    examples = fit_stats.n_rows * int(state.epochs_done.numpy() - initial_epoch)
    if distribution is not None:  # the steps run, whole global batches
        examples = steps * config.train.batch_size * int(state.epochs_done.numpy() - initial_epoch)
    metrics = {
        "name": config.name,
        "dataset": dataset.schema.name,
        "split": split.name,
        "model": f"{config.model.kind}_{config.model.feature_set}",
        "epochs_run": int(state.epochs_done.numpy()),
        "best_epoch": best_epoch,
        f"validation_{config.train.monitor}": float(state.best.numpy()),
        "train_s": round(train_s, 2),
        "examples_per_s": round(examples / train_s, 1) if train_s > 0 and examples else None,
        "refit": refit,
        "ensemble": None,
        "total_s": round(time.perf_counter() - start, 2),
        "holdout": result.to_dict(),
        "holdout_seed_metric": None,
        "stream": {
            "split": _split_record(split, split_reused),
            "validation": _split_record(carve, carve_reused),
            "fit_rows": fit_stats.n_rows,
            "steps_per_epoch": steps,
            "shuffle_buffer": config.data.shuffle_buffer,
        },
        "evaluation": {
            "sampled": True,
            "note": _SAMPLE_NOTE,
            "eval_users": config.data.eval_users,
            "holdout_population_users": split.manifest["users"]["holdout"],
            "holdout_sample_users": len(eval_users),
            "holdout_evaluated_users": result.users,
            "validation_population_users": carve.manifest["users"]["holdout"],
            "validation_sample_users": len(val_users),
            "validation_evaluated_users": validation_task.n_users,
            "users_file": EVAL_USERS_FILE,
        },
    }
    if distributed is not None:
        metrics["distributed"] = distributed
    write_json_atomic(run_dir / METRICS_FILE, metrics)
    return TrainedRun(
        run_dir=run_dir,
        config=config,
        data=StreamedData(
            dataset=dataset,
            split=Split(split.name, hold_train, hold_holdout),
            fit=Split("validation", val_train, val_holdout),
            declaration=declaration,
            parts=split,
            carve=carve,
        ),
        preprocessing=preprocessing,
        model=model,
        metrics=metrics,
    )


def _streamed_cluster_fit(
    model: tf.keras.Model,
    split: StreamSplit,
    stats: StreamStats,
    config: ExperimentConfig,
    dataset: RecDataset,
    distribution: Distribution,
    restore_dir: Path,
) -> ClusterFit:
    """Each worker streams its share of ``split``'s train files (docs/distributed.md)."""
    join = FeatureJoin(
        dataset.table("user"),
        dataset.table("item"),
        user_columns=model.user_columns,
        item_columns=model.item_columns,
    )
    steps = distribution.steps_per_epoch(stats.n_rows, config.train.batch_size)

    def make_stream(batch_size: int, share: tuple[Any, int], seed: int) -> tf.data.Dataset:
        index, workers = share
        return stream_dataset(
            split,
            batch_size=batch_size,
            shuffle_buffer=config.data.shuffle_buffer,
            seed=seed,
            features=join,
            columns=(),
            num_shards=workers,
            shard_index=index,
            drop_remainder=True,
        )

    return ClusterFit(
        fit_input=distribution.streamed_fit_input(
            make_stream, config.train.batch_size, steps, config.train.seed
        ),
        restore_dir=restore_dir,
    )


def _refit_streamed(
    config: ExperimentConfig,
    declaration: DatasetDeclaration,
    split: StreamSplit,
    dataset: RecDataset,
    epochs: int,
    run_dir: Path,
    verbose: int,
) -> tuple[tf.keras.Model, Preprocessing, dict[str, Any]]:
    """A fresh model, preprocessing from the whole train parts, trained ``epochs`` epochs on them."""
    logger.info("refitting on the whole train parts for %d epochs", epochs)
    tf.keras.utils.set_random_seed(config.train.seed)
    stats = cached_stats(split, declaration)
    check_ids_known(stats, dataset.table("user"), dataset.table("item"))
    preprocessing = streamed_preprocessing(dataset, stats, config.model)
    preprocessing.save(run_dir / REFIT_DIR / PREPROCESSING_DIR)
    model = build_model(config.model, preprocessing, dataset)
    model.compile(optimizer=optimizer_for(config))
    pipeline, _ = streamed_pipeline(model, split, stats, config, dataset)
    start = time.perf_counter()
    model.fit(pipeline, epochs=epochs, callbacks=[EpochLine(epochs)] if verbose else [], verbose=0)
    train_s = time.perf_counter() - start
    tf.train.Checkpoint(model=model).write(str(run_dir / REFIT_DIR / "weights"))
    return (
        model,
        preprocessing,
        {
            "epochs": epochs,
            "train_s": round(train_s, 2),
            "examples_per_s": round(stats.n_rows * epochs / train_s, 1) if train_s > 0 else None,
        },
    )


# --- Loading ------------------------------------------------------------------------------------


def load_streamed_run(run_dir: Path, config: ExperimentConfig) -> TrainedRun:
    """:func:`~tfrs_recsys.training.run.load_run` of a streamed run.

    The model is built from the run's saved preprocessing on the feature
    tables; the split comes from the cache (written again, identically, if
    the cache was cleared); ``data.split`` holds the recorded holdout sample's
    rows, so ``evaluate(run)`` reproduces the run's holdout figures.

    Raises:
        ConfigError: No trained weights, an unfinished refit, no recorded
            sample, or unreadable weights.
    """
    check_streamed_config(config)
    if not (run_dir / "best").is_dir():
        raise ConfigError(f"{run_dir}: the run has no trained weights yet (no best/)")
    metrics_path = run_dir / METRICS_FILE
    if config.train.refit:
        if not metrics_path.is_file():
            raise ConfigError(
                f"{run_dir}: the run has not finished its refit yet (no {METRICS_FILE})"
            )
        weights, fitted = run_dir / REFIT_DIR / "weights", run_dir / REFIT_DIR / PREPROCESSING_DIR
    else:
        weights, fitted = run_dir / "best" / "weights", run_dir / PREPROCESSING_DIR
    users_path = run_dir / EVAL_USERS_FILE
    try:
        eval_users = json.loads(users_path.read_text(encoding="utf-8"))["users"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"{users_path}: no readable sample of evaluated users ({_first_line(exc)}); "
            "train the run again into a new --run-dir"
        ) from None
    preprocessing = Preprocessing.load(fitted)
    declaration = read_declaration(config.data.source)
    split, _ = cached_split(
        declaration, config.data.split, seed=SPLIT_SEED, min_rating=config.data.min_rating
    )
    _, _, dataset = _tables(declaration, split)
    model = build_model(config.model, preprocessing, dataset)
    read_weights(model, weights)
    holdout = rows_of_users(split.holdout_files, eval_users)
    train_rows = rows_of_users(split.train_files, eval_users)
    metrics = read_metrics(run_dir)
    empty = train_rows.iloc[:0]
    return TrainedRun(
        run_dir=run_dir,
        config=config,
        data=StreamedData(
            dataset=dataset,
            split=Split(split.name, train_rows, holdout),
            fit=Split("validation", empty, empty),
            declaration=declaration,
            parts=split,
        ),
        preprocessing=preprocessing,
        model=model,
        metrics=metrics,
    )
