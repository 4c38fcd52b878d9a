"""The tech-products generator against docs/default-dataset.md, and its true model.

The statistics use the default size (10,000 users x 1,000 items, seed 42), built
once per session by conftest; everything else uses small sizes.
"""

from __future__ import annotations

import dataclasses
import json
import re

import numpy as np
import pandas as pd
import pytest

from tfrs_recsys.data import tech_vocabulary
from tfrs_recsys.data.generator import GeneratorConfig, TrueModel, generate
from tfrs_recsys.data.techproducts import (
    ITEMS_FILE,
    MANIFEST_FILE,
    MATRIX_FILE,
    TRUTH_FILE,
    USERS_FILE,
    load_truth,
    write_tech_products,
)
from tfrs_recsys.errors import ConfigError, DataValidationError

NOTEBOOK_DENSITY = 966_286 / 10_000_000  # 9.66 % (docs/default-dataset.md)
PREFIXES = {
    "tec": "Tech Enthusiast",
    "bud": "Budget Conscious",
    "cre": "Creative Explorer",
    "pra": "Practical Buyer",
    "per": "Performance Seeker",
}
# Price ranges the notebooks show (docs/default-dataset.md): "mice around 30-70, headphones
# 40-90, monitors 80-290, laptops 270-1,620".
NOTEBOOK_PRICE_RANGES = {
    "mouse": (30.0, 70.0),
    "headphones": (40.0, 90.0),
    "monitor": (80.0, 290.0),
    "laptop": (270.0, 1620.0),
}


# --- Default-size statistics --------------------------------------------------------


def test_default_tables_have_the_notebook_shapes_and_columns(default_generated):
    assert default_generated.users.shape == (10_000, 4)
    assert default_generated.items.shape == (1_000, 5)
    assert list(default_generated.users.columns) == ["user_id", "age", "profession", "personality"]
    assert list(default_generated.items.columns) == [
        "item_id",
        "product_type",
        "description",
        "price",
        "features",
    ]


def test_default_matrix_shape(default_matrix):
    assert default_matrix.shape == (10_000, 1_000)
    assert set(np.unique(default_matrix)) <= {0, 1}


def test_2000_users_per_personality_with_prefix_ids(default_generated):
    users = default_generated.users
    for prefix, personality in PREFIXES.items():
        ids = users.loc[users["personality"] == personality, "user_id"].tolist()
        assert ids == [f"{prefix}_{n:04d}" for n in range(1, 2001)], personality


def test_item_ids_are_item_0001_to_item_1000(default_generated):
    assert default_generated.items["item_id"].tolist() == [f"item_{n:04d}" for n in range(1, 1001)]


def test_density_within_5_percent_of_the_notebooks(default_matrix):
    density = default_matrix.mean(dtype=np.float64)
    assert abs(density - NOTEBOOK_DENSITY) / NOTEBOOK_DENSITY < 0.05, density


def test_positives_per_user_are_spread(default_matrix):
    """Not a constant rate: the spread must exceed twice that of a Binomial(1000, 9.66 %),
    sqrt(1000 * 0.0966 * 0.9034) = 9.3 positives."""
    per_user = default_matrix.sum(axis=1)
    binomial_std = np.sqrt(1000 * NOTEBOOK_DENSITY * (1 - NOTEBOOK_DENSITY))
    assert per_user.std() > 2 * binomial_std
    assert per_user.min() < per_user.mean() < per_user.max()


def test_ages_are_adult_integers(default_generated):
    age = default_generated.users["age"]
    assert pd.api.types.is_integer_dtype(age)
    assert age.min() >= 18


def test_professions_are_lower_case_fields(default_generated):
    professions = set(default_generated.users["profession"])
    assert professions <= {"education", "science", "engineering", "arts", "business", "law"}
    assert len(professions) >= 5


def test_product_types_include_the_notebook_four(default_generated):
    assert set(NOTEBOOK_PRICE_RANGES) <= set(default_generated.items["product_type"])


def test_prices_have_two_decimals(default_generated):
    price = default_generated.items["price"].to_numpy()
    assert np.all(price > 0)
    np.testing.assert_allclose(price * 100, np.round(price * 100), atol=1e-6)


@pytest.mark.parametrize("product_type", sorted(NOTEBOOK_PRICE_RANGES))
def test_prices_in_the_notebook_range_per_type(default_generated, product_type):
    items = default_generated.items
    price = items.loc[items["product_type"] == product_type, "price"]
    low, high = NOTEBOOK_PRICE_RANGES[product_type]
    assert len(price) > 0
    assert price.min() >= low and price.max() <= high, (price.min(), price.max())


def test_features_are_2_to_4_distinct_phrases_of_the_type(default_generated):
    vocab = {t.name: set(t.features) for t in tech_vocabulary.PRODUCT_TYPES}
    for product_type, text in default_generated.items[["product_type", "features"]].itertuples(
        index=False
    ):
        phrases = text.split(", ")
        assert 2 <= len(phrases) <= 4, text
        assert len(set(phrases)) == len(phrases), text
        assert set(phrases) <= vocab[product_type], (product_type, text)


def test_descriptions_name_the_type_and_one_audience(default_generated):
    audiences = re.compile("|".join(map(re.escape, tech_vocabulary.AUDIENCES)))
    for product_type, text in default_generated.items[["product_type", "description"]].itertuples(
        index=False
    ):
        assert product_type in text.lower(), text
        assert len(audiences.findall(text)) == 1, text


def _type_rates(
    users: pd.DataFrame, items: pd.DataFrame, matrix: np.ndarray, personality: str
) -> pd.Series:
    """Positive rate of one personality's users per product type, highest first."""
    rows = (users["personality"] == personality).to_numpy()
    per_item = matrix[rows].mean(axis=0)
    return (
        pd.Series(per_item)
        .groupby(items["product_type"].to_numpy())
        .mean()
        .sort_values(ascending=False)
    )


@pytest.mark.parametrize(
    ("personality", "favourite"),
    [
        ("Tech Enthusiast", "laptop"),
        ("Performance Seeker", "laptop"),
        ("Creative Explorer", "monitor"),
        ("Practical Buyer", "mouse"),
    ],
)
def test_personality_prefers_its_product_type(
    default_generated, default_matrix, personality, favourite
):
    rates = _type_rates(
        default_generated.users, default_generated.items, default_matrix, personality
    )
    assert rates.index[0] == favourite, rates.head(3).to_dict()


def test_budget_conscious_prefer_headphones_and_mice(default_generated, default_matrix):
    rates = _type_rates(
        default_generated.users, default_generated.items, default_matrix, "Budget Conscious"
    )
    assert set(rates.index[:2]) == {"headphones", "mouse"}, rates.head(3).to_dict()


def test_mean_true_probability_equals_density(default_generated):
    """The intercept is calibrated so that the mean of p over every cell is 9.66 %."""
    truth = default_generated.truth
    total = sum(
        truth.probabilities(np.arange(s, min(s + 2000, truth.n_users))).sum(dtype=np.float64)
        for s in range(0, truth.n_users, 2000)
    )
    assert abs(total / (truth.n_users * truth.n_items) - 0.0966) < 2e-4


def test_text_only_signal_audience_matches_profession(default_generated):
    """Among monitors and Budget Conscious users: items "for teachers" (affinity
    1.0 with education, 0 with law) against items "for gamers" (no affinity with
    either, nor with Budget Conscious). Education users prefer the teachers' items,
    and their preference ratio is larger than law users' (whose ratio only
    reflects item-level effects shared by both groups)."""
    assert tech_vocabulary.AUDIENCE_AFFINITY["teachers"].get("education", 0) > 0
    assert "education" not in tech_vocabulary.AUDIENCE_AFFINITY["gamers"]
    assert "bud" not in tech_vocabulary.AUDIENCE_AFFINITY["gamers"]

    users, items, truth = default_generated.users, default_generated.items, default_generated.truth
    monitor = (items["product_type"] == "monitor").to_numpy()
    teachers = monitor & items["description"].str.contains("for teachers").to_numpy()
    gamers = monitor & items["description"].str.contains("for gamers").to_numpy()
    assert teachers.sum() >= 5 and gamers.sum() >= 5

    def ratio(profession: str) -> tuple[float, float]:
        rows = np.flatnonzero(
            (
                (users["personality"] == "Budget Conscious") & (users["profession"] == profession)
            ).to_numpy()
        )
        assert len(rows) >= 50
        p = truth.probabilities(rows)
        return float(p[:, teachers].mean()), float(p[:, gamers].mean())

    edu_teachers, edu_gamers = ratio("education")
    law_teachers, law_gamers = ratio("law")
    assert edu_teachers > edu_gamers
    assert edu_teachers / edu_gamers > law_teachers / law_gamers


# --- Determinism ----------------------------------------------------------------------


def _write(tmp_path, name, config):
    out = tmp_path / name
    write_tech_products(generate(config), out, layout="wide")
    return out


def test_same_seed_writes_identical_files(tmp_path):
    config = GeneratorConfig(users=60, items=25, seed=7)
    a, b = _write(tmp_path, "a", config), _write(tmp_path, "b", config)
    for name in (USERS_FILE, ITEMS_FILE, MATRIX_FILE, MANIFEST_FILE):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    truth_a, truth_b = TrueModel.load(a / TRUTH_FILE), TrueModel.load(b / TRUTH_FILE)
    np.testing.assert_array_equal(
        truth_a.probabilities(np.arange(60)), truth_b.probabilities(np.arange(60))
    )


def test_different_seed_writes_different_files(tmp_path):
    a = _write(tmp_path, "a", GeneratorConfig(users=60, items=25, seed=7))
    b = _write(tmp_path, "b", GeneratorConfig(users=60, items=25, seed=8))
    assert (a / MATRIX_FILE).read_bytes() != (b / MATRIX_FILE).read_bytes()
    assert (a / ITEMS_FILE).read_bytes() != (b / ITEMS_FILE).read_bytes()


def test_uneven_user_count_fills_personalities_in_order():
    """7 users over 5 personalities: 7 // 5 = 1 each, the first 7 % 5 = 2 get one more."""
    users = generate(GeneratorConfig(users=7, items=3, seed=1)).users
    assert users["user_id"].tolist() == [
        "tec_0001",
        "tec_0002",
        "bud_0001",
        "bud_0002",
        "cre_0001",
        "pra_0001",
        "per_0001",
    ]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"users": 4},
        {"items": 1},
        {"density": 0.0},
        {"density": 1.0},
        {"seed": -1},
        {"taste_rank": 0},
    ],
)
def test_bad_config_is_rejected(kwargs):
    with pytest.raises(ConfigError):
        GeneratorConfig(**kwargs)


# --- The true model ------------------------------------------------------------------


def test_true_model_save_load_round_trip_is_exact(tmp_path, small_generated):
    truth = small_generated.truth
    path = tmp_path / "truth.npz"
    truth.save(path)
    loaded = TrueModel.load(path)
    users = np.arange(truth.n_users)
    np.testing.assert_array_equal(loaded.probabilities(users), truth.probabilities(users))


def test_true_model_save_load_round_trip_keeps_every_array(tmp_path, small_generated):
    truth = small_generated.truth
    path = tmp_path / "truth.npz"
    truth.save(path)
    loaded = TrueModel.load(path)
    assert loaded.intercept == truth.intercept
    assert loaded.seed == truth.seed and loaded.noise_scale == truth.noise_scale
    for field in dataclasses.fields(TrueModel):
        np.testing.assert_array_equal(getattr(loaded, field.name), getattr(truth, field.name))


def test_true_model_save_load_round_trip_is_close(tmp_path, small_generated):
    """To float32 rounding (|diff| <= 1e-6), whatever the exactness bug above."""
    truth = small_generated.truth
    path = tmp_path / "truth.npz"
    truth.save(path)
    users = np.arange(truth.n_users)
    np.testing.assert_allclose(
        TrueModel.load(path).probabilities(users), truth.probabilities(users), rtol=0, atol=1e-6
    )


def test_written_truth_recomputes_the_generated_probabilities(small_dir, small_generated):
    loaded = load_truth(small_dir)
    assert loaded is not None
    users = np.arange(small_generated.truth.n_users)
    np.testing.assert_array_equal(
        loaded.probabilities(users), small_generated.truth.probabilities(users)
    )


def test_written_truth_draws_the_written_matrix(small_dir, small_generated):
    """The oracle file reproduces the sampled cells of the dataset it came with."""
    loaded = load_truth(small_dir)
    matrix = pd.read_csv(small_dir / MATRIX_FILE, index_col="user_id")
    np.testing.assert_array_equal(
        loaded.draw(np.arange(loaded.n_users)).astype(np.int64), matrix.to_numpy()
    )


def test_load_truth_without_file_is_none(make_tech_dir):
    assert load_truth(make_tech_dir()) is None


def test_true_model_load_of_a_bad_file_names_it(tmp_path):
    bad = tmp_path / "truth.npz"
    bad.write_bytes(b"not a zip file")
    with pytest.raises(DataValidationError) as excinfo:
        TrueModel.load(bad)
    assert excinfo.value.file == str(bad)
    assert str(bad) in str(excinfo.value)


def test_written_matrix_equals_truth_draw(small_dir, small_generated):
    """The 0/1 matrix file, read with pandas, is exactly truth.draw(all users)."""
    matrix = pd.read_csv(small_dir / MATRIX_FILE, index_col="user_id")
    assert matrix.index.tolist() == small_generated.users["user_id"].tolist()
    assert matrix.columns.tolist() == small_generated.items["item_id"].tolist()
    drawn = small_generated.truth.draw(np.arange(small_generated.truth.n_users))
    np.testing.assert_array_equal(matrix.to_numpy(), drawn.astype(np.int64))


def test_manifest_counts_the_positives(small_dir):
    manifest = json.loads((small_dir / MANIFEST_FILE).read_text())
    matrix = pd.read_csv(small_dir / MATRIX_FILE, index_col="user_id")
    assert manifest["positives"] == int(matrix.to_numpy().sum())
    assert manifest["users"] == 500 and manifest["items"] == 120
    assert manifest["layout"] == "wide"
    assert manifest["generator"]["seed"] == 42


def test_cells_do_not_depend_on_chunking(small_generated):
    by_7 = np.concatenate([cells for _, cells in small_generated.iter_cells(7)])
    by_1000 = np.concatenate([cells for _, cells in small_generated.iter_cells(1000)])
    assert by_7.shape == (500, 120)
    np.testing.assert_array_equal(by_7, by_1000)


def test_iter_cells_yields_consecutive_user_rows(small_generated):
    rows = [r for r, _ in small_generated.iter_cells(7)]
    assert [len(r) for r in rows] == [7] * 71 + [3]  # 500 = 71 * 7 + 3
    np.testing.assert_array_equal(np.concatenate(rows), np.arange(500))


def test_draw_of_some_users_equals_their_rows_of_the_full_draw(small_generated):
    truth = small_generated.truth
    full = truth.draw(np.arange(truth.n_users))
    picked = np.array([499, 3, 250, 3])
    np.testing.assert_array_equal(truth.draw(picked), full[picked])


def test_probabilities_of_some_users_match_the_full_batch(small_generated):
    """Equal to float32 rounding: the taste matmul's BLAS kernel depends on the
    batch shape, so the last bit can differ (see the report)."""
    truth = small_generated.truth
    picked = np.array([499, 3, 250, 3])
    np.testing.assert_allclose(
        truth.probabilities(picked), truth.probabilities(np.arange(500))[picked], rtol=0, atol=1e-6
    )


def test_probabilities_are_valid(small_generated):
    p = small_generated.truth.probabilities(np.arange(500))
    assert p.shape == (500, 120) and p.dtype == np.float32
    assert np.all((p >= 0) & (p <= 1))


# --- Seeds and sizes out of range --------------------------------------------------------


@pytest.mark.parametrize("seed", [-1, 2**64, 18446744073709551616 * 10])
def test_a_seed_outside_64_bits_is_a_config_error_naming_the_range(seed):
    with pytest.raises(
        ConfigError, match=r"seed must be a whole number in \[0, 18446744073709551615\]"
    ):
        GeneratorConfig(users=5, items=2, seed=seed)


@pytest.mark.parametrize("seed", [2**24, 2**63, 2**64 - 1])
def test_large_seeds_draw_without_numpy_warnings(seed):
    import warnings

    from tfrs_recsys.data.generator import cell_uniform

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        values = cell_uniform(seed, 1, np.arange(3), 4)
    assert values.shape == (3, 4) and ((values > 0) & (values < 1)).all()


def test_a_size_beyond_the_memory_is_refused_before_anything_is_drawn(monkeypatch):
    from tfrs_recsys.data import generator

    def never(*args, **kwargs):
        raise AssertionError("nothing may be drawn")

    monkeypatch.setattr(generator, "_make_users", never)
    monkeypatch.setattr(generator, "physical_memory", lambda: 16 * 2**30)
    with pytest.raises(ConfigError) as info:
        generate(GeneratorConfig(users=1_000_000_000, items=1_000))
    message = str(info.value)
    needed = generator.memory_needed(1_000_000_000, 1_000)
    assert needed > 300 * 2**30  # 400 bytes a user at the least
    assert f"need about {needed / 2**30:,.1f} GiB of memory" in message
    assert "this machine has 16.0 GiB" in message
    suggested = int(re.search(r"try --users ([\d,]+) or fewer", message).group(1).replace(",", ""))
    assert 5 <= suggested and generator.memory_needed(suggested, 1_000) <= 8 * 2**30


def test_the_default_size_fits_in_two_gigabytes():
    from tfrs_recsys.data.generator import check_memory

    check_memory(GeneratorConfig(), available=2 * 2**30)  # no error


def test_too_many_items_suggests_fewer_items():
    from tfrs_recsys.data.generator import check_memory

    with pytest.raises(ConfigError, match="try fewer --items"):
        check_memory(GeneratorConfig(users=5, items=10**9), available=16 * 2**30)
