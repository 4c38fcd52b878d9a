"""The evaluation protocol on a hash sample of users, read from split part files.

A streamed run (``data.stream = true``, :mod:`tfrs_recsys.training.streamed`)
never holds all interactions, so validation and the holdout evaluation rank
the catalog for a deterministic sample of users instead of every user:

1. :func:`sample_rows` reads the holdout-side part files (validation or
   holdout) once and keeps the rows of the ``size`` users whose
   :func:`~tfrs_recsys.data.stream_split.hash_fraction` of ``(user_id, "")``
   is smallest (a bottom-k sample; ties by id), every user when there are
   fewer. The sample depends on the user ids and the seed only, not on the
   order of the files or rows.
2. :func:`rows_of_users` reads the train-side part files once and keeps the
   sample users' rows (their train items, masked at ranking time).
3. :func:`sample_task` builds the
   :class:`~tfrs_recsys.evaluation.protocol.EvaluationTask` from those two small
   frames on a dataset that holds the feature tables and no interactions
   (:func:`tables_dataset`).

Memory: one record batch, the sample's rows (about ``size`` times the rows per
user) and the feature tables; never all interactions. The popularity bins of a
result are those of the sample: an item's train positives are counted over the
sampled users' train rows.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from tfrs_recsys.data.dataset import FeatureTable, RecDataset
from tfrs_recsys.data.schema import ITEM_ID, USER_ID, DatasetSchema
from tfrs_recsys.data.stream_split import BATCH_ROWS, hash_fraction
from tfrs_recsys.errors import DataValidationError, NothingToEvaluateError
from tfrs_recsys.evaluation.protocol import EvaluationTask

__all__ = [
    "SAMPLE_SEED",
    "read_frames",
    "rows_of_users",
    "sample_rows",
    "sample_task",
    "tables_dataset",
    "user_hash",
]

#: Seed of the users' sample hash (fixed: the sample is a property of the user ids).
SAMPLE_SEED = 20_000


def user_hash(user_ids: Sequence[str] | np.ndarray) -> np.ndarray:
    """A number in [0, 1) per user id: ``hash_fraction(user_id, "", SAMPLE_SEED)``."""
    ids = np.asarray(user_ids, dtype=object)
    return hash_fraction(ids, np.full(len(ids), "", dtype=object), SAMPLE_SEED)


def _record_batches(files: Sequence[str | Path], batch_rows: int):
    """``user_id``, ``item_id`` record batches (pyarrow) of the part files."""
    import pyarrow.parquet as pq

    for file in files:
        with pq.ParquetFile(file) as parquet:
            yield from parquet.iter_batches(batch_size=batch_rows, columns=[USER_ID, ITEM_ID])


def read_frames(
    files: Sequence[str | Path], *, batch_rows: int = BATCH_ROWS
) -> Iterator[pd.DataFrame]:
    """``user_id``, ``item_id`` of the part files, ``batch_rows`` rows at a time."""
    for batch in _record_batches(files, batch_rows):
        yield batch.to_pandas()


def _bottom_users(frame: pd.DataFrame, size: int) -> pd.DataFrame:
    """Distinct ``(user_id, hash)`` of ``frame``: the ``size`` smallest by (hash, id)."""
    users = frame[[USER_ID, "hash"]].drop_duplicates(USER_ID)
    return users.sort_values(["hash", USER_ID], kind="stable").head(size)


def sample_rows(
    files: Sequence[str | Path], size: int, *, batch_rows: int = BATCH_ROWS
) -> tuple[np.ndarray, pd.DataFrame]:
    """The rows of a bottom-``size`` hash sample of the users of ``files``, in one pass.

    Rows of users whose hash is above the ``size``-th smallest seen so far are
    skipped (in Arrow, before any conversion); the kept rows are pruned to the
    current sample whenever they double, so memory stays about twice the
    sample's rows.

    Args:
        files: Part files (``user_id``, ``item_id``), e.g. a split's holdout side.
        size: Users in the sample (every user when the files have fewer).
        batch_rows: Rows read at a time.

    Returns:
        The sampled user ids (sorted by hash, then id) and their rows
        (``user_id``, ``item_id``, in file order).
    """
    import pyarrow as pa

    kept: list[pd.DataFrame] = []
    kept_rows = 0
    limit = 4 * batch_rows
    threshold = np.inf
    chosen = pd.DataFrame({USER_ID: pd.Series([], dtype=object), "hash": np.zeros(0)})
    for batch in _record_batches(files, batch_rows):
        encoded = batch.column(USER_ID).dictionary_encode()
        codes = encoded.indices.to_numpy(zero_copy_only=False)
        hashes = user_hash(encoded.dictionary.to_pylist())[codes]
        mask = hashes <= threshold
        if not mask.any():
            continue
        frame = batch.filter(pa.array(mask)).to_pandas().assign(hash=hashes[mask])
        kept.append(frame)
        kept_rows += len(frame)
        if kept_rows > limit:
            kept, chosen, threshold = _prune(kept, size)
            kept_rows = len(kept[0])
            limit = max(2 * kept_rows, 4 * batch_rows)
    if kept:
        kept, chosen, threshold = _prune(kept, size)
    rows = kept[0][[USER_ID, ITEM_ID]].reset_index(drop=True) if kept else _empty()
    return chosen[USER_ID].to_numpy(dtype=object), rows


def _prune(kept: list[pd.DataFrame], size: int) -> tuple[list[pd.DataFrame], pd.DataFrame, float]:
    frame = pd.concat(kept, ignore_index=True)
    chosen = _bottom_users(frame, size)
    threshold = float(chosen["hash"].iloc[-1]) if len(chosen) >= size else np.inf
    frame = frame[frame[USER_ID].isin(chosen[USER_ID])]
    return [frame], chosen, threshold


def _empty() -> pd.DataFrame:
    return pd.DataFrame(
        {USER_ID: pd.Series([], dtype=object), ITEM_ID: pd.Series([], dtype=object)}
    )


def rows_of_users(
    files: Sequence[str | Path], users: Sequence[str] | np.ndarray, *, batch_rows: int = BATCH_ROWS
) -> pd.DataFrame:
    """``user_id``, ``item_id`` rows of ``files`` whose user is one of ``users``, in file order.

    The rows are selected in Arrow (``pyarrow.compute.is_in``); only the kept
    rows become a pandas frame.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    wanted = pa.array([str(u) for u in users], type=pa.string())
    parts = []
    for batch in _record_batches(files, batch_rows):
        kept = batch.filter(pc.is_in(batch.column(USER_ID), value_set=wanted))
        if kept.num_rows:
            parts.append(kept)
    if not parts:
        return _empty()
    return pa.Table.from_batches(parts).to_pandas()


def tables_dataset(
    schema: DatasetSchema, users: FeatureTable, items: FeatureTable, *, source: str | None = None
) -> RecDataset:
    """A :class:`RecDataset` of the two feature tables and no interactions.

    What :func:`~tfrs_recsys.models.factory.build_model` and
    :meth:`EvaluationTask.build` read from a dataset (schema, tables, id
    encoding), without the interactions of a streamed dataset. The given
    tables are the dataset's cached tables (no second copy).
    """
    frames = [
        pd.DataFrame({name: values for name, values in t.columns.items()}) for t in (users, items)
    ]
    dataset = RecDataset(
        schema=schema, users=frames[0], items=frames[1], interactions=_empty(), source=source
    )
    # RecDataset.table() caches the tables it builds from the frames; the given
    # ones are those tables already (same columns, same rows).
    object.__setattr__(dataset, "_table_user", users)
    object.__setattr__(dataset, "_table_item", items)
    return dataset


def _as_categories(frame: pd.DataFrame, dataset: RecDataset) -> pd.DataFrame:
    """``frame`` with ``user_id`` / ``item_id`` as categoricals over the tables' ids.

    The codes are found in Arrow (``pyarrow.compute.index_in``); an id column is
    then 4 bytes a row, and the object array ``EvaluationTask.build`` encodes
    from points at the tables' own strings instead of a new string per row.

    Raises:
        DataValidationError: An id is not in its feature table.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    columns = {}
    for column, side in ((USER_ID, "user"), (ITEM_ID, "item")):
        table = dataset.table(side)  # type: ignore[arg-type]
        ids = np.asarray(table.ids, dtype=object)
        values = pa.array(frame[column])  # no copy of pandas' Arrow-backed strings
        if values.type != pa.string():
            values = values.cast(pa.string())
        codes = pc.index_in(values, value_set=pa.array(ids.tolist(), type=pa.string()))
        if codes.null_count:
            first = values.filter(pc.is_null(codes))[0].as_py()
            raise DataValidationError(
                f"{codes.null_count} {side} id(s) of the sample are not in the {side} "
                f"feature table, first {first!r}"
            )
        categories = pd.Index(ids, dtype=object)
        columns[column] = pd.Categorical.from_codes(
            codes.to_numpy(zero_copy_only=False).astype(np.int32), categories=categories
        )
    return pd.DataFrame(columns)


def sample_task(
    dataset: RecDataset,
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    *,
    split_name: str,
) -> EvaluationTask:
    """The protocol's task of the sampled users (``holdout``) masking their ``train`` rows.

    Raises:
        DataValidationError: No sampled user has a holdout item that is not
            also a train item, or an id is not in its feature table.
    """
    if holdout.empty:
        raise NothingToEvaluateError(f"the {split_name} sample has no rows: nothing to evaluate")
    return EvaluationTask.build(
        dataset,
        _as_categories(train, dataset),
        _as_categories(holdout, dataset),
        split_name=split_name,
    )
