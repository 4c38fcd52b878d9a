"""Evaluation over every user in blocks (``evaluate_tasks``, ``evaluate --all-users``).

The blocked figures must be those of one task of all users: the same users,
means, recall curve, per-segment figures, coverage and popularity bins.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from tfrs_recsys.data.declared import read_declaration
from tfrs_recsys.data.generator_scale import ScaleConfig, write_scale_dataset
from tfrs_recsys.data.stream_pipeline import load_feature_tables
from tfrs_recsys.errors import ConfigError, DataValidationError, NothingToEvaluateError
from tfrs_recsys.evaluation.blocks import UserBlocks, block_tasks, evaluate_all_users, user_blocks
from tfrs_recsys.evaluation.protocol import EvaluationTask, evaluate, evaluate_tasks
from tfrs_recsys.evaluation.streamed import sample_task, tables_dataset, user_hash
from tfrs_recsys.training.streamed import cached_split, cached_stats


def _parts(files) -> pd.DataFrame:
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


@pytest.fixture(scope="module")
def split_and_tables(tmp_path_factory):
    root = tmp_path_factory.mktemp("blocks")
    data = root / "data"
    write_scale_dataset(
        data, ScaleConfig(users=500, items=60, positives_per_user=8, seed=5), shard_users=150
    )
    patch = pytest.MonkeyPatch()
    patch.setenv("TFRS_RECSYS_CACHE", str(root / "cache"))
    declaration = read_declaration(data)
    split, _ = cached_split(declaration, "hash-80-20", seed=42)
    users, items = load_feature_tables(declaration, split=split)
    dataset = tables_dataset(declaration.schema(), users, items)
    yield root, data, declaration, split, dataset
    patch.undo()


def _random_scorer(n_users: int, n_items: int, seed: int = 0):
    scores = np.random.default_rng(seed).standard_normal((n_users, n_items)).astype(np.float32)
    return lambda rows: scores[np.asarray(rows)]


def _same(blocked, whole) -> None:
    assert blocked.users == whole.users
    assert blocked.metrics.keys() == whole.metrics.keys()
    for key, value in whole.metrics.items():
        assert blocked.metrics[key] == pytest.approx(value, abs=1e-12), key
    for key, value in whole.standard_errors.items():
        assert blocked.standard_errors[key] == pytest.approx(value, abs=1e-12), key
    np.testing.assert_allclose(blocked.recall_curve, whole.recall_curve, atol=1e-12)
    assert blocked.per_segment.keys() == whole.per_segment.keys()
    for segment, figures in whole.per_segment.items():
        for key, value in figures.items():
            assert blocked.per_segment[segment][key] == pytest.approx(value, abs=1e-12)
    assert blocked.popularity_bins == whole.popularity_bins


def test_blocks_partition_both_sides_by_user_hash(split_and_tables):
    _, _, _, split, _ = split_and_tables
    blocks = user_blocks(split, block_users=30)
    holdout_users = split.manifest["users"]["holdout"]
    assert blocks.n_blocks == -(-holdout_users // 30) > 3
    for side, files in (("train", split.train_files), ("holdout", split.holdout_files)):
        whole = _parts(files)[["user_id", "item_id"]]
        pieces = []
        for block in range(blocks.n_blocks):
            piece = pd.read_parquet(blocks.file(side, block))
            expected_block = np.floor(user_hash(piece["user_id"].to_numpy()) * blocks.n_blocks)
            assert (expected_block == block).all()
            assert len(piece) == blocks.rows[side][block]
            pieces.append(piece)
        cut = pd.concat(pieces, ignore_index=True)
        key = ["user_id", "item_id"]
        pd.testing.assert_frame_equal(
            cut.sort_values(key).reset_index(drop=True),
            whole.astype(str).sort_values(key).reset_index(drop=True),
        )
    # Cached: a second call reads the manifest and rewrites nothing.
    mtime = blocks.file("train", 0).stat().st_mtime_ns
    again = user_blocks(split, block_users=30)
    assert again == blocks and blocks.file("train", 0).stat().st_mtime_ns == mtime


def test_evaluation_in_blocks_equals_one_task_of_every_user(split_and_tables):
    _, _, declaration, split, dataset = split_and_tables
    counts = cached_stats(split, declaration).counts_for("item", dataset.table("item").ids)
    scorer = _random_scorer(dataset.n_users, dataset.n_items)
    whole_task = sample_task(
        dataset, _parts(split.train_files), _parts(split.holdout_files), split_name=split.name
    )
    whole = evaluate_tasks(scorer, [whole_task], item_train_positives=counts, batch_size=64)
    blocked = evaluate_all_users(scorer, dataset, split, counts, block_users=40, batch_size=64)
    assert whole.users == whole_task.n_users > 300
    _same(blocked, whole)
    assert sum(b["pairs"] for b in blocked.popularity_bins.values()) == len(
        whole_task.holdout_items
    )


def test_evaluate_is_evaluate_tasks_of_one_task_and_of_its_user_blocks(split_and_tables):
    """The in-memory protocol: one task's figures are those of its users cut in two."""
    _, _, _, split, dataset = split_and_tables
    train, holdout = _parts(split.train_files), _parts(split.holdout_files)
    task = EvaluationTask.build(dataset, train, holdout, split_name=split.name)
    scorer = _random_scorer(dataset.n_users, dataset.n_items, seed=1)
    single = evaluate(scorer, task, batch_size=50)
    users = np.sort(holdout["user_id"].unique())
    halves = [users[: len(users) // 3], users[len(users) // 3 :]]
    tasks = [
        EvaluationTask.build(
            dataset,
            train[train["user_id"].isin(half)],
            holdout[holdout["user_id"].isin(half)],
            split_name=split.name,
        )
        for half in halves
    ]
    blocked = evaluate_tasks(
        scorer, tasks, item_train_positives=task.train_positives_per_item, batch_size=50
    )
    _same(blocked, single)


def test_a_block_whose_holdout_pairs_are_all_train_pairs_is_skipped(split_and_tables, tmp_path):
    _, _, _, split, dataset = split_and_tables
    blocks = user_blocks(split, block_users=40)
    # A copy of the blocks where block 0's holdout pairs are also in its train side.
    copy = UserBlocks(tmp_path / "blocks", blocks.n_blocks, blocks.rows)
    for side in ("train", "holdout"):
        (copy.directory / side).mkdir(parents=True)
        for block in range(blocks.n_blocks):
            shutil.copy(blocks.file(side, block), copy.file(side, block))
    holdout0 = pd.read_parquet(blocks.file("holdout", 0))
    pd.concat([pd.read_parquet(blocks.file("train", 0)), holdout0]).to_parquet(
        copy.file("train", 0)
    )
    with pytest.raises(NothingToEvaluateError, match="nothing to evaluate"):
        sample_task(
            dataset, pd.read_parquet(copy.file("train", 0)), holdout0, split_name=split.name
        )
    assert issubclass(NothingToEvaluateError, DataValidationError)  # the CLI's exit 2

    kept = list(block_tasks(dataset, blocks, split_name=split.name))
    skipped = list(block_tasks(dataset, copy, split_name=split.name))
    assert len(kept) == blocks.n_blocks and len(skipped) == blocks.n_blocks - 1
    assert sum(t.n_users for t in skipped) == sum(t.n_users for t in kept[1:])
    assert holdout0["user_id"].nunique() == kept[0].n_users


def test_tasks_of_different_catalogs_are_refused(split_and_tables):
    _, _, _, split, dataset = split_and_tables
    train, holdout = _parts(split.train_files), _parts(split.holdout_files)
    task = EvaluationTask.build(dataset, train, holdout, split_name=split.name)
    other = EvaluationTask.build(dataset, train, holdout, split_name="another")
    with pytest.raises(ConfigError, match="one catalog, split and segment"):
        evaluate_tasks(
            _random_scorer(dataset.n_users, dataset.n_items),
            [task, other],
            item_train_positives=task.train_positives_per_item,
        )
    with pytest.raises(ConfigError, match="block_users must be a positive integer"):
        user_blocks(split, block_users=0)


def test_cli_evaluate_all_users_of_a_streamed_run(split_and_tables, tmp_path):
    root, data, _, _, _ = split_and_tables
    env_cache = str(root / "cache")
    config = tmp_path / "stream.toml"
    config.write_text(
        "\n".join(
            [
                "[data]",
                f"source = {json.dumps(str(data))}",
                "stream = true",
                'split = "hash-80-20"',
                "shuffle_buffer = 1000",
                "eval_users = 100",
                "[model]",
                'negatives = "in_batch"',
                'feature_set = "ids"',
                "hidden = []",
                "output_dim = 8",
                "id_dim = 8",
                "[train]",
                "epochs = 1",
                "batch_size = 256",
                "refit = false",
            ]
        ),
        encoding="utf-8",
    )
    run_dir = tmp_path / "run"
    env = {**os.environ, "TFRS_RECSYS_CACHE": env_cache}

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "tfrs_recsys", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )

    trained = cli("train", "--config", str(config), "--run-dir", str(run_dir))
    assert trained.returncode == 0, trained.stderr
    sampled = json.loads(cli("evaluate", "--run-dir", str(run_dir), "--json").stdout)
    every = cli(
        "evaluate", "--run-dir", str(run_dir), "--all-users", "--block-users", "50", "--json"
    )
    assert every.returncode == 0, every.stderr
    every = json.loads(every.stdout)
    assert sampled["users"] <= 100 < every["users"]
    assert 0.0 < every["metrics"]["recall@10"] < 1.0

    bad = cli("evaluate", "--run-dir", str(run_dir), "--block-users", "50")
    assert bad.returncode == 2 and "--block-users goes with --all-users" in bad.stderr
    bad = cli("evaluate", "--run-dir", str(run_dir), "--all-users", "--block-users", "0")
    assert bad.returncode == 2 and "--block-users must be a positive integer" in bad.stderr
