"""Declared datasets: a dataset.toml beside the user's own CSV or Parquet files.

Every fixture dataset is written by the test into ``tmp_path``; the expected
values are worked out by hand from the few rows written.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from model_fixtures import tiny_experiment

from tfrs_recsys.data.declared import (
    DECLARATION_FILE,
    DatasetDeclaration,
    declaration_path,
    read_declaration,
)
from tfrs_recsys.data.loading import load_dataset
from tfrs_recsys.data.schema import Feature
from tfrs_recsys.errors import ConfigError, DatasetNotFoundError, DataValidationError

# --- Fixture writers ---------------------------------------------------------------------------


def write(directory: Path, files: dict[str, str | pd.DataFrame | bytes]) -> Path:
    """Writes text, bytes or Parquet frames under ``directory``; returns it."""
    for name, content in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, pd.DataFrame):
            content.to_parquet(path, index=False)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return directory


SHOP_TOML = """
name = "shop"

[interactions]
path = "events.csv"
user_id = "customer"
item_id = "sku"
timestamp = "ts"
weight = "qty"
rating = "stars"
min_rating = 4.0

[users]
path = "users.csv"
id = "customer"
[users.columns]
age = "numeric"
income = { role = "numeric", log = true }
city = "categorical"
interests = { role = "categorical_list", separator = "|" }
bio = "text"

[items]
path = "items.csv"
id = "sku"
[items.columns]
title = "text"
genres = { role = "categorical_list", separator = "|" }
price = { role = "numeric", log = true }
"""

SHOP_USERS = """customer,age,income,city,interests,bio,ignored
u1,30,50000,Paris,music|books,likes jazz,x
u2,41,0,Berlin,sports,"runs, cycles",y
u3,25,1200,Paris,,,z
"""

SHOP_ITEMS = """sku,title,genres,price
i1,Red shoe,fashion|shoes,59.5
i2,Blue hat,fashion,12
i3,Green lamp,home,30
"""

# u1-i2 is rated 3 (< 4): not a positive. Timestamps: UTC, a date only, an offset, naive.
SHOP_EVENTS = """customer,sku,ts,qty,stars
u1,i1,2024-03-01T12:00:00Z,1,5
u1,i2,2024-03-02,2,3
u2,i3,2024-03-03 10:00:00+02:00,0.5,4
u3,i1,2024-03-04T00:00:00,3,4.5
"""


def shop(tmp_path: Path, **replace: str) -> Path:
    """The CSV shop dataset with both feature tables; ``replace`` swaps a file's text."""
    files = {
        DECLARATION_FILE: SHOP_TOML,
        "users.csv": SHOP_USERS,
        "items.csv": SHOP_ITEMS,
        "events.csv": SHOP_EVENTS,
    }
    files.update({name.replace("_", "."): text for name, text in replace.items()})
    return write(tmp_path / "shop", files)


def events_only(tmp_path: Path, interactions: str, files: dict, extra: str = "") -> Path:
    """A dataset with only ``[interactions]`` (its keys given as TOML lines)."""
    toml = f"[interactions]\n{interactions}\n{extra}"
    return write(tmp_path / "data", {DECLARATION_FILE: toml, **files})


IDS = 'user_id = "u"\nitem_id = "i"'


# --- Loading -----------------------------------------------------------------------------------


def test_csv_with_user_and_item_feature_tables(tmp_path):
    dataset = load_dataset(shop(tmp_path))
    schema = dataset.schema
    assert schema.name == "shop" and schema.timestamp == "timestamp"
    assert schema.user_features == (
        Feature("user_id", "id"),
        Feature("age", "numeric"),
        Feature("income", "numeric", transform="log1p"),
        Feature("city", "categorical"),
        Feature("interests", "categorical_list", separator="|"),
        Feature("bio", "text"),
    )
    assert schema.item_features == (
        Feature("item_id", "id"),
        Feature("title", "text"),
        Feature("genres", "categorical_list", separator="|"),
        Feature("price", "numeric", transform="log1p"),
    )
    users = dataset.users
    assert list(users.columns) == ["user_id", "age", "income", "city", "interests", "bio"]
    assert list(users["user_id"]) == ["u1", "u2", "u3"]
    assert list(users["age"]) == [30.0, 41.0, 25.0]
    assert list(users["income"]) == [50000.0, 0.0, 1200.0]
    assert list(users["interests"]) == ["music|books", "sports", ""]
    assert list(users["bio"]) == ["likes jazz", "runs, cycles", ""]
    assert list(dataset.items["item_id"]) == ["i1", "i2", "i3"]
    assert list(dataset.items["price"]) == [59.5, 12.0, 30.0]

    positives = dataset.interactions
    assert list(positives.columns) == ["user_id", "item_id", "timestamp", "rating", "weight"]
    assert list(zip(positives["user_id"], positives["item_id"])) == [
        ("u1", "i1"),
        ("u2", "i3"),
        ("u3", "i1"),
    ]
    # 2024-03-01 00:00 UTC is 1709251200; +12 h; 03-03 08:00 UTC (10:00+02:00); 03-04 00:00.
    day = 86_400
    assert list(positives["timestamp"]) == [
        1_709_251_200 + 12 * 3600,
        1_709_251_200 + 2 * day + 8 * 3600,
        1_709_251_200 + 3 * day,
    ]
    assert positives["timestamp"].dtype == np.int64
    assert list(positives["rating"]) == [5.0, 4.0, 4.5]
    assert list(positives["weight"]) == [1.0, 0.5, 3.0]
    assert dataset.n_raw_interactions == 4
    assert dataset.encode()[0].tolist() == [0, 1, 2] and dataset.encode()[1].tolist() == [0, 2, 0]
    summary = dataset.summary()
    assert (summary["users"], summary["items"], summary["positives"]) == (3, 3, 3)
    assert summary["source"].endswith(DECLARATION_FILE) and "dropped_rows" not in summary


def test_the_time_split_works_on_a_declared_timestamp(tmp_path):
    from tfrs_recsys.data.splits import split_dataset

    events = "customer,sku,ts,qty,stars\nu1,i1,30,1,5\nu1,i2,10,1,5\nu1,i3,20,1,5\nu2,i1,5,1,5\n"
    split = split_dataset(load_dataset(shop(tmp_path, events_csv=events)), "leave-last-out")
    assert list(zip(split.holdout["user_id"], split.holdout["item_id"])) == [("u1", "i1")]
    assert len(split.train) == 3


def parquet_events() -> tuple[pd.DataFrame, pd.DataFrame]:
    first = pd.DataFrame({"u": ["a", "b", "a"], "i": ["x", "y", "y"], "t": [3, 1, 2]})
    second = pd.DataFrame({"u": ["c", "b"], "i": ["z", "x"], "t": [5, 4]})
    return first, second


@pytest.mark.parametrize("path", ["events", "events/*.parquet", "events/part-*"])
def test_parquet_shards_in_a_directory_or_by_glob_without_tables(tmp_path, path):
    first, second = parquet_events()
    files = {
        "events/part-00000.parquet": first,
        "events/part-00001.parquet": second,
        "events/_SUCCESS": "",
    }
    root = events_only(tmp_path, f'path = "{path}"\n{IDS}\ntimestamp = "t"', files)
    dataset = load_dataset(root / DECLARATION_FILE)
    assert dataset.schema.name == "data"
    assert dataset.schema.user_features == (Feature("user_id", "id"),)
    assert dataset.schema.item_features == (Feature("item_id", "id"),)
    assert list(dataset.users["user_id"]) == ["a", "b", "c"]  # first appearance
    assert list(dataset.items["item_id"]) == ["x", "y", "z"]
    assert list(dataset.interactions["user_id"]) == ["a", "b", "a", "c", "b"]
    assert list(dataset.interactions["timestamp"]) == [3, 1, 2, 5, 4]


def test_numeric_parquet_ids_become_strings(tmp_path):
    frame = pd.DataFrame({"u": [7, 8], "i": [100, 100]})
    root = events_only(tmp_path, f'path = "e.parquet"\n{IDS}', {"e.parquet": frame})
    dataset = load_dataset(root)
    assert list(dataset.interactions["user_id"]) == ["7", "8"]
    assert list(dataset.items["item_id"]) == ["100"]


def test_rating_threshold_of_the_toml_or_else_of_the_caller(tmp_path):
    text = "u,i,r\na,x,5\na,y,3\nb,x,3.5\nb,y,4\n"
    keys = f'path = "r.csv"\n{IDS}\nrating = "r"'
    root = events_only(tmp_path, keys, {"r.csv": text})
    assert len(load_dataset(root).interactions) == 2  # caller's default 4.0: 5 and 4
    assert len(load_dataset(root, min_rating=3.5).interactions) == 3
    assert load_dataset(root).n_raw_interactions == 4
    with_own = events_only(tmp_path / "own", keys + "\nmin_rating = 3", {"r.csv": text})
    dataset = load_dataset(with_own, min_rating=5.0)  # the TOML's 3 wins
    assert list(dataset.interactions["rating"]) == [5.0, 3.0, 3.5, 4.0]


def test_label_column_keeps_the_ones_and_drops_the_column(tmp_path):
    text = "u,i,clicked\na,x,1\na,y,0\nb,x,1.0\nb,z,0\n"
    root = events_only(tmp_path, f'path = "c.csv"\n{IDS}\nlabel = "clicked"', {"c.csv": text})
    dataset = load_dataset(root)
    assert list(dataset.interactions.columns) == ["user_id", "item_id"]
    assert list(zip(dataset.interactions["user_id"], dataset.interactions["item_id"])) == [
        ("a", "x"),
        ("b", "x"),
    ]
    assert list(dataset.items["item_id"]) == ["x", "y", "z"]  # negatives' items are in the catalog


def test_numeric_epoch_strings_and_a_tsv_file(tmp_path):
    text = "u\ti\tt\na\tx\t1700000000\nb\ty\t1700000001.9\n"
    root = events_only(tmp_path, f'path = "e.tsv"\n{IDS}\ntimestamp = "t"', {"e.tsv": text})
    assert list(load_dataset(root).interactions["timestamp"]) == [1_700_000_000, 1_700_000_001]


def test_parquet_timestamp_and_boolean_label_columns(tmp_path):
    frame = pd.DataFrame(
        {
            "u": ["a", "b", "c"],
            "i": ["x", "y", "x"],
            "t": pd.to_datetime(
                ["1970-01-02", "2024-03-01T12:00:00", "1970-01-01T00:00:07"], format="ISO8601"
            ),
            "ok": [True, False, True],
        }
    )
    keys = f'path = "e.parquet"\n{IDS}\ntimestamp = "t"\nlabel = "ok"'
    dataset = load_dataset(events_only(tmp_path, keys, {"e.parquet": frame}))
    assert list(dataset.interactions["user_id"]) == ["a", "c"]
    assert list(dataset.interactions["timestamp"]) == [86_400, 7]


def test_directory_and_toml_file_forms_load_the_same(tmp_path):
    root = shop(tmp_path)
    (root / "other.toml").write_text(SHOP_TOML.replace('"shop"', '"other"'), encoding="utf-8")
    by_dir, by_file = load_dataset(root), load_dataset(root / DECLARATION_FILE)
    other = load_dataset(root / "other.toml")
    for dataset in (by_file, other):
        pd.testing.assert_frame_equal(dataset.interactions, by_dir.interactions)
        pd.testing.assert_frame_equal(dataset.users, by_dir.users)
    assert other.schema.name == "other"
    assert declaration_path(root) == root / DECLARATION_FILE
    assert declaration_path(tmp_path) is None


def test_the_declaration_resolves_files_without_reading_rows(tmp_path):
    first, second = parquet_events()
    files = {"ev/b.parquet": second, "ev/a.parquet": first}
    root = events_only(tmp_path, f'path = "ev"\n{IDS}\nweight = "t"', files)
    declaration = read_declaration(root)
    assert isinstance(declaration, DatasetDeclaration)
    assert [p.name for p in declaration.interactions.source.files] == ["a.parquet", "b.parquet"]
    assert declaration.interactions.source.format == "parquet"
    assert declaration.interactions.renames() == {"u": "user_id", "i": "item_id", "t": "weight"}
    headers = declaration.check_files()
    assert headers[root / "ev" / "a.parquet"].columns == ("u", "i", "t")
    assert headers[root / "ev" / "a.parquet"].types["t"] == "int64"


def test_a_feature_can_take_another_name_than_its_file_column(tmp_path):
    toml = SHOP_TOML.replace('title = "text"', 'name = { role = "text", column = "title" }')
    dataset = load_dataset(shop(tmp_path, dataset_toml=toml))
    assert list(dataset.items["name"]) == ["Red shoe", "Blue hat", "Green lamp"]
    assert "title" not in dataset.items.columns


def test_missing_features_drop_counts_rows_and_logs(tmp_path, caplog):
    toml = 'missing_features = "drop"\n' + SHOP_TOML
    events = SHOP_EVENTS + "u9,i1,2024-03-05,1,5\nu9,i2,2024-03-05,1,5\nu1,i7,2024-03-05,1,5\n"
    with caplog.at_level(logging.WARNING):
        dataset = load_dataset(shop(tmp_path, dataset_toml=toml, events_csv=events))
    assert dataset.n_raw_interactions == 7
    assert len(dataset.interactions) == 3  # the three rows dropped were all positives
    assert dataset.summary()["dropped_rows"] == {"unknown user": 2, "unknown item": 1}
    messages = [r.getMessage() for r in caplog.records]
    assert any("dropped 2 interaction row(s) whose user id" in m and "'u9'" in m for m in messages)
    assert any("dropped 1 interaction row(s) whose item id" in m and "'i7'" in m for m in messages)


# --- Validation: the declaration ---------------------------------------------------------------


def config_error(tmp_path: Path, toml: str) -> str:
    with pytest.raises(ConfigError) as excinfo:
        load_dataset(shop(tmp_path, dataset_toml=toml))
    message = str(excinfo.value)
    assert "\n" not in message
    assert message.startswith(str(tmp_path / "shop" / DECLARATION_FILE) + ": "), message
    return message


def test_toml_syntax_error_names_the_line(tmp_path):
    message = config_error(tmp_path, SHOP_TOML.replace('user_id = "customer"', "user_id ="))
    assert "not valid TOML: Invalid value (at line 6, column 10)" in message


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ('name = "shop"', 'nme = "shop"', "unknown key 'nme' (did you mean 'name'?)"),
        (
            'user_id = "customer"',
            'userid = "customer"',
            "[interactions]: unknown key 'userid' (did you mean 'user_id'?)",
        ),
        ('\nid = "sku"', '\nidd = "sku"', "[items]: unknown key 'idd' (did you mean 'id'?)"),
        (
            "log = true }\ncity",
            "lg = true }\ncity",
            "[users.columns] income: unknown key 'lg' (did you mean 'log'?)",
        ),
        (
            'bio = "text"',
            'bio = "txt"',
            "[users.columns] bio: unknown role 'txt' (did you mean 'text'?); roles: numeric, "
            "categorical, categorical_list, text",
        ),
        (
            'bio = "text"',
            'bio = { role = "text", separator = "," }',
            "[users.columns] bio: separator goes with role \"categorical_list\", not 'text'",
        ),
        (
            'city = "categorical"',
            'city = { role = "categorical", log = true }',
            "[users.columns] city: log goes with role \"numeric\", not 'categorical'",
        ),
        (
            "min_rating = 4.0",
            'min_rating = "four"',
            "[interactions]: min_rating must be a number, got 'four'",
        ),
        (
            "log = true",
            'log = "yes"',
            "[users.columns] income: log must be true or false, got 'yes'",
        ),
        (
            'item_id = "sku"',
            "item_id = 3",
            "[interactions]: item_id must be a non-empty string, got 3",
        ),
        ('item_id = "sku"', "", "[interactions]: missing key 'item_id'"),
        (
            'rating = "stars"',
            'rating = "stars"\nlabel = "clicked"',
            "[interactions]: give rating (with min_rating) or label, not both",
        ),
        ('rating = "stars"', "", "[interactions]: min_rating needs rating"),
        (
            'weight = "qty"',
            'weight = "stars"',
            "[interactions]: column 'stars' is declared twice (weight and rating)",
        ),
        (
            'name = "shop"',
            'missing_features = "skip"',
            'missing_features: expected "error" or "drop", got \'skip\'',
        ),
        (
            'path = "items.csv"',
            'path = "items.csv"\nformat = "xlsx"',
            "[items]: format must be one of parquet, csv, got 'xlsx'",
        ),
        (
            'path = "items.csv"',
            'path = "items.csv"\nseparator = "::"',
            "[items]: separator must be one character, got '::'",
        ),
        (
            "[users.columns]\n",
            '[users.columns]\ncustomer = "categorical"\n',
            "[users.columns] customer: 'customer' is the id column of [users]",
        ),
        (
            'title = "text"',
            'title = "text"\nbio = "text"',
            "[items.columns] bio: 'bio' is also a user feature ([users.columns]); the two sides "
            "need different feature names",
        ),
    ],
)
def test_a_bad_declaration_is_a_config_error_naming_the_key(tmp_path, old, new, expected):
    assert old in SHOP_TOML
    message = config_error(tmp_path, SHOP_TOML.replace(old, new, 1))
    assert expected in message, message


def test_a_separator_on_parquet_is_a_config_error(tmp_path):
    root = events_only(
        tmp_path,
        f'path = "e.parquet"\n{IDS}\nseparator = ";"',
        {"e.parquet": pd.DataFrame({"u": ["a"], "i": ["x"]})},
    )
    with pytest.raises(ConfigError, match=r"\[interactions\]: separator is for CSV files"):
        load_dataset(root)


def test_mixed_csv_and_parquet_shards_need_a_format(tmp_path):
    files = {"ev/a.parquet": pd.DataFrame({"u": ["a"], "i": ["x"]}), "ev/b.csv": "u,i\nb,y\n"}
    root = events_only(tmp_path, f'path = "ev"\n{IDS}', files)
    with pytest.raises(ConfigError, match="holds both CSV and Parquet files"):
        load_dataset(root)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("nowhere.csv", "nowhere.csv: no such file or directory (declared as [interactions] path"),
        ("ev/*.parquet", "ev/*.parquet: the pattern matches no file"),
        ("empty_dir", "empty_dir: no data files in the directory (expected *.parquet"),
    ],
)
def test_missing_files_are_dataset_not_found(tmp_path, path, expected):
    root = events_only(tmp_path, f'path = "{path}"\n{IDS}', {"ev/a.csv": "u,i\na,x\n"})
    (root / "empty_dir").mkdir()
    with pytest.raises(DatasetNotFoundError) as excinfo:
        load_dataset(root)
    assert expected in str(excinfo.value) and DECLARATION_FILE in str(excinfo.value)


def test_a_missing_toml_file_is_dataset_not_found(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="nothing.toml: no such file"):
        load_dataset(tmp_path / "nothing.toml")


# --- Validation: the files and their values ---------------------------------------------------


def data_error(root: Path) -> str:
    with pytest.raises(DataValidationError) as excinfo:
        load_dataset(root)
    message = str(excinfo.value)
    assert "\n" not in message
    return message


def test_a_declared_column_missing_from_a_file_lists_its_columns(tmp_path):
    message = data_error(shop(tmp_path, items_csv=SHOP_ITEMS.replace("genres", "genre")))
    assert message.startswith(str(tmp_path / "shop" / "items.csv") + ": "), message
    assert "no column 'genres' (declared as [items.columns] genres in" in message
    assert "the file has columns 'sku', 'title', 'genre', 'price'" in message


def test_a_missing_interaction_column_names_the_key(tmp_path):
    message = data_error(shop(tmp_path, events_csv=SHOP_EVENTS.replace("qty", "quantity")))
    assert "events.csv: no column 'qty' (declared as [interactions] weight in" in message
    assert "'customer', 'sku', 'ts', 'quantity', 'stars'" in message


@pytest.mark.parametrize(
    ("replace", "expected"),
    [
        (
            {"users_csv": SHOP_USERS.replace("u2,41,", "u2,forty,")},
            "users.csv, line 3, column 'age': expected a number, got 'forty'",
        ),
        (
            {"users_csv": SHOP_USERS.replace("u3,25,", "u3,,")},
            "users.csv, line 4, column 'age': expected a number, got nothing",
        ),
        (
            {"items_csv": SHOP_ITEMS.replace("i3,Green lamp,home,30", "i3,Green lamp,home,-30")},
            "items.csv, line 4, column 'price': expected a number >= 0 (log = true takes "
            "log(1 + x)), got -30",
        ),
        (
            {
                "events_csv": SHOP_EVENTS.replace(
                    "u3,i1,2024-03-04T00:00:00,3,", "u3,i1,2024-03-04T00:00:00,-3,"
                )
            },
            "events.csv, line 5, column 'qty': expected a number >= 0, got -3",
        ),
        (
            {"events_csv": SHOP_EVENTS.replace(",0.5,4", ",inf,4")},
            "events.csv, line 4, column 'qty': expected a number, got 'inf'",
        ),
        (
            {"events_csv": SHOP_EVENTS.replace("2024-03-02", "yesterday")},
            "events.csv, line 3, column 'ts': expected a timestamp (seconds since 1970, or an "
            "ISO-8601 date and time such as '2024-03-01T12:30:00Z'), got 'yesterday'",
        ),
        (
            {"events_csv": SHOP_EVENTS.replace("2024-03-02", "")},
            "events.csv, line 3, column 'ts': expected a timestamp",
        ),
        (
            {"events_csv": SHOP_EVENTS.replace("u2,i3", ",i3")},
            "events.csv, line 4, column 'customer': empty id",
        ),
        (
            {"items_csv": SHOP_ITEMS + "i2,Blue hat again,fashion,13\n"},
            "items.csv, line 5, column 'sku': duplicate id 'i2' (first seen on line 3); ids must "
            "be unique",
        ),
    ],
)
def test_values_that_do_not_fit_their_role_name_file_line_and_column(tmp_path, replace, expected):
    message = data_error(shop(tmp_path, **replace))
    assert expected in message, message


def test_a_label_that_is_not_0_or_1(tmp_path):
    text = "u,i,clicked\na,x,1\na,y,yes\n"
    root = events_only(tmp_path, f'path = "c.csv"\n{IDS}\nlabel = "clicked"', {"c.csv": text})
    assert "c.csv, line 3, column 'clicked': expected 0 or 1, got 'yes'" in data_error(root)


def test_parquet_values_name_the_row(tmp_path):
    frame = pd.DataFrame({"u": ["a", "b", "c"], "i": ["x", "y", "z"], "w": [1.0, np.inf, 2.0]})
    root = events_only(tmp_path, f'path = "e.parquet"\n{IDS}\nweight = "w"', {"e.parquet": frame})
    assert "e.parquet, line 2, column 'w': expected a finite number, got inf" in data_error(root)
    items = pd.DataFrame({"i": ["x", "y", "z"], "size": ["1", "big", "3"]})
    toml_items = '[items]\npath = "items.parquet"\nid = "i"\ncolumns = { size = "numeric" }'
    root = events_only(
        tmp_path / "b",
        f'path = "e.parquet"\n{IDS}',
        {"e.parquet": frame, "items.parquet": items},
        toml_items,
    )
    assert "items.parquet, line 2, column 'size': expected a number, got 'big'" in data_error(root)


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (
            {"ev/a.csv": "u,i\na,x\n", "ev/b.csv": "u,i\n"},
            "b.csv: the file has a header but no data rows",
        ),
        (
            {"ev/a.csv": "u,i\na,x\n", "ev/b.csv": ""},
            "b.csv: the file is empty (zero bytes; expected a header and data rows)",
        ),
        (
            {
                "ev/a.parquet": pd.DataFrame({"u": ["a"], "i": ["x"]}),
                "ev/b.parquet": pd.DataFrame(
                    {"u": pd.Series([], dtype=str), "i": pd.Series([], dtype=str)}
                ),
            },
            "b.parquet: the file has no rows",
        ),
        (
            {"ev/a.parquet": pd.DataFrame({"u": ["a"], "i": ["x"]}), "ev/b.parquet": b""},
            "b.parquet: the file is empty (zero bytes; expected a Parquet file with rows)",
        ),
    ],
)
def test_empty_shards(tmp_path, files, expected):
    root = events_only(tmp_path, f'path = "ev"\n{IDS}', files)
    message = data_error(root)
    assert expected in message, message


def test_mixed_schemas_across_shards(tmp_path):
    a = pd.DataFrame({"u": ["a"], "i": ["x"], "t": [1]})
    root = events_only(
        tmp_path, f'path = "ev"\n{IDS}', {"ev/a.parquet": a, "ev/b.parquet": a[["u", "i"]]}
    )
    message = data_error(root)
    assert message.startswith(str(root / "ev" / "b.parquet") + ": lacks column 't' that the first")
    assert "a.parquet has; every shard must have the same columns" in message
    b = pd.DataFrame({"u": ["b"], "i": ["y"], "t": ["one"]})
    root = events_only(
        tmp_path / "2", f'path = "ev"\n{IDS}', {"ev/a.parquet": a, "ev/b.parquet": b}
    )
    message = data_error(root)
    assert "b.parquet: column 't' is large_string here but int64 in the first shard" in message
    c = pd.DataFrame({"u": ["b"], "i": ["y"], "t": [2], "extra": [0]})
    root = events_only(
        tmp_path / "3", f'path = "ev"\n{IDS}', {"ev/a.parquet": a, "ev/c.parquet": c}
    )
    assert "c.parquet: has column 'extra' that the first shard" in data_error(root)


def test_ids_missing_from_a_feature_table_fail_with_count_and_examples(tmp_path):
    extra = "".join(f"v{n},i1,2024-03-05,1,5\n" for n in range(7)) + "v0,i2,2024-03-05,1,5\n"
    message = data_error(shop(tmp_path, events_csv=SHOP_EVENTS + extra))
    assert message.startswith(str(tmp_path / "shop" / DECLARATION_FILE) + ": "), message
    assert (
        "7 distinct user id(s) of the interactions (column 'customer', 8 row(s)) are not in "
        f"{tmp_path / 'shop' / 'users.csv'} (id column 'customer'), e.g. 'v0', 'v1', 'v2', "
        "'v3', 'v4', ...; add them to"
    ) in message
    assert 'or set missing_features = "drop"' in message


def test_no_positive_interactions(tmp_path):
    events = SHOP_EVENTS.replace(",5\n", ",1\n").replace(",4\n", ",1\n").replace(",4.5\n", ",1\n")
    message = data_error(shop(tmp_path, events_csv=events))
    assert (
        "dataset.toml: no positive interactions: no row of 4 has stars >= 4 (min_rating)" in message
    )
    text = "u,i,clicked\na,x,0\n"
    root = events_only(tmp_path, f'path = "c.csv"\n{IDS}\nlabel = "clicked"', {"c.csv": text})
    assert "no positive interactions: no row of 1 has clicked = 1" in data_error(root)


# --- Command line ------------------------------------------------------------------------------


@pytest.fixture
def cli(monkeypatch):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    from tfrs_recsys import cli as module

    return module


def test_inspect_data_prints_the_counts(cli, tmp_path, capsys):
    root = shop(tmp_path)
    assert cli.main(["inspect-data", "--data", str(root / DECLARATION_FILE), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["users"], summary["items"], summary["positives"]) == (3, 3, 3)
    assert summary["raw_interactions"] == 4 and summary["dataset"] == "shop"
    assert cli.main(["inspect-data", str(root)]) == 0
    fields = dict(
        (part.strip() for part in line.split(":", 1))
        for line in capsys.readouterr().out.splitlines()
    )
    assert (fields["users"], fields["items"], fields["positives"]) == ("3", "3", "3")


def test_inspect_data_on_a_bad_declared_dataset_is_one_line(cli, tmp_path, capsys):
    root = shop(tmp_path, users_csv=SHOP_USERS.replace("u2,41,", "u2,forty,"))
    assert cli.main(["inspect-data", "--data", str(root / DECLARATION_FILE)]) == 2
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert captured.out == "" and len(lines) == 1
    assert (
        lines[0].startswith("tfrs-recsys: error: ")
        and "users.csv, line 3, column 'age'" in lines[0]
    )
    assert cli.main(["inspect-data", str(root), "--data", str(root)]) == 2


def test_train_then_evaluate_on_a_declared_dataset(cli, tmp_path, capsys):
    rng = np.random.default_rng(0)
    n_users, n_items, n_rows = 40, 25, 600
    users = pd.DataFrame(
        {
            "cust": [f"c{u}" for u in range(n_users)],
            "age": rng.integers(18, 70, n_users),
            "region": rng.choice(["n", "s"], n_users),
        }
    )
    items = pd.DataFrame(
        {
            "sku": [f"s{i}" for i in range(n_items)],
            "title": [f"thing {i % 7}" for i in range(n_items)],
            "region": rng.choice(["x", "y"], n_items),
            "price": rng.uniform(1, 500, n_items),
        }
    )
    events = pd.DataFrame(
        {"cust": rng.choice(users["cust"], n_rows), "sku": rng.choice(items["sku"], n_rows)}
    )
    toml = """
[interactions]
path = "events/*.parquet"
user_id = "cust"
item_id = "sku"
[users]
path = "users.csv"
id = "cust"
columns = { age = "numeric", region = "categorical" }
[items]
path = "items.parquet"
id = "sku"
[items.columns]
title = "text"
item_region = { role = "categorical", column = "region" }
price = { role = "numeric", log = true }
"""
    root = write(
        tmp_path / "own",
        {
            DECLARATION_FILE: toml,
            "users.csv": users.to_csv(index=False),
            "items.parquet": items,
            "events/part-0.parquet": events.iloc[:300],
            "events/part-1.parquet": events.iloc[300:],
        },
    )
    config = tmp_path / "tiny.toml"
    experiment = tiny_experiment(
        root / DECLARATION_FILE, model={"feature_set": "all"}, train={"epochs": 1}
    )
    config.write_text(experiment.to_toml(), encoding="utf-8")
    run_dir = tmp_path / "run"
    assert cli.main(["train", "--config", str(config), "--run-dir", str(run_dir)]) == 0
    capsys.readouterr()
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["dataset"] == "own"
    assert cli.main(["evaluate", "--run-dir", str(run_dir), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["model"] == "retrieval_all"
    assert printed["metrics"]["recall@10"] == pytest.approx(
        metrics["holdout"]["metrics"]["recall@10"], abs=1e-6
    )
