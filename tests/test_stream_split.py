"""Streamed splits and train statistics of declared datasets (no TensorFlow).

Every dataset is written by the test into ``tmp_path`` (a few thousand rows at
most); expected values are computed independently with pandas / numpy on the
same rows, or worked out by hand.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tfrs_recsys.data import stream_split
from tfrs_recsys.data.declared_memory import load_declared
from tfrs_recsys.data.stream_split import (
    fnv1a64,
    hash_fraction,
    read_split,
    split_declared,
    splitmix64,
)
from tfrs_recsys.data.stream_stats import StreamStats, compute_stream_stats
from tfrs_recsys.errors import ConfigError, DataValidationError

KEY = ["user_id", "item_id"]

TOML = """
[interactions]
path = "events"
user_id = "customer"
item_id = "sku"
timestamp = "ts"
"""

TOML_WITH_TABLES = (
    TOML
    + """
[users]
path = "users.parquet"
id = "customer"
[users.columns]
age = "numeric"
city = "categorical"

[items]
path = "items.parquet"
id = "sku"
[items.columns]
price = { role = "numeric", log = true }
title = "text"
"""
)


def events_frame(n: int = 3000, users: int = 150, items: int = 80, seed: int = 0) -> pd.DataFrame:
    """Random events with repeated pairs (``n`` draws over ``users x items``) and timestamps."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "customer": [f"u{u}" for u in rng.integers(0, users, n)],
            "sku": [f"i{i}" for i in rng.integers(0, items, n)],
            "ts": rng.integers(1_000, 2_000, n).astype(np.int64),
        }
    )
    return frame


def feature_tables(users: int = 150, items: int = 80) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(1)
    return {
        "users.parquet": pd.DataFrame(
            {
                "customer": [f"u{u}" for u in range(users)],
                "age": rng.integers(18, 80, users).astype(np.float64),
                "city": rng.choice(["Paris", "Berlin", "Rome"], users),
            }
        ),
        "items.parquet": pd.DataFrame(
            {
                "sku": [f"i{i}" for i in range(items)],
                "price": rng.uniform(1, 500, items),
                "title": [f"title {i}" for i in range(items)],
            }
        ),
    }


def write_dataset(
    directory: Path,
    events: pd.DataFrame,
    *,
    shards: int = 1,
    toml: str = TOML,
    tables: dict[str, pd.DataFrame] | None = None,
    fmt: str = "parquet",
) -> Path:
    """``events`` cut into ``shards`` consecutive shards under ``directory/events``."""
    (directory / "events").mkdir(parents=True)
    for index, part in enumerate(np.array_split(np.arange(len(events)), shards)):
        frame = events.iloc[part]
        path = directory / "events" / f"part-{index:05d}.{fmt}"
        if fmt == "parquet":
            frame.to_parquet(path, index=False)
        else:
            frame.to_csv(path, index=False)
    for name, frame in (tables or {}).items():
        frame.to_parquet(directory / name, index=False)
    (directory / "dataset.toml").write_text(toml, encoding="utf-8")
    return directory


def side(split, name: str) -> pd.DataFrame:
    files = split.files(name)
    if not files:
        return pd.DataFrame(columns=split.manifest["columns"])
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


def canonical(events: pd.DataFrame) -> pd.DataFrame:
    return events.rename(columns={"customer": "user_id", "sku": "item_id", "ts": "timestamp"})


def multiset(frame: pd.DataFrame, columns=("user_id", "item_id", "timestamp")) -> list[tuple]:
    return sorted(map(tuple, frame[list(columns)].astype(str).to_numpy().tolist()))


# --- Hashing ------------------------------------------------------------------------------------


def test_hash_functions_match_the_published_reference_values():
    # FNV-1a 64: offset basis for "", and the published vectors for "a" and "foobar".
    assert fnv1a64(["", "a", "foobar"]).tolist() == [
        0xCBF29CE484222325,
        0xAF63DC4C8601EC8C,
        0x85944171F73967E8,
    ]
    # splitmix64 from state 0 and 1 (its first outputs; the reference C code).
    assert splitmix64(np.array([0, 1], dtype=np.uint64)).tolist() == [
        0xE220A8397B1DCDAF,
        0x910A2DEC89025CC1,
    ]
    # Non-ASCII ids hash their UTF-8 bytes: "é" is 0xC3 0xA9.
    basis, prime = 0xCBF29CE484222325, 0x100000001B3
    expected = (((basis ^ 0xC3) * prime % 2**64) ^ 0xA9) * prime % 2**64
    assert fnv1a64(["é"]).tolist() == [expected]
    # A pandas Series (Arrow-backed) and a slice of it hash like the plain strings.
    series = pd.Series(["x", "foobar", "a", "b"])
    assert fnv1a64(series.iloc[1:3]).tolist() == fnv1a64(["foobar", "a"]).tolist()


# --- hash-80-20 ---------------------------------------------------------------------------------


def test_hash_split_is_deterministic_about_20_percent_and_keeps_pairs_together(tmp_path):
    events = events_frame()
    data = write_dataset(tmp_path / "data", events, shards=2)
    first = split_declared(data, tmp_path / "a", seed=7, rows_per_part=700)
    again = split_declared(data, tmp_path / "b", seed=7, batch_rows=256)
    holdout, train = side(first, "holdout"), side(first, "train")
    # Same rows, same order, whatever the batch size and the part size.
    pd.testing.assert_frame_equal(holdout, side(again, "holdout"))
    pd.testing.assert_frame_equal(train, side(again, "train"))
    assert len(first.train_files) == -(-len(train) // 700) > 1
    # Every positive lands on exactly one side.
    assert multiset(pd.concat([train, holdout])) == multiset(canonical(events))
    # The rows are the hash's: fraction < 0.2 exactly for the holdout rows.
    assert (hash_fraction(holdout["user_id"], holdout["item_id"], 7) < 0.2).all()
    assert (hash_fraction(train["user_id"], train["item_id"], 7) >= 0.2).all()
    # The hash treats a repeated pair as one draw: with P distinct pairs, the held-out
    # distinct pairs are Binomial(P, 0.2); P ~ 3000 draws over 12,000 cells gives ~2,660
    # pairs, sd = sqrt(P * 0.2 * 0.8) ~ 21, and 5 sd ~ 105: the bound below fails with
    # probability < 1e-6 for a hash that behaves like a uniform draw.
    pairs = events.drop_duplicates(["customer", "sku"])
    held_pairs = holdout.drop_duplicates(KEY)
    n_pairs = len(pairs)
    assert abs(len(held_pairs) - 0.2 * n_pairs) < 5 * np.sqrt(n_pairs * 0.16)
    # No pair is on both sides.
    both = train.merge(holdout, on=KEY)
    assert both.empty
    # Another seed: another holdout.
    other = split_declared(data, tmp_path / "c", seed=8)
    assert multiset(side(other, "holdout")) != multiset(holdout)


def test_hash_split_does_not_depend_on_the_shard_layout(tmp_path):
    events = events_frame(n=1200)
    one = split_declared(write_dataset(tmp_path / "one", events, shards=1), tmp_path / "s1")
    three = split_declared(write_dataset(tmp_path / "three", events, shards=3), tmp_path / "s3")
    csv = split_declared(
        write_dataset(tmp_path / "csv", events, shards=3, fmt="csv"), tmp_path / "s4", batch_rows=50
    )
    for name in ("train", "holdout"):
        assert multiset(side(one, name)) == multiset(side(three, name))
        # Shard and file order are kept, so the concatenations are equal row by row.
        pd.testing.assert_frame_equal(side(one, name), side(three, name))
        pd.testing.assert_frame_equal(side(one, name), side(csv, name))


# --- leave-last-out -----------------------------------------------------------------------------


def test_leave_last_out_holds_out_each_users_latest_row(tmp_path):
    events = pd.DataFrame(
        [
            ("a", "i1", 10),
            ("a", "i3", 20),  # latest, tie on 20 with i2: the larger item id (i3) goes
            ("b", "i1", 5),  # one positive: stays in train
            ("a", "i2", 20),
            ("c", "i1", 5),  # two copies of the one latest row: both stay in train
            ("c", "i1", 5),
            ("d", "i5", 3),
            ("d", "i2", 7),  # latest
            ("d", "i1", 7),
            ("e", "i9", 1),
            ("e", "i9", 9),  # latest: the same item, later
        ],
        columns=["customer", "sku", "ts"],
    )
    data = write_dataset(tmp_path / "data", events, shards=2)
    split = split_declared(data, tmp_path / "llo", "leave-last-out", batch_rows=2)
    holdout = side(split, "holdout")
    assert multiset(holdout) == [("a", "i3", "20"), ("d", "i2", "7"), ("e", "i9", "9")]
    assert len(side(split, "train")) == len(events) - 3
    assert split.manifest["users"] == {"train": 5, "holdout": 3, "all": 5}


def test_leave_last_out_matches_a_pandas_reference_on_random_data(tmp_path):
    events = events_frame(n=2500, users=300, items=40)
    data = write_dataset(tmp_path / "data", events, shards=3)
    # batch_rows = 97: the per-user partial rows are merged across many batches.
    split = split_declared(data, tmp_path / "llo", "leave-last-out", batch_rows=97)
    frame = canonical(events)
    latest = frame.sort_values(["user_id", "timestamp", "item_id"]).groupby("user_id").tail(1)
    at_latest = frame.merge(latest, on=["user_id", "item_id", "timestamp"], how="inner")
    counts = frame.groupby("user_id").size()
    counts_latest = at_latest.groupby("user_id").size()
    eligible = counts[counts > counts_latest.reindex(counts.index, fill_value=0)].index
    expected = at_latest[at_latest["user_id"].isin(eligible)]
    assert multiset(side(split, "holdout")) == multiset(expected)
    assert len(side(split, "train")) + len(expected) == len(events)


def test_leave_last_out_and_time_split_need_a_timestamp(tmp_path):
    toml = TOML.replace('timestamp = "ts"\n', "")
    data = write_dataset(tmp_path / "data", events_frame(n=50), toml=toml)
    for name in ("leave-last-out", "time-80-20"):
        with pytest.raises(ConfigError, match=f"the {name} split needs a timestamp column"):
            split_declared(data, tmp_path / name, name)
    with pytest.raises(ConfigError, match="unknown split 'random'; choose one of hash-80-20"):
        split_declared(data, tmp_path / "x", "random")


# --- time-80-20 ---------------------------------------------------------------------------------


def test_time_split_cuts_at_the_80th_percentile(tmp_path):
    events = events_frame(n=2000)
    data = write_dataset(tmp_path / "data", events, shards=2)
    split = split_declared(data, tmp_path / "t", "time-80-20", batch_rows=300)
    stamps = np.sort(events["ts"].to_numpy())
    # The smallest timestamp with at least 80% of the rows at or below it.
    exact = int(stamps[int(np.ceil(0.8 * len(stamps))) - 1])
    assert split.manifest["cutoff"] == exact
    assert split.manifest["cutoff_exact"] is True
    holdout, train = side(split, "holdout"), side(split, "train")
    assert (holdout["timestamp"] > exact).all() and (train["timestamp"] <= exact).all()
    assert len(holdout) == int((events["ts"] > exact).sum())
    # A sample of 400 of the 2000 rows: approximate, rank error ~ sqrt(0.16 / 400) = 0.02.
    sampled = split_declared(
        data, tmp_path / "t2", "time-80-20", time_sample_rows=400, batch_rows=300
    )
    assert sampled.manifest["cutoff_sample_rows"] == 400
    assert sampled.manifest["cutoff_exact"] is False
    share = float((events["ts"] <= sampled.manifest["cutoff"]).mean())
    assert abs(share - 0.8) < 5 * 0.02


# --- The declaration's rules --------------------------------------------------------------------


RULES_TOML = """
missing_features = "drop"
[interactions]
path = "events"
user_id = "customer"
item_id = "sku"
timestamp = "when"
weight = "qty"
rating = "stars"
min_rating = 4

[users]
path = "users.parquet"
id = "customer"
[users.columns]
age = "numeric"
"""


def test_rating_rules_missing_features_and_values_follow_the_in_memory_loader(tmp_path):
    events = pd.DataFrame(
        {
            "customer": ["u1", "u2", "u3", "ghost", "u1", "u2", "u3", "u1"],
            "sku": ["a", "b", "c", "a", "b", "c", "a", "c"],
            "when": [
                "2024-03-01T12:30:00Z",
                "2024-03-01T12:30:00Z",
                "2024-03-02",
                "2024-03-01T00:00:00Z",
                "2024-03-04T10:00:00.7Z",
                "2024-03-05T00:00:00+01:00",
                "2024-03-06T01:02:03+02:00",
                "2024-03-07",
            ],
            "qty": ["1", "2", "0.5", "1", "3", "1", "2", "1"],
            "stars": ["5", "3", "4", "5", "4.5", "1", "4", "2"],
            "extra": list("abcdefgh"),
        }
    )
    users = {"users.parquet": pd.DataFrame({"customer": ["u1", "u2", "u3"], "age": [1.0, 2, 3]})}
    data = write_dataset(
        tmp_path / "data", events, shards=2, fmt="csv", toml=RULES_TOML, tables=users
    )
    split = split_declared(data, tmp_path / "s", batch_rows=3)
    memory = load_declared(data)
    streamed = pd.concat([side(split, "train"), side(split, "holdout")], ignore_index=True)
    # Same positives (stars >= 4, ghost dropped), same converted timestamps and weights.
    assert sorted(streamed.columns) == ["item_id", "timestamp", "user_id", "weight"]
    expected = memory.interactions[["user_id", "item_id", "timestamp", "weight"]]
    assert multiset(streamed, expected.columns) == multiset(expected, expected.columns)
    assert len(streamed) == 4
    assert split.manifest["dropped_rows"] == {"unknown user": 1, "unknown item": 0}
    assert split.manifest["raw_rows"] == 8
    assert split.manifest["positives"] == 4
    assert split.manifest["min_rating"] == 4.0
    # The side without a feature table lists every kept row's ids (non-positives too).
    assert split.manifest["id_files"] == {"item": "item_ids.parquet"}
    assert split.ids("item") == memory.items["item_id"].tolist() == ["a", "b", "c"]
    assert split.ids("user") is None


def test_label_rule_and_errors_name_file_line_and_column(tmp_path):
    toml = TOML.replace('timestamp = "ts"', 'label = "clicked"')
    events = pd.DataFrame(
        {"customer": ["u1", "u2", "u3", "u4", "u5"], "sku": ["a"] * 5, "clicked": [1, 0, 1, 1, 0]}
    )
    data = write_dataset(tmp_path / "ok", events, toml=toml)
    split = split_declared(data, tmp_path / "s")
    both = pd.concat([side(split, "train"), side(split, "holdout")])
    assert sorted(both["user_id"]) == ["u1", "u3", "u4"]
    # A bad label in the second CSV batch: the message names the file's line 5.
    bad = events.astype({"clicked": str})
    bad.loc[3, "clicked"] = "yes"
    data = write_dataset(tmp_path / "bad", bad, toml=toml, fmt="csv")
    with pytest.raises(DataValidationError) as error:
        split_declared(data, tmp_path / "s2", batch_rows=2)
    file = data / "events" / "part-00000.csv"
    assert str(error.value) == f"{file}, line 5, column 'clicked': expected 0 or 1, got 'yes'"
    assert not (tmp_path / "s2").exists()


def test_missing_features_error_counts_rows_over_all_shards(tmp_path):
    toml = TOML_WITH_TABLES
    events = events_frame(n=40, users=10, items=5)
    events.loc[[3, 30, 31], "customer"] = ["v1", "v1", "v2"]  # in both shards
    data = write_dataset(tmp_path / "d", events, shards=2, toml=toml, tables=feature_tables())
    with pytest.raises(DataValidationError) as error:
        split_declared(data, tmp_path / "s")
    message = str(error.value)
    assert message.startswith(
        f"{data / 'dataset.toml'}: 2 distinct user id(s) of the interactions (column "
        f"'customer', 3 row(s)) are not in {data / 'users.parquet'} (id column 'customer'), "
        "e.g. 'v1', 'v2';"
    )
    with pytest.raises(DataValidationError) as memory_error:
        load_declared(data)
    assert str(memory_error.value) == message
    assert not (tmp_path / "s").exists()


def test_no_positive_is_the_loaders_error(tmp_path):
    toml = TOML.replace('timestamp = "ts"', 'label = "clicked"')
    events = pd.DataFrame({"customer": ["u1", "u2"], "sku": ["a", "b"], "clicked": [0, 0]})
    data = write_dataset(tmp_path / "d", events, toml=toml)
    with pytest.raises(DataValidationError) as error:
        split_declared(data, tmp_path / "s")
    with pytest.raises(DataValidationError) as memory_error:
        load_declared(data)
    assert str(error.value) == str(memory_error.value)
    assert "no positive interactions: no row of 2 has clicked = 1" in str(error.value)


@pytest.mark.parametrize("problem", ["missing column", "empty parquet", "empty csv"])
def test_bad_shards_give_the_declarations_one_line_errors(tmp_path, problem):
    events = events_frame(n=30)
    fmt = "csv" if problem == "empty csv" else "parquet"
    data = write_dataset(tmp_path / "d", events, shards=2, fmt=fmt)
    second = data / "events" / f"part-00001.{fmt}"
    if problem == "missing column":
        events.drop(columns=["ts"]).to_parquet(second, index=False)
        expected = f"{second}: lacks column 'ts' that the first shard "
    elif problem == "empty parquet":
        events.iloc[:0].to_parquet(second, index=False)
        expected = f"{second}: the file has no rows (expected data rows)"
    else:
        second.write_text("customer,sku,ts\n", encoding="utf-8")
        expected = f"{second}: the file has a header but no data rows"
    with pytest.raises(DataValidationError) as error:
        split_declared(data, tmp_path / "s")
    assert str(error.value).startswith(expected)
    assert "\n" not in str(error.value)
    assert not (tmp_path / "s").exists()


# --- Output -------------------------------------------------------------------------------------


def test_split_json_describes_the_split_and_its_sources(tmp_path):
    events = events_frame(n=500)
    data = write_dataset(tmp_path / "d", events, shards=2)
    split = split_declared(data, tmp_path / "s", seed=3, rows_per_part=150)
    manifest = json.loads((tmp_path / "s" / "split.json").read_text())
    assert manifest == split.manifest == read_split(tmp_path / "s").manifest
    train, holdout = side(split, "train"), side(split, "holdout")
    assert manifest["split"] == "hash-80-20" and manifest["seed"] == 3
    assert manifest["rows"] == {"train": len(train), "holdout": len(holdout)}
    assert manifest["positives"] == manifest["raw_rows"] == 500
    assert manifest["users"] == {
        "train": train["user_id"].nunique(),
        "holdout": holdout["user_id"].nunique(),
        "all": events["customer"].nunique(),
    }
    assert manifest["columns"] == ["user_id", "item_id", "timestamp"]
    assert manifest["parts"]["train"] == [
        f"part-{i:05d}.parquet" for i in range(-(-len(train) // 150))
    ]
    shards = sorted((data / "events").iterdir())
    assert manifest["sources"] == [
        {"path": str(f), "bytes": os.stat(f).st_size, "mtime": os.stat(f).st_mtime} for f in shards
    ]
    assert manifest["dropped_rows"] is None and manifest["min_rating"] is None
    # The files are Parquet with the canonical types.
    import pyarrow.parquet as pq

    schema = pq.read_schema(split.train_files[0])
    assert [(f.name, str(f.type)) for f in schema] == [
        ("user_id", "string"),
        ("item_id", "string"),
        ("timestamp", "int64"),
    ]


def test_a_failure_mid_way_leaves_no_split(tmp_path, monkeypatch):
    data = write_dataset(tmp_path / "d", events_frame(n=600), shards=3)
    opened = []
    real = stream_split._open_part

    def failing(path, schema):
        opened.append(path)
        if len(opened) == 2:
            raise OSError("disk full (simulated)")
        return real(path, schema)

    monkeypatch.setattr(stream_split, "_open_part", failing)
    with pytest.raises(OSError, match="simulated"):
        split_declared(data, tmp_path / "s", rows_per_part=100)
    assert len(opened) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]  # no out_dir, no staging
    # An existing split is replaced only by a complete one.
    monkeypatch.setattr(stream_split, "_open_part", real)
    first = split_declared(data, tmp_path / "s")
    opened.clear()
    monkeypatch.setattr(stream_split, "_open_part", failing)
    with pytest.raises(OSError):
        split_declared(data, tmp_path / "s", seed=9, overwrite=True)
    assert read_split(tmp_path / "s").manifest == first.manifest
    with pytest.raises(ConfigError, match="exists and is not empty"):
        split_declared(data, tmp_path / "s")


# --- Statistics ---------------------------------------------------------------------------------


def test_stream_stats_equal_pandas_on_the_train_rows(tmp_path):
    events = events_frame(n=2000)
    tables = feature_tables()
    data = write_dataset(tmp_path / "d", events, shards=3, toml=TOML_WITH_TABLES, tables=tables)
    split = split_declared(data, tmp_path / "s", rows_per_part=400)
    stats = compute_stream_stats(tmp_path / "s", data, batch_rows=128)
    train = side(split, "train")
    assert stats.n_rows == len(train)
    for name, ids, counts in (
        ("user_id", stats.user_ids, stats.user_counts),
        ("item_id", stats.item_ids, stats.item_counts),
    ):
        expected = train[name].value_counts().reset_index()
        expected.columns = ["id", "n"]
        expected = expected.sort_values(["n", "id"], ascending=[False, True])
        assert list(ids) == expected["id"].tolist()
        assert counts.tolist() == expected["n"].tolist()
    assert stats.n_users == train["user_id"].nunique()
    assert stats.n_items == train["item_id"].nunique()
    item_order = tables["items.parquet"]["sku"].to_numpy()
    assert stats.counts_for("item", item_order).tolist() == [
        float((train["item_id"] == i).sum()) for i in item_order
    ]
    assert np.isclose(stats.item_frequencies().sum(), 1.0)
    # Numeric features over the train entities, after the declared transform.
    users = tables["users.parquet"].set_index("customer").loc[train["user_id"].unique()]
    items = tables["items.parquet"].set_index("sku").loc[train["item_id"].unique()]
    age = users["age"].to_numpy(np.float32).astype(np.float64)
    price = np.log1p(items["price"].to_numpy(np.float32)).astype(np.float32).astype(np.float64)
    assert stats.numeric["user"]["age"].mean == pytest.approx(age.mean(), rel=1e-12)
    assert stats.numeric["user"]["age"].variance == pytest.approx(age.var(), rel=1e-12)
    assert stats.numeric["user"]["age"].count == len(age)
    assert stats.numeric["item"]["price"].mean == pytest.approx(price.mean(), rel=1e-12)
    assert stats.numeric["item"]["price"].variance == pytest.approx(price.var(), rel=1e-12)
    assert stats.numeric["item"]["price"].transform == "log1p"
    assert "city" not in stats.numeric["user"]
    # JSON round trip.
    loaded = StreamStats.load(stats.save(tmp_path / "stats.json"))
    assert loaded.to_json() == stats.to_json()
    assert loaded.user_counts.dtype == np.int64


def test_stream_stats_refuse_a_file_without_ids(tmp_path):
    path = tmp_path / "part.parquet"
    pd.DataFrame({"user_id": ["a"], "sku": ["b"]}).to_parquet(path, index=False)
    with pytest.raises(DataValidationError) as error:
        compute_stream_stats([path])
    assert str(error.value) == (
        f"{path}: no column 'item_id' (expected a train shard with columns 'user_id', "
        "'item_id'); the file has user_id, sku"
    )
