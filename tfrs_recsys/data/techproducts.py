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

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tfrs_recsys.atomic import atomic_directory
from tfrs_recsys.data.dataset import RecDataset
from tfrs_recsys.data.generator import GeneratedData, TrueModel
from tfrs_recsys.data.interactions import (
    concat_interactions,
    read_interaction_tables,
    write_shards,
)
from tfrs_recsys.data.reader import ID, TEXT, Dialect, Table, read_columns, read_header
from tfrs_recsys.data.schema import ITEM_ID, USER_ID, DatasetSchema, Feature
from tfrs_recsys.data.validation import (
    check_binary,
    check_ids,
    check_known,
    check_numeric,
    check_text,
)
from tfrs_recsys.errors import ConfigError, DatasetNotFoundError, DataValidationError

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

#: The CSV files as pandas writes and reads them (header cells are taken as written).
TECH_CSV = Dialect(sep=",", quoted=True, strip_header=False)

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
        generate(GeneratorConfig(users=users, items=items, seed=seed)),
        out,
        layout=layout,
        overwrite=overwrite,
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
        raise DatasetNotFoundError(
            f"{directory}: not a directory (expected {USERS_FILE}, {ITEMS_FILE}, {MATRIX_FILE})"
        )
    # A path that is there but is no readable file (a directory, a link loop) fails when read,
    # naming it.
    missing = [name for name in (USERS_FILE, ITEMS_FILE) if not os.path.lexists(directory / name)]
    has_matrix = os.path.lexists(directory / MATRIX_FILE)
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
        tables = read_interaction_tables(directory / INTERACTIONS_DIR)
        for column, known, what in ((USER_ID, users, "user"), (ITEM_ID, items, "item")):
            for shard in tables:
                check_known(shard, column, known.frame[column], known_file=known.path, what=what)
        interactions = concat_interactions(tables)
    return RecDataset(
        schema=TECH_PRODUCTS_SCHEMA,
        users=users.frame,
        items=items.frame,
        interactions=interactions,
        source=str(directory),
    )


def load_truth(directory: Path):
    """The generator's true model of a dataset directory, if it has one.

    ``truth.npz`` of the default generator (:class:`TrueModel`) or
    ``truth_scale.npz`` of ``generate-data --scale``; ``directory`` may also be
    a declared dataset's ``dataset.toml`` (the truth is beside it). Both models
    answer ``probabilities(user_rows)`` the same way. None without either.
    """
    directory = Path(directory)
    if directory.is_file():
        directory = directory.parent
    if (directory / TRUTH_FILE).is_file():
        return TrueModel.load(directory / TRUTH_FILE)
    from tfrs_recsys.data.generator_scale import load_scale_truth

    return load_scale_truth(directory)


def _read_users(path: Path) -> Table:
    kinds = {USER_ID: ID, "profession": TEXT, "personality": TEXT}
    table = read_columns(path, TECH_CSV, columns={c: c for c in USER_COLUMNS}, kinds=kinds)
    check_ids(table, USER_ID)
    table.frame["age"] = check_numeric(table, "age", minimum=0.0)
    for column in ("profession", "personality"):
        check_text(table, column)
    return table


def _read_items(path: Path) -> Table:
    kinds = {ITEM_ID: ID, "product_type": TEXT, "description": TEXT, "features": TEXT}
    table = read_columns(path, TECH_CSV, columns={c: c for c in ITEM_COLUMNS}, kinds=kinds)
    check_ids(table, ITEM_ID)
    table.frame["price"] = check_numeric(table, "price", minimum=0.0)
    for column in ("product_type", "description", "features"):
        check_text(table, column)
    return table


def _read_wide_matrix(path: Path, users: Table, items: Table) -> pd.DataFrame:
    header = read_header(path, TECH_CSV)
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
    unknown_items = pd.Index(item_columns).difference(pd.Index(items.frame[ITEM_ID]))
    if len(unknown_items):
        first = next(c for c in item_columns if c in set(unknown_items))
        raise DataValidationError(
            f"item {first!r} is not in {items.path} ({len(unknown_items)} unknown item column(s))",
            file=path,
            line=1,
            column=first,
        )

    table = read_columns(path, TECH_CSV, header=header, kinds={USER_ID: ID})
    check_ids(table, USER_ID)
    check_known(table, USER_ID, users.frame[USER_ID], known_file=users.path, what="user")
    values = check_binary(table, item_columns)
    # np.nonzero over the transpose walks column by column, rows in file order:
    # exactly the order of DataFrame.melt(id_vars=['user_id']).
    item_pos, user_pos = np.nonzero(values.T)
    return pd.DataFrame(
        {
            USER_ID: table.frame[USER_ID].to_numpy()[user_pos],
            ITEM_ID: np.asarray(item_columns, dtype=object)[item_pos],
        }
    )
