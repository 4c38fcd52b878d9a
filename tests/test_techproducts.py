"""The tech-products loader: content, melt order, and every validation error.

Validation errors use the hand-made 3 users x 3 items directory of conftest
(``tiny_tables``), with one file corrupted. Line numbers: the header is line 1,
so tec_0001 / item_0001 are on line 2, bud_0001 / item_0002 on line 3 and
cre_0001 / item_0003 on line 4.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tfrs_recsys.data.loading import load_dataset
from tfrs_recsys.data.techproducts import (
    ITEMS_FILE,
    MANIFEST_FILE,
    MATRIX_FILE,
    USERS_FILE,
    generate_dataset,
    load_tech_products,
    write_tech_products,
)
from tfrs_recsys.errors import ConfigError, DatasetNotFoundError, DataValidationError


def assert_names(
    exc: DataValidationError, file: str, line: int | None = None, column: str | None = None
):
    """The error names the file, and the line and column when given, in its
    attributes and in its message."""
    message = str(exc)
    assert exc.file is not None and exc.file.endswith(file), exc.file
    assert file in message, message
    if line is not None:
        assert exc.line == line, message
        assert f"line {line}" in message, message
    if column is not None:
        assert exc.column == column, message
        assert repr(column) in message, message


# --- Loading valid data ------------------------------------------------------------


def test_tiny_directory_loads_users_items_and_positives(make_tech_dir):
    dataset = load_tech_products(make_tech_dir())
    assert dataset.users["user_id"].tolist() == ["tec_0001", "bud_0001", "cre_0001"]
    assert dataset.users["age"].tolist() == [30, 25, 41]
    assert dataset.items["item_id"].tolist() == ["item_0001", "item_0002", "item_0003"]
    assert dataset.items["price"].tolist() == [999.99, 35.50, 150.00]
    # Melted column by column: item_0001 (tec), item_0002 (bud), item_0003 (bud, cre).
    assert dataset.interactions[["user_id", "item_id"]].values.tolist() == [
        ["tec_0001", "item_0001"],
        ["bud_0001", "item_0002"],
        ["bud_0001", "item_0003"],
        ["cre_0001", "item_0003"],
    ]


def test_tiny_summary_counts(make_tech_dir):
    """3 users, 3 items, 4 positives: density 4/9; per user 1, 2, 1."""
    summary = load_tech_products(make_tech_dir()).summary()
    assert summary["users"] == 3 and summary["items"] == 3 and summary["positives"] == 4
    assert summary["density"] == pytest.approx(4 / 9)
    assert summary["users_with_positives"] == 3
    assert summary["positives_per_user"] == {"min": 1, "median": 1.0, "mean": 1.33, "max": 2}
    assert summary["users_per_personality"] == {
        "Tech Enthusiast": 1,
        "Budget Conscious": 1,
        "Creative Explorer": 1,
    }


def test_loaded_tables_equal_the_generated_ones(small_dataset, small_generated):
    loaded, generated = small_dataset.users, small_generated.users
    for column in ("user_id", "profession", "personality"):
        assert loaded[column].tolist() == generated[column].tolist(), column
    np.testing.assert_array_equal(loaded["age"].to_numpy(), generated["age"].to_numpy())
    loaded, generated = small_dataset.items, small_generated.items
    for column in ("item_id", "product_type", "description", "features"):
        assert loaded[column].tolist() == generated[column].tolist(), column
    np.testing.assert_array_equal(loaded["price"].to_numpy(), generated["price"].to_numpy())


def test_positives_follow_pandas_melt_order(small_dir, small_dataset):
    """The order the holdout split depends on: DataFrame.melt(id_vars=['user_id'])."""
    ratings_df = pd.read_csv(small_dir / MATRIX_FILE)
    melted = ratings_df.melt(id_vars=["user_id"], var_name="item_id", value_name="label")
    expected = melted[melted["label"] == 1]
    assert len(small_dataset.interactions) == len(expected)
    np.testing.assert_array_equal(
        small_dataset.interactions["user_id"].to_numpy(dtype=object),
        expected["user_id"].to_numpy(dtype=object),
    )
    np.testing.assert_array_equal(
        small_dataset.interactions["item_id"].to_numpy(dtype=object),
        expected["item_id"].to_numpy(dtype=object),
    )


def test_catalog_keeps_items_without_positives(make_tech_dir, tiny_tables):
    """Every item of items.csv is in the catalog, even one with no 1 in the matrix."""
    matrix = tiny_tables["matrix"].replace("bud_0001,0,1,1", "bud_0001,0,0,1")
    dataset = load_tech_products(make_tech_dir(matrix=matrix))
    assert dataset.n_items == 3
    assert "item_0002" not in set(dataset.interactions["item_id"])


def test_load_dataset_dispatches_to_tech_products(make_tech_dir):
    dataset = load_dataset(make_tech_dir())
    assert dataset.schema.name == "tech-products"
    assert len(dataset.interactions) == 4


def test_load_dataset_unknown_source(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="no-such-dataset"):
        load_dataset(tmp_path / "no-such-dataset")


def test_encode_unknown_id_is_a_validation_error(make_tech_dir):
    dataset = load_tech_products(make_tech_dir())
    pairs = pd.DataFrame(
        {"user_id": ["tec_0001", "zzz_0009"], "item_id": ["item_0001", "item_0002"]}
    )
    with pytest.raises(DataValidationError, match="zzz_0009"):
        dataset.encode(pairs)


def test_encode_gives_table_rows(make_tech_dir):
    dataset = load_tech_products(make_tech_dir())
    users, items = dataset.encode()
    # (tec,1) (bud,2) (bud,3) (cre,3) -> user rows 0,1,1,2 and item rows 0,1,2,2.
    assert users.tolist() == [0, 1, 1, 2]
    assert items.tolist() == [0, 1, 2, 2]


def test_generate_dataset_loads_back(tmp_path, small_generated, small_matrix):
    """generate_dataset with the small fixture's sizes and seed writes that same data."""
    out = generate_dataset(tmp_path / "gen", users=500, items=120)
    assert out == tmp_path / "gen"
    dataset = load_tech_products(out)
    assert dataset.users["user_id"].tolist() == small_generated.users["user_id"].tolist()
    assert dataset.items["item_id"].tolist() == small_generated.items["item_id"].tolist()
    # Positives in melt order: column by column, users in file order.
    item_pos, user_pos = np.nonzero(small_matrix.T)
    expected = list(
        zip(
            small_generated.users["user_id"].to_numpy()[user_pos],
            small_generated.items["item_id"].to_numpy()[item_pos],
        )
    )
    assert list(dataset.interactions.itertuples(index=False, name=None)) == expected
    assert (out / MANIFEST_FILE).is_file()


def test_generate_dataset_replaces_only_when_asked(tmp_path):
    out = generate_dataset(tmp_path / "gen", users=20, items=5, seed=1)
    with pytest.raises(ConfigError, match="--force"):
        generate_dataset(out, users=20, items=5, seed=2)
    before = load_tech_products(out).users["age"].tolist()
    generate_dataset(out, users=20, items=5, seed=2, overwrite=True)
    assert load_tech_products(out).users["age"].tolist() != before
    assert [p.name for p in tmp_path.iterdir()] == ["gen"]  # no staging left


def test_write_rejects_unknown_layout(tmp_path, small_generated):
    with pytest.raises(ConfigError, match="layout"):
        write_tech_products(small_generated, tmp_path / "out", layout="diagonal")
    assert not (tmp_path / "out").exists()


# --- Missing files -------------------------------------------------------------------


def test_missing_directory(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="not a directory"):
        load_tech_products(tmp_path / "absent")


@pytest.mark.parametrize(
    ("omit", "name"),
    [("users", USERS_FILE), ("items", ITEMS_FILE), ("matrix", MATRIX_FILE)],
)
def test_missing_file_is_named(make_tech_dir, omit, name):
    directory = make_tech_dir(omit=(omit,))
    with pytest.raises(DatasetNotFoundError) as excinfo:
        load_tech_products(directory)
    message = str(excinfo.value)
    assert name in message and str(directory) in message
    # Only the missing file is reported as missing.
    others = {USERS_FILE, ITEMS_FILE, MATRIX_FILE} - {name}
    assert not any(f"missing {other}" in message for other in others)


# --- Header problems ----------------------------------------------------------------


def test_users_missing_column(make_tech_dir, tiny_tables):
    users = tiny_tables["users"].replace("user_id,age,", "user_id,years,")
    with pytest.raises(DataValidationError) as excinfo:
        load_tech_products(make_tech_dir(users=users))
    assert_names(excinfo.value, USERS_FILE, line=1)
    assert "'age'" in str(excinfo.value)


def test_items_missing_column(make_tech_dir, tiny_tables):
    items = tiny_tables["items"].replace(",price,", ",cost,")
    with pytest.raises(DataValidationError) as excinfo:
        load_tech_products(make_tech_dir(items=items))
    assert_names(excinfo.value, ITEMS_FILE, line=1)
    assert "'price'" in str(excinfo.value)


def test_matrix_without_user_id_first_column(make_tech_dir, tiny_tables):
    matrix = tiny_tables["matrix"].replace("user_id,", "uid,", 1)
    with pytest.raises(DataValidationError) as excinfo:
        load_tech_products(make_tech_dir(matrix=matrix))
    assert_names(excinfo.value, MATRIX_FILE, line=1)
    assert "'uid'" in str(excinfo.value)


def test_matrix_duplicate_item_column(make_tech_dir, tiny_tables):
    """item_0002 heads columns 3 and 4 of line 1."""
    matrix = tiny_tables["matrix"].replace("item_0003", "item_0002")
    with pytest.raises(DataValidationError) as excinfo:
        load_tech_products(make_tech_dir(matrix=matrix))
    assert_names(excinfo.value, MATRIX_FILE, line=1, column="item_0002")


def test_matrix_item_column_not_in_items(make_tech_dir, tiny_tables):
    matrix = tiny_tables["matrix"].replace("item_0003", "item_0009")
    with pytest.raises(DataValidationError) as excinfo:
        load_tech_products(make_tech_dir(matrix=matrix))
    assert_names(excinfo.value, MATRIX_FILE, line=1, column="item_0009")
    assert ITEMS_FILE in str(excinfo.value)


# --- Ids ---------------------------------------------------------------------------------


def test_duplicate_user_id_in_users(make_tech_dir, tiny_tables):
    """cre_0001 (line 4) renamed bud_0001, first seen on line 3."""
    users = tiny_tables["users"].replace("cre_0001", "bud_0001")
    with pytest.raises(DataValidationError) as excinfo:
        load_tech_products(make_tech_dir(users=users))
    assert_names(excinfo.value, USERS_FILE, line=4, column="user_id")
    assert "'bud_0001'" in str(excinfo.value) and "line 3" in str(excinfo.value)


def test_duplicate_item_id_in_items(make_tech_dir, tiny_tables):
    items = tiny_tables["items"].replace("item_0003,monitor", "item_0001,monitor")
    with pytest.raises(DataValidationError) as excinfo:
        load_tech_products(make_tech_dir(items=items))
    assert_names(excinfo.value, ITEMS_FILE, line=4, column="item_id")
    assert "'item_0001'" in str(excinfo.value)


def test_empty_user_id_in_users(make_tech_dir, tiny_tables):
    users = tiny_tables["users"].replace("bud_0001,", ",")
    with pytest.raises(DataValidationError) as excinfo:
        load_tech_products(make_tech_dir(users=users))
    assert_names(excinfo.value, USERS_FILE, line=3, column="user_id")


def test_matrix_user_not_in_users(make_tech_dir, tiny_tables):
    matrix = tiny_tables["matrix"].replace("cre_0001", "xyz_0001")
    with pytest.raises(DataValidationError) as excinfo:
        load_tech_products(make_tech_dir(matrix=matrix))
    assert_names(excinfo.value, MATRIX_FILE, line=4, column="user_id")
    assert "'xyz_0001'" in str(excinfo.value) and USERS_FILE in str(excinfo.value)


def test_matrix_duplicate_user_row(make_tech_dir, tiny_tables):
    matrix = tiny_tables["matrix"].replace("cre_0001", "tec_0001")
    with pytest.raises(DataValidationError) as excinfo:
        load_tech_products(make_tech_dir(matrix=matrix))
    assert_names(excinfo.value, MATRIX_FILE, line=4, column="user_id")


# --- Cells ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad", ["2", "0.5", "x", "", "-1"], ids=["two", "half", "letter", "empty", "minus-one"]
)
def test_matrix_cell_not_binary(make_tech_dir, tiny_tables, bad):
    """bud_0001 (line 3), column item_0002."""
    matrix = tiny_tables["matrix"].replace("bud_0001,0,1,1", f"bud_0001,0,{bad},1")
    with pytest.raises(DataValidationError) as excinfo:
        load_tech_products(make_tech_dir(matrix=matrix))
    assert_names(excinfo.value, MATRIX_FILE, line=3, column="item_0002")
    assert "expected 0 or 1" in str(excinfo.value)


def test_matrix_first_bad_cell_is_reported(make_tech_dir, tiny_tables):
    """Two bad cells: line 4 item_0001 and line 3 item_0003. Columns are scanned in
    header order, so item_0001 (line 4) is reported."""
    matrix = (
        tiny_tables["matrix"]
        .replace("bud_0001,0,1,1", "bud_0001,0,1,7")
        .replace("cre_0001,0,0,1", "cre_0001,9,0,1")
    )
    with pytest.raises(DataValidationError) as excinfo:
        load_tech_products(make_tech_dir(matrix=matrix))
    assert_names(excinfo.value, MATRIX_FILE, line=4, column="item_0001")


def test_matrix_float_cells_equal_to_0_and_1_are_accepted(make_tech_dir, tiny_tables):
    """pandas reads "1.0" as 1.0 and the notebooks' `label == 1` keeps it as a positive."""
    matrix = tiny_tables["matrix"].replace("bud_0001,0,1,1", "bud_0001,0,1.0,1")
    dataset = load_tech_products(make_tech_dir(matrix=matrix))
    assert len(dataset.interactions) == 4


# --- Numbers ------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["", "NaN", "abc"], ids=["empty", "nan", "text"])
def test_users_age_not_a_number(make_tech_dir, tiny_tables, bad):
    users = tiny_tables["users"].replace("bud_0001,25,", f"bud_0001,{bad},")
    with pytest.raises(DataValidationError) as excinfo:
        load_tech_products(make_tech_dir(users=users))
    assert_names(excinfo.value, USERS_FILE, line=3, column="age")
    assert "expected a number" in str(excinfo.value)


def test_users_negative_age(make_tech_dir, tiny_tables):
    users = tiny_tables["users"].replace("cre_0001,41,", "cre_0001,-41,")
    with pytest.raises(DataValidationError) as excinfo:
        load_tech_products(make_tech_dir(users=users))
    assert_names(excinfo.value, USERS_FILE, line=4, column="age")
    assert "-41" in str(excinfo.value)


@pytest.mark.parametrize("bad", ["", "NaN"], ids=["empty", "nan"])
def test_items_price_not_a_number(make_tech_dir, tiny_tables, bad):
    items = tiny_tables["items"].replace(",35.50,", f",{bad},")
    with pytest.raises(DataValidationError) as excinfo:
        load_tech_products(make_tech_dir(items=items))
    assert_names(excinfo.value, ITEMS_FILE, line=3, column="price")


def test_items_negative_price(make_tech_dir, tiny_tables):
    items = tiny_tables["items"].replace(",150.00,", ",-150.00,")
    with pytest.raises(DataValidationError) as excinfo:
        load_tech_products(make_tech_dir(items=items))
    assert_names(excinfo.value, ITEMS_FILE, line=4, column="price")


# --- Text ------------------------------------------------------------------------------------


@pytest.mark.parametrize("blank", ["", "   "], ids=["empty", "spaces"])
def test_users_empty_profession(make_tech_dir, tiny_tables, blank):
    users = tiny_tables["users"].replace(",education,", f",{blank},")
    with pytest.raises(DataValidationError) as excinfo:
        load_tech_products(make_tech_dir(users=users))
    assert_names(excinfo.value, USERS_FILE, line=3, column="profession")


def test_items_empty_description(make_tech_dir, tiny_tables):
    items = tiny_tables["items"].replace("For students.", "")
    with pytest.raises(DataValidationError) as excinfo:
        load_tech_products(make_tech_dir(items=items))
    assert_names(excinfo.value, ITEMS_FILE, line=3, column="description")


def test_items_empty_features(make_tech_dir, tiny_tables):
    items = tiny_tables["items"].replace('"4K display, Adjustable stand"', '""')
    with pytest.raises(DataValidationError) as excinfo:
        load_tech_products(make_tech_dir(items=items))
    assert_names(excinfo.value, ITEMS_FILE, line=4, column="features")


# --- Empty and header-only files ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "name"), [("users", USERS_FILE), ("items", ITEMS_FILE), ("matrix", MATRIX_FILE)]
)
def test_header_only_file(make_tech_dir, tiny_tables, key, name):
    header_only = tiny_tables[key].splitlines(keepends=True)[0]
    with pytest.raises(DataValidationError) as excinfo:
        load_tech_products(make_tech_dir(**{key: header_only}))
    assert_names(excinfo.value, name)
    assert "no data rows" in str(excinfo.value)


@pytest.mark.parametrize(
    ("key", "name"), [("users", USERS_FILE), ("items", ITEMS_FILE), ("matrix", MATRIX_FILE)]
)
def test_zero_byte_file(make_tech_dir, key, name):
    with pytest.raises(DataValidationError) as excinfo:
        load_tech_products(make_tech_dir(**{key: ""}))
    assert_names(excinfo.value, name)
    assert "empty" in str(excinfo.value)


# --- Line-level errors ------------------------------------------------------------------------


def test_extra_field_names_its_line(make_tech_dir, tiny_tables):
    """pandas alone says "Error tokenizing data"; the error names line 3."""
    users = tiny_tables["users"].replace("Budget Conscious", "Budget Conscious,extra")
    with pytest.raises(DataValidationError) as excinfo:
        load_tech_products(make_tech_dir(users=users))
    assert_names(excinfo.value, USERS_FILE, line=3)
    assert "expected 4 comma-separated fields, found 5" in str(excinfo.value)


@pytest.mark.parametrize(
    ("key", "name"), [("users", USERS_FILE), ("items", ITEMS_FILE), ("matrix", MATRIX_FILE)]
)
def test_undecodable_bytes_name_their_line(make_tech_dir, key, name):
    directory = make_tech_dir()
    path = directory / name
    lines = path.read_bytes().split(b"\n")
    lines[2] = lines[2] + b"\xff"  # line 3
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(DataValidationError) as excinfo:
        load_tech_products(directory)
    assert_names(excinfo.value, name, line=3)
    assert "not valid UTF-8 (byte 0xff at position" in str(excinfo.value)


def test_line_numbers_count_line_breaks_inside_quotes(make_tech_dir, tiny_tables):
    """item_0001's quoted description spans lines 2-3, so item_0003 is on line 5."""
    items = tiny_tables["items"].replace("For gamers.", '"For\ngamers."')
    items = items.replace("For designers.", "")
    with pytest.raises(DataValidationError) as excinfo:
        load_tech_products(make_tech_dir(items=items))
    assert_names(excinfo.value, ITEMS_FILE, line=5, column="description")


# --- Line numbers with blank lines ----------------------------------------------------------------


def test_blank_line_between_rows_is_reported_at_its_line(make_tech_dir, tiny_tables):
    """A blank line after tec_0001 (line 2) is line 3; later rows keep true line numbers."""
    users = tiny_tables["users"].replace("Tech Enthusiast\n", "Tech Enthusiast\n\n", 1)
    assert users.splitlines()[2] == ""  # line 3, 1-based
    with pytest.raises(DataValidationError) as excinfo:
        load_tech_products(make_tech_dir(users=users))
    assert_names(excinfo.value, USERS_FILE, line=3)
    assert "blank line" in str(excinfo.value)


def test_trailing_blank_lines_are_ignored(make_tech_dir, tiny_tables):
    users = tiny_tables["users"] + "\n\n"
    dataset = load_tech_products(make_tech_dir(users=users))
    assert len(dataset.users) == len(tiny_tables["users"].strip().splitlines()) - 1


# --- Matrix header parsing: files that pandas (and the notebooks) read --------------------------


def test_matrix_with_quoted_header_loads(make_tech_dir, tiny_tables):
    header = "user_id,item_0001,item_0002,item_0003"
    quoted = ",".join(f'"{name}"' for name in header.split(","))
    matrix = tiny_tables["matrix"].replace(header, quoted)
    directory = make_tech_dir(matrix=matrix)
    # pandas reads it like the unquoted file:
    assert pd.read_csv(directory / MATRIX_FILE).columns.tolist() == header.split(",")
    dataset = load_tech_products(directory)
    assert len(dataset.interactions) == 4


def test_users_and_items_with_byte_order_mark_load(make_tech_dir, tiny_tables):
    directory = make_tech_dir(
        users="\ufeff" + tiny_tables["users"], items="\ufeff" + tiny_tables["items"]
    )
    dataset = load_tech_products(directory)
    assert dataset.users["user_id"].tolist()[0] == "tec_0001"
    assert dataset.items["item_id"].tolist()[0] == "item_0001"


def test_matrix_with_byte_order_mark_loads(make_tech_dir, tiny_tables):
    directory = make_tech_dir(matrix="\ufeff" + tiny_tables["matrix"])
    dataset = load_tech_products(directory)
    assert len(dataset.interactions) == 4
