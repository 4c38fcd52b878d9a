"""Long-format interactions: the long layout of a generated dataset, and the
reader of sharded ``(user_id, item_id[, label])`` files."""

from __future__ import annotations

import gzip
import json

import pandas as pd
import pytest

from tfrs_recsys.data.interactions import read_interactions, shard_files, write_shards
from tfrs_recsys.data.techproducts import (
    INTERACTIONS_DIR,
    MANIFEST_FILE,
    MATRIX_FILE,
    USERS_FILE,
    load_tech_products,
    write_tech_products,
)
from tfrs_recsys.errors import ConfigError, DatasetNotFoundError, DataValidationError


def _pairs(frame: pd.DataFrame) -> set[tuple[str, str]]:
    return set(zip(frame["user_id"].astype(str), frame["item_id"].astype(str)))


# --- The long layout of the generator ---------------------------------------------------


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_long_layout_has_the_same_positives_as_wide(tmp_path, small_generated, small_dataset, fmt):
    out = tmp_path / f"long-{fmt}"
    write_tech_products(small_generated, out, layout="long", shard_format=fmt)
    assert not (out / MATRIX_FILE).exists()
    assert [p.name for p in shard_files(out / INTERACTIONS_DIR)] == [f"part-00000.{fmt}"]
    long = load_tech_products(out)
    assert len(long.interactions) == len(small_dataset.interactions)
    assert _pairs(long.interactions) == _pairs(small_dataset.interactions)
    # Same feature tables as the wide directory.
    assert long.users["user_id"].tolist() == small_dataset.users["user_id"].tolist()
    assert long.items["item_id"].tolist() == small_dataset.items["item_id"].tolist()


def test_long_layout_manifest(tmp_path, small_generated, small_dataset):
    out = tmp_path / "long"
    manifest = write_tech_products(small_generated, out, layout="long")
    assert manifest["layout"] == "long"
    assert manifest["positives"] == len(small_dataset.interactions)
    assert json.loads((out / MANIFEST_FILE).read_text()) == manifest


def test_auto_layout_is_wide_for_small_sizes(tmp_path, small_generated):
    """500 x 120 = 60,000 cells, far below the 20M-cell limit of the wide matrix."""
    manifest = write_tech_products(small_generated, tmp_path / "auto")
    assert manifest["layout"] == "wide"
    assert (tmp_path / "auto" / MATRIX_FILE).is_file()


def test_long_layout_unknown_user_is_a_validation_error(make_tech_dir, write_csv):
    directory = make_tech_dir(omit=("matrix",))
    write_csv(
        "part-00000.csv",
        "user_id,item_id\ntec_0001,item_0001\nzzz_0001,item_0002\n",
        directory / INTERACTIONS_DIR,
    )
    with pytest.raises(DataValidationError) as excinfo:
        load_tech_products(directory)
    message = str(excinfo.value)
    assert "'zzz_0001'" in message and USERS_FILE in message
    assert excinfo.value.column == "user_id"
    assert "part-00000.csv" in message


def test_long_layout_unknown_item_names_the_shard_and_line(make_tech_dir, write_csv):
    directory = make_tech_dir(omit=("matrix",))
    shards = directory / INTERACTIONS_DIR
    write_csv("part-00000.csv", "user_id,item_id\ntec_0001,item_0001\n", shards)
    write_csv("part-00001.csv", "user_id,item_id\nbud_0001,item_0002\ncre_0001,item_0042\n", shards)
    with pytest.raises(DataValidationError) as excinfo:
        load_tech_products(directory)
    assert excinfo.value.file == str(shards / "part-00001.csv")
    assert (excinfo.value.line, excinfo.value.column) == (3, "item_id")
    assert "'item_0042'" in str(excinfo.value)


def test_unknown_id_after_dropped_labels_keeps_its_line(make_tech_dir, write_csv):
    """Rows with label 0 are dropped, yet the unknown user is reported on its own line 4."""
    directory = make_tech_dir(omit=("matrix",))
    text = "user_id,item_id,label\ntec_0001,item_0001,0\nbud_0001,item_0002,0\nzzz,item_0003,1\n"
    write_csv("part-00000.csv", text, directory / INTERACTIONS_DIR)
    with pytest.raises(DataValidationError) as excinfo:
        load_tech_products(directory)
    assert (excinfo.value.line, excinfo.value.column) == (4, "user_id")


# --- read_interactions ------------------------------------------------------------------


def test_csv_shards_are_concatenated_in_name_order(tmp_path, write_csv):
    shards = tmp_path / "inter"
    write_csv("part-00001.csv", "user_id,item_id\nc,3\n", shards)
    write_csv("part-00000.csv", "user_id,item_id\na,1\nb,2\n", shards)
    write_csv("notes.txt", "not a shard", shards)
    frame = read_interactions(shards)
    assert frame[["user_id", "item_id"]].values.tolist() == [["a", "1"], ["b", "2"], ["c", "3"]]


def test_ids_are_read_as_strings(tmp_path, write_csv):
    """Numeric-looking ids keep their text ("007" is not 7)."""
    path = write_csv("inter.csv", "user_id,item_id\n007,0042\n")
    frame = read_interactions(path)
    assert frame["user_id"].tolist() == ["007"]
    assert frame["item_id"].tolist() == ["0042"]


def test_label_zero_rows_are_dropped(tmp_path, write_csv):
    path = write_csv("inter.csv", "user_id,item_id,label\na,1,1\na,2,0\nb,1,1\n")
    frame = read_interactions(path)
    assert frame[["user_id", "item_id"]].values.tolist() == [["a", "1"], ["b", "1"]]
    assert "label" not in frame.columns


def test_extra_columns_are_kept(tmp_path, write_csv):
    path = write_csv("inter.csv", "user_id,item_id,timestamp\na,1,100\nb,2,50\n")
    assert read_interactions(path)["timestamp"].tolist() == [100, 50]


def test_parquet_shards_round_trip(tmp_path):
    frames = [
        pd.DataFrame({"user_id": ["a", "b"], "item_id": ["1", "2"]}),
        pd.DataFrame({"user_id": ["c"], "item_id": ["3"]}),
    ]
    written = write_shards(tmp_path / "shards", frames)
    assert [p.name for p in written] == ["part-00000.parquet", "part-00001.parquet"]
    frame = read_interactions(tmp_path / "shards")
    assert frame[["user_id", "item_id"]].values.tolist() == [["a", "1"], ["b", "2"], ["c", "3"]]


def test_csv_label_not_binary_names_file_line_and_column(tmp_path, write_csv):
    """Header line 1; the bad label is on the third data row, line 4."""
    path = write_csv("inter.csv", "user_id,item_id,label\na,1,1\na,2,0\nb,1,2\n")
    with pytest.raises(DataValidationError) as excinfo:
        read_interactions(path)
    assert excinfo.value.file == str(path)
    assert excinfo.value.line == 4 and excinfo.value.column == "label"
    assert "line 4" in str(excinfo.value)


def test_parquet_label_not_binary_names_the_row(tmp_path):
    """Parquet has no header line: the "line" is the 1-based row, here row 2."""
    write_shards(
        tmp_path / "s",
        [pd.DataFrame({"user_id": ["a", "b"], "item_id": ["1", "2"], "label": [1, 5]})],
    )
    with pytest.raises(DataValidationError) as excinfo:
        read_interactions(tmp_path / "s")
    assert excinfo.value.line == 2 and excinfo.value.column == "label"
    assert "part-00000.parquet" in str(excinfo.value)
    assert str(excinfo.value).endswith("expected 0 or 1, got 5")  # the value, not a numpy repr


def test_gzipped_csv_shard_errors_name_the_line(tmp_path):
    path = tmp_path / "inter.csv.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write("user_id,item_id\na,1\nb,2,9\n")
    with pytest.raises(DataValidationError) as excinfo:
        read_interactions(path)
    assert excinfo.value.line == 3 and "found 3" in str(excinfo.value)


def test_empty_id_names_line_and_column(tmp_path, write_csv):
    path = write_csv("inter.csv", "user_id,item_id\na,1\n,2\n")
    with pytest.raises(DataValidationError) as excinfo:
        read_interactions(path)
    assert excinfo.value.line == 3 and excinfo.value.column == "user_id"


def test_missing_item_id_column(tmp_path, write_csv):
    path = write_csv("inter.csv", "user_id,movie\na,1\n")
    with pytest.raises(DataValidationError) as excinfo:
        read_interactions(path)
    assert excinfo.value.line == 1 and "'item_id'" in str(excinfo.value)


def test_header_only_shard(tmp_path, write_csv):
    path = write_csv("inter.csv", "user_id,item_id\n")
    with pytest.raises(DataValidationError, match="no data rows"):
        read_interactions(path)


def test_unreadable_parquet_names_the_file(tmp_path, write_csv):
    path = write_csv("part-00000.parquet", "this is not parquet")
    with pytest.raises(DataValidationError) as excinfo:
        read_interactions(path)
    assert excinfo.value.file == str(path)


def test_directory_without_shards(tmp_path, write_csv):
    write_csv("readme.txt", "nothing here", tmp_path / "empty")
    with pytest.raises(DatasetNotFoundError, match="no interaction files"):
        read_interactions(tmp_path / "empty")


def test_missing_path(tmp_path):
    with pytest.raises(DatasetNotFoundError):
        read_interactions(tmp_path / "absent")


def test_write_shards_rejects_unknown_format(tmp_path):
    with pytest.raises(ConfigError, match="shard format"):
        write_shards(
            tmp_path / "s", [pd.DataFrame({"user_id": ["a"], "item_id": ["1"]})], fmt="json"
        )


def test_boolean_labels_are_not_0_or_1(tmp_path, write_csv):
    """pandas reads a column of True/False as booleans; a label must be 0 or 1."""
    path = write_csv("inter.csv", "user_id,item_id,label\na,1,True\nb,2,False\n")
    with pytest.raises(DataValidationError) as excinfo:
        read_interactions(path)
    assert (excinfo.value.line, excinfo.value.column) == (2, "label")
    assert str(excinfo.value).endswith("expected 0 or 1, got True")


def test_float_labels_are_0_or_1(tmp_path, write_csv):
    path = write_csv("inter.csv", "user_id,item_id,label\na,1,1.0\nb,2,0.0\nc,3,1\n")
    assert read_interactions(path)["user_id"].tolist() == ["a", "c"]


def test_truncated_gzip_shard_names_the_file(tmp_path):
    path = tmp_path / "shards" / "part-00000.csv.gz"
    path.parent.mkdir()
    path.write_bytes(gzip.compress(b"user_id,item_id\n" + b"a,1\n" * 1000)[:40])
    with pytest.raises(DataValidationError) as excinfo:
        read_interactions(tmp_path / "shards")
    assert excinfo.value.file == str(path)
    assert "the compressed file is truncated or corrupt" in str(excinfo.value)


def test_shard_that_is_a_directory_is_named(tmp_path, write_csv):
    """A directory named like a shard (as some tools write them) is not skipped silently."""
    write_csv("part-00000.csv", "user_id,item_id\na,1\n", tmp_path / "shards")
    (tmp_path / "shards" / "part-00001.parquet").mkdir()
    with pytest.raises(DataValidationError) as excinfo:
        read_interactions(tmp_path / "shards")
    assert excinfo.value.file == str(tmp_path / "shards" / "part-00001.parquet")
    assert str(excinfo.value).endswith("is a directory (expected a file)")
