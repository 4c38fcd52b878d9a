"""A ``tf.data`` pipeline over train shards, with the feature join in the graph.

:func:`stream_dataset` reads the train part files of a split
(:func:`tfrs_recsys.data.stream_split.split_declared`) without loading them:

1. the files (this worker's share, :func:`shard_files`) in a fresh order every
   epoch;
2. ``interleave`` over the files, ``cycle_length`` at a time, each read by
   pyarrow in chunks of ``read_rows`` rows (``Dataset.from_generator``), the
   rows of a chunk permuted;
3. ``unbatch``, a ``shuffle`` buffer of ``shuffle_buffer`` rows, ``batch``;
4. optionally the feature join (:class:`FeatureJoin`): the ids are looked up in
   a ``StaticHashTable`` (id -> row of the feature table) and the rows'
   raw features gathered by :class:`~tfrs_recsys.data.pipelines.FeatureGather`,
   so a batch carries every user and item feature column, as
   :func:`~tfrs_recsys.data.pipelines.retrieval_dataset` gives today;
5. ``prefetch``.

Every random choice of an epoch (file order, chunk permutations, the shuffle
buffer) derives from one int64 drawn per iteration of
``Dataset.random(seed, rerandomize_each_iteration=True)``: a new order every
epoch, the same sequence of epochs for the same seed.

An id missing from its feature table is an error (never a default row): the
split (``missing_features``) keeps only ids of the tables, so a missing id means
the shards and the tables disagree. :func:`check_ids_known` finds it before
training from the stream statistics (a one-line DataValidationError); inside
the pipeline the join fails with ``tf.errors.InvalidArgumentError`` naming the
side, the table and the first unknown ids.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import tensorflow as tf

from tfrs_recsys.data.dataset import FeatureTable
from tfrs_recsys.data.declared import DatasetDeclaration, canonical_id, read_declaration
from tfrs_recsys.data.pipelines import FeatureGather
from tfrs_recsys.data.schema import ITEM_ID, USER_ID, Feature
from tfrs_recsys.data.stream_split import StreamSplit
from tfrs_recsys.data.stream_stats import StreamStats, train_files
from tfrs_recsys.errors import ConfigError, DataValidationError

__all__ = [
    "FeatureJoin",
    "check_ids_known",
    "load_feature_tables",
    "shard_files",
    "stream_dataset",
]

AUTOTUNE = tf.data.AUTOTUNE
#: Optional columns of the train shards carried into the batches when present.
PASSED_COLUMNS: tuple[str, ...] = ("weight",)
_TYPES = {USER_ID: tf.string, ITEM_ID: tf.string, "timestamp": tf.int64, "weight": tf.float32}
_SHOWN_IDS = 5


def shard_files(
    files: Sequence[str | Path],
    *,
    num_shards: int = 1,
    index: int = 0,
    input_context: tf.distribute.InputContext | None = None,
) -> list[Path]:
    """This worker's files: every ``num_shards``-th file from ``index`` (disjoint, covering).

    Args:
        files: All train files, in a fixed order.
        num_shards, index: Workers and this worker's number.
        input_context: A ``tf.distribute.InputContext``; overrides the two above
            with ``num_input_pipelines`` and ``input_pipeline_id``.

    Raises:
        ConfigError: A bad ``index``, or fewer files than workers (a worker
            would read nothing).
    """
    if input_context is not None:
        num_shards, index = input_context.num_input_pipelines, input_context.input_pipeline_id
    if num_shards < 1 or not 0 <= index < num_shards:
        raise ConfigError(
            f"shard index {index} of {num_shards} shard(s): expected 0 <= index < num_shards"
        )
    if len(files) < num_shards:
        raise ConfigError(
            f"{len(files)} train file(s) for {num_shards} workers: each worker needs a file; "
            "split again with a smaller rows_per_part, or use fewer workers"
        )
    return [Path(f) for f in list(files)[index::num_shards]]


def load_feature_tables(
    declaration: DatasetDeclaration | str | Path,
    stats: StreamStats | None = None,
    *,
    split: StreamSplit | None = None,
) -> tuple[FeatureTable, FeatureTable]:
    """The user and item feature tables of a declared dataset (read whole, with the loader's checks).

    A side without a declared table gets a table of ids only: the ids the
    ``split`` listed (every kept interaction row's, as the in-memory loader's
    catalog) or, without a split, the train ids of ``stats`` (their order).

    Raises:
        ConfigError: A side has no declared table, and neither ``split`` nor
            ``stats`` is given.
    """
    from tfrs_recsys.data.declared_memory import _read_feature_table

    if not isinstance(declaration, DatasetDeclaration):
        declaration = read_declaration(declaration)
    headers: dict = {}
    tables = []
    for side in ("user", "item"):
        spec = declaration.table(side)  # type: ignore[arg-type]
        id_name = canonical_id(side)
        if spec is None:
            ids = split.ids(side) if split is not None else None
            if ids is None and stats is None:
                raise ConfigError(
                    f"{declaration.path}: no [{side}s] table; pass the split (its {side} ids) "
                    f"or the stream statistics (their train {side} ids)"
                )
            if ids is None:
                ids = list(stats.ids(side))  # type: ignore[union-attr]
            frame = pd.DataFrame({id_name: np.asarray(ids, dtype=object)})
            features: tuple[Feature, ...] = (Feature(id_name, "id"),)
        else:
            if not headers:
                headers = declaration.check_files()
            frame = _read_feature_table(spec, headers[spec.path])
            features = spec.features()
        tables.append(FeatureTable.from_frame(side, frame, features))  # type: ignore[arg-type]
    return tables[0], tables[1]


def check_ids_known(stats: StreamStats, users: FeatureTable, items: FeatureTable) -> None:
    """Every train id of ``stats`` is in its feature table.

    Raises:
        DataValidationError: The first side with unknown ids: how many, and
            the first few.
    """
    for table in (users, items):
        ids = np.asarray(stats.ids(table.side), dtype=object)
        unknown = ids[pd.Index(table.ids).get_indexer(ids) < 0]
        if len(unknown):
            shown = ", ".join(repr(str(u)) for u in unknown[:_SHOWN_IDS])
            raise DataValidationError(
                f"{len(unknown)} {table.side} id(s) of the train shards are not in the "
                f"{table.side} feature table, e.g. {shown}{', ...' if len(unknown) > _SHOWN_IDS else ''}"
            )


class FeatureJoin:
    """Adds every raw feature of a batch's users and items, looked up by id in graph.

    Args:
        users, items: The feature tables.
        user_columns, item_columns: Columns to emit (default: all).

    Calling it on ``{"user_id": [b], "item_id": [b], ...}`` returns the batch
    with the gathered columns added (the ids are the table's, equal to the
    batch's).
    """

    def __init__(
        self,
        users: FeatureTable,
        items: FeatureTable,
        *,
        user_columns: Sequence[str] | None = None,
        item_columns: Sequence[str] | None = None,
    ) -> None:
        self.users = FeatureGather(users, user_columns)
        self.items = FeatureGather(items, item_columns)
        clash = sorted(set(self.users.columns) & set(self.items.columns) - {USER_ID, ITEM_ID})
        if clash:
            raise ConfigError(
                f"column(s) {', '.join(clash)} exist on both the user and the item side; "
                "rename them so a batch dict can hold both"
            )
        self._tables = {
            side: self._lookup(table) for side, table in (("user", users), ("item", items))
        }

    @staticmethod
    def _lookup(table: FeatureTable) -> tf.lookup.StaticHashTable:
        keys = tf.constant([str(i).encode("utf-8") for i in table.ids], dtype=tf.string)
        values = tf.range(len(table), dtype=tf.int64)
        return tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(keys, values), default_value=-1
        )

    @property
    def columns(self) -> list[str]:
        return list(dict.fromkeys(self.users.columns + self.items.columns))

    def rows(self, side: str, ids: tf.Tensor) -> tf.Tensor:
        """Table rows of ``ids`` [b] (int64); fails naming the first unknown ids."""
        rows = self._tables[side].lookup(ids)
        known = rows >= 0
        check = tf.debugging.Assert(
            tf.reduce_all(known),
            [
                f"{side} id(s) of the train shards are not in the {side} feature table; "
                "first unknown:",
                tf.boolean_mask(ids, tf.logical_not(known))[:_SHOWN_IDS],
            ],
            summarize=_SHOWN_IDS,
        )
        with tf.control_dependencies([check]):
            return tf.identity(rows)

    def __call__(self, batch: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        joined = dict(batch)
        joined.update(self.users(self.rows("user", batch[USER_ID])))
        joined.update(self.items(self.rows("item", batch[ITEM_ID])))
        return joined


def _file_columns(file: Path, wanted: Sequence[str]) -> list[str]:
    import pyarrow.parquet as pq

    try:
        names = pq.read_schema(file).names
    except Exception as exc:  # pyarrow raises several unrelated types
        raise DataValidationError(
            f"cannot read the Parquet file: {' '.join(str(exc).split())}", file=file
        ) from exc
    missing = [c for c in (USER_ID, ITEM_ID) if c not in names]
    if missing:
        raise DataValidationError(
            f"no column {missing[0]!r} (expected a train shard with columns 'user_id', "
            f"'item_id'); the file has {', '.join(names)}",
            file=file,
        )
    return [USER_ID, ITEM_ID] + [c for c in wanted if c in names]


def _chunks(columns: Sequence[str], read_rows: int, shuffle: bool):
    """The generator of one file: ``{column: array[read_rows]}`` chunks, rows permuted."""
    import pyarrow.parquet as pq

    def generate(path: bytes, epoch_seed: int):
        file = path.decode("utf-8")
        rng = np.random.default_rng([int(epoch_seed) & 0xFFFFFFFF, zlib.crc32(path)])
        with pq.ParquetFile(file) as parquet:
            for batch in parquet.iter_batches(batch_size=read_rows, columns=list(columns)):
                order = rng.permutation(batch.num_rows) if shuffle else None
                chunk = {}
                for name in columns:
                    values = batch.column(name).to_numpy(zero_copy_only=False)
                    if _TYPES[name] == tf.float32:
                        values = values.astype(np.float32)
                    chunk[name] = values if order is None else values[order]
                yield chunk

    return generate


def _permuted(block: Mapping[str, tf.Tensor], seed: tf.Tensor) -> dict[str, tf.Tensor]:
    """The rows of ``block`` in a random order of stateless ``seed``."""
    first = next(iter(block.values()))
    order = tf.random.experimental.stateless_shuffle(tf.range(tf.shape(first)[0]), seed=seed)
    return {name: tf.gather(values, order) for name, values in block.items()}


def stream_dataset(
    train: StreamSplit | str | Path | Sequence[str | Path],
    *,
    batch_size: int = 1024,
    shuffle: bool = True,
    shuffle_buffer: int = 65_536,
    seed: int = 42,
    features: FeatureJoin | None = None,
    num_shards: int = 1,
    shard_index: int | tf.Tensor = 0,
    input_context: tf.distribute.InputContext | None = None,
    cycle_length: int = 4,
    read_rows: int = 8_192,
    deterministic: bool = True,
    drop_remainder: bool = False,
    columns: Sequence[str] = PASSED_COLUMNS,
) -> tf.data.Dataset:
    """Batches of train rows, streamed from the train shards (see the module docstring).

    Args:
        train: A split (object or directory), or Parquet files with
            ``user_id`` and ``item_id`` (and optional ``weight``, ``timestamp``).
        batch_size: Rows per batch.
        shuffle: Shuffle (files, chunks, a buffer of rows), anew every epoch;
            without it the rows come in file order (``deterministic``).
        shuffle_buffer: Rows of the shuffle buffer (0: chunk permutations and
            the file order only).
        seed: Seed of every epoch's randomness.
        features: The feature join; None emits the shard columns only.
        num_shards, shard_index, input_context: This worker's share of the
            files (:func:`shard_files`); ``shard_index`` may be a scalar tensor
            (a parameter-server worker's index, known only on the worker), the
            files of every shard are then checked.
        cycle_length: Files read at once.
        read_rows: Rows per read chunk.
        deterministic: Interleave in a fixed order (needed for a reproducible
            order; False lets a slow file fall behind).
        drop_remainder: Drop the last partial batch.
        columns: Optional shard columns carried into the batches when present
            (``weight``, ``timestamp``).

    Returns:
        ``{"user_id": string[b], "item_id": string[b], ...}`` (plus every
        feature column with ``features``); one pass is one epoch.

    Raises:
        ConfigError: A bad size, or see :func:`shard_files`.
        DataValidationError: A file is not a train shard.
    """
    for name, value in (
        ("batch_size", batch_size),
        ("cycle_length", cycle_length),
        ("read_rows", read_rows),
    ):
        if value < 1:
            raise ConfigError(f"{name} must be at least 1, got {value}")
    if shuffle_buffer < 0:
        raise ConfigError(f"shuffle_buffer must be >= 0, got {shuffle_buffer}")
    unknown = [c for c in columns if c not in _TYPES or c in (USER_ID, ITEM_ID)]
    if unknown:
        raise ConfigError(
            f"columns: unknown optional column {unknown[0]!r}; known: timestamp, weight"
        )
    if isinstance(shard_index, tf.Tensor):  # a parameter-server worker's index, in graph
        shard_files(train_files(train), num_shards=num_shards, index=0)  # enough files
        files = [Path(f) for f in train_files(train)]
        paths = tf.constant([str(f) for f in files])[tf.cast(shard_index, tf.int32) :: num_shards]
    else:
        files = shard_files(
            train_files(train),
            num_shards=num_shards,
            index=shard_index,
            input_context=input_context,
        )
        paths = tf.constant([str(f) for f in files])
    kept = _file_columns(files[0], columns)
    for file in files[1:]:
        if _file_columns(file, columns) != kept:
            raise DataValidationError(
                f"has columns {', '.join(_file_columns(file, columns))}, the first train file "
                f"{files[0]} has {', '.join(kept)}; every train file must have the same columns",
                file=file,
            )
    signature = {name: tf.TensorSpec([None], _TYPES[name]) for name in kept}
    generate = _chunks(kept, read_rows, shuffle)

    def read(path: tf.Tensor, epoch_seed: tf.Tensor) -> tf.data.Dataset:
        return tf.data.Dataset.from_generator(
            generate, output_signature=signature, args=(path, epoch_seed)
        )

    def epoch(epoch_seed: tf.Tensor) -> tf.data.Dataset:
        ordered = (
            tf.random.experimental.stateless_shuffle(paths, seed=tf.stack([epoch_seed, 0]))
            if shuffle
            else paths
        )
        rows = tf.data.Dataset.from_tensor_slices(ordered).interleave(
            lambda path: read(path, epoch_seed),
            cycle_length=cycle_length,
            block_length=1,
            num_parallel_calls=AUTOTUNE,
            deterministic=deterministic,
        )
        if shuffle and shuffle_buffer > 0:
            # Blocks of shuffle_buffer rows, each permuted whole: no per-row tf.data step.
            rows = (
                rows.rebatch(shuffle_buffer)
                .enumerate()
                .map(
                    lambda index, block: _permuted(block, tf.stack([epoch_seed, index + 1])),
                    num_parallel_calls=AUTOTUNE,
                    deterministic=True,
                )
            )
        return rows.rebatch(batch_size, drop_remainder=drop_remainder)

    if shuffle:
        batches = (
            tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
            .take(1)
            .flat_map(epoch)
        )
    else:
        batches = epoch(tf.constant(0, tf.int64))
    if features is not None:
        batches = batches.map(features, num_parallel_calls=AUTOTUNE, deterministic=True)
    return batches.prefetch(AUTOTUNE)
