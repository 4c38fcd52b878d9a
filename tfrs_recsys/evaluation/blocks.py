"""The evaluation protocol over every user of a streamed split, one block of users at a time.

A streamed run's recorded figures rank the catalog for a hash sample of
users (:mod:`tfrs_recsys.evaluation.streamed`). This module ranks it for
*every* user of the holdout side with memory that does not grow with the
interactions:

1. :func:`user_blocks` cuts both sides of the split by user into ``B``
   blocks, ``block = floor(user_hash(user_id) * B)`` with ``B`` chosen so that
   a block holds about ``block_users`` holdout users. One pass over each
   side's part files; every block gets a Parquet file per side. The blocks
   are cached in the split's directory (``user-blocks-<B>/``, atomic, written
   once per ``B``).
2. :func:`evaluate_all_users` builds one block's
   :class:`~tfrs_recsys.evaluation.protocol.EvaluationTask` at a time (its
   users' train rows, masked, and holdout rows) and hands the blocks to
   :func:`~tfrs_recsys.evaluation.protocol.evaluate_tasks`, which ranks each
   block in batches of users against the candidate vectors the scorer
   computed once, keeps the top items per batch and adds the block's figures
   to the totals.

Memory: one record batch while cutting; then one block's rows, the feature
tables, the candidate vectors and ``O(users)`` per-user metric values. The
figures are those of one task of all users (tested): a user is in exactly one
block, and metrics are means over users. The popularity bins count an item's
train rows over the whole train side (the statistics of the streamed run; a
repeated pair counts each time).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tfrs_recsys.atomic import atomic_directory
from tfrs_recsys.data.dataset import RecDataset
from tfrs_recsys.data.schema import ITEM_ID, USER_ID
from tfrs_recsys.data.stream_split import BATCH_ROWS, HOLDOUT, TRAIN, StreamSplit
from tfrs_recsys.errors import ConfigError, NothingToEvaluateError
from tfrs_recsys.evaluation.protocol import EvaluationResult, EvaluationTask, evaluate_tasks
from tfrs_recsys.evaluation.streamed import _record_batches, sample_task, user_hash
from tfrs_recsys.recommender import Scorer

__all__ = ["DEFAULT_BLOCK_USERS", "UserBlocks", "evaluate_all_users", "user_blocks"]

#: Holdout users per block by default (their rows are what a block holds in memory).
DEFAULT_BLOCK_USERS = 100_000
BLOCKS_FILE = "blocks.json"


@dataclass(frozen=True)
class UserBlocks:
    """A split cut into blocks of users (:func:`user_blocks`).

    Attributes:
        directory: ``<split>/user-blocks-<B>/``.
        n_blocks: ``B``.
        rows: Side -> rows of each block.
    """

    directory: Path
    n_blocks: int
    rows: dict[str, list[int]]

    def file(self, side: str, block: int) -> Path:
        """The Parquet file of one side of one block."""
        return self.directory / side / f"block-{block:05d}.parquet"


def user_blocks(split: StreamSplit, *, block_users: int = DEFAULT_BLOCK_USERS) -> UserBlocks:
    """``split`` cut into blocks of about ``block_users`` holdout users, cached.

    Args:
        split: A streamed split (:func:`~tfrs_recsys.data.stream_split.split_declared`).
        block_users: Holdout users per block, on average (a positive integer).

    Raises:
        ConfigError: ``block_users`` is not a positive integer.
    """
    if isinstance(block_users, bool) or not isinstance(block_users, int) or block_users < 1:
        raise ConfigError(f"block_users must be a positive integer, got {block_users!r}")
    holdout_users = int(split.manifest["users"][HOLDOUT])
    n_blocks = max(1, math.ceil(holdout_users / block_users))
    directory = split.directory / f"user-blocks-{n_blocks}"
    manifest = directory / BLOCKS_FILE
    if manifest.is_file():
        try:
            record = json.loads(manifest.read_text(encoding="utf-8"))
            return UserBlocks(directory, int(record["n_blocks"]), dict(record["rows"]))
        except (OSError, ValueError, KeyError, TypeError):
            pass  # unreadable: written again below
    with atomic_directory(directory, overwrite=True) as staging:
        rows = {
            side: _cut(split.files(side), staging / side, n_blocks) for side in (TRAIN, HOLDOUT)
        }
        (staging / BLOCKS_FILE).write_text(
            json.dumps({"n_blocks": n_blocks, "block_users": block_users, "rows": rows}),
            encoding="utf-8",
        )
    return UserBlocks(directory, n_blocks, rows)


def _cut(files: list[Path], out: Path, n_blocks: int) -> list[int]:
    """Writes the ``user_id``, ``item_id`` rows of ``files`` to one file per block."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out.mkdir(parents=True)
    schema = pa.schema([(USER_ID, pa.string()), (ITEM_ID, pa.string())])
    writers = [pq.ParquetWriter(out / f"block-{b:05d}.parquet", schema) for b in range(n_blocks)]
    rows = [0] * n_blocks
    try:
        for batch in _record_batches(files, BATCH_ROWS):
            batch = pa.RecordBatch.from_arrays(
                [batch.column(USER_ID).cast(pa.string()), batch.column(ITEM_ID).cast(pa.string())],
                schema=schema,
            )
            encoded = batch.column(USER_ID).dictionary_encode()
            codes = encoded.indices.to_numpy(zero_copy_only=False)
            blocks = np.minimum(
                (user_hash(encoded.dictionary.to_pylist()) * n_blocks).astype(np.int64),
                n_blocks - 1,
            )[codes]
            order = np.argsort(blocks, kind="stable")
            bounds = np.searchsorted(blocks[order], np.arange(n_blocks + 1))
            for b in range(n_blocks):
                if bounds[b + 1] > bounds[b]:
                    taken = batch.take(pa.array(order[bounds[b] : bounds[b + 1]]))
                    writers[b].write_batch(taken)
                    rows[b] += taken.num_rows
    finally:
        for writer in writers:
            writer.close()
    return rows


def _read_block(path: Path):
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pandas()


def block_tasks(
    dataset: RecDataset, blocks: UserBlocks, *, split_name: str
) -> Iterator[EvaluationTask]:
    """One task per block with holdout rows, built when the generator reaches it."""
    for block in range(blocks.n_blocks):
        if blocks.rows[HOLDOUT][block] == 0:
            continue
        holdout = _read_block(blocks.file(HOLDOUT, block))
        train = _read_block(blocks.file(TRAIN, block))
        try:
            task = sample_task(dataset, train, holdout, split_name=split_name)
        except NothingToEvaluateError:
            continue  # every holdout pair of the block is also a train pair
        del train, holdout
        yield task


def evaluate_all_users(
    scorer: Scorer,
    dataset: RecDataset,
    split: StreamSplit,
    item_train_rows: np.ndarray,
    *,
    block_users: int = DEFAULT_BLOCK_USERS,
    batch_size: int | None = None,
) -> EvaluationResult:
    """The protocol's figures over every holdout user of ``split``, a block at a time.

    Args:
        scorer: ``scorer(user_rows) -> [batch, n_items]`` over ``dataset``'s
            tables (e.g. ``model.scorer()``).
        dataset: The feature tables (no interactions needed).
        split: The streamed split whose holdout side is evaluated.
        item_train_rows: ``[n_items]`` each item's train rows (item table order),
            for the popularity bins.
        block_users: Holdout users per block (:func:`user_blocks`).
        batch_size: Users per scorer call (default: ``default_batch_size(n_items)``).

    Raises:
        NothingToEvaluateError: No user has a holdout item that is not a train item.
    """
    blocks = user_blocks(split, block_users=block_users)
    return evaluate_tasks(
        scorer,
        block_tasks(dataset, blocks, split_name=split.name),
        item_train_positives=np.asarray(item_train_rows, dtype=np.int64),
        batch_size=batch_size,
    )


def evaluate_run_all_users(run, *, block_users: int = DEFAULT_BLOCK_USERS) -> EvaluationResult:
    """Every holdout user of a streamed run (``tfrs-recsys evaluate --all-users``).

    A streamed run's ``metrics.json`` ranks for its sample of ``eval_users``
    users; this ranks for all of them, a block of ``block_users`` at a time.

    Args:
        run: A loaded streamed run (:func:`~tfrs_recsys.training.run.load_run`).
        block_users: Holdout users per block.

    Raises:
        ConfigError: ``run`` is not a streamed run (an in-memory run's
            ``evaluate`` ranks every holdout user already).
    """
    from tfrs_recsys.training.streamed import StreamedData, cached_stats

    data = run.data
    if not isinstance(data, StreamedData):
        raise ConfigError(
            f"{run.run_dir}: --all-users is for streamed runs (data.stream = true); an "
            "in-memory run's evaluate already ranks every holdout user"
        )
    stats = cached_stats(data.parts, data.declaration)
    counts = stats.counts_for("item", data.dataset.table("item").ids)
    return evaluate_all_users(
        run.model.scorer(), data.dataset, data.parts, counts, block_users=block_users
    )
