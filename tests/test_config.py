"""Experiment configuration: defaults, TOML round trip, --set overrides, errors, shipped configs."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import pytest

import tfrs_recsys
from tfrs_recsys.config import (
    CATALOG_LOSS_MAX_ITEMS,
    DataConfig,
    ExperimentConfig,
    ModelConfig,
    TrainConfig,
    config_from_dict,
    config_names,
    config_origin,
    load_config,
    parse_overrides,
    shipped_config_path,
    shipped_config_text,
)
from tfrs_recsys.errors import ConfigError

# The shipped configs as files beside the package's modules (package data).
SHIPPED_DIR = Path(tfrs_recsys.__file__).parent / "configs"
SHIPPED_NAMES = sorted(path.stem for path in SHIPPED_DIR.glob("*.toml"))

# --- Defaults ------------------------------------------------------------------------


def test_load_config_without_file_gives_the_documented_defaults():
    config = load_config(None)
    assert config.name == "experiment"
    assert config.data.source == "data/tech-products"
    assert config.data.split == "holdout-80-20"
    assert config.data.validation_fraction == 0.1
    assert config.model.kind == "retrieval"
    assert config.model.feature_set == "subset"
    assert config.model.hidden == (128,)
    assert config.model.output_dim == 64
    assert config.model.temperature == 0.1
    assert config.model.negatives == "catalog"
    assert config.model.id_mode == "residual"
    assert config.train.epochs == 20
    assert config.train.batch_size == 1024
    assert config.train.optimizer == "adam"
    assert config.train.monitor == "recall@10"


def test_empty_dict_equals_default_dataclasses():
    assert config_from_dict({}) == ExperimentConfig(
        name="experiment", data=DataConfig(), model=ModelConfig(), train=TrainConfig()
    )


# --- TOML round trip -------------------------------------------------------------------


def test_to_toml_written_to_a_file_loads_back_equal(tmp_path):
    config = ExperimentConfig(
        name='quoted "name" \\ with backslash',
        data=DataConfig(source="some/dir", split="per-user-random", validation_fraction=0.25),
        model=ModelConfig(
            kind="ranking",
            feature_set="all",
            hidden=(64, 32),
            temperature=0.05,
            item_bias=True,
            dropout=0.1,
            numeric_buckets=5,
        ),
        train=TrainConfig(
            epochs=3, learning_rate=0.01, optimizer="sgd", monitor="ndcg@50", patience=0
        ),
    )
    path = tmp_path / "config.toml"
    path.write_text(config.to_toml(), encoding="utf-8")
    loaded = load_config(path)
    assert loaded == config
    assert isinstance(loaded.model.hidden, tuple)


def test_default_config_round_trips_through_toml(tmp_path):
    path = tmp_path / "default.toml"
    path.write_text(ExperimentConfig().to_toml(), encoding="utf-8")
    assert load_config(path) == ExperimentConfig()


def test_integer_written_for_a_float_field_is_accepted_as_float(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[model]\ntemperature = 1\n", encoding="utf-8")
    config = load_config(path)
    assert config.model.temperature == 1.0
    assert isinstance(config.model.temperature, float)


# --- --set overrides -------------------------------------------------------------------


def test_parse_overrides_reads_toml_values():
    parsed = parse_overrides(
        [
            "model.temperature=0.2",
            "model.item_bias=true",
            "model.hidden=[32, 16]",
            'model.feature_set="all"',
            "train.epochs = 3",
        ]
    )
    assert parsed == {
        "model": {"temperature": 0.2, "item_bias": True, "hidden": [32, 16], "feature_set": "all"},
        "train": {"epochs": 3},
    }


def test_parse_overrides_falls_back_to_a_plain_string():
    assert parse_overrides(["data.source=some/dir with spaces"]) == {
        "data": {"source": "some/dir with spaces"}
    }
    assert parse_overrides(["model.kind=ranking"]) == {"model": {"kind": "ranking"}}


def test_set_overrides_are_applied_on_top_of_the_file(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(
        'name = "file"\n[model]\ntemperature = 0.5\noutput_dim = 16\n', encoding="utf-8"
    )
    config = load_config(
        path,
        [
            "model.temperature=0.2",
            "model.item_bias=true",
            "model.hidden=[32, 16]",
            "model.feature_set=all",  # unquoted: plain string fallback
            'data.source="x/y"',
        ],
    )
    assert config.name == "file"
    assert config.model.temperature == 0.2
    assert config.model.output_dim == 16  # from the file, untouched
    assert config.model.item_bias is True
    assert config.model.hidden == (32, 16)
    assert config.model.feature_set == "all"
    assert config.data.source == "x/y"


def test_last_override_of_the_same_key_wins():
    config = load_config(None, ["train.epochs=3", "train.epochs=5"])
    assert config.train.epochs == 5


# --- Errors ----------------------------------------------------------------------------


def _error(call) -> str:
    with pytest.raises(ConfigError) as info:
        call()
    return str(info.value)


def test_unknown_section_is_named():
    message = _error(lambda: config_from_dict({"modle": {"kind": "retrieval"}}))
    assert "modle" in message


def test_unknown_section_from_set_is_named():
    message = _error(lambda: load_config(None, ["optim.learning_rate=0.1"]))
    assert "optim" in message


def test_unknown_key_is_named(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[model]\ntemprature = 0.3\n", encoding="utf-8")
    message = _error(lambda: load_config(path))
    assert "model.temprature" in message
    assert str(path) in message


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"train": {"epochs": "3"}}, "train.epochs"),  # string for int
        ({"train": {"epochs": True}}, "train.epochs"),  # bool for int
        ({"train": {"epochs": 2.5}}, "train.epochs"),  # float for int
        ({"model": {"hidden": [32.0, 16]}}, "model.hidden"),  # float list
        ({"model": {"hidden": 32}}, "model.hidden"),  # not a list
        ({"model": {"item_bias": 1}}, "model.item_bias"),  # int for bool
        ({"model": {"temperature": "0.1"}}, "model.temperature"),  # string for float
        ({"model": {"temperature": False}}, "model.temperature"),  # bool for float
        ({"model": {"kind": 1}}, "model.kind"),  # int for string
    ],
)
def test_wrong_types_name_the_key(data, key):
    assert key in _error(lambda: config_from_dict(data))


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"model": {"feature_set": "everything"}}, "model.feature_set"),
        ({"model": {"kind": "classification"}}, "model.kind"),
        ({"data": {"split": "random"}}, "data.split"),
        ({"train": {"optimizer": "rmsprop"}}, "train.optimizer"),
        ({"train": {"monitor": "auc"}}, "train.monitor"),
        ({"model": {"negatives": "sampled"}}, "model.negatives"),
        ({"model": {"text_encoder": "gpt"}}, "model.text_encoder"),
        ({"model": {"id_mode": "both"}}, "model.id_mode"),
    ],
)
def test_invalid_choices_name_the_key_and_value(data, key):
    section, field = key.split(".")
    message = _error(lambda: config_from_dict(data))
    assert key in message
    assert repr(data[section][field]) in message


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"train": {"epochs": 0}}, "train.epochs"),
        ({"train": {"batch_size": -1}}, "train.batch_size"),
        ({"train": {"learning_rate": 0.0}}, "train.learning_rate"),
        ({"train": {"patience": -1}}, "train.patience"),
        ({"model": {"output_dim": 0}}, "model.output_dim"),
        ({"model": {"temperature": -0.1}}, "model.temperature"),
        ({"model": {"hidden": [64, 0]}}, "model.hidden"),
        ({"model": {"dropout": 1.0}}, "model.dropout"),
        ({"model": {"negatives_per_user": -5}}, "model.negatives_per_user"),
        ({"data": {"validation_fraction": 0.0}}, "data.validation_fraction"),
        ({"data": {"validation_fraction": 1.0}}, "data.validation_fraction"),
    ],
)
def test_out_of_range_values_name_the_key(data, key):
    assert key in _error(lambda: config_from_dict(data))


def test_zero_is_allowed_where_documented():
    config = config_from_dict(
        {
            "train": {"patience": 0},
            "model": {"numeric_buckets": 0, "id_l2": 0.0, "negatives_per_user": 0},
        }
    )
    assert config.train.patience == 0
    assert config.model.negatives_per_user == 0


def test_ids_feature_set_without_any_id_is_rejected():
    message = _error(lambda: config_from_dict({"model": {"feature_set": "ids", "id_mode": "none"}}))
    assert "model.feature_set" in message and "model.id_mode" in message


def test_section_that_is_not_a_table_is_rejected():
    assert "[model]" in _error(lambda: config_from_dict({"model": 3}))


@pytest.mark.parametrize("name", ["", 5])
def test_name_must_be_a_non_empty_string(name):
    assert "name" in _error(lambda: config_from_dict({"name": name}))


def test_missing_file_is_a_config_error_naming_the_path(tmp_path):
    path = tmp_path / "nope.toml"
    message = _error(lambda: load_config(path))
    assert str(path) in message
    assert "no such config file" in message


def test_invalid_toml_is_a_config_error_naming_the_path(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[model\nkind = 'retrieval'\n", encoding="utf-8")
    message = _error(lambda: load_config(path))
    assert str(path) in message
    assert "TOML" in message


@pytest.mark.parametrize("item", ["model.temperature", "temperature=0.2", "model.=3", "=3"])
def test_malformed_set_is_rejected_with_the_item(item):
    message = _error(lambda: parse_overrides([item]))
    assert repr(item) in message


def test_set_name_is_refused():
    assert "name" in _error(lambda: load_config(None, ["name.x=1"]))


def test_set_on_a_section_that_the_file_gives_as_a_value_is_rejected(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("model = 3\n", encoding="utf-8")
    assert "model" in _error(lambda: load_config(path, ["model.kind=ranking"]))


def test_config_error_is_a_value_error():
    # Library callers may catch ValueError; the CLI relies on RecsysError.
    with pytest.raises(ValueError):
        config_from_dict({"train": {"epochs": 0}})


def test_configs_are_frozen():
    config = ExperimentConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.train.epochs = 3  # type: ignore[misc]


def test_unicode_name_round_trips_through_toml(tmp_path):
    config = ExperimentConfig(name="modèle ü\ttab")
    path = tmp_path / "c.toml"
    path.write_text(config.to_toml(), encoding="utf-8")
    assert load_config(path) == config


def test_very_small_and_large_floats_round_trip(tmp_path):
    config = ExperimentConfig(
        model=ModelConfig(id_l2=1e-7, temperature=1e20), train=TrainConfig(learning_rate=1e-5)
    )
    path = tmp_path / "c.toml"
    path.write_text(config.to_toml(), encoding="utf-8")
    assert load_config(path) == config


def test_name_with_a_newline_round_trips_through_toml(tmp_path):
    config = ExperimentConfig(name="two\nlines")
    path = tmp_path / "c.toml"
    path.write_text(config.to_toml(), encoding="utf-8")
    assert load_config(path) == config


# --- Shipped configs, by name or by path -------------------------------------------------------


def test_config_names_are_the_shipped_files():
    assert config_names() == SHIPPED_NAMES
    # The names the README, the CLI and compare rely on.
    assert {"tech_ids", "tech_subset", "tech_all", "tech_ranking_all"} <= set(SHIPPED_NAMES)
    assert {"ml100k_ids", "ml100k_subset", "ml100k_all"} <= set(SHIPPED_NAMES)


@pytest.mark.parametrize("name", SHIPPED_NAMES)
def test_every_shipped_config_loads_by_name_as_its_file_says(name, tmp_path):
    path = SHIPPED_DIR / f"{name}.toml"
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    config = load_config(name)
    assert config.name == raw["name"] == name
    for section in ("data", "model", "train"):
        for key, value in raw.get(section, {}).items():
            got = getattr(getattr(config, section), key)
            assert got == (tuple(value) if isinstance(value, list) else value), (section, key)
    assert load_config(path) == config
    written = tmp_path / "c.toml"
    written.write_text(config.to_toml(), encoding="utf-8")
    assert load_config(written) == config


def test_shipped_config_path_and_text_are_the_package_file():
    assert shipped_config_path("tech_all") == SHIPPED_DIR / "tech_all.toml"
    assert shipped_config_text("tech_all") == (SHIPPED_DIR / "tech_all.toml").read_text(
        encoding="utf-8"
    )


def test_overrides_apply_on_top_of_a_shipped_config():
    config = load_config("tech_subset", ["train.epochs=2", 'data.source="elsewhere"'])
    assert (config.train.epochs, config.data.source) == (2, "elsewhere")
    assert config.model == load_config("tech_subset").model


def test_a_name_is_found_whatever_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_config("ml100k_subset").name == "ml100k_subset"


def test_an_existing_file_wins_over_a_shipped_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tech_all").write_text('name = "local"\n', encoding="utf-8")
    assert load_config("tech_all").name == "local"
    assert config_origin("tech_all") == "config file tech_all"


@pytest.mark.parametrize("name", ["tech_everything", "tech_all.toml", "configs/tech_all.toml"])
def test_an_unknown_name_lists_the_shipped_configs(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    message = _error(lambda: load_config(name))
    assert message.startswith(f"{name}: ")
    assert "shipped configs: " + ", ".join(SHIPPED_NAMES) in message
    with pytest.raises(ConfigError):
        shipped_config_text(name)


def test_config_origin_says_where_a_config_comes_from(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('name = "mine"\n', encoding="utf-8")
    assert config_origin(None) == "built-in defaults"
    assert config_origin("tech_ids") == "shipped config tech_ids"
    assert config_origin(path) == f"config file {path}"
    assert config_origin(str(path)) == f"config file {path}"


# --- Ranges of the numbers: what TensorFlow and numpy would reject later -----------------------


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("train.seed=-1", "train.seed"),
        ("train.seed=99999999999", "train.seed"),
        ("train.seed=2147483648", "train.seed"),
        ("data.validation_seed=-5", "data.validation_seed"),
        ("train.learning_rate=nan", "train.learning_rate"),
        ("train.learning_rate=inf", "train.learning_rate"),
        ("model.temperature=-inf", "model.temperature"),
        ("model.id_l2=nan", "model.id_l2"),
        ("model.dropout=nan", "model.dropout"),
        ("data.min_rating=nan", "data.min_rating"),
        ("data.validation_fraction=inf", "data.validation_fraction"),
        ("train.epochs=99999999999999999999", "train.epochs"),
        ("model.hidden=[64, 4294967296]", "model.hidden"),
    ],
)
def test_values_tensorflow_or_numpy_would_reject_name_the_key(override, key):
    message = _error(lambda: load_config(None, [override]))
    assert message.startswith(f"{key} ")
    assert override.split("=", 1)[1].split(",")[0].strip("[") in message


@pytest.mark.parametrize("seed", [0, 2**31 - 1])
def test_the_ends_of_the_seed_range_are_accepted(seed):
    config = load_config(None, [f"train.seed={seed}", f"data.validation_seed={seed}"])
    assert config.train.seed == seed and config.data.validation_seed == seed


def test_every_number_field_has_a_range():
    from tfrs_recsys.config import NUMBER_RANGES

    numbers = {
        f"{section}.{field.name}"
        for section, cls in (("data", DataConfig), ("model", ModelConfig), ("train", TrainConfig))
        for field in dataclasses.fields(cls)
        if field.type in ("int", "float", "tuple[int, ...]")
    }
    assert numbers == set(NUMBER_RANGES)


def test_a_seed_out_of_range_is_refused_when_built_directly_too():
    with pytest.raises(ConfigError, match=r"train\.seed must be in \[0, 2147483647\], got -1"):
        TrainConfig(seed=-1)


# --- Config files that are not text files ---------------------------------------------------------


def test_a_directory_as_config_names_it(tmp_path):
    message = _error(lambda: load_config(tmp_path))
    assert message.startswith(f"{tmp_path}: is a directory")


@pytest.mark.parametrize(
    "content",
    [b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "[train]\nseed = 1\n".encode("utf-16")],
)
def test_a_binary_or_utf16_config_is_a_config_error_naming_it(tmp_path, content):
    path = tmp_path / "c.toml"
    path.write_bytes(content)
    message = _error(lambda: load_config(path))
    assert message.startswith(f"{path}: not a UTF-8 text file")


def test_a_latin1_byte_names_its_line(tmp_path):
    path = tmp_path / "c.toml"
    path.write_bytes(b'name = "x"\n\n[data]\nsource = "caf\xe9"\n')
    assert "line 4" in _error(lambda: load_config(path))


def test_an_endless_config_stops_at_the_size_limit():
    message = _error(lambda: load_config("/dev/zero"))
    assert message.startswith("/dev/zero: larger than 1 MiB")


def test_a_recorded_config_without_newer_keys_still_matches():
    from tfrs_recsys.config import config_matches

    config = load_config("ml100k_ids")
    text = config.to_toml()
    older = "\n".join(
        line
        for line in text.splitlines()
        if not line.startswith(("user_history", "mixed_negatives"))
    )
    assert older != text and config_matches(older, config)
    assert config_matches(text, config)
    changed = text.replace("temperature = 0.2", "temperature = 0.3")
    assert changed != text and not config_matches(changed, config)
    assert not config_matches("not [toml", config) and not config_matches(None, config)
    assert not config_matches(text + "\n[model]\nbogus = 1\n", config)


@pytest.mark.parametrize(
    ("overrides", "asked"),
    [
        ({"loss": "catalog_sigmoid"}, "model.loss = 'catalog_sigmoid'"),
        ({"loss": "softmax", "negatives": "catalog"}, "model.negatives = 'catalog'"),
    ],
)
def test_a_catalog_loss_refuses_a_catalog_above_its_limit_naming_the_sampled_losses(
    overrides, asked
):
    config = ModelConfig(kind="retrieval", **overrides)
    config.check_catalog(CATALOG_LOSS_MAX_ITEMS)  # at the limit: accepted
    with pytest.raises(ConfigError) as raised:
        config.check_catalog(CATALOG_LOSS_MAX_ITEMS + 1)
    message = str(raised.value)
    assert asked in message and "100,001 items" in message
    assert "'in_batch'" in message and "'mixed'" in message


def test_the_sampled_losses_take_any_catalog():
    for negatives in ("in_batch", "mixed"):
        ModelConfig(kind="retrieval", loss="softmax", negatives=negatives).check_catalog(10**7)


def test_the_retrieval_model_checks_its_catalog_before_building_anything():
    import numpy as np

    from tfrs_recsys.data.dataset import FeatureTable
    from tfrs_recsys.data.schema import Feature
    from tfrs_recsys.models.retrieval import RetrievalModel

    ids = np.array([f"i{n}" for n in range(CATALOG_LOSS_MAX_ITEMS + 1)], dtype=object)
    items = FeatureTable("item", (Feature("item_id", "id"),), {"item_id": ids})
    config = ModelConfig(kind="retrieval", loss="catalog_sigmoid")
    with pytest.raises(ConfigError, match="100,001 items"):
        RetrievalModel(config, None, None, items)  # fails before it reads the preprocessing
