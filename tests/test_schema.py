"""DatasetSchema and Feature: validation, JSON round trip, selection."""

from __future__ import annotations

import dataclasses
import json

import pytest

from tfrs_recsys.data.schema import DatasetSchema, Feature
from tfrs_recsys.data.techproducts import TECH_PRODUCTS_SCHEMA
from tfrs_recsys.errors import ConfigError


def _schema(**overrides) -> DatasetSchema:
    fields = {
        "name": "toy",
        "user_features": (
            Feature("user_id", "id"),
            Feature("age", "numeric"),
            Feature("job", "categorical"),
        ),
        "item_features": (
            Feature("item_id", "id"),
            Feature("tags", "categorical_list", separator="|"),
            Feature("price", "numeric", transform="log1p"),
            Feature("title", "text"),
        ),
        "user_segment": "job",
        "timestamp": "ts",
    }
    fields.update(overrides)
    return DatasetSchema(**fields)


# --- Valid schemas -------------------------------------------------------------------


def test_valid_schema_exposes_ids_and_columns():
    schema = _schema()
    assert schema.id_column("user") == "user_id"
    assert schema.id_column("item") == "item_id"
    assert schema.user_columns == ("user_id", "age", "job")
    assert schema.item_columns == ("item_id", "tags", "price", "title")


def test_features_filters_by_kind():
    schema = _schema()
    assert [f.name for f in schema.features("item", ["numeric", "text"])] == ["price", "title"]
    assert [f.name for f in schema.features("user")] == ["user_id", "age", "job"]


def test_text_features_include_as_text_categoricals():
    """profession is categorical with as_text=True: the text encoder reads it too."""
    assert [f.name for f in TECH_PRODUCTS_SCHEMA.text_features("user")] == ["profession"]
    assert [f.name for f in TECH_PRODUCTS_SCHEMA.text_features("item")] == [
        "description",
        "features",
    ]


def test_tech_products_schema_matches_the_notebook_columns():
    assert TECH_PRODUCTS_SCHEMA.user_columns == ("user_id", "age", "profession", "personality")
    assert TECH_PRODUCTS_SCHEMA.item_columns == (
        "item_id",
        "product_type",
        "description",
        "price",
        "features",
    )
    assert TECH_PRODUCTS_SCHEMA.user_segment == "personality"


# --- Invalid schemas and features -----------------------------------------------------


def test_side_without_id_is_rejected():
    with pytest.raises(ConfigError, match="exactly one id"):
        _schema(user_features=(Feature("age", "numeric"),))


def test_side_with_two_ids_is_rejected():
    with pytest.raises(ConfigError, match="exactly one id"):
        _schema(item_features=(Feature("item_id", "id"), Feature("sku", "id")))


def test_duplicate_column_is_rejected():
    with pytest.raises(ConfigError, match="named twice: age"):
        _schema(
            user_features=(
                Feature("user_id", "id"),
                Feature("age", "numeric"),
                Feature("age", "categorical"),
            )
        )


def test_unknown_segment_is_rejected():
    with pytest.raises(ConfigError, match="segment column 'country'"):
        _schema(user_segment="country")


def test_segment_must_be_a_user_column_not_an_item_column():
    with pytest.raises(ConfigError, match="segment"):
        _schema(user_segment="price")


def test_bad_kind_is_rejected():
    with pytest.raises(ConfigError, match="kind must be one of"):
        Feature("x", "float")  # type: ignore[arg-type]


def test_unknown_transform_is_rejected():
    with pytest.raises(ConfigError, match="transform must be one of"):
        Feature("price", "numeric", transform="sqrt")


def test_transform_on_non_numeric_is_rejected():
    with pytest.raises(ConfigError, match="only numeric features take a transform"):
        Feature("title", "text", transform="log1p")


def test_categorical_list_without_separator_is_rejected():
    with pytest.raises(ConfigError, match="needs a separator"):
        Feature("tags", "categorical_list")


def test_empty_feature_name_is_rejected():
    with pytest.raises(ConfigError):
        Feature("", "numeric")


def test_config_error_is_a_value_error():
    """Library callers may catch ValueError."""
    with pytest.raises(ValueError):
        Feature("x", "bogus")  # type: ignore[arg-type]


def test_unknown_side_is_rejected():
    with pytest.raises(ConfigError, match="side must be"):
        _schema().side("movie")  # type: ignore[arg-type]


def test_unknown_feature_lookup_names_known_columns():
    with pytest.raises(ConfigError, match="known: user_id, age, job"):
        _schema().feature("user", "height")


# --- JSON round trip --------------------------------------------------------------------


@pytest.mark.parametrize("schema", [_schema(), TECH_PRODUCTS_SCHEMA], ids=["toy", "tech-products"])
def test_json_round_trip_gives_an_equal_schema(schema):
    text = schema.to_json()
    json.loads(text)  # valid JSON
    assert DatasetSchema.from_json(text) == schema


def test_from_json_rejects_invalid_json():
    with pytest.raises(ConfigError, match="not valid JSON"):
        DatasetSchema.from_json("{not json")


def test_from_json_rejects_missing_keys():
    data = json.loads(_schema().to_json())
    del data["item_features"]
    with pytest.raises(ConfigError, match="malformed"):
        DatasetSchema.from_json(json.dumps(data))


def test_from_json_rejects_unknown_feature_field():
    data = json.loads(_schema().to_json())
    data["user_features"][1]["scale"] = 2.0
    with pytest.raises(ConfigError, match="malformed"):
        DatasetSchema.from_json(json.dumps(data))


def test_from_json_validates_the_content():
    data = json.loads(_schema().to_json())
    data["user_features"][1]["kind"] = "float"
    with pytest.raises(ConfigError, match="kind must be one of"):
        DatasetSchema.from_json(json.dumps(data))


# --- select() ---------------------------------------------------------------------------


def test_select_keeps_ids_and_the_named_columns_in_schema_order():
    selected = _schema().select(user=["job"], item=["title", "price"])
    assert selected.user_columns == ("user_id", "job")
    # Schema order, not argument order.
    assert selected.item_columns == ("item_id", "price", "title")


def test_select_nothing_keeps_only_ids():
    selected = _schema().select(user=[], item=[])
    assert selected.user_columns == ("user_id",)
    assert selected.item_columns == ("item_id",)


def test_select_keeps_segment_only_if_selected():
    assert _schema().select(user=["job"], item=[]).user_segment == "job"
    assert _schema().select(user=["age"], item=[]).user_segment is None


def test_select_keeps_feature_settings_and_name():
    selected = _schema().select(user=[], item=["tags"])
    assert selected.feature("item", "tags") == Feature("tags", "categorical_list", separator="|")
    assert selected.name == "toy" and selected.timestamp == "ts"


def test_select_unknown_column_is_rejected():
    with pytest.raises(ConfigError, match="no item column 'colour'"):
        _schema().select(user=[], item=["colour"])


def test_schema_is_immutable():
    with pytest.raises(dataclasses.FrozenInstanceError):
        _schema().name = "other"  # type: ignore[misc]
