"""The streamed tf.data pipeline over train shards, with the in-graph feature join.

The train shards are written by the tests (a few hundred rows in several part
files); expected rows and features come from pandas on the same files.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from test_stream_split import TOML, TOML_WITH_TABLES, events_frame, feature_tables, write_dataset

from tfrs_recsys.data.declared_memory import load_declared
from tfrs_recsys.data.stream_pipeline import (
    FeatureJoin,
    check_ids_known,
    load_feature_tables,
    shard_files,
    stream_dataset,
)
from tfrs_recsys.data.stream_split import split_declared
from tfrs_recsys.data.stream_stats import compute_stream_stats
from tfrs_recsys.errors import ConfigError, DataValidationError


@pytest.fixture(scope="module")
def split_dir(tmp_path_factory) -> tuple[Path, Path]:
    """A declared dataset with feature tables and its hash split (train in 6 parts)."""
    root = tmp_path_factory.mktemp("stream")
    data = write_dataset(
        root / "data",
        events_frame(n=700, users=60, items=30),
        shards=2,
        toml=TOML_WITH_TABLES,
        tables=feature_tables(),
    )
    split = split_declared(data, root / "split", rows_per_part=100)
    assert len(split.train_files) == 6
    return data, root / "split"


def train_rows(split: Path) -> pd.DataFrame:
    files = sorted((split / "train").glob("part-*.parquet"))
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


def epoch_rows(iterator, n_batches: int) -> list[tuple[str, str]]:
    rows = []
    for _ in range(n_batches):
        batch = next(iterator)
        rows += list(
            zip(
                [u.decode() for u in batch["user_id"].numpy()],
                [i.decode() for i in batch["item_id"].numpy()],
            )
        )
    return rows


def pairs(frame: pd.DataFrame) -> list[tuple[str, str]]:
    return list(zip(frame["user_id"], frame["item_id"]))


def test_every_row_once_per_epoch_reshuffled_deterministically(split_dir):
    _, split = split_dir
    expected = Counter(pairs(train_rows(split)))
    n = sum(expected.values())
    batch_size = 64
    n_batches = -(-n // batch_size)

    def epochs(seed: int, count: int = 2) -> list[list[tuple[str, str]]]:
        dataset = stream_dataset(
            split, batch_size=batch_size, shuffle_buffer=150, seed=seed, read_rows=40
        )
        # Each iteration of the dataset is one epoch (as Keras iterates it).
        found = []
        for _ in range(count):
            batches = list(dataset)
            assert len(batches) == n_batches
            found.append(
                [
                    (u.decode(), i.decode())
                    for b in batches
                    for u, i in zip(b["user_id"].numpy(), b["item_id"].numpy())
                ]
            )
        return found

    first, second = epochs(5)
    assert Counter(first) == expected and Counter(second) == expected
    assert first != second  # reshuffled
    assert epochs(5) == [first, second]  # the same sequence of epochs for the same seed
    assert epochs(6)[0] != first
    # The shuffle mixes files: the first batch holds rows of several train parts.
    parts = {
        row: p
        for p, f in enumerate(sorted((split / "train").iterdir()))
        for row in pairs(pd.read_parquet(f))
    }
    assert len({parts[row] for row in first[:batch_size]}) >= 3
    # Without shuffling: file order, row order.
    ordered = stream_dataset(split, batch_size=batch_size, shuffle=False)
    assert epoch_rows(iter(ordered), n_batches) == pairs(train_rows(split))


def test_worker_shards_are_disjoint_and_cover_every_file(split_dir):
    _, split = split_dir
    files = sorted((split / "train").glob("part-*.parquet"))
    shares = [shard_files(files, num_shards=4, index=i) for i in range(4)]
    assert [len(s) for s in shares] == [2, 2, 1, 1]
    assert sorted(f for s in shares for f in s) == files
    contexts = [
        shard_files(files, input_context=tf.distribute.InputContext(3, i, 1)) for i in range(3)
    ]
    assert contexts == [files[0::3], files[1::3], files[2::3]]
    # The rows of the workers' pipelines: disjoint multisets adding up to the train rows.
    rows = Counter()
    for index in range(3):
        dataset = stream_dataset(split, batch_size=50, num_shards=3, shard_index=index, seed=index)
        share = Counter(
            (u.decode(), i.decode())
            for b in dataset
            for u, i in zip(b["user_id"].numpy(), b["item_id"].numpy())
        )
        expected = Counter(
            pairs(pd.concat([pd.read_parquet(f) for f in files[index::3]], ignore_index=True))
        )
        assert share == expected
        rows += share
    assert rows == Counter(pairs(train_rows(split)))
    with pytest.raises(ConfigError, match="6 train file\\(s\\) for 7 workers"):
        shard_files(files, num_shards=7, index=0)
    with pytest.raises(ConfigError, match="shard index 3 of 3"):
        shard_files(files, num_shards=3, index=3)


def test_joined_features_equal_a_pandas_merge(split_dir):
    data, split = split_dir
    stats = compute_stream_stats(split, data)
    users, items = load_feature_tables(data, stats)
    check_ids_known(stats, users, items)
    join = FeatureJoin(users, items)
    dataset = stream_dataset(split, batch_size=128, features=join, seed=3)
    batches = list(dataset)
    got = pd.DataFrame(
        {name: np.concatenate([b[name].numpy() for b in batches]) for name in batches[0]}
    )
    assert sorted(got.columns) == sorted(["user_id", "item_id", "age", "city", "price", "title"])
    for name in ("user_id", "item_id", "city", "title"):
        got[name] = got[name].map(bytes.decode)
    assert got["age"].dtype == np.float32 and got["price"].dtype == np.float32
    tables = feature_tables()
    expected = (
        train_rows(split)[["user_id", "item_id"]]
        .merge(tables["users.parquet"].rename(columns={"customer": "user_id"}), on="user_id")
        .merge(tables["items.parquet"].rename(columns={"sku": "item_id"}), on="item_id")
    )
    expected = expected.astype({"age": np.float32, "price": np.float32})
    order = ["user_id", "item_id", "age", "city", "price", "title"]
    sort = lambda frame: frame[order].sort_values(order).reset_index(drop=True)  # noqa: E731
    pd.testing.assert_frame_equal(sort(got), sort(expected), check_dtype=False)
    # Selected columns only.
    narrow = FeatureJoin(users, items, user_columns=["user_id"], item_columns=["item_id", "price"])
    first = next(iter(stream_dataset(split, batch_size=8, features=narrow)))
    assert sorted(first) == ["item_id", "price", "user_id"]


def test_an_unknown_id_is_an_error_not_a_default_row(split_dir):
    data, split = split_dir
    stats = compute_stream_stats(split)
    users, items = load_feature_tables(data, stats)
    # An item table without the train's most frequent item.
    missing = stats.item_ids[0]
    keep = items.ids != missing
    fewer = type(items)(items.side, items.features, {k: v[keep] for k, v in items.columns.items()})
    with pytest.raises(DataValidationError) as error:
        check_ids_known(stats, users, fewer)
    assert str(error.value) == (
        f"1 item id(s) of the train shards are not in the item feature table, e.g. {missing!r}"
    )
    dataset = stream_dataset(split, batch_size=1000, features=FeatureJoin(users, fewer))
    with pytest.raises(
        tf.errors.InvalidArgumentError,
        match=f"item id\\(s\\) of the train shards are not in the item feature table; "
        f"first unknown:.*{missing}",
    ):
        list(dataset)


def test_ids_only_tables_come_from_the_stats_and_bad_files_are_refused(tmp_path):
    data = write_dataset(tmp_path / "d", events_frame(n=200), toml=TOML)
    split = split_declared(data, tmp_path / "s", rows_per_part=50)
    stats = compute_stream_stats(split)
    users, items = load_feature_tables(data, stats)
    assert list(users.columns) == ["user_id"] and list(items.ids) == list(stats.item_ids)
    with pytest.raises(ConfigError, match="no \\[users\\] table; pass the split"):
        load_feature_tables(data)
    # The split lists every kept row's ids, first appearance first: the in-memory catalog.
    memory = load_declared(data)
    users, items = load_feature_tables(data, split=split)
    assert list(users.ids) == memory.users["user_id"].tolist()
    assert list(items.ids) == memory.items["item_id"].tolist()
    first = next(iter(stream_dataset(split, batch_size=16, features=FeatureJoin(users, items))))
    assert sorted(first) == ["item_id", "user_id"]
    bad = tmp_path / "bad.parquet"
    pd.DataFrame({"user": ["a"], "item_id": ["b"]}).to_parquet(bad, index=False)
    with pytest.raises(DataValidationError) as error:
        stream_dataset([bad])
    assert str(error.value) == (
        f"{bad}: no column 'user_id' (expected a train shard with columns 'user_id', "
        "'item_id'); the file has user, item_id"
    )
    with pytest.raises(ConfigError, match="batch_size must be at least 1"):
        stream_dataset(split, batch_size=0)


def test_declared_weights_come_with_the_batches(tmp_path):
    toml = TOML.replace('timestamp = "ts"', 'weight = "qty"')
    events = events_frame(n=120).assign(qty=np.arange(120) % 7 + 0.5)
    data = write_dataset(tmp_path / "d", events, toml=toml, shards=2)
    split = split_declared(data, tmp_path / "s", rows_per_part=30)
    batches = list(stream_dataset(split, batch_size=25, shuffle=False))
    got = np.concatenate([b["weight"].numpy() for b in batches])
    assert batches[0]["weight"].dtype == tf.float32
    np.testing.assert_array_equal(got, train_rows(tmp_path / "s")["weight"].to_numpy(np.float32))
    assert sorted(batches[0]) == ["item_id", "user_id", "weight"]
    # Not asked for: not carried.
    first = next(iter(stream_dataset(split, batch_size=25, columns=())))
    assert sorted(first) == ["item_id", "user_id"]
