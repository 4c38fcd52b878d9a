"""Loaders of the MovieLens datasets and of RecBole atomic files.

Every loader returns a :class:`~tfrs_recsys.data.dataset.RecDataset` mapped onto
one schema:

- users: ``user_id`` (id) and, where the format has them, ``age`` (numeric),
  ``profession`` (categorical, from the occupation) and ``gender``
  (categorical);
- items: ``item_id`` (id), ``title`` (text), ``genres`` (categorical list joined
  by ``|``, also read by the text encoder), ``tags`` (text; ml-latest formats
  with a ``tags.csv`` only) and ``year`` (numeric release year);
- interactions: ``user_id``, ``item_id``, ``rating`` (float) and ``timestamp``
  (int64) of the ratings ``>= min_rating``, in file order. Lower ratings are
  dropped, not turned into negatives.

Supported layouts (:func:`load_movielens` detects them):

- ``ml-100k``: the original ML-100K files ``u.data``, ``u.user``, ``u.item``;
- ``ml-1m``: ``ratings.dat``, ``users.dat``, ``movies.dat`` (``::``-separated);
- ``ml-latest``: ``ratings.csv``, ``movies.csv`` and optional ``tags.csv``
  (ml-latest-small, ml-latest, ml-20m, ml-25m...);
- ``recbole``: RecBole atomic files ``<name>.inter`` with optional
  ``<name>.user`` and ``<name>.item``.

Decisions worth knowing:

- Ids are kept as the strings found in the files (``"242"``).
- ``year`` comes from the release date (ML-100K), the ``(1995)`` at the end of
  the title (ML-1M, ml-latest, ML-100K without a date) or ``release_year``
  (RecBole). Items whose year cannot be parsed get the median year of the
  others (rounded down to a whole year); if no year parses at all the column
  is left out of the schema.
- Genres: the ML-100K ``unknown`` genre flag is kept as the label ``unknown``
  (both in the original and the RecBole files, so the two agree); the
  ml-latest ``(no genres listed)`` becomes an empty string.
- RecBole columns other than ``user_id``, ``item_id``, ``rating``,
  ``timestamp``, ``age``, ``gender``, ``occupation``, ``movie_title``,
  ``release_year`` and ``class`` / ``genre`` are ignored (zip codes, for one).
- Users: every user of the user file; formats without one (ml-latest, RecBole
  without ``.user``) list the users of the ratings in order of first
  appearance, with only ``user_id``. Items: the whole catalog of the item file,
  rated or not.

Big files (ratings, tags) are parsed by pandas' C parser with typed columns;
only when that fails or finds a hole does a line-by-line pass run, to report
the exact file, line (1-based) and column. Small files (users, items) are read
line by line directly.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import math
import re
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from tfrs_recsys.data.dataset import RecDataset
from tfrs_recsys.data.schema import ITEM_ID, USER_ID, DatasetSchema, Feature
from tfrs_recsys.data.validation import require_files
from tfrs_recsys.errors import ConfigError, DatasetNotFoundError, DataValidationError

logger = logging.getLogger(__name__)

DEFAULT_MIN_RATING = 4.0

#: The 19 genre flags of ML-100K ``u.item``, in file order.
ML100K_GENRES: tuple[str, ...] = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)

#: Occupation codes of ML-1M ``users.dat`` (from the ML-1M README).
ML1M_OCCUPATIONS: dict[int, str] = {
    0: "other or not specified",
    1: "academic/educator",
    2: "artist",
    3: "clerical/admin",
    4: "college/grad student",
    5: "customer service",
    6: "doctor/health care",
    7: "executive/managerial",
    8: "farmer",
    9: "homemaker",
    10: "K-12 student",
    11: "lawyer",
    12: "programmer",
    13: "retired",
    14: "sales/marketing",
    15: "scientist",
    16: "self-employed",
    17: "technician/engineer",
    18: "tradesman/craftsman",
    19: "unemployed",
    20: "writer",
}

#: Formats recognised by :func:`detect_movielens_format`, with the file that
#: identifies each (checked in this order).
FORMAT_MARKERS: tuple[tuple[str, str], ...] = (
    ("ml-100k", "u.data"),
    ("ml-1m", "ratings.dat"),
    ("ml-latest", "ratings.csv"),
    ("recbole", "*.inter"),
)

NO_GENRES = "(no genres listed)"
TAG_SEPARATOR = ", "
GENRE_SEPARATOR = "|"

_USER_FEATURES: dict[str, Feature] = {
    USER_ID: Feature(USER_ID, "id"),
    "age": Feature("age", "numeric"),
    "profession": Feature("profession", "categorical"),
    "gender": Feature("gender", "categorical"),
}
_ITEM_FEATURES: dict[str, Feature] = {
    ITEM_ID: Feature(ITEM_ID, "id"),
    "title": Feature("title", "text"),
    "genres": Feature("genres", "categorical_list", separator=GENRE_SEPARATOR, as_text=True),
    "tags": Feature("tags", "text"),
    "year": Feature("year", "numeric"),
}

# RecBole field name -> our column name (other fields are ignored).
_RECBOLE_USER_FIELDS = {"user_id": USER_ID, "age": "age", "gender": "gender", "occupation": "profession"}
_RECBOLE_ITEM_FIELDS = {
    "item_id": ITEM_ID,
    "movie_title": "title",
    "class": "genres",
    "genre": "genres",
    "release_year": "year",
}

_YEAR_IN_TITLE = re.compile(r"\((\d{4})(?:\s*[-\u2013]\s*\d{0,4})?\)\s*$")
_YEAR_AT_END = re.compile(r"(\d{4})\s*$")
_MIN_YEAR, _MAX_YEAR = 1800, 2100


# --------------------------------------------------------------------------- #
# Public entry points
# --------------------------------------------------------------------------- #


def detect_movielens_format(path: str | Path) -> str:
    """Which MovieLens layout a directory holds.

    Args:
        path: A dataset directory (or a RecBole ``.inter`` file).

    Returns:
        ``ml-100k``, ``ml-1m``, ``ml-latest`` or ``recbole`` (see the module
        docstring), from the first marker file found in that order.

    Raises:
        DatasetNotFoundError: The path does not exist or holds none of the
            marker files; the message lists what was looked for.
    """
    path = Path(path)
    if path.is_file() and path.suffix == ".inter":
        return "recbole"
    if not path.is_dir():
        raise DatasetNotFoundError(f"{path}: not a directory (expected a MovieLens dataset directory)")
    for fmt, marker in FORMAT_MARKERS:
        found = any(path.glob(marker)) if "*" in marker else (path / marker).is_file()
        if found:
            return fmt
    looked_for = ", ".join(f"{marker} ({fmt})" for fmt, marker in FORMAT_MARKERS)
    raise DatasetNotFoundError(
        f"{path}: no MovieLens or RecBole files found; looked for {looked_for}"
    )


def load_movielens(path: str | Path, min_rating: float = DEFAULT_MIN_RATING) -> RecDataset:
    """Loads any supported MovieLens layout, detected from the files present.

    Args:
        path: The dataset directory, or a RecBole ``.inter`` file.
        min_rating: Ratings ``>= min_rating`` are the positives.

    Returns:
        The dataset; see the module docstring for the columns.

    Raises:
        DatasetNotFoundError: No known layout in ``path``, or a required file
            is missing.
        DataValidationError: A file does not have the expected content.
        ConfigError: ``min_rating`` is not a number, or a directory holds
            several ``.inter`` files.
    """
    path = Path(path)
    fmt = detect_movielens_format(path)
    logger.info("loading %s as %s", path, fmt)
    if fmt == "ml-100k":
        return load_ml100k(path, min_rating=min_rating)
    if fmt == "ml-1m":
        return load_ml1m(path, min_rating=min_rating)
    if fmt == "ml-latest":
        return load_ml_latest(path, min_rating=min_rating)
    if path.is_file():
        return load_recbole(path.parent, name=path.stem, min_rating=min_rating)
    return load_recbole(path, min_rating=min_rating)


def load_ml100k(directory: str | Path, min_rating: float = DEFAULT_MIN_RATING) -> RecDataset:
    """Loads the original ML-100K files ``u.data``, ``u.user`` and ``u.item``.

    Args:
        directory: The ``ml-100k`` directory.
        min_rating: Ratings ``>= min_rating`` are the positives.

    Returns:
        Dataset ``movielens-100k`` with users ``age``, ``profession``,
        ``gender`` and items ``title``, ``genres``, ``year``.

    Raises:
        DatasetNotFoundError: A file is missing.
        DataValidationError: A file does not have the expected content.
    """
    started = time.perf_counter()
    min_rating = _check_min_rating(min_rating)
    directory = Path(directory)
    require_files(directory, ["u.data", "u.user", "u.item"], dataset="MovieLens 100K")

    users = _read_records(
        directory / "u.user",
        sep="|",
        encoding="latin-1",
        names=[USER_ID, "age", "gender", "profession", "zip_code"],
    )
    _check_ids(users, USER_ID)
    users_frame = pd.DataFrame(
        {
            USER_ID: users.frame[USER_ID],
            "age": _numbers(users, "age", minimum=0.0),
            "profession": users.frame["profession"].str.strip(),
            "gender": users.frame["gender"].str.strip(),
        }
    )

    genre_columns = [f"genre:{g}" for g in ML100K_GENRES]
    items = _read_records(
        directory / "u.item",
        sep="|",
        encoding="latin-1",
        names=[ITEM_ID, "title", "release_date", "video_release_date", "imdb_url", *genre_columns],
    )
    _check_ids(items, ITEM_ID)
    flags = np.zeros((len(items), len(ML100K_GENRES)), dtype=bool)
    for j, column in enumerate(genre_columns):
        values = items.frame[column].str.strip()
        bad = ~values.isin(["0", "1"]).to_numpy()
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataValidationError(
                f"expected a genre flag 0 or 1, got {values.iloc[row]!r}",
                file=items.path,
                line=items.line(row),
                column=ML100K_GENRES[j],
            )
        flags[:, j] = (values == "1").to_numpy()
    names = np.asarray(ML100K_GENRES, dtype=object)
    genres = [GENRE_SEPARATOR.join(names[row]) for row in flags]
    titles = items.frame["title"].str.strip()
    years = _years_from_text(items.frame["release_date"], _YEAR_AT_END)
    from_title = _years_from_text(titles, _YEAR_IN_TITLE)
    years = years.fillna(from_title)
    items_frame = pd.DataFrame({ITEM_ID: items.frame[ITEM_ID], "title": titles, "genres": genres})
    _add_year(items_frame, years, items.path)

    ratings = _read_big_table(
        directory / "u.data",
        sep="\t",
        encoding="latin-1",
        names=[USER_ID, ITEM_ID, "rating", "timestamp"],
        header=False,
    )
    dataset = _finish(
        "movielens-100k", directory, users_frame, items_frame, ratings, min_rating,
        user_file=users.path, item_file=items.path,
    )
    _log_loaded(dataset, started)
    return dataset


def load_ml1m(directory: str | Path, min_rating: float = DEFAULT_MIN_RATING) -> RecDataset:
    """Loads ML-1M: ``ratings.dat``, ``users.dat`` and ``movies.dat``.

    Occupation codes become the names of the ML-1M README (``12`` ->
    ``programmer``); ``age`` is the ML-1M age-group code (1, 18, 25...).

    Args:
        directory: The ``ml-1m`` directory.
        min_rating: Ratings ``>= min_rating`` are the positives.

    Returns:
        Dataset ``movielens-1m``.

    Raises:
        DatasetNotFoundError: A file is missing.
        DataValidationError: A file does not have the expected content.
    """
    started = time.perf_counter()
    min_rating = _check_min_rating(min_rating)
    directory = Path(directory)
    require_files(directory, ["ratings.dat", "users.dat", "movies.dat"], dataset="MovieLens 1M")

    users = _read_records(
        directory / "users.dat",
        sep="::",
        encoding="latin-1",
        names=[USER_ID, "gender", "age", "occupation", "zip_code"],
    )
    _check_ids(users, USER_ID)
    codes = _numbers(users, "occupation", minimum=None)
    known = codes.isin(list(ML1M_OCCUPATIONS)).to_numpy()
    if not known.all():
        row = int(np.flatnonzero(~known)[0])
        raise DataValidationError(
            f"unknown occupation code {users.frame['occupation'].iloc[row]!r} "
            f"(expected an integer 0-{max(ML1M_OCCUPATIONS)})",
            file=users.path,
            line=users.line(row),
            column="occupation",
        )
    users_frame = pd.DataFrame(
        {
            USER_ID: users.frame[USER_ID],
            "age": _numbers(users, "age", minimum=0.0),
            "profession": codes.astype(int).map(ML1M_OCCUPATIONS).astype(str),
            "gender": users.frame["gender"].str.strip(),
        }
    )

    items = _read_records(
        directory / "movies.dat", sep="::", encoding="latin-1", names=[ITEM_ID, "title", "genres"]
    )
    _check_ids(items, ITEM_ID)
    titles = items.frame["title"].str.strip()
    items_frame = pd.DataFrame(
        {ITEM_ID: items.frame[ITEM_ID], "title": titles, "genres": _pipe_genres(items.frame["genres"])}
    )
    _add_year(items_frame, _years_from_text(titles, _YEAR_IN_TITLE), items.path)

    ratings = _read_big_table(
        directory / "ratings.dat",
        sep="::",
        encoding="latin-1",
        names=[USER_ID, ITEM_ID, "rating", "timestamp"],
        header=False,
    )
    dataset = _finish(
        "movielens-1m", directory, users_frame, items_frame, ratings, min_rating,
        user_file=users.path, item_file=items.path,
    )
    _log_loaded(dataset, started)
    return dataset


def load_ml_latest(directory: str | Path, min_rating: float = DEFAULT_MIN_RATING) -> RecDataset:
    """Loads the CSV layout of ml-latest-small, ml-latest, ml-20m and ml-25m.

    ``ratings.csv`` and ``movies.csv`` are required, ``tags.csv`` is optional
    (it adds the ``tags`` item column: a movie's distinct tags in order of
    first appearance, joined by ``", "``; ``""`` for untagged movies). There is
    no user file: the users are those of ``ratings.csv`` in order of first
    appearance, with only ``user_id``.

    The dataset is named after the directory: ``ml-<x>`` becomes
    ``movielens-<x>`` (``movielens-latest-small``, ``movielens-25m``); other
    directory names give ``movielens-latest``.

    Args:
        directory: The dataset directory.
        min_rating: Ratings ``>= min_rating`` are the positives.

    Raises:
        DatasetNotFoundError: A file is missing.
        DataValidationError: A file does not have the expected content.
    """
    started = time.perf_counter()
    min_rating = _check_min_rating(min_rating)
    directory = Path(directory)
    require_files(directory, ["ratings.csv", "movies.csv"], dataset="MovieLens (ml-latest CSV)")
    dir_name = directory.resolve().name
    name = "movielens-" + dir_name[3:] if dir_name.startswith("ml-") and len(dir_name) > 3 else "movielens-latest"

    movies = _read_records(
        directory / "movies.csv",
        sep=",",
        encoding="utf-8",
        quoted=True,
        header=True,
        required=["movieId", "title", "genres"],
    )
    movies.frame = movies.frame.rename(columns={"movieId": ITEM_ID})
    _check_ids(movies, ITEM_ID, label="movieId")
    titles = movies.frame["title"].str.strip()
    items_frame = pd.DataFrame(
        {ITEM_ID: movies.frame[ITEM_ID], "title": titles, "genres": _pipe_genres(movies.frame["genres"])}
    )

    tags_path = directory / "tags.csv"
    if tags_path.is_file():
        items_frame["tags"] = _read_tags(tags_path, items_frame[ITEM_ID])
    _add_year(items_frame, _years_from_text(titles, _YEAR_IN_TITLE), movies.path)

    ratings = _read_big_table(
        directory / "ratings.csv",
        sep=",",
        encoding="utf-8",
        names={"userId": USER_ID, "movieId": ITEM_ID, "rating": "rating", "timestamp": "timestamp"},
        header=True,
        quoted=True,
    )
    users_frame = pd.DataFrame({USER_ID: ratings.frame[USER_ID].drop_duplicates().to_numpy()})
    dataset = _finish(
        name, directory, users_frame, items_frame, ratings, min_rating,
        user_file=None, item_file=movies.path,
    )
    _log_loaded(dataset, started)
    return dataset


def load_recbole(
    directory: str | Path, name: str | None = None, min_rating: float = DEFAULT_MIN_RATING
) -> RecDataset:
    """Loads RecBole atomic files ``<name>.inter`` (+ optional ``.user``, ``.item``).

    Header cells are ``field:type``; the type is ignored. Fields used:
    ``user_id``, ``item_id``, ``rating``, ``timestamp`` (all required in the
    ``.inter`` file), ``age``, ``gender``, ``occupation`` (-> ``profession``),
    ``movie_title`` (-> ``title``), ``release_year`` (-> ``year``) and
    ``class`` or ``genre`` (space-separated tokens -> ``|``-joined ``genres``).
    Other fields are ignored. Without a ``.user`` (``.item``) file the users
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
    min_rating = _check_min_rating(min_rating)
    directory = Path(directory)
    if name is None:
        if not directory.is_dir():
            raise DatasetNotFoundError(f"{directory}: not a directory (expected RecBole atomic files)")
        inter_files = sorted(directory.glob("*.inter"))
        if not inter_files:
            raise DatasetNotFoundError(f"{directory}: missing <name>.inter (expected RecBole atomic files)")
        if len(inter_files) > 1:
            raise ConfigError(
                f"{directory}: several .inter files ({', '.join(p.name for p in inter_files)}); "
                "pass the path of one of them"
            )
        name = inter_files[0].stem
    require_files(directory, [f"{name}.inter"], dataset="RecBole")
    dataset_name = "movielens-100k" if name == "ml-100k" else name

    inter_path = directory / f"{name}.inter"
    header = _recbole_fields(_read_header(inter_path, sep="\t", encoding="utf-8", quoted=False), inter_path)
    required = [USER_ID, ITEM_ID, "rating", "timestamp"]
    missing = [f for f in required if f not in header]
    if missing:
        raise DataValidationError(
            f"missing field(s) {', '.join(missing)}; the header has {', '.join(header)}",
            file=inter_path,
            line=1,
        )
    ratings = _read_big_table(
        inter_path,
        sep="\t",
        encoding="utf-8",
        names={f: f for f in required},
        header=True,
        header_names=header,
    )

    user_path = directory / f"{name}.user"
    if user_path.is_file():
        users = _read_recbole_side(user_path, _RECBOLE_USER_FIELDS, USER_ID)
        users_frame = pd.DataFrame({USER_ID: users.frame[USER_ID]})
        if "age" in users.frame:
            users_frame["age"] = _numbers(users, "age", minimum=0.0)
        for column in ("profession", "gender"):
            if column in users.frame:
                users_frame[column] = users.frame[column].fillna("").str.strip()
        user_file: Path | None = user_path
    else:
        users_frame = pd.DataFrame({USER_ID: ratings.frame[USER_ID].drop_duplicates().to_numpy()})
        user_file = None

    item_path = directory / f"{name}.item"
    if item_path.is_file():
        items = _read_recbole_side(item_path, _RECBOLE_ITEM_FIELDS, ITEM_ID)
        items_frame = pd.DataFrame({ITEM_ID: items.frame[ITEM_ID]})
        if "title" in items.frame:
            items_frame["title"] = items.frame["title"].fillna("").str.strip()
        if "genres" in items.frame:
            items_frame["genres"] = [
                GENRE_SEPARATOR.join(str(v).split()) for v in items.frame["genres"].fillna("")
            ]
        if "year" in items.frame:
            _add_year(items_frame, _years_from_text(items.frame["year"], _YEAR_AT_END), item_path)
        item_file: Path | None = item_path
    else:
        items_frame = pd.DataFrame({ITEM_ID: ratings.frame[ITEM_ID].drop_duplicates().to_numpy()})
        item_file = None

    dataset = _finish(
        dataset_name, directory, users_frame, items_frame, ratings, min_rating,
        user_file=user_file, item_file=item_file,
    )
    _log_loaded(dataset, started)
    return dataset


# --------------------------------------------------------------------------- #
# Assembling the dataset
# --------------------------------------------------------------------------- #


def _finish(
    name: str,
    directory: Path,
    users: pd.DataFrame,
    items: pd.DataFrame,
    ratings: _Table,
    min_rating: float,
    *,
    user_file: Path | None,
    item_file: Path | None,
) -> RecDataset:
    """Checks the rating ids against the tables and keeps the positives."""
    if user_file is not None:
        _check_known(ratings, USER_ID, users[USER_ID], table_file=user_file, what="user")
    if item_file is not None:
        _check_known(ratings, ITEM_ID, items[ITEM_ID], table_file=item_file, what="item")
    frame = ratings.frame
    columns = [USER_ID, ITEM_ID, "rating", "timestamp"]
    interactions = frame.loc[frame["rating"] >= min_rating, columns].reset_index(drop=True)
    interactions = interactions.astype(
        {USER_ID: str, ITEM_ID: str, "rating": np.float64, "timestamp": np.int64}
    )
    users = users.reset_index(drop=True)
    items = items.reset_index(drop=True)
    schema = DatasetSchema(
        name=name,
        user_features=tuple(_USER_FEATURES[c] for c in _USER_FEATURES if c in users.columns),
        item_features=tuple(_ITEM_FEATURES[c] for c in _ITEM_FEATURES if c in items.columns),
        user_segment=None,
        timestamp="timestamp",
    )
    return RecDataset(
        schema=schema,
        users=users[list(schema.user_columns)],
        items=items[list(schema.item_columns)],
        interactions=interactions,
        n_raw_interactions=len(frame),
        source=str(directory),
    )


def _log_loaded(dataset: RecDataset, started: float) -> None:
    logger.info(
        "loaded %s from %s: %d users, %d items, %d ratings, %d positives in %.2f s",
        dataset.schema.name,
        dataset.source,
        dataset.n_users,
        dataset.n_items,
        dataset.n_raw_interactions or 0,
        len(dataset.interactions),
        time.perf_counter() - started,
    )


def _check_min_rating(min_rating: float) -> float:
    try:
        value = float(min_rating)
    except (TypeError, ValueError):
        raise ConfigError(f"min_rating must be a number, got {min_rating!r}") from None
    if not math.isfinite(value):
        raise ConfigError(f"min_rating must be a finite number, got {min_rating!r}")
    return value


def _pipe_genres(values: pd.Series) -> list[str]:
    """``|``-joined genres with blanks and ``(no genres listed)`` removed."""
    out = []
    for value in values.fillna(""):
        labels = [g.strip() for g in str(value).split(GENRE_SEPARATOR)]
        out.append(GENRE_SEPARATOR.join(g for g in labels if g and g != NO_GENRES))
    return out


def _years_from_text(values: pd.Series, pattern: re.Pattern[str]) -> pd.Series:
    """The year matched by ``pattern`` in each value, NaN where none or implausible."""
    found = values.fillna("").astype(str).str.extract(pattern, expand=False)
    years = pd.to_numeric(found, errors="coerce").astype(np.float64)
    years = years.where((years >= _MIN_YEAR) & (years <= _MAX_YEAR))
    return years.reset_index(drop=True)


def _add_year(items: pd.DataFrame, years: pd.Series, file: Path) -> None:
    """Adds ``year``, imputing the median year where it is missing (see module doc)."""
    years = years.reset_index(drop=True)
    missing = int(years.isna().sum())
    if missing == len(years):
        logger.info("%s: no release year parses; leaving out the year column", file)
        return
    if missing:
        median = float(math.floor(years.median()))
        logger.info("%s: %d item(s) without a release year get the median year %d", file, missing, median)
        years = years.fillna(median)
    items["year"] = years.to_numpy(dtype=np.float64)


def _read_tags(path: Path, item_ids: pd.Series) -> np.ndarray:
    """Each movie's distinct tags joined by ``", "``, aligned with ``item_ids``."""
    tags = _read_big_table(
        path,
        sep=",",
        encoding="utf-8",
        names={"userId": "user", "movieId": ITEM_ID, "tag": "tag", "timestamp": "timestamp"},
        header=True,
        quoted=True,
        text_columns=("tag",),
    )
    _check_known(tags, ITEM_ID, item_ids, table_file=path.with_name("movies.csv"), what="item")
    frame = pd.DataFrame({ITEM_ID: tags.frame[ITEM_ID], "tag": tags.frame["tag"].str.strip()})
    frame = frame[frame["tag"].notna() & (frame["tag"] != "")].drop_duplicates()
    joined = frame.groupby(ITEM_ID, sort=False)["tag"].agg(TAG_SEPARATOR.join)
    return joined.reindex(item_ids.to_numpy()).fillna("").to_numpy(dtype=object)


def _recbole_fields(cells: list[str], file: Path) -> list[str]:
    """Field names of a RecBole header (``user_id:token`` -> ``user_id``)."""
    fields = [cell.split(":", 1)[0].strip() for cell in cells]
    seen: set[str] = set()
    for field in fields:
        if not field:
            raise DataValidationError("empty field name in the header", file=file, line=1)
        if field in seen:
            raise DataValidationError(f"field {field!r} appears twice in the header", file=file, line=1)
        seen.add(field)
    return fields


def _read_recbole_side(path: Path, mapping: dict[str, str], id_column: str) -> _Table:
    """A RecBole ``.user`` or ``.item`` file with the known fields renamed."""
    fields = _recbole_fields(_read_header(path, sep="\t", encoding="utf-8", quoted=False), path)
    if id_column not in fields:
        raise DataValidationError(
            f"missing field {id_column!r}; the header has {', '.join(fields)}", file=path, line=1
        )
    table = _read_records(path, sep="\t", encoding="utf-8", header=True, names=fields)
    renamed: dict[str, str] = {}
    for field in fields:
        target = mapping.get(field)
        if target is not None and target not in renamed.values():
            renamed[field] = target
    ignored = [f for f in fields if f not in renamed]
    if ignored:
        logger.debug("%s: ignoring field(s) %s", path, ", ".join(ignored))
    table.frame = table.frame[list(renamed)].rename(columns=renamed)
    table.labels = {target: field for field, target in renamed.items()}
    _check_ids(table, id_column)
    return table


# --------------------------------------------------------------------------- #
# Checks with file, line and column
# --------------------------------------------------------------------------- #


def _check_ids(table: _Table, column: str, *, label: str | None = None) -> None:
    """Ids must be non-blank and unique within a user or item file."""
    label = label or table.label(column)
    values = table.frame[column]
    blank = (values.isna() | (values.fillna("").str.strip() == "")).to_numpy()
    if blank.any():
        row = int(np.flatnonzero(blank)[0])
        raise DataValidationError("empty id", file=table.path, line=table.line(row), column=label)
    duplicated = values.duplicated().to_numpy()
    if duplicated.any():
        row = int(np.flatnonzero(duplicated)[0])
        value = values.iloc[row]
        first = int(np.flatnonzero((values == value).to_numpy())[0])
        raise DataValidationError(
            f"duplicate id {value!r} (first seen on line {table.line(first)}); ids must be unique",
            file=table.path,
            line=table.line(row),
            column=label,
        )


def _check_known(
    table: _Table, column: str, known: pd.Series, *, table_file: Path, what: str
) -> None:
    """Every id of ``table[column]`` must be in ``known`` (the ids of ``table_file``)."""
    unknown = (~table.frame[column].isin(known)).to_numpy()
    if unknown.any():
        row = int(np.flatnonzero(unknown)[0])
        value = table.frame[column].iloc[row]
        raise DataValidationError(
            f"{what} id {value!r} is not in {table_file} "
            f"({int(unknown.sum())} row(s) refer to unknown {what}s)",
            file=table.path,
            line=table.line(row),
            column=table.label(column),
        )


def _numbers(table: _Table, column: str, *, minimum: float | None) -> pd.Series:
    """A text column of a small file as float64; fails on non-numbers."""
    raw = table.frame[column]
    values = pd.to_numeric(raw.fillna("").str.strip(), errors="coerce").astype(np.float64)
    bad = ~np.isfinite(values.to_numpy())
    if minimum is not None:
        bad |= values.to_numpy() < minimum
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        shown = raw.iloc[row]
        expected = "a number" if minimum is None else f"a number >= {minimum:g}"
        raise DataValidationError(
            f"expected {expected}, got {'nothing' if pd.isna(shown) or not str(shown).strip() else repr(shown)}",
            file=table.path,
            line=table.line(row),
            column=table.label(column),
        )
    return values.reset_index(drop=True)


# --------------------------------------------------------------------------- #
# Reading files
# --------------------------------------------------------------------------- #


@dataclasses.dataclass
class _Table:
    """A parsed file: the frame plus what is needed to name lines and columns.

    Attributes:
        path: The file.
        frame: One row per data record, in file order.
        first_line: File line (1-based) of data row 0.
        lines: File line of each row when records may span lines; else None
            and row ``r`` is on line ``first_line + r``.
        labels: Frame column -> column name to show in messages.
    """

    path: Path
    frame: pd.DataFrame
    first_line: int
    lines: np.ndarray | None = None
    labels: dict[str, str] = dataclasses.field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.frame)

    def line(self, row: int) -> int:
        if self.lines is not None:
            return int(self.lines[row])
        return self.first_line + int(row)

    def label(self, column: str) -> str:
        return self.labels.get(column, column)


def _iter_lines(path: Path, encoding: str) -> Iterator[tuple[int, str]]:
    """``(line number, text with its line ending)``; decoding errors name the line."""
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                text = raw.decode(encoding)
            except UnicodeDecodeError as exc:
                raise DataValidationError(
                    f"not valid {encoding} text (byte {exc.start + 1} of the line: {exc.reason})",
                    file=path,
                    line=number,
                ) from exc
            if number == 1:
                text = text.lstrip("\ufeff")
            yield number, text


def _iter_records(
    path: Path, *, sep: str, encoding: str, quoted: bool
) -> Iterator[tuple[int, list[str]]]:
    """``(first line, fields)`` of every record; a blank line gives ``[]``."""
    if quoted:
        lines = _iter_lines(path, encoding)
        state = {"line": 0}

        def text_lines() -> Iterator[str]:
            for number, text in lines:
                state["line"] = number
                yield text

        reader = csv.reader(text_lines(), delimiter=sep, strict=True)
        start = 1
        while True:
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise DataValidationError(f"malformed CSV: {exc}", file=path, line=state["line"]) from exc
            yield start, fields
            start = state["line"] + 1
    else:
        for number, text in _iter_lines(path, encoding):
            text = text.rstrip("\r\n")
            yield number, (text.split(sep) if text else [])


def _read_header(path: Path, *, sep: str, encoding: str, quoted: bool) -> list[str]:
    """The header cells (line 1) of a file; fails on an empty file."""
    for _, fields in _iter_records(path, sep=sep, encoding=encoding, quoted=quoted):
        if not fields or all(not f.strip() for f in fields):
            raise DataValidationError("line 1 is blank (expected a header)", file=path, line=1)
        return [f.strip() for f in fields]
    raise DataValidationError("the file is empty (expected a header and data rows)", file=path)


def _read_records(
    path: Path,
    *,
    sep: str,
    encoding: str,
    names: Sequence[str] | None = None,
    header: bool = False,
    quoted: bool = False,
    required: Sequence[str] = (),
) -> _Table:
    """Reads a small file line by line with exact checks of the field counts.

    Args:
        path: The file.
        sep: Field separator (may be several characters, e.g. ``::``).
        encoding: Text encoding.
        names: Column names; for files with a header, the default is the
            header (and names, if given, must have the header's length).
        header: Whether line 1 is a header.
        quoted: Parse CSV quoting (``sep`` must be one character).
        required: Header columns that must be present.

    Returns:
        A table of ``str`` columns (NaN never occurs; empty fields are ``""``).
    """
    records = _iter_records(path, sep=sep, encoding=encoding, quoted=quoted)
    header_cells: list[str] | None = None
    if header:
        first = next(records, None)
        if first is None:
            raise DataValidationError("the file is empty (expected a header and data rows)", file=path)
        if not first[1]:
            raise DataValidationError("line 1 is blank (expected a header)", file=path, line=1)
        header_cells = [c.strip() for c in first[1]]
        missing = [c for c in required if c not in header_cells]
        if missing:
            raise DataValidationError(
                f"missing column(s) {', '.join(repr(c) for c in missing)}; the header has "
                f"{', '.join(repr(c) for c in header_cells)}",
                file=path,
                line=1,
            )
    columns = list(names) if names is not None else list(header_cells or [])
    n_fields = len(columns) if columns else None
    rows: list[list[str]] = []
    lines: list[int] = []
    blank_line: int | None = None
    for number, fields in records:
        if not fields:
            blank_line = blank_line or number
            continue
        if blank_line is not None:
            raise DataValidationError(
                f"blank line (expected {n_fields or 'the same number of'} fields)",
                file=path,
                line=blank_line,
            )
        if n_fields is None:
            n_fields = len(fields)
            columns = list(range(n_fields))  # type: ignore[arg-type]
        if len(fields) != n_fields:
            raise DataValidationError(
                _field_count_problem(sep, n_fields, len(fields)), file=path, line=number
            )
        rows.append(fields)
        lines.append(number)
    if not rows:
        problem = "the file has a header but no data rows" if header else "the file is empty"
        raise DataValidationError(problem, file=path)
    frame = pd.DataFrame(rows, columns=columns, dtype=str)
    line_numbers = np.asarray(lines, dtype=np.int64)
    first_line = 2 if header else 1
    contiguous = bool(np.array_equal(line_numbers, np.arange(first_line, first_line + len(rows))))
    return _Table(path, frame, first_line, None if contiguous else line_numbers)


def _field_count_problem(sep: str, expected: int, found: int) -> str:
    shown = {"\t": "tab", ",": "comma"}.get(sep, repr(sep))
    return f"expected {expected} {shown}-separated fields, found {found}"


def _read_big_table(
    path: Path,
    *,
    sep: str,
    encoding: str,
    names: Sequence[str] | dict[str, str],
    header: bool,
    quoted: bool = False,
    header_names: Sequence[str] | None = None,
    text_columns: Sequence[str] = (),
) -> _Table:
    """Reads a big delimited file (ratings, tags) with pandas' C parser.

    Id columns are read as strings and ``rating``/``timestamp`` as float64; a
    file that does not parse cleanly is scanned line by line to report the
    first bad line (see :func:`_diagnose`).

    Args:
        path: The file.
        sep: One character, or ``::`` (read as ``:`` with empty gap columns).
        encoding: Text encoding.
        names: Headerless files: the column names in file order. Files with a
            header: header name -> our column name of the columns to keep.
        header: Whether line 1 is a header.
        quoted: CSV quoting (``sep`` must be one character).
        header_names: The header cells, if already read and normalised.
        text_columns: Kept columns that may be empty (read as ``str``).

    Returns:
        A table with the kept columns under our names.
    """
    if header:
        cells = list(header_names) if header_names is not None else _read_header(
            path, sep=sep, encoding=encoding, quoted=quoted
        )
        wanted = dict(names)  # type: ignore[arg-type]
        missing = [c for c in wanted if c not in cells]
        if missing:
            raise DataValidationError(
                f"missing column(s) {', '.join(repr(c) for c in missing)}; the header has "
                f"{', '.join(repr(c) for c in cells)}",
                file=path,
                line=1,
            )
        rename = {cells.index(source): target for source, target in wanted.items()}
        labels = {target: source for source, target in wanted.items()}
    else:
        cells = list(names)
        rename = dict(enumerate(cells))
        labels = {}
    n_fields = len(cells)
    kinds: list[str] = []
    for position in range(n_fields):
        target = rename.get(position)
        if target in ("rating", "timestamp"):
            kinds.append("number")
        elif target in (USER_ID, ITEM_ID):
            kinds.append("id")
        elif target in text_columns:
            kinds.append("text")
        else:
            kinds.append("other")

    gapped = sep == "::"
    step = 2 if gapped else 1
    n_positions = n_fields * step - (step - 1)
    dtypes: dict[int, object] = {}
    for position in range(n_positions):
        if gapped and position % 2:
            dtypes[position] = np.float64  # the empty column between the two colons
        else:
            dtypes[position] = np.float64 if kinds[position // step] == "number" else str
    header_lines = 1 if header else 0
    spec = _Spec(path, sep, encoding, quoted, header_lines, tuple(kinds), tuple(cells))
    try:
        frame = pd.read_csv(
            path,
            sep=":" if gapped else sep,
            header=None,
            skiprows=header_lines,
            dtype=dtypes,
            keep_default_na=False,
            na_values=[""],
            quoting=csv.QUOTE_MINIMAL if quoted else csv.QUOTE_NONE,
            skip_blank_lines=False,
            encoding=encoding,
            engine="c",
        )
    except pd.errors.EmptyDataError:
        frame = pd.DataFrame({p: pd.Series(dtype=object) for p in range(n_positions)})
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        _diagnose(spec)
        raise DataValidationError(f"cannot parse the file: {exc}", file=path) from exc

    # Blank lines at the very end are tolerated.
    filled = frame.notna().any(axis=1).to_numpy()
    if filled.size and not filled[-1]:
        last = int(np.flatnonzero(filled)[-1]) + 1 if filled.any() else 0
        frame = frame.iloc[:last]
    if frame.empty:
        problem = "the file has a header but no data rows" if header else "the file is empty"
        raise DataValidationError(problem, file=path)

    wrong_shape = frame.shape[1] != n_positions
    suspicious = wrong_shape
    if not wrong_shape:
        # A short line leaves its last field(s) empty; ids and numbers must be set.
        suspicious = bool(frame[n_positions - 1].isna().any())
        for position in range(n_positions):
            if suspicious:
                break
            column = frame[position]
            kind = kinds[position // step]
            if gapped and position % 2:
                suspicious = bool(column.notna().any())
            elif kind == "number":
                suspicious = not bool(np.isfinite(column.to_numpy(dtype=np.float64)).all())
            elif kind == "id":
                suspicious = bool(column.isna().any())
    if suspicious:
        _diagnose(spec)  # raises at the first bad line, if there is one
        if wrong_shape:
            raise DataValidationError(
                f"expected {n_fields} fields per line, the parser found {frame.shape[1]} column(s)",
                file=path,
            )

    kept = {position * step: target for position, target in rename.items()}
    frame = frame[list(kept)].rename(columns=kept).reset_index(drop=True)
    return _Table(path, frame, header_lines + 1, labels=labels)


@dataclasses.dataclass(frozen=True)
class _Spec:
    path: Path
    sep: str
    encoding: str
    quoted: bool
    header_lines: int
    kinds: tuple[str, ...]  # per field: id, number, text, other
    columns: tuple[str, ...]  # per field: the name to show in messages


def _diagnose(spec: _Spec) -> None:
    """Scans a file line by line and raises at the first bad record, if any.

    Checks what the fast reader assumes: the field count, non-blank ids and
    finite numbers. Blank lines are errors unless only blank lines follow.
    """
    n_fields = len(spec.kinds)
    blank_line: int | None = None
    for number, fields in _iter_records(spec.path, sep=spec.sep, encoding=spec.encoding, quoted=spec.quoted):
        if number <= spec.header_lines:
            continue
        if not fields:
            blank_line = blank_line or number
            continue
        if blank_line is not None:
            raise DataValidationError(
                f"blank line (expected {n_fields} fields)", file=spec.path, line=blank_line
            )
        if len(fields) != n_fields:
            raise DataValidationError(
                _field_count_problem(spec.sep, n_fields, len(fields)), file=spec.path, line=number
            )
        for position, (kind, value) in enumerate(zip(spec.kinds, fields, strict=True)):
            column = spec.columns[position]
            if kind == "id" and not value.strip():
                raise DataValidationError("empty id", file=spec.path, line=number, column=column)
            if kind == "number":
                try:
                    ok = math.isfinite(float(value))
                except ValueError:
                    ok = False
                if not ok:
                    shown = repr(value) if value.strip() else "nothing"
                    raise DataValidationError(
                        f"expected a number, got {shown}", file=spec.path, line=number, column=column
                    )
