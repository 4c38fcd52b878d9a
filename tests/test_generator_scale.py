"""The scale mode of the generator (tfrs_recsys.data.generator_scale) and its CLI.

Every generation here is small (at most 5,000 users x 1,000 items); the whole file
takes a few seconds.
"""

from __future__ import annotations

import glob
import hashlib
import json
import re
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tfrs_recsys.baselines.oracle import OracleScorer
from tfrs_recsys.cli import main
from tfrs_recsys.data.generator_scale import (
    BLOCK_USERS,
    SCALE_TRUTH_FILE,
    ScaleConfig,
    ScaleTrueModel,
    generate_scale,
    load_scale_truth,
    write_scale_dataset,
)
from tfrs_recsys.errors import ConfigError

SMALL = ScaleConfig(users=1_500, items=200, positives_per_user=10, seed=7)


def _interactions(directory: Path) -> pd.DataFrame:
    files = sorted((directory / "interactions").glob("part-*.parquet"))
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


def _all_positives(config: ScaleConfig) -> tuple[object, np.ndarray, np.ndarray]:
    data = generate_scale(config)
    blocks = list(data.iter_blocks())
    return data, np.concatenate([b[0] for b in blocks]), np.concatenate([b[1] for b in blocks])


@pytest.fixture(scope="module")
def small_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("scale") / "small"
    write_scale_dataset(out, SMALL, shard_users=400)
    return out


# --- Files --------------------------------------------------------------------------------------


def test_same_seed_writes_identical_files(small_dir, tmp_path):
    again = tmp_path / "again"
    write_scale_dataset(again, SMALL, shard_users=400)
    names = sorted(p.relative_to(small_dir) for p in small_dir.rglob("*") if p.is_file())
    assert names == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    assert len([n for n in names if n.parts[0] == "interactions"]) == 4  # 1,500 users / 400
    for name in names:
        if name.name != "dataset.json":  # it holds the wall time
            assert (small_dir / name).read_bytes() == (again / name).read_bytes(), name


def test_a_different_seed_draws_different_interactions(small_dir, tmp_path):
    other = tmp_path / "other"
    write_scale_dataset(other, ScaleConfig(**{**SMALL.__dict__, "seed": 8}), shard_users=400)
    a, b = _interactions(small_dir), _interactions(other)
    assert len(a) != len(b) or not a.equals(b)


def test_interactions_do_not_depend_on_the_shard_size(tmp_path):
    # 5,000 users span two random blocks of 4,096: shards of 700 and 3,000 cut them differently.
    config = ScaleConfig(users=5_000, items=100, positives_per_user=5, seed=3)
    assert config.users > BLOCK_USERS
    write_scale_dataset(tmp_path / "a", config, shard_users=700)
    write_scale_dataset(tmp_path / "b", config, shard_users=3_000)
    a, b = _interactions(tmp_path / "a"), _interactions(tmp_path / "b")
    assert len(list((tmp_path / "a" / "interactions").iterdir())) == 8
    assert len(list((tmp_path / "b" / "interactions").iterdir())) == 2
    pd.testing.assert_frame_equal(a, b)


def test_no_duplicate_pairs_and_every_id_is_in_the_feature_tables(small_dir):
    frame = _interactions(small_dir)
    assert list(frame.columns) == ["user_id", "item_id", "timestamp"]
    assert not frame.duplicated(["user_id", "item_id"]).any()
    users = pd.read_parquet(small_dir / "users.parquet")
    items = pd.read_parquet(small_dir / "items.parquet")
    assert len(users) == 1_500 and len(items) == 200
    assert users["user_id"].is_unique and items["item_id"].is_unique
    assert frame["user_id"].isin(users["user_id"]).all()
    assert frame["item_id"].isin(items["item_id"]).all()
    # Shards hold consecutive users in file order of users.parquet.
    position = pd.Series(np.arange(len(users)), index=users["user_id"])[frame["user_id"]]
    assert np.all(np.diff(position.to_numpy()) >= 0)


def test_timestamps_fall_in_the_declared_year(small_dir):
    stamps = _interactions(small_dir)["timestamp"]
    assert stamps.dtype == np.int64
    start = pd.Timestamp("2024-01-01", tz="UTC").timestamp()
    assert stamps.min() >= start and stamps.max() < start + 365 * 86_400
    assert stamps.nunique() > 0.9 * len(stamps)


def test_manifest_counts_the_written_positives(small_dir):
    manifest = json.loads((small_dir / "dataset.json").read_text())
    frame = _interactions(small_dir)
    assert manifest["positives"] == len(frame)
    assert manifest["density"] == pytest.approx(len(frame) / (1_500 * 200))
    per_user = frame.groupby("user_id").size()
    assert manifest["positives_per_user"]["max"] == per_user.max()
    assert manifest["positives_per_user"]["users_without_positives"] == 1_500 - len(per_user)
    assert manifest["generator"]["mode"] == "scale" and manifest["generator"]["seed"] == 7
    assert manifest["shards"] == 4 and manifest["seconds"]["total"] > 0


def test_dataset_toml_names_existing_files_and_columns(small_dir):
    declared = tomllib.loads((small_dir / "dataset.toml").read_text())
    assert declared["name"] == "tech-products-scale"
    shards = glob.glob(str(small_dir / declared["interactions"]["path"]))
    assert len(shards) == 4
    columns = pd.read_parquet(shards[0]).columns
    for key in ("user_id", "item_id", "timestamp"):
        assert declared["interactions"][key] in columns
    for side in ("users", "items"):
        table = pd.read_parquet(small_dir / declared[side]["path"])
        assert {declared[side]["id"], *declared[side]["columns"]} == set(table.columns)
    assert declared["items"]["columns"]["price"] == {"role": "numeric", "log": True}
    assert declared["items"]["columns"]["description"] == "text"
    assert declared["users"]["columns"]["personality"] == "categorical"


def test_a_failure_while_writing_leaves_no_directory(tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    written = []

    def failing_write(table, path, **kwargs):
        if written:
            raise OSError(28, "No space left on device")
        written.append(path)
        return real_write(table, path, **kwargs)

    real_write = pq.write_table
    monkeypatch.setattr(pq, "write_table", failing_write)
    with pytest.raises(OSError, match="No space left"):
        write_scale_dataset(tmp_path / "out", SMALL, shard_users=400)
    assert len(written) == 1 and list(tmp_path.iterdir()) == []  # no target, no staging


def test_written_truth_loads_and_equals_the_generated_one(small_dir):
    truth = load_scale_truth(small_dir)
    generated = generate_scale(SMALL).truth
    assert (small_dir / SCALE_TRUTH_FILE).is_file()
    assert (truth.n_users, truth.n_items) == (1_500, 200)
    users = np.array([0, 17, 1_499])
    np.testing.assert_array_equal(truth.probabilities(users), generated.probabilities(users))


def test_load_scale_truth_without_file_is_none(tmp_path):
    assert load_scale_truth(tmp_path) is None


# --- The true model and the sampler ------------------------------------------------------------


def test_mean_positives_per_user_is_the_requested_one():
    # 2,000 users x 1,000 items fit in the calibration budget: the scale is fitted on every
    # user, so the exact expected mean equals the target to Newton's tolerance (1e-7).
    config = ScaleConfig(users=2_000, items=1_000, positives_per_user=30, seed=11)
    data, user, _ = _all_positives(config)
    inclusion = np.concatenate(
        [data.truth.probabilities(np.arange(s, s + 500)) for s in range(0, 2_000, 500)]
    ).astype(np.float64)
    assert inclusion.sum(axis=1).mean() == pytest.approx(30.0, rel=1e-4)
    # Cells are independent Bernoulli(pi): the total has variance sum pi (1 - pi); the drawn
    # total is within 4 standard deviations of its expectation (about 60,000 +- 4 x 230).
    sd = np.sqrt((inclusion * (1 - inclusion)).sum())
    assert abs(len(user) - inclusion.sum()) < 4 * sd
    counts = np.bincount(user, minlength=2_000)
    assert np.median(counts) < 0.8 * counts.mean()  # long-tailed: median below the mean
    assert counts.max() > 5 * counts.mean()


def _chi2_quantile(df: int, z: float = 3.719) -> float:
    """Wilson-Hilferty: the chi-square quantile at the normal quantile z (3.719: 1 - 1e-4)."""
    return df * (1 - 2 / (9 * df) + z * np.sqrt(2 / (9 * df))) ** 3


def test_sampled_inclusion_frequencies_match_the_truth():
    # A tiny catalog (24 items, 12 clusters): draw one user's positives R times. Under the
    # model each item is in a draw independently with probability pi_i, so its count k_i is
    # Binomial(R, pi_i), independent over items. Items with R pi_i (1 - pi_i) < 25 are pooled
    # into one bin (a sum of independent binomials: mean R sum pi, variance R sum pi (1 - pi)),
    # so every bin's variance is at least 25 and the normal approximation holds; then
    # X = sum_bins (k - mean)^2 / variance is about chi-square with one degree of freedom a
    # bin, and exceeds its 1 - 1e-4 quantile (Wilson-Hilferty) with probability 1e-4.
    truth = generate_scale(
        ScaleConfig(users=40, items=24, positives_per_user=6, clusters=12, seed=5)
    ).truth
    assert truth.n_clusters == 12
    rng = np.random.default_rng(123)
    repeats = 20_000
    for user in (0, 2):  # rates 9.6 and 6.6 (user 1: 307, every item nearly sure)
        pi = truth.probabilities(np.array([user]))[0].astype(np.float64)
        rows, items = truth.sample(np.full(repeats, user), rng)
        assert not np.any((np.diff(rows) == 0) & (np.diff(items) <= 0))  # unique, sorted
        k = np.bincount(items, minlength=24).astype(np.float64)

        def statistic(p: np.ndarray) -> tuple[float, int]:
            variance = repeats * p * (1 - p)
            alone = variance >= 25
            mean = np.append(repeats * p[alone], repeats * p[~alone].sum())
            var = np.append(variance[alone], variance[~alone].sum())
            count = np.append(k[alone], k[~alone].sum())
            keep = var > 0
            return float(((count - mean)[keep] ** 2 / var[keep]).sum()), int(keep.sum())

        chi2, bins = statistic(pi)
        assert bins >= 8 and chi2 < _chi2_quantile(bins), (user, chi2, bins)
        # The test has power: the same counts against p(i | u) flattened halfway to uniform.
        wrong, bins = statistic(0.5 * pi + 0.5 * pi.mean())
        assert wrong > 10 * _chi2_quantile(bins)


def test_cluster_and_item_probabilities_are_normalised():
    truth = generate_scale(ScaleConfig(users=50, items=500, positives_per_user=20, seed=2)).truth
    users = np.arange(50)
    np.testing.assert_allclose(np.exp(truth.log_item_probabilities(users)).sum(axis=1), 1.0)
    np.testing.assert_allclose(np.exp(truth.cluster_log_probabilities(users)).sum(axis=1), 1.0)
    # log rate = log lambda + log p: the rates of a user sum to lambda.
    np.testing.assert_allclose(
        np.exp(truth.logits(users).astype(np.float64)).sum(axis=1), truth.rate, rtol=1e-5
    )


@pytest.mark.parametrize("items", [8, 9, 30])
def test_tiny_catalogs_have_no_empty_cluster(items):
    # 8 items fill only the 4 largest product types (2 each): no cluster of an empty type.
    truth = generate_scale(ScaleConfig(users=100, items=items, positives_per_user=2)).truth
    assert np.bincount(truth.cluster, minlength=truth.n_clusters).min() >= 1
    assert np.isfinite(truth.logits(np.arange(100))).all()
    assert truth.expected_positives(np.arange(100)).mean() == pytest.approx(2.0, rel=1e-5)


def test_pair_probabilities_equal_the_full_rows():
    truth = generate_scale(ScaleConfig(users=60, items=700, positives_per_user=30, seed=9)).truth
    rng = np.random.default_rng(1)
    users, items = rng.integers(60, size=300), rng.integers(700, size=300)
    full = truth.probabilities(np.arange(60))
    np.testing.assert_allclose(
        truth.pair_probabilities(users, items), full[users, items], rtol=1e-5, atol=1e-7
    )
    # The oracle's pair interface gives the same (it slices the full rows).
    np.testing.assert_allclose(
        OracleScorer(truth).probabilities(users, items), full[users, items], rtol=1e-6
    )
    assert truth.expected_positives(np.arange(60)) == pytest.approx(full.sum(axis=1), rel=1e-4)
    with pytest.raises(ConfigError, match="users and items differ in shape"):
        truth.pair_probabilities(users, items[:-1])


def test_save_load_round_trip_is_exact(tmp_path):
    truth = generate_scale(SMALL).truth
    truth.save(tmp_path / "t.npz")
    loaded = ScaleTrueModel.load(tmp_path / "t.npz")
    np.testing.assert_array_equal(loaded.logits(np.arange(10)), truth.logits(np.arange(10)))
    assert loaded.seed == 7


def test_personalities_prefer_their_product_types_and_prices():
    data, user, item = _all_positives(
        ScaleConfig(users=3_000, items=400, positives_per_user=20, seed=4)
    )
    personality = data.users["personality"].to_numpy()[user]
    kind = data.items["product_type"].to_numpy()[item]
    price = data.items["price"].to_numpy()[item]
    tech, budget = personality == "Tech Enthusiast", personality == "Budget Conscious"
    # TYPE_AFFINITY: laptops +2.0 for Tech Enthusiasts, -1.0 for the Budget Conscious.
    assert (kind[tech] == "laptop").mean() > 2 * (kind[budget] == "laptop").mean()
    assert np.median(price[budget]) < 0.7 * np.median(price[tech])


def test_oracle_beats_popularity_on_a_holdout():
    config = ScaleConfig(users=2_000, items=300, positives_per_user=20, seed=5)
    data, user, item = _all_positives(config)
    holdout = np.random.default_rng(0).random(len(user)) < 0.2
    train = np.zeros((2_000, 300), bool)
    train[user[~holdout], item[~holdout]] = True
    test = np.zeros((2_000, 300), bool)
    test[user[holdout], item[holdout]] = True

    def recall_at_10(scores: np.ndarray) -> float:
        top = np.argsort(-np.where(train, -np.inf, scores), axis=1)[:, :10]
        hits = np.take_along_axis(test, top, axis=1).sum(axis=1)
        has = test.sum(axis=1) > 0
        return float((hits[has] / np.minimum(test.sum(axis=1)[has], 10)).mean())

    oracle = recall_at_10(OracleScorer(data.truth)(np.arange(2_000)))
    popularity = recall_at_10(np.broadcast_to(train.sum(axis=0), (2_000, 300)).astype(float))
    # About 0.34 against 0.14 (seed 5).
    assert oracle > 0.25 and oracle > 2 * popularity


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"items": 7}, "items must be at least 8"),
        ({"items": 100, "positives_per_user": 51}, "positives_per_user must be in (0, items / 2"),
        ({"seed": 2**64}, "seed must be a whole number"),
        ({"clusters": 3}, "clusters must be 0 (automatic)"),
        ({"cluster_text_share": 1.5}, "cluster_text_share must be in [0, 1]"),
    ],
)
def test_bad_config_is_rejected(kwargs, words):
    with pytest.raises(ConfigError, match=re.escape(words)):
        ScaleConfig(**kwargs)


# --- CLI ----------------------------------------------------------------------------------------


def test_cli_scale_writes_the_dataset(tmp_path, capsys):
    out = tmp_path / "data"
    args = ["generate-data", "--out", str(out), "--scale", "--users", "300", "--items", "50"]
    code = main([*args, "--positives-per-user", "5", "--shard-users", "100", "--json"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["users"] == 300 and summary["items"] == 50 and summary["shards"] == 3
    assert summary["positives"] == len(_interactions(out))
    assert (out / "dataset.toml").is_file() and (out / SCALE_TRUTH_FILE).is_file()
    # A non-empty --out is refused without --force and left as it was (the default mean,
    # --items / 10 = 5 positives a user, is valid).
    assert main(args) == 2
    assert "exists and is not empty" in capsys.readouterr().err
    assert summary["positives"] == len(_interactions(out))


@pytest.mark.parametrize(
    "flags, flag",
    [
        (["--positives-per-user", "5"], "--positives-per-user needs --scale"),
        (["--shard-users", "5"], "--shard-users needs --scale"),
        (["--scale", "--layout", "wide"], "--layout does not apply with --scale"),
        (["--scale", "--shard-format", "csv"], "--shard-format does not apply with --scale"),
        (["--scale", "--items", "100", "--positives-per-user", "60"], "--positives-per-user"),
        (["--scale", "--items", "5"], "--items must be at least 8"),
        (["--scale", "--seed", str(2**64)], "--seed must be at most"),
        (["--scale", "--shard-users", "0"], "--shard-users"),
        (["--scale", "--positives-per-user", "-1"], "--positives-per-user"),
    ],
)
def test_cli_flag_errors_exit_2_naming_the_flag(tmp_path, capsys, flags, flag):
    out = tmp_path / "never"
    try:
        code = main(["generate-data", "--out", str(out), *flags])
    except SystemExit as exc:  # argparse's own errors (a flag's type)
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and flag in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_default_generate_data_output_is_unchanged(tmp_path, capsys):
    # The hashes of a tiny default-mode generation, taken with the command before scale mode
    # existed: the default generator's files are byte-for-byte what they were.
    out = tmp_path / "tiny"
    assert (
        main(["generate-data", "--out", str(out), "--users", "50", "--items", "20", "--seed", "3"])
        == 0
    )
    digests = {
        "users.csv": "3b771ae290fd8ac1a570b3f99218550be8b349c01d917b07e7323e25ccc5c73e",
        "items.csv": "2223001443656310d724f16d4f5f3b349a6ba6ed3ea6f6f80fdf0a0141c46ec1",
        "user_product_rating_matrix.csv": (
            "9bb2f8d0a06fbb5cba4f76efe8ee6a2898f4bb071fc1ec5aba74115507af2ee8"
        ),
    }
    for name, digest in digests.items():
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest, name
    assert not (out / "dataset.toml").exists() and not (out / SCALE_TRUTH_FILE).exists()


def test_the_oracle_baseline_finds_the_scale_truth_beside_a_declared_dataset(tmp_path):
    """The oracle model of compare loads ``truth_scale.npz`` from the dataset.toml's directory."""
    from tfrs_recsys.data.loading import load_dataset
    from tfrs_recsys.data.splits import make_split
    from tfrs_recsys.evaluation.protocol import EvaluationTask, evaluate

    config = ScaleConfig(users=1_500, items=200, positives_per_user=15, seed=5)
    write_scale_dataset(tmp_path / "scale", config, shard_users=500)
    dataset = load_dataset(tmp_path / "scale" / "dataset.toml")
    split = make_split("holdout-80-20", dataset.interactions)
    task = EvaluationTask.from_split(dataset, split)
    oracle = OracleScorer.for_dataset(dataset)
    truth = load_scale_truth(tmp_path / "scale")
    # The oracle's pair probabilities are the truth's, through the pair interface.
    users, items = np.array([0, 7, 1_499]), np.array([3, 0, 199])
    np.testing.assert_allclose(
        oracle.probabilities(users, items), truth.pair_probabilities(users, items)
    )
    # 0.457 for the oracle here; popularity (train counts) gets 0.200.
    assert evaluate(oracle, task).metrics["recall@10"] > 0.4
