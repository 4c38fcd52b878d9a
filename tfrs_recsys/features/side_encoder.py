"""In-graph preprocessing of one side's raw features into one vector.

:class:`SideEncoder` takes the raw feature dict a pipeline yields (strings and
floats, ``[batch]`` each) and returns ``[batch, width]``:

- id and categorical columns: ``StringLookup`` (vocabulary of the *train*
  entities, one OOV bucket for anything else) + ``Embedding``;
- categorical lists (``"Action|Comedy"``): split, ``StringLookup`` +
  ``Embedding``, mean over the labels;
- numeric columns: optional ``log1p``, ``Normalization`` adapted on the train
  entities, optionally also ``Discretization`` buckets + ``Embedding``. A
  non-finite value (NaN, +inf, -inf) counts as missing: it is replaced by the
  train mean of the transformed column, which normalises to 0 (finite values
  pass through unchanged);
- text columns: a vector from a :class:`TextFeatureEncoder` (bag of words in
  graph, or precomputed sentence embeddings) followed by a trainable projection.

Everything learnt from data (vocabularies, normalisation statistics, bucket
boundaries, text vocabularies) comes fitted, from the train split only, in a
:class:`~tfrs_recsys.features.preprocessing.SidePreprocessing`: the layer
fits nothing, and the holdout cannot leak into it. Ids, labels or values unseen
in train map to the OOV bucket and still get a vector from their other
features.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from tfrs_recsys.data.schema import Feature
from tfrs_recsys.errors import ConfigError
from tfrs_recsys.features.preprocessing import SidePreprocessing, numeric_transform


@dataclasses.dataclass(frozen=True)
class EncoderDims:
    """Widths of the per-feature encodings.

    Attributes:
        id_dim: Embedding width of the id column.
        categorical_dim: Embedding width of categorical and list columns.
        numeric_buckets: If > 0, numeric columns also get that many quantile
            buckets (``Discretization``) embedded with ``categorical_dim``.
        text_dim: Width of the trainable projection of each text column.
        text_vocabulary: Size of the bag-of-words vocabulary (``bow`` text).
        embeddings_l2: L2 penalty on the id embeddings looked up in a batch:
            ``embeddings_l2 * mean over the batch of ||e||^2``. Only the rows a
            batch uses are penalised (a table-wide penalty at every step would
            shrink rarely seen ids far more than their data supports).
    """

    id_dim: int = 32
    categorical_dim: int = 16
    numeric_buckets: int = 0
    text_dim: int = 32
    text_vocabulary: int = 2000
    embeddings_l2: float = 0.0


def batch_l2(vectors: tf.Tensor, weight: float) -> tf.Tensor:
    """``weight * mean_b ||vectors[b]||^2``: L2 on the embedding rows a batch used."""
    return weight * tf.reduce_mean(tf.reduce_sum(tf.square(vectors), axis=-1))


class SideEncoder(tf.keras.layers.Layer):
    """Raw features of one side -> ``[batch, width]`` (see module docstring).

    The layer fits nothing: vocabularies, statistics and text tables come
    fitted in ``preprocessing``.

    Args:
        features: The schema features to encode (the id may be left out).
        preprocessing: The side's fitted preprocessing
            (:class:`~tfrs_recsys.features.preprocessing.SidePreprocessing`).
        dims: Encoding widths.
        text_encoders: For text columns: column -> encoder producing a fixed
            vector for a batch of strings (see
            :mod:`tfrs_recsys.features.text`). Text columns without one are an
            error.
    """

    def __init__(
        self,
        features: Sequence[Feature],
        preprocessing: SidePreprocessing,
        dims: EncoderDims,
        text_encoders: Mapping[str, tf.keras.layers.Layer] | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if not len(features):
            raise ConfigError(f"the {preprocessing.side} encoder needs at least one feature")
        text_encoders = dict(text_encoders or {})
        self.feature_names = [f.name for f in features]
        self.lookups: dict[str, tf.keras.layers.Layer] = {}
        self.embeddings: dict[str, tf.keras.layers.Layer] = {}
        self.normalizers: dict[str, tf.keras.layers.Layer] = {}
        self.buckets: dict[str, tf.keras.layers.Layer] = {}
        self.bucket_embeddings: dict[str, tf.keras.layers.Layer] = {}
        self.text_encoders: dict[str, tf.keras.layers.Layer] = {}
        self.text_projections: dict[str, tf.keras.layers.Layer] = {}
        self.kinds = {f.name: f for f in features}
        self.embeddings_l2 = dims.embeddings_l2
        fills: dict[str, float] = {}
        for feature in features:
            name = feature.name
            if feature.kind in ("id", "categorical", "categorical_list"):
                vocabulary = list(_fitted(preprocessing.vocabularies, name, preprocessing.side))
                self.lookups[name] = tf.keras.layers.StringLookup(
                    vocabulary=vocabulary if vocabulary else None, name=f"{name}_lookup"
                )
                dim = dims.id_dim if feature.kind == "id" else dims.categorical_dim
                self.embeddings[name] = tf.keras.layers.Embedding(
                    len(vocabulary) + 1,
                    dim,
                    name=f"{name}_embedding",
                )
            elif feature.kind == "numeric":
                mean, variance = _fitted(preprocessing.normalization, name, preprocessing.side)
                fills[name] = float(np.asarray(mean, np.float32).reshape(-1)[0])
                self.normalizers[name] = tf.keras.layers.Normalization(
                    axis=None, mean=mean, variance=variance, name=f"{name}_normalization"
                )
                if dims.numeric_buckets > 0:
                    boundaries = _fitted(preprocessing.bucket_boundaries, name, preprocessing.side)
                    self.buckets[name] = tf.keras.layers.Discretization(
                        bin_boundaries=list(boundaries), name=f"{name}_buckets"
                    )
                    self.bucket_embeddings[name] = tf.keras.layers.Embedding(
                        dims.numeric_buckets + 1,
                        dims.categorical_dim,
                        name=f"{name}_bucket_embedding",
                    )
            elif feature.kind == "text":
                if name not in text_encoders:
                    raise ConfigError(f"text column {name!r} has no text encoder")
                self.text_encoders[name] = text_encoders[name]
                self.text_projections[name] = tf.keras.layers.Dense(
                    dims.text_dim, name=f"{name}_projection"
                )
            else:  # pragma: no cover - the schema validates kinds
                raise ConfigError(f"unsupported feature kind {feature.kind!r}")
        # The value of a missing numeric (its train mean after the transform); a read-only
        # mapping, so Keras tracks nothing new (checkpoints keep their structure).
        self.missing_numeric = types.MappingProxyType(fills)
        # Categorical columns marked as_text also go through the text encoder.
        for feature in features:
            if feature.as_text and feature.kind != "text" and feature.name in text_encoders:
                self.text_encoders[feature.name] = text_encoders[feature.name]
                self.text_projections[feature.name] = tf.keras.layers.Dense(
                    dims.text_dim, name=f"{feature.name}_text_projection"
                )

    def call(self, inputs: Mapping[str, tf.Tensor], training: bool | None = None) -> tf.Tensor:
        parts = []
        for name in self.feature_names:
            feature = self.kinds[name]
            value = inputs[name]
            if feature.kind in ("id", "categorical"):
                vectors = self.embeddings[name](self.lookups[name](value))
                if feature.kind == "id" and self.embeddings_l2 > 0:
                    self.add_loss(batch_l2(vectors, self.embeddings_l2))
                parts.append(vectors)
            elif feature.kind == "categorical_list":
                labels = tf.strings.split(value, sep=feature.separator)
                labels = tf.ragged.boolean_mask(labels, tf.strings.length(labels) > 0)
                vectors = self.embeddings[name](self.lookups[name](labels))
                total = tf.reduce_sum(vectors, axis=1)
                count = tf.cast(tf.maximum(labels.row_lengths(), 1), total.dtype)[:, None]
                parts.append(total / count)
            elif feature.kind == "numeric":
                number = self.numeric_value(name, value)
                parts.append(self.normalizers[name](number)[:, None])
                if name in self.buckets:
                    parts.append(self.bucket_embeddings[name](self.buckets[name](number)))
            if name in self.text_encoders:
                encoded = self.text_encoders[name](value)
                parts.append(self.text_projections[name](encoded))
        return tf.concat(parts, axis=-1)

    def numeric_value(self, name: str, value: tf.Tensor) -> tf.Tensor:
        """Numeric column ``name`` ``[batch]`` after its transform, non-finite values as missing.

        NaN, +inf and -inf (checked before the transform, so ``log1p`` cannot turn
        -inf into 0) get the column's train mean, which normalises to exactly 0;
        finite values are returned bit for bit as the transform gives them.
        """
        raw = tf.cast(value, tf.float32)
        number = numeric_transform(self.kinds[name], raw)
        fill = tf.constant(self.missing_numeric[name], tf.float32)
        return tf.where(tf.math.is_finite(raw), number, fill)


def _fitted(fitted: Mapping[str, Any], name: str, side: str) -> Any:
    try:
        return fitted[name]
    except KeyError:
        raise ConfigError(
            f"the fitted {side} preprocessing has nothing for column {name!r}: it was fitted for "
            "another model config (feature set, text encoder or numeric buckets)"
        ) from None
