"""A declared dataset: the user's own files, described by a ``dataset.toml`` beside them.

(Over 450 lines: the whole dataset.toml grammar, each key parsed and checked
with its one-line error, in one place.)

The declaration names the interaction files (a file, a directory of shards or a
glob), the columns that hold the user and item ids, the optional timestamp,
weight, rating or 0/1 label, and the optional user and item feature tables with
the role of each column (``numeric``, ``categorical``, ``categorical_list``,
``text``); see docs/own-data.md for the format.

This module reads no data row, so that any reader can build on it (today the
in-memory :func:`tfrs_recsys.data.declared_memory.load_declared`):

- :func:`read_declaration` parses the TOML into a frozen
  :class:`DatasetDeclaration` (resolved file lists, per-side table specs,
  roles);
- :meth:`DatasetDeclaration.check_files` reads every file's header (CSV) or
  schema (Parquet) only: declared columns present, no empty shard, the same
  columns and column types in every shard.

Bad declarations raise :class:`~tfrs_recsys.errors.ConfigError`, missing files
:class:`~tfrs_recsys.errors.DatasetNotFoundError` and bad files
:class:`~tfrs_recsys.errors.DataValidationError`, each as one line naming the
TOML file or the data file and the key or column, and saying what was expected.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import glob
import math
import os
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tfrs_recsys.data.input_files import Dialect, check_file, iter_records
from tfrs_recsys.data.schema import ITEM_ID, USER_ID, DatasetSchema, Feature, Side
from tfrs_recsys.errors import ConfigError, DatasetNotFoundError, DataValidationError

#: The file :func:`declaration_path` looks for in a directory.
DECLARATION_FILE = "dataset.toml"
#: Column roles of a feature table (the :class:`~tfrs_recsys.data.schema.Feature` kinds but ``id``).
ROLES: tuple[str, ...] = ("numeric", "categorical", "categorical_list", "text")
FORMATS: tuple[str, ...] = ("parquet", "csv")
MISSING_FEATURES: tuple[str, ...] = ("error", "drop")
#: The separator of a ``categorical_list`` column that does not name one.
DEFAULT_LIST_SEPARATOR = "|"
#: Interaction columns: the TOML key and the canonical column name (the same words).
TIMESTAMP, WEIGHT, RATING, LABEL = "timestamp", "weight", "rating", "label"

_TOP_KEYS = ("name", "missing_features", "interactions", "users", "items")
_INTERACTION_KEYS = (
    "path",
    "format",
    "separator",
    "user_id",
    "item_id",
    TIMESTAMP,
    WEIGHT,
    RATING,
    "min_rating",
    LABEL,
)
_TABLE_KEYS = ("path", "format", "separator", "id", "columns")
_COLUMN_KEYS = ("role", "column", "log", "separator", "as_text")
_SUFFIXES = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".csv.gz": "csv",
    ".tsv": "csv",
    ".tsv.gz": "csv",
}
_SHOWN_COLUMNS = 12


@dataclasses.dataclass(frozen=True)
class ColumnSpec:
    """One declared column of a feature table.

    Attributes:
        name: The feature's name in the dataset (the key in ``[users.columns]``).
        role: ``numeric``, ``categorical``, ``categorical_list`` or ``text``.
        log: Numeric only: apply ``log(1 + x)`` before normalisation (values >= 0).
        separator: ``categorical_list`` only: the string between labels.
        as_text: Categorical only: also feed the column to the text encoder.
        column: The column's name in the file (default: ``name``).
    """

    name: str
    role: str
    log: bool = False
    separator: str | None = None
    as_text: bool = False
    column: str = ""

    def __post_init__(self) -> None:
        if not self.column:
            object.__setattr__(self, "column", self.name)

    def feature(self) -> Feature:
        """The schema feature of this column."""
        return Feature(
            self.name,
            self.role,  # type: ignore[arg-type]
            transform="log1p" if self.log else "none",
            separator=self.separator,
            as_text=self.as_text,
        )


@dataclasses.dataclass(frozen=True)
class FileSet:
    """A declared ``path``, resolved to its files.

    Attributes:
        declared: The ``path`` as written in the TOML file.
        files: The files, sorted by name (one for a file, the shards of a
            directory or the matches of a glob).
        format: ``parquet`` or ``csv``.
        separator: The CSV field separator (one character).
    """

    declared: str
    files: tuple[Path, ...]
    format: str
    separator: str = ","

    @property
    def dialect(self) -> Dialect:
        """How the CSV files are read: quoted fields, header on line 1, empty cells missing."""
        return Dialect(sep=self.separator, quoted=True, strip_header=True, na_values=("",))


@dataclasses.dataclass(frozen=True)
class TableSpec:
    """A declared feature table (``[users]`` or ``[items]``).

    Attributes:
        side: ``user`` or ``item``.
        source: The table's file (one file).
        id: The id column in the file (renamed to ``user_id`` / ``item_id``).
        columns: The feature columns, in declaration order.
    """

    side: Side
    source: FileSet
    id: str
    columns: tuple[ColumnSpec, ...]

    @property
    def path(self) -> Path:
        return self.source.files[0]

    @property
    def section(self) -> str:
        return f"[{self.side}s]"

    def renames(self) -> dict[str, str]:
        """File column -> column name in the dataset (the id becomes the canonical id)."""
        return {self.id: canonical_id(self.side), **{c.column: c.name for c in self.columns}}

    def declared_columns(self) -> list[tuple[str, str]]:
        """``(TOML key, file column)`` of every column the table must have."""
        return [(f"{self.section} id", self.id)] + [
            (f"[{self.side}s.columns] {c.name}", c.column) for c in self.columns
        ]

    def features(self) -> tuple[Feature, ...]:
        return (Feature(canonical_id(self.side), "id"),) + tuple(c.feature() for c in self.columns)


@dataclasses.dataclass(frozen=True)
class InteractionSpec:
    """The declared ``[interactions]``.

    Attributes:
        source: The interaction files (shards).
        user_id, item_id: Their id columns.
        timestamp, weight, rating, label: Optional columns (None: not declared).
        min_rating: With ``rating``: rows with ``rating >= min_rating`` are the
            positives (None: the caller's ``min_rating``).
    """

    source: FileSet
    user_id: str
    item_id: str
    timestamp: str | None = None
    weight: str | None = None
    rating: str | None = None
    min_rating: float | None = None
    label: str | None = None

    def renames(self) -> dict[str, str]:
        """File column -> canonical column, for the declared columns."""
        return {column: key for key, column in self.declared_columns()}

    def declared_columns(self) -> list[tuple[str, str]]:
        """``(TOML key, file column)`` of the declared columns, ids first."""
        pairs = [
            (USER_ID, self.user_id),
            (ITEM_ID, self.item_id),
            (TIMESTAMP, self.timestamp),
            (WEIGHT, self.weight),
            (RATING, self.rating),
            (LABEL, self.label),
        ]
        return [(key, column) for key, column in pairs if column is not None]


@dataclasses.dataclass(frozen=True)
class FileColumns:
    """A data file's columns, from its header (CSV) or schema (Parquet).

    Attributes:
        path: The file.
        columns: Column names in file order.
        types: Parquet: column -> Arrow type name; CSV: empty (no types in a header).
    """

    path: Path
    columns: tuple[str, ...]
    types: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class DatasetDeclaration:
    """A parsed and resolved ``dataset.toml``.

    Attributes:
        path: The TOML file.
        name: The dataset's name (default: the TOML file's directory name).
        missing_features: ``error`` or ``drop``: what to do with interactions
            whose user or item id is not in a declared feature table.
        interactions: The interaction files and columns.
        users: The user feature table, if declared.
        items: The item feature table, if declared.
    """

    path: Path
    name: str
    missing_features: str
    interactions: InteractionSpec
    users: TableSpec | None = None
    items: TableSpec | None = None

    def table(self, side: Side) -> TableSpec | None:
        """The declared feature table of ``side`` (None: ids from the interactions only)."""
        return self.users if side == "user" else self.items

    def schema(self) -> DatasetSchema:
        """The dataset schema: canonical ids, the declared feature columns, the timestamp."""
        return DatasetSchema(
            name=self.name,
            user_features=self.users.features() if self.users else (Feature(USER_ID, "id"),),
            item_features=self.items.features() if self.items else (Feature(ITEM_ID, "id"),),
            timestamp=TIMESTAMP if self.interactions.timestamp else None,
        )

    def check_files(self) -> dict[Path, FileColumns]:
        """Reads every file's header (CSV) or schema (Parquet), not its rows.

        Returns:
            The columns of each file.

        Raises:
            DatasetNotFoundError: A file is missing.
            DataValidationError: A file is empty (zero bytes, or a header and
                no rows), lacks a declared column (the message lists the
                columns it has), or an interaction shard's columns or column
                types differ from the first shard's.
        """
        found: dict[Path, FileColumns] = {}
        shards = self.interactions.source
        for file in shards.files:
            found[file] = file_columns(file, shards)
            _compare_shards(found[shards.files[0]], found[file])
        for file in shards.files:
            self._require(found[file], self.interactions.declared_columns(), "[interactions] ")
        for side in ("user", "item"):
            spec = self.table(side)  # type: ignore[arg-type]
            if spec is not None:
                found[spec.path] = file_columns(spec.path, spec.source)
                self._require(found[spec.path], spec.declared_columns(), "")
        return found

    def _require(self, header: FileColumns, declared: list[tuple[str, str]], prefix: str) -> None:
        for key, column in declared:
            if column not in header.columns:
                raise DataValidationError(
                    f"no column {column!r} (declared as {prefix}{key} in {self.path}); "
                    f"the file has {_shown_columns(header.columns)}",
                    file=header.path,
                )


def declaration_path(source: str | Path) -> Path | None:
    """The TOML file ``source`` declares a dataset with, if any.

    Args:
        source: A ``.toml`` file, or a directory that may hold ``dataset.toml``.

    Returns:
        The TOML file; None when ``source`` is neither.
    """
    path = Path(source)
    if path.suffix == ".toml" and not path.is_dir():
        return path
    if path.is_dir() and os.path.lexists(path / DECLARATION_FILE):
        return path / DECLARATION_FILE
    return None


def read_declaration(source: str | Path) -> DatasetDeclaration:
    """Parses a ``dataset.toml`` (or a directory holding one) and resolves its files.

    Reads the TOML file and lists the data files; the data files themselves
    are not opened (see :meth:`DatasetDeclaration.check_files`).

    Raises:
        DatasetNotFoundError: No TOML file, a data file that does not exist,
            a directory without shards, a glob that matches nothing.
        ConfigError: Invalid TOML (with its line), an unknown key (with the
            closest known one), an unknown role, a value of the wrong type,
            ``separator`` on a non-list column, ``rating`` together with
            ``label``, ``min_rating`` without ``rating``.
    """
    path = declaration_path(source)
    if path is None:
        raise DatasetNotFoundError(
            f"{source}: no {DECLARATION_FILE} (expected a dataset TOML file)"
        )
    if not os.path.lexists(path):
        raise DatasetNotFoundError(f"{path}: no such file (expected a dataset TOML file)")
    check_file(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return _Parser(path).declaration(data)


def file_columns(path: Path, source: FileSet) -> FileColumns:
    """The columns of one data file, reading only its header or Parquet schema.

    Raises:
        DatasetNotFoundError: No such file.
        DataValidationError: Not a readable file, zero bytes, a header and no
            data rows, or a Parquet file that cannot be read or has no rows.
    """
    check_file(path)
    if os.path.getsize(path) == 0:
        raise DataValidationError(
            "the file is empty (zero bytes; expected a header and data rows)"
            if source.format == "csv"
            else "the file is empty (zero bytes; expected a Parquet file with rows)",
            file=path,
        )
    if source.format == "parquet":
        return _parquet_columns(path)
    records = iter_records(path, source.dialect)
    with contextlib.closing(records):
        header = next(records, None)
        if header is None or not [cell for cell in header[1] if cell.strip()]:
            raise DataValidationError("line 1 is blank (expected a header)", file=path, line=1)
        if next(records, None) is None:
            raise DataValidationError("the file has a header but no data rows", file=path)
    return FileColumns(path, tuple(cell.strip() for cell in header[1]))


def _parquet_columns(path: Path) -> FileColumns:
    import pyarrow.parquet as pq

    try:
        with pq.ParquetFile(path) as parquet:
            schema = parquet.schema_arrow
            rows = parquet.metadata.num_rows
    except Exception as exc:  # pyarrow raises several unrelated types
        raise DataValidationError(
            f"cannot read the Parquet file: {' '.join(str(exc).split())}", file=path
        ) from exc
    if rows == 0:
        raise DataValidationError("the file has no rows (expected data rows)", file=path)
    return FileColumns(path, tuple(schema.names), {f.name: str(f.type) for f in schema})


def _type_family(arrow_type: str) -> str:
    """``integer``, ``float``, ``string``... : types that mix without changing the values."""
    for prefix, family in (
        ("int", "integer"),
        ("uint", "integer"),
        ("float", "float"),
        ("double", "float"),
        ("halffloat", "float"),
        ("decimal", "float"),
        ("string", "string"),
        ("large_string", "string"),
        ("timestamp", "timestamp"),
        ("date", "timestamp"),
    ):
        if arrow_type.startswith(prefix):
            return family
    return arrow_type


def _compare_shards(first: FileColumns, other: FileColumns) -> None:
    """``other`` has ``first``'s columns, with types of the same family (Parquet)."""
    if other.path == first.path:
        return
    missing = [c for c in first.columns if c not in other.columns]
    if missing:
        raise DataValidationError(
            f"lacks column {missing[0]!r} that the first shard {first.path} has; "
            "every shard must have the same columns",
            file=other.path,
        )
    extra = [c for c in other.columns if c not in first.columns]
    if extra:
        raise DataValidationError(
            f"has column {extra[0]!r} that the first shard {first.path} lacks; "
            "every shard must have the same columns",
            file=other.path,
        )
    for column in first.columns:
        a, b = first.types.get(column), other.types.get(column)
        if a and b and "null" not in (a, b) and _type_family(a) != _type_family(b):
            raise DataValidationError(
                f"column {column!r} is {b} here but {a} in the first shard {first.path}; "
                "a column must have one type in every shard",
                file=other.path,
            )


def _shown_columns(columns: Sequence[str]) -> str:
    if not columns:
        return "no columns"
    shown = ", ".join(repr(c) for c in columns[:_SHOWN_COLUMNS])
    more = f" and {len(columns) - _SHOWN_COLUMNS} more" if len(columns) > _SHOWN_COLUMNS else ""
    return f"columns {shown}{more}"


def canonical_id(side: str) -> str:
    """The id column of ``side`` in the dataset: ``user_id`` or ``item_id``."""
    return USER_ID if side == "user" else ITEM_ID


def _suggestion(word: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, known, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class _Parser:
    """Turns the parsed TOML of one file into a :class:`DatasetDeclaration`."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def error(self, where: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.path}: {where}{': ' if where else ''}{problem}")

    def check_keys(self, table: Mapping[str, Any], known: Sequence[str], where: str) -> None:
        for key in table:
            if key not in known:
                raise self.error(
                    where,
                    f"unknown key {key!r}{_suggestion(key, known)}; known keys: {', '.join(known)}",
                )

    def string(
        self, table: Mapping[str, Any], key: str, where: str, *, required: bool = False
    ) -> str | None:
        value = table.get(key)
        if value is None:
            if required:
                raise self.error(where, f"missing key {key!r}")
            return None
        if not isinstance(value, str) or not value.strip():
            raise self.error(where, f"{key} must be a non-empty string, got {value!r}")
        return value

    def boolean(self, table: Mapping[str, Any], key: str, where: str) -> bool:
        value = table.get(key, False)
        if not isinstance(value, bool):
            raise self.error(where, f"{key} must be true or false, got {value!r}")
        return value

    def declaration(self, data: Mapping[str, Any]) -> DatasetDeclaration:
        self.check_keys(data, _TOP_KEYS, "")
        name = self.string(data, "name", "") or self.path.resolve().parent.name or "dataset"
        missing = self.string(data, "missing_features", "") or "error"
        if missing not in MISSING_FEATURES:
            raise self.error("missing_features", f'expected "error" or "drop", got {missing!r}')
        if "interactions" not in data:
            raise self.error("", "missing the [interactions] table (the interaction files)")
        interactions = self.interactions(self.section(data, "interactions"))
        users = self.table("user", self.section(data, "users")) if "users" in data else None
        items = self.table("item", self.section(data, "items")) if "items" in data else None
        if users is not None and items is not None:
            both = [c.name for c in users.columns if c.name in {i.name for i in items.columns}]
            if both:
                raise self.error(
                    f"[items.columns] {both[0]}",
                    f"{both[0]!r} is also a user feature ([users.columns]); the two sides need "
                    f'different feature names: write e.g. item_{both[0]} = {{ role = "...", '
                    f'column = "{both[0]}" }}',
                )
        return DatasetDeclaration(self.path, name, missing, interactions, users, items)

    def section(self, data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
        value = data[key]
        if not isinstance(value, dict):
            raise self.error(key, f"must be a table ([{key}]), got {value!r}")
        return value

    def files(self, table: Mapping[str, Any], where: str, *, one: bool) -> FileSet:
        declared = self.string(table, "path", where, required=True)
        fmt = self.string(table, "format", where)
        if fmt is not None and fmt not in FORMATS:
            raise self.error(where, f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
        files = _resolve(self.path, declared, fmt, where)
        if one and len(files) > 1:
            raise self.error(
                where,
                f"path {declared!r} names {len(files)} files; a feature table is one file",
            )
        if fmt is None:
            formats = {_format_of(f) for f in files}
            if None in formats:
                unknown = next(f for f in files if _format_of(f) is None)
                raise self.error(
                    where,
                    f"cannot tell the format of {unknown} from its name; "
                    'set format = "csv" or "parquet"',
                )
            if len(formats) > 1:
                raise self.error(
                    where,
                    f"path {declared!r} holds both CSV and Parquet files; "
                    "point it at one format or set format",
                )
            fmt = formats.pop()
        separator = self.string(table, "separator", where)
        if separator is not None:
            if fmt != "csv":
                raise self.error(where, "separator is for CSV files, not Parquet")
            if len(separator) != 1:
                raise self.error(where, f"separator must be one character, got {separator!r}")
        elif fmt == "csv" and all(f.name.endswith((".tsv", ".tsv.gz")) for f in files):
            separator = "\t"
        return FileSet(declared, tuple(files), fmt, separator or ",")  # type: ignore[arg-type]

    def interactions(self, table: Mapping[str, Any]) -> InteractionSpec:
        where = "[interactions]"
        self.check_keys(table, _INTERACTION_KEYS, where)
        source = self.files(table, where, one=False)
        names = {
            key: self.string(table, key, where, required=key in (USER_ID, ITEM_ID))
            for key in (USER_ID, ITEM_ID, TIMESTAMP, WEIGHT, RATING, LABEL)
        }
        if names[RATING] and names[LABEL]:
            raise self.error(
                where,
                "give rating (with min_rating) or label, not both: either says which rows "
                "are positives",
            )
        min_rating = table.get("min_rating")
        if min_rating is not None:
            if names[RATING] is None:
                raise self.error(where, "min_rating needs rating (the column it applies to)")
            if isinstance(min_rating, bool) or not isinstance(min_rating, (int, float)):
                raise self.error(where, f"min_rating must be a number, got {min_rating!r}")
            if not math.isfinite(min_rating):
                raise self.error(where, f"min_rating must be finite, got {min_rating!r}")
            min_rating = float(min_rating)
        _no_column_twice(self, where, {k: v for k, v in names.items() if v})
        return InteractionSpec(source=source, min_rating=min_rating, **names)  # type: ignore[arg-type]

    def table(self, side: Side, table: Mapping[str, Any]) -> TableSpec:
        where = f"[{side}s]"
        self.check_keys(table, _TABLE_KEYS, where)
        source = self.files(table, where, one=True)
        id_column = self.string(table, "id", where, required=True)
        raw_columns = table.get("columns", {})
        if not isinstance(raw_columns, dict):
            raise self.error(
                where, f"columns must be a table ([{side}s.columns]), got {raw_columns!r}"
            )
        columns = tuple(
            self.column(f"[{side}s.columns] {name}", name, spec)
            for name, spec in raw_columns.items()
        )
        _no_column_twice(self, f"[{side}s.columns]", {c.name: c.column for c in columns})
        for column in columns:
            if column.column == id_column:
                raise self.error(
                    f"[{side}s.columns] {column.name}",
                    f"{column.column!r} is the id column of {where}; list only feature columns",
                )
            if column.name in (USER_ID, ITEM_ID):
                raise self.error(
                    f"[{side}s.columns] {column.name}",
                    f"the name {column.name!r} is reserved for the ids (the id column "
                    f"{id_column!r} is renamed {canonical_id(side)!r}); rename the column",
                )
        return TableSpec(side, source, id_column, columns)  # type: ignore[arg-type]

    def column(self, where: str, name: str, spec: Any) -> ColumnSpec:
        if isinstance(spec, str):
            spec = {"role": spec}
        if not isinstance(spec, dict):
            raise self.error(
                where, f'expected a role ("numeric") or a table ({{ role = ... }}), got {spec!r}'
            )
        self.check_keys(spec, _COLUMN_KEYS, where)
        role = self.string(spec, "role", where, required=True)
        if role not in ROLES:
            raise self.error(
                where, f"unknown role {role!r}{_suggestion(role, ROLES)}; roles: {', '.join(ROLES)}"
            )
        log = self.boolean(spec, "log", where)
        as_text = self.boolean(spec, "as_text", where)
        separator = self.string(spec, "separator", where)
        column = self.string(spec, "column", where) or name
        if log and role != "numeric":
            raise self.error(where, f'log goes with role "numeric", not {role!r}')
        if as_text and role not in ("categorical", "categorical_list"):
            raise self.error(where, f"as_text goes with a categorical role, not {role!r}")
        if separator is not None and role != "categorical_list":
            raise self.error(where, f'separator goes with role "categorical_list", not {role!r}')
        if role == "categorical_list" and separator is None:
            separator = DEFAULT_LIST_SEPARATOR
        return ColumnSpec(name, role, log=log, separator=separator, as_text=as_text, column=column)


def _no_column_twice(parser: _Parser, where: str, names: Mapping[str, str]) -> None:
    seen: dict[str, str] = {}
    for key, column in names.items():
        if column in seen:
            raise parser.error(
                where, f"column {column!r} is declared twice ({seen[column]} and {key})"
            )
        seen[column] = key


def _format_of(path: Path) -> str | None:
    name = path.name.lower()
    return next((fmt for suffix, fmt in _SUFFIXES.items() if name.endswith(suffix)), None)


def _resolve(toml: Path, declared: str, fmt: str | None, where: str) -> list[Path]:
    """The files of a declared ``path``: a file, a directory's shards or a glob's matches."""
    target = toml.parent / declared
    shown = f"(declared as {where} path in {toml})"
    if glob.has_magic(declared):
        matches = sorted(glob.glob(str(target), recursive=True))
        files = [Path(m) for m in matches if os.path.isfile(m) and not _hidden(Path(m))]
        if not files:
            raise DatasetNotFoundError(f"{target}: the pattern matches no file {shown}")
        return files
    if os.path.isdir(target):
        suffixes = [s for s, f in _SUFFIXES.items() if fmt is None or f == fmt]
        files = sorted(
            p
            for p in target.iterdir()
            if p.name.lower().endswith(tuple(suffixes)) and not _hidden(p)
        )
        if not files:
            raise DatasetNotFoundError(
                f"{target}: no data files in the directory (expected "
                f"{', '.join('*' + s for s in suffixes)}) {shown}"
            )
        return files
    if not os.path.lexists(target):
        raise DatasetNotFoundError(f"{target}: no such file or directory {shown}")
    return [target]


def _hidden(path: Path) -> bool:
    """Hidden files and markers such as ``_SUCCESS`` are not shards."""
    return path.name.startswith((".", "_"))
