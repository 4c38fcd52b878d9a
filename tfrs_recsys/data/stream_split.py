"""Streamed splits of a declared dataset: shards in, train and holdout shards out.

(Over 450 lines: three streamed splits sharing one reader, one set of row checks
and one atomic writer.)

For interactions that do not fit in memory. :func:`split_declared` reads the
declared interaction shards one record batch at a time (Parquet row groups via
``ParquetFile.iter_batches``, CSV via pyarrow's streaming CSV reader), keeps the
positives exactly as the in-memory loader does (the declared ``rating`` /
``min_rating`` or ``label``, ``missing_features``, the same value checks and
one-line errors), and writes::

    out_dir/train/part-00000.parquet, ...
    out_dir/holdout/part-00000.parquet, ...
    out_dir/user_ids.parquet    (a side without a declared feature table: the ids
    out_dir/item_ids.parquet     of every kept row, first appearance first)
    out_dir/split.json          (written last)

with the canonical columns ``user_id``, ``item_id`` (strings) and, when
declared, ``timestamp`` (int64 seconds since 1970) and ``weight`` (float64),
rows in shard and file order. The whole ``out_dir`` is atomic
(:func:`tfrs_recsys.atomic.atomic_directory`): an error or a kill leaves no
half-written split.

Splits (:data:`STREAM_SPLITS`):

- ``hash-80-20``: a row is held out when a 64-bit hash of ``(seed, user_id,
  item_id)`` (FNV-1a of the UTF-8 ids, mixed by splitmix64; no Python ``hash``)
  maps below 0.2. One pass. A repeated pair always lands on the same side, and
  the result does not depend on how the rows are cut into shards or batches.
- ``leave-last-out``: each user's latest positive (largest timestamp, ties
  broken by the largest item id) is held out; a user whose rows are all that
  one (user, item, timestamp) keeps them in train (in particular users with
  one positive). Two passes; the first keeps one row per user (O(users)).
- ``time-80-20``: rows with a timestamp above a global cut-off go to holdout.
  The cut-off is the 80th percentile (the smallest timestamp with at least
  80% of the sample at or below it) of a bottom-k hash sample of
  :data:`TIME_SAMPLE_ROWS` rows: exact when the data has no more rows than
  that, otherwise approximate with a rank error of about
  ``sqrt(0.16 / k)`` (0.04 percentage points at k = 1M). Two passes.

Memory: one record batch (``batch_rows`` rows) of the input, the open Parquet
writers, the distinct users of each side (for the counts of ``split.json``)
and, for ``leave-last-out``, one row per user; never all interactions.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tfrs_recsys.atomic import atomic_directory
from tfrs_recsys.data.declared import (
    LABEL,
    RATING,
    TIMESTAMP,
    WEIGHT,
    DatasetDeclaration,
    FileColumns,
    TableSpec,
    canonical_id,
    read_declaration,
)

# The in-memory loader's own rules (ids as strings, timestamps, which rows are
# positives, the messages): reused so that both readers keep the same rows.
from tfrs_recsys.data.declared_memory import (
    _id_strings,
    _missing_features_error,
    _positive,
    _read_feature_table,
    _timestamps,
    _why_none,
)
from tfrs_recsys.data.input_files import check_file
from tfrs_recsys.data.reader import Table
from tfrs_recsys.data.schema import ITEM_ID, USER_ID
from tfrs_recsys.data.validation import check_binary, check_ids_present, check_numeric
from tfrs_recsys.errors import ConfigError, DataValidationError

__all__ = [
    "HOLDOUT_FRACTION",
    "ID_FILES",
    "SPLIT_FILE",
    "STREAM_SPLITS",
    "TIME_SAMPLE_ROWS",
    "PositiveBatch",
    "ReadTally",
    "StreamSplit",
    "finish_pass",
    "fnv1a64",
    "hash_fraction",
    "iter_positive_batches",
    "known_ids",
    "read_split",
    "split_declared",
    "splitmix64",
]

STREAM_SPLITS: tuple[str, ...] = ("hash-80-20", "leave-last-out", "time-80-20")
HOLDOUT_FRACTION = 0.2
SPLIT_FILE = "split.json"
#: Side -> the file listing its ids, written for a side without a declared feature table.
ID_FILES = {"user": "user_ids.parquet", "item": "item_ids.parquet"}
TRAIN, HOLDOUT = "train", "holdout"
#: Rows of the bottom-k hash sample the ``time-80-20`` cut-off is computed on.
TIME_SAMPLE_ROWS = 1_000_000
#: Input rows per record batch.
BATCH_ROWS = 65_536
#: Output rows per Parquet part file.
ROWS_PER_PART = 1_000_000
FORMAT = 1

_U64 = np.uint64
_FNV_OFFSET = _U64(0xCBF29CE484222325)
_FNV_PRIME = _U64(0x100000001B3)
_TIME_SALT = 0x7A3D_5EED
# Partial per-user rows kept before they are merged again (leave-last-out, pass 1).
_MERGE_ROWS = 1_000_000


# --- Hashing ------------------------------------------------------------------------------------


def splitmix64(values: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser of ``values`` (uint64, wrapping arithmetic), elementwise."""
    z = np.asarray(values, dtype=_U64) + _U64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> _U64(27))) * _U64(0x94D049BB133111EB)
    return z ^ (z >> _U64(31))


def fnv1a64(strings: Sequence[str] | np.ndarray | pd.Series) -> np.ndarray:
    """64-bit FNV-1a of each string's UTF-8 bytes (uint64), vectorised over the strings.

    One numpy step per byte position of the longest string, over all strings at once.
    """
    import pyarrow as pa

    if isinstance(strings, pd.Series) and not strings.hasnans:
        array = pa.array(strings)  # no copy for pandas' Arrow-backed strings
    else:
        array = pa.array(np.asarray(strings, dtype=object), type=pa.string())
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    array = array.cast(pa.large_string())
    n = len(array)
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int64, count=array.offset + n + 1)
    offsets = offsets[array.offset :]
    data_buffer = array.buffers()[2]
    data = np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer is not None else np.zeros(0)
    starts, lengths = offsets[:-1], np.diff(offsets)
    hashes = np.full(n, _FNV_OFFSET, dtype=_U64)
    for position in range(int(lengths.max()) if n else 0):
        rows = np.flatnonzero(lengths > position)
        byte = data[starts[rows] + position].astype(_U64)
        hashes[rows] = (hashes[rows] ^ byte) * _FNV_PRIME
    return hashes


def _seed_word(seed: int, salt: int = 0) -> np.ndarray:
    return splitmix64(np.asarray([(seed ^ salt) & 0xFFFFFFFFFFFFFFFF], dtype=_U64))


def _pair_hash(users: np.ndarray, items: np.ndarray, seed: int, salt: int = 0) -> np.ndarray:
    return splitmix64(splitmix64(fnv1a64(users) ^ _seed_word(seed, salt)) ^ fnv1a64(items))


def hash_fraction(users: np.ndarray, items: np.ndarray, seed: int) -> np.ndarray:
    """A number in [0, 1) per (user, item) pair, fixed by the ids and ``seed`` alone.

    ``splitmix64(splitmix64(fnv1a64(user) ^ splitmix64(seed)) ^ fnv1a64(item))``,
    its top 53 bits divided by 2**53. ``hash-80-20`` holds a row out when this is
    below :data:`HOLDOUT_FRACTION`.
    """
    return (_pair_hash(users, items, seed) >> _U64(11)).astype(np.float64) * 2.0**-53


# --- Reading the positives, batch by batch --------------------------------------------------------


@dataclasses.dataclass
class ReadTally:
    """What one pass over the shards read, kept and dropped.

    Attributes:
        raw_rows: Interaction rows read (every row, positive or not).
        kept_rows: Rows left after ``missing_features = "drop"``.
        positives: Positive rows yielded.
        dropped: ``missing_features = "drop"``: rows dropped for an unknown
            ``user`` id or, user known, an unknown ``item`` id.
        unknown: ``missing_features = "error"``: side -> distinct unknown ids
            (and ``unknown_rows`` their row counts), for the error at the end.
        ids: Side -> the ids of every kept row (positive or not) in order of
            first appearance, for the sides asked for (``collect_ids``).
    """

    raw_rows: int = 0
    kept_rows: int = 0
    positives: int = 0
    dropped: dict[str, int] = dataclasses.field(default_factory=lambda: {"user": 0, "item": 0})
    unknown: dict[str, set[str]] = dataclasses.field(
        default_factory=lambda: {"user": set(), "item": set()}
    )
    unknown_rows: dict[str, int] = dataclasses.field(default_factory=lambda: {"user": 0, "item": 0})
    ids: dict[str, dict[str, None]] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class PositiveBatch:
    """Positive rows of one record batch of one shard.

    Attributes:
        file: The shard.
        first_row: 0-based row of the batch's first row in the file.
        frame: The positives, canonical columns (``user_id``, ``item_id`` as
            str, ``timestamp`` int64 and ``weight`` float64 when declared).
    """

    file: Path
    first_row: int
    frame: pd.DataFrame


def _canonical_columns(declaration: DatasetDeclaration) -> list[str]:
    spec = declaration.interactions
    return [
        c
        for c, declared in (
            (USER_ID, True),
            (ITEM_ID, True),
            (TIMESTAMP, spec.timestamp is not None),
            (WEIGHT, spec.weight is not None),
        )
        if declared
    ]


def _iter_record_batches(
    declaration: DatasetDeclaration, file: Path, header: FileColumns, batch_rows: int
) -> Iterator[pd.DataFrame]:
    """The declared columns of ``file``, renamed to canonical names, ``batch_rows`` at a time."""
    import pyarrow as pa

    spec = declaration.interactions
    renames = spec.renames()
    check_file(file)
    try:
        if spec.source.format == "parquet":
            import pyarrow.parquet as pq

            with pq.ParquetFile(file) as parquet:
                for batch in parquet.iter_batches(batch_size=batch_rows, columns=list(renames)):
                    yield batch.to_pandas().rename(columns=renames)
            return
        import pyarrow.csv as pacsv

        dialect = spec.source.dialect
        reader = pacsv.open_csv(
            file,
            read_options=pacsv.ReadOptions(
                column_names=list(header.columns), skip_rows=1, block_size=1 << 22
            ),
            parse_options=pacsv.ParseOptions(
                delimiter=dialect.sep, quote_char='"', newlines_in_values=True
            ),
            convert_options=pacsv.ConvertOptions(
                include_columns=list(renames),
                column_types={c: pa.string() for c in renames},
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
            ),
        )
        pending: list[pd.DataFrame] = []
        pending_rows = 0
        for batch in reader:
            pending.append(batch.to_pandas().rename(columns=renames))
            pending_rows += batch.num_rows
            if pending_rows >= batch_rows:
                yield pd.concat(pending, ignore_index=True)
                pending, pending_rows = [], 0
        if pending:
            yield pd.concat(pending, ignore_index=True)
    except (pa.ArrowException, OSError) as exc:
        raise DataValidationError(
            f"cannot read the {spec.source.format.upper()} file: {' '.join(str(exc).split())}",
            file=file,
        ) from exc


def _checked(
    declaration: DatasetDeclaration, file: Path, first_row: int, frame: pd.DataFrame
) -> pd.DataFrame:
    """The batch's values checked and converted as the in-memory loader does."""
    spec = declaration.interactions
    csv = spec.source.format == "csv"
    table = Table(
        file,
        frame.reset_index(drop=True),
        first_line=2 if csv else 1,
        labels={key: column for key, column in spec.declared_columns()},
        dialect=spec.source.dialect if csv else None,
        records=np.arange(first_row, first_row + len(frame)),
    )
    frame = table.frame
    for column in (USER_ID, ITEM_ID):
        ids = frame[column]
        if not (pd.api.types.is_string_dtype(ids.dtype) and ids.dtype != object) or ids.hasnans:
            frame[column] = _id_strings(ids)  # strings without a hole are already that
        check_ids_present(table, column)
    if spec.weight is not None:
        frame[WEIGHT] = check_numeric(table, WEIGHT, minimum=0.0)
    if spec.rating is not None:
        frame[RATING] = check_numeric(table, RATING, minimum=None)
    if spec.timestamp is not None:
        stamps = frame[TIMESTAMP]
        if (
            pd.api.types.is_integer_dtype(stamps.dtype)
            and not stamps.hasnans
            and (len(stamps) == 0 or int(np.abs(stamps.to_numpy(dtype=np.int64)).max()) < 2**53)
        ):
            # What _timestamps gives for whole seconds that float64 holds exactly.
            frame[TIMESTAMP] = stamps.astype(np.int64)
        else:
            frame[TIMESTAMP] = _timestamps(table, TIMESTAMP)
    if spec.label is not None:
        if pd.api.types.is_bool_dtype(frame[LABEL]):
            frame[LABEL] = frame[LABEL].to_numpy(dtype=np.uint8)
        else:
            frame[LABEL] = check_binary(table, [LABEL])[:, 0]
    return frame


def known_ids(declaration: DatasetDeclaration) -> dict[str, pd.Index]:
    """Side -> the ids of the declared feature table (sides without a table are absent).

    Feature tables are read whole (one row per user or item), with the in-memory
    loader's checks (unique, non-empty ids; values that fit their roles).
    """
    headers = {}
    found: dict[str, pd.Index] = {}
    for side in ("user", "item"):
        spec: TableSpec | None = declaration.table(side)  # type: ignore[arg-type]
        if spec is None:
            continue
        if not headers:
            headers = declaration.check_files()
        frame = _read_feature_table(spec, headers[spec.path])
        found[side] = pd.Index(frame[canonical_id(side)])
    return found


def iter_positive_batches(
    declaration: DatasetDeclaration,
    *,
    min_rating: float = 4.0,
    batch_rows: int = BATCH_ROWS,
    known: dict[str, pd.Index] | None = None,
    tally: ReadTally | None = None,
    headers: dict[Path, FileColumns] | None = None,
    collect_ids: Sequence[str] = (),
) -> Iterator[PositiveBatch]:
    """The positive interactions of every shard, one record batch at a time.

    Applies the in-memory loader's rules: value checks (ids present, numbers,
    0/1 labels, timestamps), ``missing_features`` against the feature tables'
    ids (``known``), then the positives (``label = 1``, or ``rating >=
    min_rating``; every row without either). Rows come in shard and file order.

    Args:
        declaration: The parsed ``dataset.toml``.
        min_rating: With a ``rating`` column and no ``min_rating`` in the TOML.
        batch_rows: Input rows per batch (CSV: at least this many, whole blocks).
        known: Side -> feature-table ids (default: read by :func:`known_ids`).
        tally: Filled with the counts of the pass; with ``missing_features =
            "error"`` check it with :func:`finish_pass` after the last batch.
        headers: :meth:`DatasetDeclaration.check_files`' result, if already read.
        collect_ids: Sides (``user``, ``item``) whose ids of every kept row
            are gathered into ``tally.ids`` (as the in-memory loader lists the
            ids of a side without a feature table).

    Yields:
        One :class:`PositiveBatch` per input batch that holds a positive.
    """
    if batch_rows < 1:
        raise ConfigError(f"batch_rows must be at least 1, got {batch_rows}")
    headers = headers if headers is not None else declaration.check_files()
    known = known_ids(declaration) if known is None else known
    tally = tally if tally is not None else ReadTally()
    spec = declaration.interactions
    keep = _canonical_columns(declaration)
    drop = declaration.missing_features == "drop"
    for file in spec.source.files:
        first_row = 0
        for raw in _iter_record_batches(declaration, file, headers[file], batch_rows):
            rows = _checked(declaration, file, first_row, raw)
            first_row += len(raw)
            tally.raw_rows += len(rows)
            for side in ("user", "item"):
                if side not in known:
                    continue
                ids = rows[canonical_id(side)]
                codes, distinct = pd.factorize(ids)
                present = (known[side].get_indexer(distinct) >= 0)[codes]
                if present.all():
                    continue
                if drop:
                    tally.dropped[side] += int((~present).sum())
                    rows = rows[present]
                elif side == "item" and tally.unknown["user"]:
                    continue  # the user error comes first, as in the in-memory loader
                else:
                    tally.unknown[side].update(pd.unique(ids[~present].to_numpy(dtype=object)))
                    tally.unknown_rows[side] += int((~present).sum())
            tally.kept_rows += len(rows)
            for side in collect_ids:
                seen = tally.ids.setdefault(side, {})
                seen.update(dict.fromkeys(rows[canonical_id(side)].unique().tolist()))
            positive = rows[_positive(spec, rows, min_rating)]
            if len(positive):
                tally.positives += len(positive)
                yield PositiveBatch(
                    file, first_row - len(raw), positive[keep].reset_index(drop=True)
                )


def finish_pass(declaration: DatasetDeclaration, tally: ReadTally, *, min_rating: float) -> None:
    """Raises what the in-memory loader raises after reading everything.

    Raises:
        DataValidationError: ``missing_features = "error"`` and an id is not in
            its feature table (the loader's message), or no positive at all.
    """
    for side in ("user", "item"):
        if tally.unknown[side]:
            spec = declaration.table(side)  # type: ignore[arg-type]
            unknown = sorted(tally.unknown[side])
            # The loader's message wants the unknown rows; it shows distinct ids and counts.
            shown = pd.Series(unknown, dtype=object)
            error = _missing_features_error(declaration, spec, shown)  # type: ignore[arg-type]
            problem = error.problem.replace(
                f", {len(unknown)} row(s))", f", {tally.unknown_rows[side]} row(s))", 1
            )
            raise DataValidationError(problem, file=declaration.path)
    if tally.positives == 0:
        raise DataValidationError(
            "no positive interactions: "
            + _why_none(declaration.interactions, tally.raw_rows, tally.kept_rows, min_rating),
            file=declaration.path,
        )


# --- Writing ------------------------------------------------------------------------------------


def _open_part(path: Path, schema):
    """A Parquet writer of one output part (a function of its own, so tests can fail it)."""
    import pyarrow.parquet as pq

    return pq.ParquetWriter(path, schema)


class _PartWriter:
    """Writes frames to ``directory/part-NNNNN.parquet``, ``rows_per_part`` rows a part."""

    def __init__(self, directory: Path, columns: Sequence[str], rows_per_part: int) -> None:
        import pyarrow as pa

        types = {USER_ID: pa.string(), ITEM_ID: pa.string(), TIMESTAMP: pa.int64()}
        types[WEIGHT] = pa.float64()
        self.schema = pa.schema([(c, types[c]) for c in columns])
        self.directory = directory
        self.rows_per_part = rows_per_part
        self.rows = 0
        self.parts: list[str] = []
        self.users: set[str] = set()
        self._writer = None
        self._part_rows = 0
        directory.mkdir()

    def write(self, frame: pd.DataFrame) -> None:
        import pyarrow as pa

        if frame.empty:
            return
        self.users.update(frame[USER_ID].unique())
        self.rows += len(frame)
        start = 0
        while start < len(frame):
            if self._writer is None:
                name = f"part-{len(self.parts):05d}.parquet"
                self._writer = _open_part(self.directory / name, self.schema)
                self.parts.append(name)
                self._part_rows = 0
            take = min(len(frame) - start, self.rows_per_part - self._part_rows)
            chunk = frame.iloc[start : start + take]
            self._writer.write_table(
                pa.Table.from_pandas(chunk, schema=self.schema, preserve_index=False)
            )
            self._part_rows += take
            start += take
            if self._part_rows >= self.rows_per_part:
                self.close()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _write_ids(path: Path, column: str, ids: list[str]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({column: pa.array(ids, pa.string())}), path)


# --- Splits -------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class StreamSplit:
    """A split written by :func:`split_declared` (``split.json`` and the part files).

    Attributes:
        directory: The split's ``out_dir``.
        manifest: The contents of ``split.json``.
    """

    directory: Path
    manifest: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.manifest["split"])

    def files(self, side: str = TRAIN) -> list[Path]:
        """The part files of ``train`` or ``holdout``, in order."""
        if side not in (TRAIN, HOLDOUT):
            raise ConfigError(f"a split has sides {TRAIN!r} and {HOLDOUT!r}, not {side!r}")
        return [self.directory / side / name for name in self.manifest["parts"][side]]

    def ids(self, side: str) -> list[str] | None:
        """A side's ids (every kept row's, first appearance first) when it has no feature table."""
        name = self.manifest.get("id_files", {}).get(side)
        if name is None:
            return None
        import pyarrow.parquet as pq

        return pq.read_table(self.directory / name).column(0).to_pylist()

    @property
    def train_files(self) -> list[Path]:
        return self.files(TRAIN)

    @property
    def holdout_files(self) -> list[Path]:
        return self.files(HOLDOUT)


def read_split(directory: str | Path) -> StreamSplit:
    """Reads a split written by :func:`split_declared`.

    Raises:
        DatasetNotFoundError, DataValidationError: No readable ``split.json``,
            or a part file it lists is missing.
    """
    directory = Path(directory)
    path = directory / SPLIT_FILE
    check_file(path)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataValidationError(
            f"not a split manifest (invalid JSON: {exc})", file=path
        ) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DataValidationError(
            f"not a split manifest of format {FORMAT} (written by split_declared)", file=path
        )
    split = StreamSplit(directory, manifest)
    for side in (TRAIN, HOLDOUT):
        for file in split.files(side):
            check_file(file)
    return split


def _source_files(declaration: DatasetDeclaration) -> list[dict[str, Any]]:
    files = []
    for file in declaration.interactions.source.files:
        stat = os.stat(file)
        files.append({"path": str(file), "bytes": stat.st_size, "mtime": stat.st_mtime})
    return files


def split_declared(
    declaration: DatasetDeclaration | str | Path,
    out_dir: str | Path,
    split: str = "hash-80-20",
    *,
    seed: int = 42,
    min_rating: float = 4.0,
    batch_rows: int = BATCH_ROWS,
    rows_per_part: int = ROWS_PER_PART,
    time_sample_rows: int = TIME_SAMPLE_ROWS,
    overwrite: bool = False,
) -> StreamSplit:
    """Splits a declared dataset's positives into train and holdout shards, streaming.

    Args:
        declaration: A parsed declaration, or its ``dataset.toml`` (or directory).
        out_dir: The split's directory (written atomically).
        split: One of :data:`STREAM_SPLITS` (see the module docstring).
        seed: ``hash-80-20``: the hash seed; ``time-80-20``: the sample's seed.
        min_rating: With ``rating`` and no ``min_rating`` in the TOML file.
        batch_rows: Input rows read at a time.
        rows_per_part: Output rows per part file.
        time_sample_rows: ``time-80-20``: rows of the cut-off's sample.
        overwrite: Replace an existing non-empty ``out_dir``.

    Returns:
        The written split.

    Raises:
        ConfigError: An unknown split, ``leave-last-out`` or ``time-80-20``
            without a declared timestamp, a bad size, a non-empty ``out_dir``.
        DatasetNotFoundError, DataValidationError: As :func:`load_declared`
            (missing files, missing columns, empty shards, bad values, unknown
            ids, no positives), each in one line.
    """
    if split not in STREAM_SPLITS:
        raise ConfigError(f"unknown split {split!r}; choose one of {', '.join(STREAM_SPLITS)}")
    for name, value in (
        ("batch_rows", batch_rows),
        ("rows_per_part", rows_per_part),
        ("time_sample_rows", time_sample_rows),
    ):
        if value < 1:
            raise ConfigError(f"{name} must be at least 1, got {value}")
    if not isinstance(declaration, DatasetDeclaration):
        declaration = read_declaration(declaration)
    if split != "hash-80-20" and declaration.interactions.timestamp is None:
        raise ConfigError(
            f"{declaration.path}: [interactions]: the {split} split needs a timestamp column "
            '(declare timestamp = "...")'
        )
    started = time.perf_counter()
    headers = declaration.check_files()
    known = known_ids(declaration)
    columns = _canonical_columns(declaration)

    id_sides = [side for side in ("user", "item") if declaration.table(side) is None]  # type: ignore[arg-type]

    def passes(collect: Sequence[str] = ()) -> tuple[Iterator[PositiveBatch], ReadTally]:
        tally = ReadTally()
        batches = iter_positive_batches(
            declaration,
            min_rating=min_rating,
            batch_rows=batch_rows,
            known=known,
            tally=tally,
            headers=headers,
            collect_ids=collect,
        )
        return batches, tally

    extra: dict[str, Any] = {}
    with atomic_directory(Path(out_dir), overwrite=overwrite) as staging:
        writers = {
            side: _PartWriter(staging / side, columns, rows_per_part) for side in (TRAIN, HOLDOUT)
        }
        if split == "hash-80-20":
            chooser = _HashChooser(seed)
            extra = {
                "holdout_fraction": HOLDOUT_FRACTION,
                "hash": "splitmix64(splitmix64(fnv1a64(user_id) ^ splitmix64(seed)) "
                "^ fnv1a64(item_id)) / 2**64 < holdout_fraction",
            }
        elif split == "leave-last-out":
            batches, tally = passes()
            chooser = _LastChooser.from_batches(batches)
            finish_pass(declaration, tally, min_rating=min_rating)
            extra = {"tie_break": "largest item_id among the latest timestamp's rows"}
        else:
            batches, tally = passes()
            cutoff, sampled = _time_cutoff(batches, seed, time_sample_rows)
            finish_pass(declaration, tally, min_rating=min_rating)
            chooser = _TimeChooser(cutoff)
            extra = {
                "cutoff": cutoff,
                "cutoff_quantile": 1.0 - HOLDOUT_FRACTION,
                "cutoff_sample_rows": sampled,
                "cutoff_exact": sampled == tally.positives,
                "rule": "timestamp > cutoff goes to holdout",
            }
        batches, tally = passes(id_sides)
        for batch in batches:
            holdout = chooser(batch.frame)
            writers[TRAIN].write(batch.frame[~holdout])
            writers[HOLDOUT].write(batch.frame[holdout])
        for writer in writers.values():
            writer.close()
        finish_pass(declaration, tally, min_rating=min_rating)
        id_files = {}
        for side in id_sides:
            id_files[side] = ID_FILES[side]
            _write_ids(staging / ID_FILES[side], canonical_id(side), list(tally.ids[side]))
        manifest = {
            "format": FORMAT,
            "split": split,
            "seed": seed,
            **extra,
            "declaration": str(declaration.path),
            "min_rating": (
                declaration.interactions.min_rating
                if declaration.interactions.min_rating is not None
                else min_rating
            )
            if declaration.interactions.rating is not None
            else None,
            "columns": columns,
            "rows": {side: writers[side].rows for side in (TRAIN, HOLDOUT)},
            "users": {side: len(writers[side].users) for side in (TRAIN, HOLDOUT)}
            | {"all": len(writers[TRAIN].users | writers[HOLDOUT].users)},
            "raw_rows": tally.raw_rows,
            "positives": tally.positives,
            "dropped_rows": (
                {f"unknown {side}": n for side, n in tally.dropped.items()}
                if declaration.missing_features == "drop"
                else None
            ),
            "parts": {side: writers[side].parts for side in (TRAIN, HOLDOUT)},
            "id_files": id_files,
            "sources": _source_files(declaration),
            "seconds": round(time.perf_counter() - started, 3),
        }
        (staging / SPLIT_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return StreamSplit(Path(out_dir), manifest)


class _HashChooser:
    def __init__(self, seed: int) -> None:
        self.seed = seed

    def __call__(self, frame: pd.DataFrame) -> np.ndarray:
        return hash_fraction(frame[USER_ID], frame[ITEM_ID], self.seed) < HOLDOUT_FRACTION


class _LastChooser:
    """Holds each eligible user's latest (timestamp, item id) row out."""

    def __init__(self, latest: pd.DataFrame) -> None:
        # latest: one row per user: timestamp, item_id of the latest row, n rows, n at latest.
        self.index = pd.Index(latest[USER_ID].to_numpy(dtype=object))
        self.timestamp = latest[TIMESTAMP].to_numpy(dtype=np.int64)
        self.item = latest[ITEM_ID].to_numpy(dtype=object)
        self.eligible = (latest["n"] > latest["n_latest"]).to_numpy()

    @classmethod
    def from_batches(cls, batches: Iterator[PositiveBatch]) -> _LastChooser:
        partial: list[pd.DataFrame] = []
        pending = 0
        merged_rows = 0
        for batch in batches:
            frame = batch.frame[[USER_ID, ITEM_ID, TIMESTAMP]].assign(n=1, n_latest=1)
            partial.append(_latest_per_user(frame))
            pending += len(partial[-1])
            if pending > max(_MERGE_ROWS, 2 * merged_rows):
                partial = [_latest_per_user(pd.concat(partial, ignore_index=True))]
                merged_rows = pending = len(partial[0])
        if not partial:
            latest = pd.DataFrame(
                {
                    USER_ID: [],
                    ITEM_ID: [],
                    TIMESTAMP: np.zeros(0, np.int64),
                    "n": [],
                    "n_latest": [],
                }
            )
        else:
            latest = _latest_per_user(pd.concat(partial, ignore_index=True))
        return cls(latest)

    def __call__(self, frame: pd.DataFrame) -> np.ndarray:
        rows = self.index.get_indexer(frame[USER_ID].to_numpy(dtype=object))
        return (
            self.eligible[rows]
            & (frame[TIMESTAMP].to_numpy() == self.timestamp[rows])
            & (frame[ITEM_ID].to_numpy(dtype=object) == self.item[rows])
        )


def _latest_per_user(frame: pd.DataFrame) -> pd.DataFrame:
    """Partial rows ``(user, item, timestamp, n, n_latest)`` merged to one row per user.

    The kept row has the user's largest (timestamp, item id); ``n`` sums every
    partial row of the user, ``n_latest`` those whose (timestamp, item) is that one.
    """
    ordered = frame.sort_values([USER_ID, TIMESTAMP, ITEM_ID], kind="stable", ignore_index=True)
    users = ordered[USER_ID].to_numpy(dtype=object)
    last = np.ones(len(ordered), dtype=bool)
    last[:-1] = users[1:] != users[:-1]
    latest = ordered[last].reset_index(drop=True)
    # Each ordered row's group number, to broadcast the user's latest key.
    group = np.cumsum(np.concatenate([[True], last[:-1]])) - 1
    at_latest = (ordered[TIMESTAMP].to_numpy() == latest[TIMESTAMP].to_numpy()[group]) & (
        ordered[ITEM_ID].to_numpy(dtype=object) == latest[ITEM_ID].to_numpy(dtype=object)[group]
    )
    latest["n"] = np.bincount(group, weights=ordered["n"].to_numpy(), minlength=len(latest))
    latest["n_latest"] = np.bincount(
        group, weights=np.where(at_latest, ordered["n_latest"].to_numpy(), 0), minlength=len(latest)
    )
    return latest


class _TimeChooser:
    def __init__(self, cutoff: int) -> None:
        self.cutoff = cutoff

    def __call__(self, frame: pd.DataFrame) -> np.ndarray:
        return frame[TIMESTAMP].to_numpy() > self.cutoff


def _time_cutoff(batches: Iterator[PositiveBatch], seed: int, k: int) -> tuple[int, int]:
    """The 80th percentile of a bottom-``k`` hash sample of the timestamps, and the sample size.

    Each row's key hashes (seed, user, item, timestamp); the ``k`` rows of
    smallest key are a uniform sample that does not depend on the shard layout.
    """
    keys = np.zeros(0, dtype=_U64)
    stamps = np.zeros(0, dtype=np.int64)
    for batch in batches:
        frame = batch.frame
        times = frame[TIMESTAMP].to_numpy(dtype=np.int64)
        key = splitmix64(
            _pair_hash(frame[USER_ID], frame[ITEM_ID], seed, _TIME_SALT) ^ times.view(_U64)
        )
        keys = np.concatenate([keys, key])
        stamps = np.concatenate([stamps, times])
        if len(keys) > 2 * k:
            keep = np.argpartition(keys, k - 1)[:k]
            keys, stamps = keys[keep], stamps[keep]
    if len(keys) > k:
        keep = np.argpartition(keys, k - 1)[:k]
        keys, stamps = keys[keep], stamps[keep]
    if not len(stamps):
        return 0, 0
    cutoff = np.quantile(stamps, 1.0 - HOLDOUT_FRACTION, method="inverted_cdf")
    return int(cutoff), len(stamps)
