"""``export`` at scale: streamed runs, ScaNN tuned on the model's vectors, bounded masks.

One tiny streamed run is trained once for the module on a ``generate-data --scale``
set written by the tests (400 users x 1,200 items, about 4k positives in 2
Parquet shards): enough items for a ScaNN tree, few enough to train in seconds.
Its brute-force export is loaded in a fresh process that imports only
``tensorflow``; the expected answers come from the trained model in this process
and from pandas on the split's part files.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from model_fixtures import PROBE_PRELUDE

from tfrs_recsys import cli
from tfrs_recsys.config import load_config
from tfrs_recsys.data.generator_scale import ScaleConfig, write_scale_dataset
from tfrs_recsys.errors import ConfigError
from tfrs_recsys.evaluation.streamed import rows_of_users
from tfrs_recsys.serving import scann_tuning
from tfrs_recsys.serving.export import export_run
from tfrs_recsys.serving.exported import MANIFEST_FILE
from tfrs_recsys.serving.index import ScannIndex
from tfrs_recsys.serving.recommend import recommend
from tfrs_recsys.serving.tables import ServingTables, pair_keys
from tfrs_recsys.serving.tf_serving import ASSETS_EXTRA
from tfrs_recsys.training import run

N = 5
TF_ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


@pytest.fixture(autouse=True)
def _quiet_tensorflow(monkeypatch):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="module")
def streamed_run(tmp_path_factory):
    """A streamed ids run (1 epoch) on 400 users x 1,200 items, its cache, its loaded run."""
    root = tmp_path_factory.mktemp("export-scale")
    data = root / "data"
    write_scale_dataset(
        data, ScaleConfig(users=400, items=1200, positives_per_user=10, seed=5), shard_users=200
    )
    patch = pytest.MonkeyPatch()
    patch.setenv("TFRS_RECSYS_CACHE", str(root / "cache"))
    config = load_config(
        None,
        [
            f"data.source={json.dumps(str(data))}",
            "data.stream=true",
            'data.split="hash-80-20"',
            "data.shuffle_buffer=1000",
            "data.eval_users=100",
            'model.negatives="in_batch"',
            'model.feature_set="ids"',
            "model.output_dim=16",
            "model.id_dim=16",
            "train.epochs=1",
            "train.batch_size=128",
            "train.learning_rate=0.05",
            "train.patience=0",
            "train.refit=false",
        ],
    )
    run.train(config, root / "run", verbose=0)
    yield root, run.load_run(root / "run")
    patch.undo()


def _train_parts(trained) -> pd.DataFrame:
    return pd.concat([pd.read_parquet(f) for f in trained.data.parts.train_files])


@pytest.fixture(scope="module")
def brute_export(streamed_run):
    root, _ = streamed_run
    return export_run(root / "run", root / "exported" / "scale_ids", n=N, warmup=False)


PROBE = (
    PROBE_PRELUDE
    + r"""
model = tf.saved_model.load(sys.argv[1])
users = json.loads(open(sys.argv[2]).read())
answer = plain(model.signatures["serving_default"](user_id=tf.constant(users)))
modules = sorted(m.split(".")[0] for m in sys.modules if m.split(".")[0] in ("tfrs_recsys", "tensorflow_recommenders", "scann"))
open(sys.argv[3], "w").write(json.dumps({"answer": answer, "modules": sorted(set(modules))}))
"""
)


def test_a_streamed_run_exports_and_answers_in_a_clean_process_like_the_model(
    streamed_run, brute_export, tmp_path
):
    _, trained = streamed_run
    assert brute_export.streamed and brute_export.version == 1
    dataset = trained.data.dataset
    train = _train_parts(trained)
    # Users with train items (masked) and one without any, plus an unknown id.
    with_items = sorted(train["user_id"].unique())[:20]
    users = [*with_items, "no-such-user"]
    request, out = tmp_path / "users.json", tmp_path / "answers.json"
    request.write_text(json.dumps(users), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(brute_export.path), str(request), str(out)],
        capture_output=True,
        text=True,
        env=TF_ENV,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    probe = json.loads(out.read_text(encoding="utf-8"))
    assert probe["modules"] == []
    answer = probe["answer"]
    ids, scores = answer["item_ids"]["value"], np.array(answer["scores"]["value"])
    assert answer["known_user"]["value"] == [True] * len(with_items) + [False]

    expected = recommend(trained.model.scorer(), dataset, with_items, n=N, exclude=train)
    for k, user in enumerate(with_items):
        assert ids[k] == [r["item_id"] for r in expected[k]], user
        # float32 sums in another order: scores near zero need an absolute tolerance.
        np.testing.assert_allclose(
            scores[k], [r["score"] for r in expected[k]], rtol=1e-4, atol=1e-6
        )
        seen = set(train.loc[train["user_id"] == user, "item_id"])
        assert seen and not seen & set(ids[k])  # their train items are masked
    # Without the mask the model's top items include train items for some of these users.
    unmasked = recommend(trained.model.scorer(), dataset, with_items, n=N)
    assert any(
        {r["item_id"] for r in unmasked[k]} & set(train.loc[train["user_id"] == u, "item_id"])
        for k, u in enumerate(with_items)
    )
    # The unknown id gets the train popularity ranking (counted by pandas over all parts).
    counts = train["item_id"].value_counts()
    order = pd.DataFrame({"item_id": dataset.table("item").ids})
    order["count"] = order["item_id"].map(counts).fillna(0).astype(int)
    popular = order.sort_values("count", ascending=False, kind="stable")["item_id"][:N]
    assert ids[-1] == popular.tolist()


def test_the_streamed_export_manifest_records_the_mask_from_the_parts(streamed_run, brute_export):
    _, trained = streamed_run
    manifest = json.loads(
        (brute_export.path / ASSETS_EXTRA / MANIFEST_FILE).read_text(encoding="utf-8")
    )
    train = _train_parts(trained)
    stream = manifest["stream"]
    assert stream["train_rows"] == len(train)
    assert stream["masked_pairs"] == len(train.drop_duplicates(["user_id", "item_id"]))
    assert stream["most_masked_for_one_user"] == train.groupby("user_id")["item_id"].nunique().max()
    assert manifest["users"] == trained.data.dataset.n_users
    assert manifest["items"] == 1200 and "scann" not in manifest


def test_scann_is_tuned_on_the_model_and_the_choice_is_in_the_manifest(streamed_run, capsys):
    root, trained = streamed_run
    out = root / "exported" / "scale_scann"
    code = cli.main(
        ["export", "--run-dir", str(root / "run"), "--out", str(out), "-n", str(N), "--no-warmup"]
        + ["--index", "scann", "--scann-recall", "0.9"]
    )
    printed = capsys.readouterr().out
    assert code == 0
    manifest = json.loads((out / "1" / ASSETS_EXTRA / MANIFEST_FILE).read_text(encoding="utf-8"))
    scann = manifest["scann"]
    chosen, grid = scann["chosen"], scann["grid"]
    assert scann["target_recall"] == 0.9 and scann["k"] == 10
    assert scann["sample_users"] == trained.data.dataset.n_users  # fewer than 2,000: all
    assert scann["recall_at_k"] >= 0.9 and scann["saved_model_recall_at_k"] >= 0.9
    assert {row["num_leaves"] for row in grid} == {17, 35, 69}  # sqrt(1200) x 0.5, 1, 2
    reaching = [row for row in grid if row["recall_at_k"] >= 0.9]
    cheapest = min(row["estimated_cost"] for row in reaching)
    picked = [row for row in reaching if all(row[k] == v for k, v in chosen.items())]
    assert len(picked) == 1 and picked[0]["estimated_cost"] == cheapest
    assert picked[0]["recall_at_k"] == scann["recall_at_k"]
    assert f"recall@10 {scann['recall_at_k']:.4f}" in printed
    assert f"num_leaves {chosen['num_leaves']}" in printed


def _clustered(n_items=3000, clusters=30, dim=16, users=400, seed=1):
    """Item and user vectors around shared cluster centres (a catalog with structure)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim)).astype(np.float32)
    items = centres[rng.integers(clusters, size=n_items)] + 0.3 * rng.normal(size=(n_items, dim))
    queries = centres[rng.integers(clusters, size=users)] + 0.3 * rng.normal(size=(users, dim))
    user_rows = np.repeat(np.arange(users), 5)
    item_rows = rng.integers(n_items, size=len(user_rows))
    return ServingTables.from_keys(
        [f"u{i}" for i in range(users)],
        queries.astype(np.float32),
        [f"i{i}" for i in range(n_items)],
        items.astype(np.float32),
        exclude_keys=pair_keys(user_rows, item_rows, n_items),
    )


def test_tuning_on_a_clustered_catalog_reaches_the_target_through_the_serving_index():
    tables = _clustered()
    tuning = scann_tuning.tune_scann(tables, exclude=True, target=0.95, sample_users=300)
    assert tuning.recall >= 0.95 and len(tuning.users) == 300
    # The chosen tree, in the serving index, answers the sample with that recall.
    index = ScannIndex(tables.item_vectors, options=tuning.settings, searcher=tuning.searcher)
    starts = tables.exclude_splits[tuning.users]
    ends = tables.exclude_splits[tuning.users + 1]
    masks = tf.RaggedTensor.from_row_lengths(
        np.concatenate([tables.exclude_items[s:e] for s, e in zip(starts, ends)]), ends - starts
    )
    scores, rows = index.top_k(tf.constant(tables.user_vectors[tuning.users]), 10, masks)
    found = np.where(np.isfinite(scores.numpy()), rows.numpy(), -1)
    assert scann_tuning.recall_at_k(found, tuning.exact) == pytest.approx(tuning.recall)
    # No answer holds a masked item.
    for k, (s, e) in enumerate(zip(starts, ends)):
        assert not set(found[k]) & set(tables.exclude_items[s:e].tolist())
    # The exact answers are the numpy top 10 of the unmasked items.
    user = tuning.users[0]
    scores = tables.item_vectors @ tables.user_vectors[user]
    scores[tables.exclude_items[starts[0] : ends[0]]] = -np.inf
    assert set(tuning.exact[0]) == set(np.argsort(-scores)[:10].tolist())


def test_no_setting_reaching_the_target_is_a_one_line_error_naming_the_best(monkeypatch):
    monkeypatch.setattr(scann_tuning, "SEARCH_FRACTIONS", (0.01,))
    monkeypatch.setattr(scann_tuning, "REORDERS", (10,))
    monkeypatch.setattr(scann_tuning, "LEAF_FACTORS", (2.0,))
    rng = np.random.default_rng(0)
    n = 2000
    tables = ServingTables.build(
        [f"u{i}" for i in range(200)],
        rng.normal(size=(200, 16)).astype(np.float32),
        [f"i{i}" for i in range(n)],
        rng.normal(size=(n, 16)).astype(np.float32),
    )
    with pytest.raises(ConfigError) as error:
        scann_tuning.tune_scann(tables, exclude=False, target=0.99)
    message = str(error.value)
    assert "\n" not in message and "best 0." in message and "--index brute_force" in message


@pytest.mark.parametrize(
    "extra, named",
    [
        (["--index", "scann", "--scann-recall", "0"], "--scann-recall must be in (0, 1]"),
        (["--index", "scann", "--scann-recall", "1.5"], "--scann-recall must be in (0, 1]"),
        (["--index", "scann", "--scann-recall", "nan"], "--scann-recall must be in (0, 1]"),
        (["--scann-recall", "0.9"], "--scann-recall applies to --index scann"),
    ],
)
def test_bad_scann_options_are_one_line_errors_and_write_nothing(
    streamed_run, tmp_path, capsys, extra, named
):
    root, _ = streamed_run
    out = tmp_path / "exported" / "model"
    code = cli.main(["export", "--run-dir", str(root / "run"), "--out", str(out), *extra])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert named in err and len(err.splitlines()) == 1
    assert not (tmp_path / "exported").exists()


def test_a_two_stage_export_of_a_streamed_run_is_refused_in_one_line(streamed_run, tmp_path):
    root, _ = streamed_run
    with pytest.raises(ConfigError) as error:
        export_run(root / "run", tmp_path / "exported" / "m", rerank=root / "run", warmup=False)
    assert "\n" not in str(error.value) and "--rerank" in str(error.value)
    assert not (tmp_path / "exported").exists()


def test_the_mask_is_a_csr_of_distinct_pairs_not_a_users_by_items_matrix():
    # 1M items: the keys and the CSR grow with the pairs only.
    n_users, n_items = 50, 1_000_000
    rng = np.random.default_rng(0)
    users = rng.integers(n_users, size=5000)
    items = rng.integers(n_items, size=5000)
    tables = ServingTables.from_keys(
        [f"u{i}" for i in range(n_users)],
        np.zeros((n_users, 2), np.float32),
        [f"i{i}" for i in range(n_items)],
        np.zeros((n_items, 2), np.float32),
        exclude_keys=np.concatenate([pair_keys(users, items, n_items)] * 2),  # duplicates
    )
    pairs = sorted(set(zip(users.tolist(), items.tolist())))
    assert len(tables.exclude_items) == len(pairs)
    for user in range(n_users):
        mine = [i for u, i in pairs if u == user]
        got = tables.exclude_items[tables.exclude_splits[user] : tables.exclude_splits[user + 1]]
        assert got.tolist() == mine  # sorted, distinct


def test_streamed_exclusions_equal_the_rows_of_the_sampled_users(streamed_run, brute_export):
    _, trained = streamed_run
    loaded = tf.saved_model.load(str(brute_export.path))
    users = list(trained.data.split.train["user_id"].unique()[:10])
    answer = loaded.signatures["recommend_k"](
        user_id=tf.constant(users), k=tf.constant(1200, tf.int32)
    )
    returned = answer["item_ids"].numpy().astype(str)
    rows = rows_of_users(trained.data.parts.train_files, users)
    for k, user in enumerate(users):
        seen = set(rows.loc[rows["user_id"] == user, "item_id"])
        got = {i for i in returned[k] if i}
        # Every catalog item is returned except exactly the user's train items.
        assert len(got) == 1200 - len(seen) and not got & seen
