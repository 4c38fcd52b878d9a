"""Which columns a model reads: the feature sets ``ids``, ``subset`` and ``all``."""

from __future__ import annotations

from tfrs_recsys.config import ModelConfig
from tfrs_recsys.data.schema import DatasetSchema, Feature, Side


def feature_columns(schema: DatasetSchema, side: Side, config: ModelConfig) -> tuple[Feature, ...]:
    """The columns a model reads on ``side`` under ``config.feature_set`` (id included).

    ``ids``: the id only; ``subset``: id + numeric columns (the first seed
    notebook: user id + age, item id + price); ``all``: every column, text
    columns only when a text encoder is configured.
    """
    features = schema.side(side)
    if config.feature_set == "ids":
        return tuple(f for f in features if f.kind == "id")
    if config.feature_set == "subset":
        return tuple(f for f in features if f.kind in ("id", "numeric"))
    if config.text_encoder == "none":
        return tuple(f for f in features if f.kind != "text")
    return features


def encoded_features(features: tuple[Feature, ...], config: ModelConfig) -> tuple[Feature, ...]:
    """The features a side's encoder reads: without the id when ``config.id_mode``
    keeps the id out of the encoder (``residual``, ``none``), unless the side
    has no other feature; then the id is its only input (see :func:`id_only`)."""
    if config.id_mode == "input" or config.feature_set == "ids" or id_only(features, config):
        return features
    return tuple(f for f in features if f.kind != "id")


def id_only(features: tuple[Feature, ...], config: ModelConfig) -> bool:
    """Whether a side falls back to its id: ``subset``/``all`` asked for features
    beside the id, and the side (an interactions-only user file, say) has none."""
    return config.feature_set != "ids" and all(f.kind == "id" for f in features)


def id_only_sides(schema: DatasetSchema, config: ModelConfig) -> list[str]:
    """The sides of ``schema`` whose towers fall back to the id under ``config``."""
    return [
        side for side in ("user", "item") if id_only(feature_columns(schema, side, config), config)
    ]


def uses_text(config: ModelConfig) -> bool:
    """Whether the model encodes text columns (feature set ``all`` with a text encoder)."""
    return config.feature_set == "all" and config.text_encoder != "none"


def text_model_spec(text_model: str) -> str | tuple[str, ...]:
    """``model.text_model`` as :func:`tfrs_recsys.text_encoder.resolve_encoder` takes it."""
    parts = [p.strip() for p in str(text_model).split(",")]
    return parts[0] if len(parts) == 1 else tuple(parts)
