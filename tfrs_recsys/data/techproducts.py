"""The tech-products dataset on disk: the seed notebooks' CSV trio.

Layout of a dataset directory:

- ``users.csv``: ``user_id, age, profession, personality``
- ``items.csv``: ``item_id, product_type, description, price, features``
- ``user_product_rating_matrix.csv``: ``user_id`` then one 0/1 column per item
  (the wide matrix the notebooks read), or, for large sizes,
  ``interactions/part-NNNNN.parquet`` with long ``user_id, item_id`` rows;
- ``truth.npz``: the generator's true model (for the oracle), when generated;
- ``dataset.json``: what was generated and with which settings.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tfrs_recsys.atomic import atomic_directory
from tfrs_recsys.data.dataset import RecDataset
from tfrs_recsys.data.generator import GeneratedData, TrueModel
from tfrs_recsys.data.interactions import read_interactions, shard_files, write_shards
from tfrs_recsys.data.schema import ITEM_ID, USER_ID, DatasetSchema, Feature
from tfrs_recsys.data.validation import (
    check_ids_present,
    check_numeric,
    check_text,
    check_unique,
    line_of,
    read_csv,
    require_columns,
    shown_value,
)
from tfrs_recsys.errors import ConfigError, DataValidationError, DatasetNotFoundError

USERS_FILE = "users.csv"
ITEMS_FILE = "items.csv"
MATRIX_FILE = "user_product_rating_matrix.csv"
INTERACTIONS_DIR = "interactions"
TRUTH_FILE = "truth.npz"
MANIFEST_FILE = "dataset.json"

USER_COLUMNS = ("user_id", "age", "profession", "personality")
ITEM_COLUMNS = ("item_id", "product_type", "description", "price", "features")

TECH_PRODUCTS_SCHEMA = DatasetSchema(
    name="tech-products",
    user_features=(
        Feature("user_id", "id"),
        Feature("age", "numeric"),
        Feature("profession", "categorical", as_text=True),
        Feature("personality", "categorical"),
    ),
    item_features=(
        Feature("item_id", "id"),
        Feature("product_type", "categorical"),
        Feature("description", "text"),
        Feature("price", "numeric", transform="log1p"),
        Feature("features", "text"),
    ),
    user_segment="personality",
)

LAYOUTS: tuple[str, ...] = ("auto", "wide", "long")
# Above this many cells the wide matrix is not a sensible file.
WIDE_MAX_CELLS = 20_000_000


def generate_dataset(
    out: str | Path,
    *,
    users: int = 10_000,
    items: int = 1_000,
    seed: int = 42,
    layout: str = "auto",
    overwrite: bool = False,
) -> Path:
    """Generates the tech-products dataset into ``out`` and returns ``out``.

    The defaults give the embedded default data (10,000 users x 1,000 items,
    seed 42). The directory is written atomically; an existing non-empty
    ``out`` is an error unless ``overwrite``.

    Example:
        >>> import tfrs_recsys as tr
        >>> path = tr.generate_dataset("data/small", users=500, items=100)  # doctest: +SKIP
    """
    from tfrs_recsys.data.generator import GeneratorConfig, generate

    out = Path(out)
    write_tech_products(
        generate(GeneratorConfig(users=users, items=items, seed=seed)), out, layout=layout, overwrite=overwrite
    )
    return out


def write_tech_products(
    data: GeneratedData,
    out: Path,
    *,
    layout: str = "auto",
    overwrite: bool = False,
    shard_format: str = "parquet",
) -> dict[str, Any]:
    """Writes a generated dataset directory atomically and returns its manifest.

    Args:
        data: What :func:`tfrs_recsys.data.generator.generate` returned.
        out: The dataset directory to create.
        layout: ``wide`` (the notebooks' matrix), ``long`` (sharded
            interactions) or ``auto`` (wide up to 20M cells).
        overwrite: Replace an existing non-empty ``out``.
        shard_format: ``parquet`` or ``csv`` for the long layout.
    """
    if layout not in LAYOUTS:
        raise ConfigError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    cells = data.truth.n_users * data.truth.n_items
    if layout == "auto":
        layout = "wide" if cells <= WIDE_MAX_CELLS else "long"
    with atomic_directory(Path(out), overwrite=overwrite) as staging:
        data.users.to_csv(staging / USERS_FILE, index=False)
        data.items.to_csv(staging / ITEMS_FILE, index=False)
        # ~4M cells per chunk bounds memory whatever the catalog size.
        chunk = max(1, 4_000_000 // data.truth.n_items)
        if layout == "wide":
            positives = _write_wide_matrix(staging / MATRIX_FILE, data, chunk)
        else:
            positives = _write_long(staging / INTERACTIONS_DIR, data, chunk, shard_format)
        data.truth.save(staging / TRUTH_FILE)
        manifest = {
            "dataset": TECH_PRODUCTS_SCHEMA.name,
            "layout": layout,
            "users": data.truth.n_users,
            "items": data.truth.n_items,
            "positives": positives,
            "density": positives / cells,
            "generator": dataclasses.asdict(data.config),
            "true_model_intercept": data.truth.intercept,
        }
        (staging / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _write_wide_matrix(path: Path, data: GeneratedData, chunk: int) -> int:
    user_ids = data.users["user_id"].to_numpy()
    positives = 0
    with open(path, "wb") as handle:
        handle.write(("user_id," + ",".join(data.items["item_id"]) + "\n").encode())
        for rows, cells in data.iter_cells(chunk):
            positives += int(cells.sum())
            # "0,1,0,...\n" for each row, built as bytes in one vectorised step.
            text = np.empty((len(rows), 2 * cells.shape[1]), dtype=np.uint8)
            text[:, 0::2] = cells.astype(np.uint8) + ord("0")
            text[:, 1::2] = ord(",")
            text[:, -1] = ord("\n")
            for row, line in zip(rows, text):
                handle.write(user_ids[row].encode() + b"," + line.tobytes())
    return positives


def _write_long(directory: Path, data: GeneratedData, chunk: int, fmt: str) -> int:
    user_ids = data.users["user_id"].to_numpy()
    item_ids = data.items["item_id"].to_numpy()
    counter = {"positives": 0}

    def frames():
        pending: list[pd.DataFrame] = []
        rows_pending = 0
        for rows, cells in data.iter_cells(chunk):
            u, i = np.nonzero(cells)
            frame = pd.DataFrame({USER_ID: user_ids[rows[u]], ITEM_ID: item_ids[i]})
            counter["positives"] += len(frame)
            pending.append(frame)
            rows_pending += len(frame)
            if rows_pending >= 2_000_000:
                yield pd.concat(pending, ignore_index=True)
                pending, rows_pending = [], 0
        if pending:
            yield pd.concat(pending, ignore_index=True)

    write_shards(directory, frames(), fmt=fmt)
    return counter["positives"]


def load_tech_products(directory: Path) -> RecDataset:
    """Loads and validates a tech-products directory.

    The positives come in the order of ``DataFrame.melt(id_vars=['user_id'])``
    over the wide matrix (column by column), which the holdout-80-20 split
    depends on; for the long layout, in file order.

    Raises:
        DatasetNotFoundError: The directory or a required file is missing.
        DataValidationError: A file does not have the expected content; the
            message names the file, line and column.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise DatasetNotFoundError(f"{directory}: not a directory (expected {USERS_FILE}, {ITEMS_FILE}, {MATRIX_FILE})")
    missing = [name for name in (USERS_FILE, ITEMS_FILE) if not (directory / name).is_file()]
    has_matrix = (directory / MATRIX_FILE).is_file()
    has_long = (directory / INTERACTIONS_DIR).exists()
    if not (has_matrix or has_long):
        missing.append(f"{MATRIX_FILE} (or {INTERACTIONS_DIR}/)")
    if missing:
        raise DatasetNotFoundError(f"{directory}: missing {', '.join(missing)}")

    users = _read_users(directory / USERS_FILE)
    items = _read_items(directory / ITEMS_FILE)
    if has_matrix:
        interactions = _read_wide_matrix(directory / MATRIX_FILE, users, items)
    else:
        interactions = read_interactions(directory / INTERACTIONS_DIR)
        _check_known(interactions, users, items, shard_files(directory / INTERACTIONS_DIR))
    return RecDataset(
        schema=TECH_PRODUCTS_SCHEMA,
        users=users,
        items=items,
        interactions=interactions,
        source=str(directory),
    )


def load_truth(directory: Path) -> TrueModel | None:
    """The generator's true model of a dataset directory, if it has one."""
    path = Path(directory) / TRUTH_FILE
    return TrueModel.load(path) if path.is_file() else None


def _read_users(path: Path) -> pd.DataFrame:
    frame = read_csv(path, dtype={"user_id": str, "profession": str, "personality": str}, keep_default_na=False, na_values=[""])
    require_columns(frame, USER_COLUMNS, file=path)
    check_ids_present(frame, "user_id", file=path)
    check_unique(frame, "user_id", file=path)
    frame["age"] = check_numeric(frame, "age", file=path, minimum=0.0)
    for column in ("profession", "personality"):
        check_text(frame, column, file=path)
    return frame[list(USER_COLUMNS)].reset_index(drop=True)


def _read_items(path: Path) -> pd.DataFrame:
    frame = read_csv(
        path,
        dtype={"item_id": str, "product_type": str, "description": str, "features": str},
        keep_default_na=False,
        na_values=[""],
    )
    require_columns(frame, ITEM_COLUMNS, file=path)
    check_ids_present(frame, "item_id", file=path)
    check_unique(frame, "item_id", file=path)
    frame["price"] = check_numeric(frame, "price", file=path, minimum=0.0)
    for column in ("product_type", "description", "features"):
        check_text(frame, column, file=path)
    return frame[list(ITEM_COLUMNS)].reset_index(drop=True)


def _read_wide_matrix(path: Path, users: pd.DataFrame, items: pd.DataFrame) -> pd.DataFrame:
    with open(path, encoding="utf-8-sig", newline="") as handle:
        header = next(csv.reader(handle), [""])
    if header in ([], [""]):
        raise DataValidationError("the file is empty (expected a header and data rows)", file=path)
    if header[0] != USER_ID:
        raise DataValidationError(
            f"the first column must be 'user_id', got {header[0]!r}", file=path, line=1
        )
    item_columns = header[1:]
    seen: dict[str, int] = {}
    for position, item in enumerate(item_columns):
        if item in seen:
            raise DataValidationError(
                f"item {item!r} has two columns ({seen[item] + 2} and {position + 2})",
                file=path,
                line=1,
                column=item,
            )
        seen[item] = position
    unknown_items = pd.Index(item_columns).difference(pd.Index(items["item_id"]))
    if len(unknown_items):
        first = next(c for c in item_columns if c in set(unknown_items))
        raise DataValidationError(
            f"item {first!r} is not in {ITEMS_FILE} ({len(unknown_items)} unknown item column(s))",
            file=path,
            line=1,
            column=first,
        )

    frame = read_csv(path, dtype={USER_ID: str}, header=0, names=header, engine="c", encoding="utf-8-sig")
    check_ids_present(frame, USER_ID, file=path)
    check_unique(frame, USER_ID, file=path)
    known_users = frame[USER_ID].isin(users["user_id"]).to_numpy()
    if not known_users.all():
        row = int(np.flatnonzero(~known_users)[0])
        raise DataValidationError(
            f"user {frame[USER_ID].iloc[row]!r} is not in {USERS_FILE}",
            file=path,
            line=line_of(row),
            column=USER_ID,
        )
    cells = frame[item_columns]
    values = _binary_cells(cells, path)
    # np.nonzero over the transpose walks column by column, rows in file order:
    # exactly the order of DataFrame.melt(id_vars=['user_id']).
    item_pos, user_pos = np.nonzero(values.T)
    return pd.DataFrame(
        {
            USER_ID: frame[USER_ID].to_numpy()[user_pos],
            ITEM_ID: np.asarray(item_columns, dtype=object)[item_pos],
        }
    )


def _binary_cells(cells: pd.DataFrame, path: Path) -> np.ndarray:
    """The 0/1 cells as uint8, or a DataValidationError naming the first bad cell."""
    if all(pd.api.types.is_integer_dtype(t) for t in cells.dtypes):
        values = cells.to_numpy()
        bad = (values != 0) & (values != 1)
        if not bad.any():
            return values.astype(np.uint8)
    for column in cells.columns:
        raw = cells[column]
        numeric = pd.to_numeric(raw, errors="coerce")
        bad = ~numeric.isin([0, 1]).to_numpy()
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            shown = raw.iloc[row]
            raise DataValidationError(
                f"expected 0 or 1, got {'an empty cell' if pd.isna(shown) else shown_value(shown)}",
                file=path,
                line=line_of(row),
                column=str(column),
            )
    # Every cell is 0 or 1 written another way (e.g. "1.0").
    return cells.apply(pd.to_numeric).to_numpy().astype(np.uint8)


def _check_known(
    interactions: pd.DataFrame, users: pd.DataFrame, items: pd.DataFrame, files: list[Path]
) -> None:
    for column, table, name in ((USER_ID, users, USERS_FILE), (ITEM_ID, items, ITEMS_FILE)):
        known = interactions[column].isin(table[column]).to_numpy()
        if not known.all():
            row = int(np.flatnonzero(~known)[0])
            where = files[0] if len(files) == 1 else files[0].parent
            raise DataValidationError(
                f"{column.split('_')[0]} {interactions[column].iloc[row]!r} (interaction {row + 1}) "
                f"is not in {name}",
                file=where,
                column=column,
            )
