"""RecBole atomic files: ``<name>.inter`` with optional ``<name>.user`` and ``<name>.item``."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pandas as pd

from tfrs_recsys.data.dataset import RecDataset
from tfrs_recsys.data.movielens.mapping import (
    DEFAULT_MIN_RATING,
    GENRE_SEPARATOR,
    HALF_STARS,
    RATING_KINDS,
    WHOLE_STARS,
    YEAR_AT_END,
    add_year,
    assemble,
    check_min_rating,
    ids_in_order_of_appearance,
    years_from_text,
)
from tfrs_recsys.data.reader import Dialect, Table, read_columns, read_header, read_records
from tfrs_recsys.data.schema import ITEM_ID, USER_ID
from tfrs_recsys.data.validation import check_ids, check_numeric, optional_file, require_files
from tfrs_recsys.errors import ConfigError, DatasetNotFoundError, DataValidationError

logger = logging.getLogger(__name__)

#: Every atomic file: tab-separated UTF-8 with a ``field:type`` header.
ATOMIC_DIALECT = Dialect(sep="\t", encoding="utf-8", header=True)

#: Rating scales of RecBole's conversions of the MovieLens datasets, by file
#: stem; ratings of other stems may be any finite number.
RECBOLE_SCALES = {
    "ml-100k": WHOLE_STARS,
    "ml-1m": WHOLE_STARS,
    "ml-10m": HALF_STARS,
    "ml-20m": HALF_STARS,
    "ml-25m": HALF_STARS,
}

# RecBole field name -> our column name (other fields are ignored).
USER_FIELDS = {"user_id": USER_ID, "age": "age", "gender": "gender", "occupation": "profession"}
ITEM_FIELDS = {
    "item_id": ITEM_ID,
    "movie_title": "title",
    "class": "genres",
    "genre": "genres",
    "release_year": "year",
}


def load_recbole(
    directory: str | Path, name: str | None = None, min_rating: float = DEFAULT_MIN_RATING
) -> RecDataset:
    """Loads RecBole atomic files ``<name>.inter`` (+ optional ``.user``, ``.item``).

    Header cells are ``field:type``; the type is ignored. Fields used:
    ``user_id``, ``item_id``, ``rating``, ``timestamp`` (all required in the
    ``.inter`` file), ``age``, ``gender``, ``occupation`` (-> ``profession``),
    ``movie_title`` (-> ``title``), ``release_year`` (-> ``year``) and
    ``class`` or ``genre`` (space-separated tokens -> ``|``-joined ``genres``).
    Other fields are ignored. Ratings of the MovieLens stems (``ml-100k``,
    ``ml-1m``: whole stars 1 to 5; ``ml-10m``, ``ml-20m``, ``ml-25m``: half
    stars 0.5 to 5) must be on that scale (:data:`RECBOLE_SCALES`); other
    stems take any finite rating. Without a ``.user`` (``.item``) file the users
    (items) are those of the ``.inter`` file in order of first appearance, with
    only the id column.

    Args:
        directory: The directory holding the atomic files.
        name: The file stem; by default the stem of the only ``.inter`` file.
        min_rating: Ratings ``>= min_rating`` are the positives.

    Returns:
        Dataset named ``movielens-100k`` for the stem ``ml-100k``, else the stem.

    Raises:
        DatasetNotFoundError: No ``.inter`` file.
        ConfigError: Several ``.inter`` files and no ``name``.
        DataValidationError: A file does not have the expected content.
    """
    started = time.perf_counter()
    min_rating = check_min_rating(min_rating)
    directory = Path(directory)
    if name is None:
        name = _only_stem(directory)
    require_files(directory, [f"{name}.inter"], dataset="RecBole")
    dataset_name = "movielens-100k" if name == "ml-100k" else name

    inter_path = directory / f"{name}.inter"
    header = _fields(inter_path)
    required = [USER_ID, ITEM_ID, "rating", "timestamp"]
    missing = [f for f in required if f not in header]
    if missing:
        raise DataValidationError(
            f"missing field(s) {', '.join(missing)}; the header has {', '.join(header)}",
            file=inter_path,
            line=1,
        )
    ratings = read_columns(
        inter_path,
        ATOMIC_DIALECT,
        columns={f: f for f in required},
        kinds=RATING_KINDS,
        header=header,
    )

    user_path = directory / f"{name}.user"
    user_file: Path | None = None
    if optional_file(user_path):
        users = _read_side(user_path, USER_FIELDS, USER_ID)
        users_frame = pd.DataFrame({USER_ID: users.frame[USER_ID]})
        if "age" in users.frame:
            users_frame["age"] = check_numeric(users, "age", minimum=0.0)
        for column in ("profession", "gender"):
            if column in users.frame:
                users_frame[column] = users.frame[column].fillna("").str.strip()
        user_file = user_path
    else:
        users_frame = ids_in_order_of_appearance(ratings, USER_ID)

    item_path = directory / f"{name}.item"
    item_file: Path | None = None
    if optional_file(item_path):
        items = _read_side(item_path, ITEM_FIELDS, ITEM_ID)
        items_frame = pd.DataFrame({ITEM_ID: items.frame[ITEM_ID]})
        if "title" in items.frame:
            items_frame["title"] = items.frame["title"].fillna("").str.strip()
        if "genres" in items.frame:
            items_frame["genres"] = [
                GENRE_SEPARATOR.join(str(v).split()) for v in items.frame["genres"].fillna("")
            ]
        if "year" in items.frame:
            add_year(items_frame, years_from_text(items.frame["year"], YEAR_AT_END), item_path)
        item_file = item_path
    else:
        items_frame = ids_in_order_of_appearance(ratings, ITEM_ID)

    return assemble(
        dataset_name,
        directory,
        users_frame,
        items_frame,
        ratings,
        min_rating,
        scale=RECBOLE_SCALES.get(name),
        user_file=user_file,
        item_file=item_file,
        started=started,
    )


def _only_stem(directory: Path) -> str:
    """The stem of the only ``.inter`` file of ``directory``."""
    if not directory.is_dir():
        raise DatasetNotFoundError(f"{directory}: not a directory (expected RecBole atomic files)")
    inter_files = sorted(directory.glob("*.inter"))
    if not inter_files:
        raise DatasetNotFoundError(
            f"{directory}: missing <name>.inter (expected RecBole atomic files)"
        )
    if len(inter_files) > 1:
        raise ConfigError(
            f"{directory}: several .inter files ({', '.join(p.name for p in inter_files)}); "
            "pass the path of one of them"
        )
    return inter_files[0].stem


def _fields(path: Path) -> list[str]:
    """Field names of a RecBole header (``user_id:token`` -> ``user_id``)."""
    fields = [cell.split(":", 1)[0].strip() for cell in read_header(path, ATOMIC_DIALECT)]
    seen: set[str] = set()
    for field in fields:
        if not field:
            raise DataValidationError("empty field name in the header", file=path, line=1)
        if field in seen:
            raise DataValidationError(
                f"field {field!r} appears twice in the header", file=path, line=1
            )
        seen.add(field)
    return fields


def _read_side(path: Path, mapping: dict[str, str], id_column: str) -> Table:
    """A ``.user`` or ``.item`` file with the known fields renamed, its ids checked."""
    fields = _fields(path)
    if id_column not in fields:
        raise DataValidationError(
            f"missing field {id_column!r}; the header has {', '.join(fields)}", file=path, line=1
        )
    table = read_records(path, ATOMIC_DIALECT, names=fields)
    renamed: dict[str, str] = {}
    for field in fields:
        target = mapping.get(field)
        if target is not None and target not in renamed.values():
            renamed[field] = target
    ignored = [f for f in fields if f not in renamed]
    if ignored:
        logger.debug("%s: ignoring field(s) %s", path, ", ".join(ignored))
    table = table.select(renamed)
    check_ids(table, id_column)
    return table
