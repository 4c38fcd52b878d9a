"""What a model hands the exporter: :class:`ServingParts`.

Every exportable model answers ``model.serving_parts(dataset)`` with one of
these: its vectors of every user and item row of the feature tables, how to
score a user vector against item vectors, and its towers as functions of raw
feature columns (for new users and new items). The exporter builds the serving
graph from them alone, whatever the kind of model.

TensorFlow is imported only inside the helpers that build tensors.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import tensorflow as tf

    from tfrs_recsys.data.schema import DatasetSchema

#: Bound on ``users x items`` cells of one score matrix (dot-product models).
RETRIEVAL_CELLS_PER_CHUNK = 1 << 25
#: Bound on ``users x items`` pairs through a ranking head at a time.
RANKING_PAIRS_PER_CHUNK = 1 << 17

#: ``(user vectors [u, d], item vectors [m, d']) -> scores [u, m]``.
ScoreChunk = Callable[["tf.Tensor", "tf.Tensor"], "tf.Tensor"]
#: ``{column: raw values [b]} -> vectors [b, d]``.
EncodeFeatures = Callable[[Mapping[str, "tf.Tensor"]], "tf.Tensor"]


@dataclasses.dataclass(frozen=True)
class ServingParts:
    """A trained model's contribution to a SavedModel export.

    Attributes:
        kind: ``"retrieval"`` or ``"ranking"`` (recorded in the manifest).
        user_vectors: ``[n_users, d]`` vectors of the user table's rows, in
            table order (query vectors, or user encodings for ranking).
        item_vectors: ``[n_items, d']`` vectors of the catalog, in item table
            order (candidate vectors, or item encodings).
        score_chunk: Scores of user vectors against item vectors
            ``([u, d], [m, d']) -> [u, m]``; ``None`` is the dot product.
        cells_per_chunk: Bound on ``u * m`` per score matrix.
        encode_user_features: Raw user columns (the id excepted) -> user
            vectors ``[b, d]``, for new users (``recommend_from_features``);
            ``None`` when the model reads the user id alone.
        user_feature_specs: Its inputs, ``{column: TensorSpec([None])}`` in order.
        encode_item_features: Raw item columns (the id included) -> item
            vectors ``[m, d']`` (``score_items``; dot-product models only).
        item_feature_specs: Its inputs, in order.
        pair_probability: ``(user vectors [b, d], item vectors [b, d']) ->
            p(like) [b]`` of paired rows (the ``score`` signature), or ``None``.
        unknown_query: ``[d]`` the user vector ``score_items`` gives users
            outside the user table, or ``None``.
        text_lookups: The model's precomputed text lookup layers by side,
            ``{"user": {column: layer}, "item": {...}}`` (cold-start text).
    """

    kind: str
    user_vectors: np.ndarray
    item_vectors: np.ndarray
    score_chunk: ScoreChunk | None = None
    cells_per_chunk: int = RETRIEVAL_CELLS_PER_CHUNK
    encode_user_features: EncodeFeatures | None = None
    user_feature_specs: dict[str, Any] = dataclasses.field(default_factory=dict)
    encode_item_features: EncodeFeatures | None = None
    item_feature_specs: dict[str, Any] = dataclasses.field(default_factory=dict)
    pair_probability: ScoreChunk | None = None
    unknown_query: np.ndarray | None = None
    text_lookups: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)


def column_specs(
    schema: DatasetSchema, side: str, columns: Sequence[str]
) -> dict[str, tf.TensorSpec]:
    """``{column: TensorSpec([None])}`` of raw feature columns: float32 numeric, else string."""
    import tensorflow as tf

    specs = {}
    for name in columns:
        dtype = tf.float32 if schema.feature(side, name).kind == "numeric" else tf.string
        specs[name] = tf.TensorSpec([None], dtype, name=name)
    return specs


def with_blank_id(
    features: Mapping[str, tf.Tensor], id_column: str, columns: Sequence[str]
) -> dict[str, tf.Tensor]:
    """``features`` plus ``id_column = ""`` (the out-of-vocabulary id) when ``columns`` read it.

    A new user has no id the model knows; its other columns carry the answer.
    """
    import tensorflow as tf

    full = dict(features)
    if id_column in columns:
        full[id_column] = tf.fill(tf.shape(next(iter(features.values()))), "")
    return full


def vectors_of_rows(
    fn: Callable[[tf.Tensor], tf.Tensor], count: int, batch_size: int = 4096
) -> np.ndarray:
    """``fn(rows)`` over rows ``0 .. count - 1`` in batches, concatenated ``[count, d]``."""
    import tensorflow as tf

    rows = np.arange(count, dtype=np.int64)
    parts = [fn(tf.constant(rows[s : s + batch_size])).numpy() for s in range(0, count, batch_size)]
    return np.concatenate(parts, 0)
