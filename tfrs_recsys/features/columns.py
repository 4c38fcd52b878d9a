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


def uses_text(config: ModelConfig) -> bool:
    """Whether the model encodes text columns (feature set ``all`` with a text encoder)."""
    return config.feature_set == "all" and config.text_encoder != "none"


def text_model_spec(text_model: str) -> str | tuple[str, ...]:
    """``model.text_model`` as :func:`tfrs_recsys.text_encoder.resolve_encoder` takes it."""
    parts = [p.strip() for p in str(text_model).split(",")]
    return parts[0] if len(parts) == 1 else tuple(parts)
