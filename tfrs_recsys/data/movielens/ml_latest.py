"""The CSV layout of ml-latest-small, ml-latest, ml-20m and ml-25m."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from tfrs_recsys.data.dataset import RecDataset
from tfrs_recsys.data.movielens.mapping import (
    DEFAULT_MIN_RATING,
    HALF_STARS,
    RATING_KINDS,
    TAG_SEPARATOR,
    YEAR_IN_TITLE,
    add_year,
    assemble,
    check_min_rating,
    ids_in_order_of_appearance,
    pipe_genres,
    years_from_text,
)
from tfrs_recsys.data.reader import ID, NUMBER, TEXT, Dialect, read_columns, read_records
from tfrs_recsys.data.schema import ITEM_ID, USER_ID
from tfrs_recsys.data.validation import check_ids, check_known, optional_file, require_files

#: ``ratings.csv``, ``movies.csv``, ``tags.csv``: quoted CSV with a header.
CSV_DIALECT = Dialect(sep=",", encoding="utf-8", quoted=True, header=True)


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
    min_rating = check_min_rating(min_rating)
    directory = Path(directory)
    require_files(directory, ["ratings.csv", "movies.csv"], dataset="MovieLens (ml-latest CSV)")
    dir_name = directory.resolve().name
    if dir_name.startswith("ml-") and len(dir_name) > 3:
        name = "movielens-" + dir_name[3:]
    else:
        name = "movielens-latest"

    movies = read_records(
        directory / "movies.csv", CSV_DIALECT, required=["movieId", "title", "genres"]
    )
    movies = movies.select({"movieId": ITEM_ID, "title": "title", "genres": "genres"})
    check_ids(movies, ITEM_ID)
    titles = movies.frame["title"].str.strip()
    items_frame = pd.DataFrame(
        {
            ITEM_ID: movies.frame[ITEM_ID],
            "title": titles,
            "genres": pipe_genres(movies.frame["genres"]),
        }
    )

    tags_path = directory / "tags.csv"
    if optional_file(tags_path):
        items_frame["tags"] = _read_tags(tags_path, items_frame[ITEM_ID], movies.path)
    add_year(items_frame, years_from_text(titles, YEAR_IN_TITLE), movies.path)

    ratings = read_columns(
        directory / "ratings.csv",
        CSV_DIALECT,
        columns={
            "userId": USER_ID,
            "movieId": ITEM_ID,
            "rating": "rating",
            "timestamp": "timestamp",
        },
        kinds=RATING_KINDS,
    )
    return assemble(
        name,
        directory,
        ids_in_order_of_appearance(ratings, USER_ID),
        items_frame,
        ratings,
        min_rating,
        scale=HALF_STARS,
        user_file=None,
        item_file=movies.path,
        started=started,
    )


def _read_tags(path: Path, item_ids: pd.Series, movies_file: Path) -> np.ndarray:
    """Each movie's distinct tags joined by ``", "``, aligned with ``item_ids``."""
    tags = read_columns(
        path,
        CSV_DIALECT,
        columns={"userId": "user", "movieId": ITEM_ID, "tag": "tag", "timestamp": "timestamp"},
        kinds={"user": TEXT, ITEM_ID: ID, "tag": TEXT, "timestamp": NUMBER},
    )
    check_known(tags, ITEM_ID, item_ids, known_file=movies_file, what="item")
    frame = pd.DataFrame({ITEM_ID: tags.frame[ITEM_ID], "tag": tags.frame["tag"].str.strip()})
    frame = frame[frame["tag"].notna() & (frame["tag"] != "")].drop_duplicates()
    joined = frame.groupby(ITEM_ID, sort=False)["tag"].agg(TAG_SEPARATOR.join)
    return joined.reindex(item_ids.to_numpy()).fillna("").to_numpy(dtype=object)
