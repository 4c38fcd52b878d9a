"""In-graph preprocessing of one side's raw features into one vector.

:class:`SideEncoder` takes the raw feature dict a pipeline yields (strings and
floats, ``[batch]`` each) and returns ``[batch, width]``:

- id and categorical columns: ``StringLookup`` (vocabulary of the *train*
  entities, one OOV bucket for anything else) + ``Embedding``;
- categorical lists (``"Action|Comedy"``): split, ``StringLookup`` +
  ``Embedding``, mean over the labels;
- numeric columns: optional ``log1p``, ``Normalization`` adapted on the train
  entities, optionally also ``Discretization`` buckets + ``Embedding``;
- text columns: a vector from a :class:`TextFeatureEncoder` (bag of words in
  graph, or precomputed sentence embeddings) followed by a trainable projection.

Everything that is learnt from data (vocabularies, normalisation statistics,
bucket boundaries, text vocabularies) is learnt from the train split only, so
the holdout cannot leak into the model; ids, labels or values unseen in train
map to the OOV bucket and still get a vector from their other features.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np
import tensorflow as tf

from tfrs_recsys.data.dataset import FeatureTable
from tfrs_recsys.data.schema import Feature
from tfrs_recsys.errors import ConfigError


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


def _train_values(table: FeatureTable, rows: np.ndarray, name: str) -> np.ndarray:
    return table.columns[name][rows]


class SideEncoder(tf.keras.layers.Layer):
    """Raw features of one side -> ``[batch, width]`` (see module docstring).

    Args:
        features: The schema features to encode (the id may be left out).
        table: The side's feature table.
        train_rows: Rows of the table that occur in the train split; every
            vocabulary and statistic is computed from these rows only.
        dims: Encoding widths.
        text_encoders: For text columns: column -> encoder producing a fixed
            vector for a batch of strings (see
            :mod:`tfrs_recsys.features.text`). Text columns without one are an
            error.
    """

    def __init__(
        self,
        features: Sequence[Feature],
        table: FeatureTable,
        train_rows: np.ndarray,
        dims: EncoderDims,
        text_encoders: Mapping[str, tf.keras.layers.Layer] | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if not len(features):
            raise ConfigError(f"the {table.side} encoder needs at least one feature")
        text_encoders = dict(text_encoders or {})
        train_rows = np.unique(np.asarray(train_rows, dtype=np.int64))
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
        for feature in features:
            name = feature.name
            values = _train_values(table, train_rows, name)
            if feature.kind in ("id", "categorical", "categorical_list"):
                if feature.kind == "categorical_list":
                    labels = [
                        label
                        for value in values
                        for label in str(value).split(feature.separator)
                        if label
                    ]
                else:
                    labels = [str(v) for v in values if str(v)]
                vocabulary = sorted(set(labels))
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
                numbers = self._transform(feature, np.asarray(values, dtype=np.float32))
                normalizer = tf.keras.layers.Normalization(axis=None, name=f"{name}_normalization")
                normalizer.adapt(numbers)
                self.normalizers[name] = normalizer
                if dims.numeric_buckets > 0:
                    discretizer = tf.keras.layers.Discretization(
                        num_bins=dims.numeric_buckets, name=f"{name}_buckets"
                    )
                    discretizer.adapt(numbers)
                    self.buckets[name] = discretizer
                    self.bucket_embeddings[name] = tf.keras.layers.Embedding(
                        dims.numeric_buckets + 1, dims.categorical_dim, name=f"{name}_bucket_embedding"
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
        # Categorical columns marked as_text also go through the text encoder.
        for feature in features:
            if feature.as_text and feature.kind != "text" and feature.name in text_encoders:
                self.text_encoders[feature.name] = text_encoders[feature.name]
                self.text_projections[feature.name] = tf.keras.layers.Dense(
                    dims.text_dim, name=f"{feature.name}_text_projection"
                )

    @staticmethod
    def _transform(feature: Feature, values):
        if feature.transform == "log1p":
            if isinstance(values, np.ndarray):
                return np.log1p(np.maximum(values, 0.0)).astype(np.float32)
            return tf.math.log1p(tf.maximum(values, 0.0))
        return values

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
                number = self._transform(feature, tf.cast(value, tf.float32))
                parts.append(self.normalizers[name](number)[:, None])
                if name in self.buckets:
                    parts.append(self.bucket_embeddings[name](self.buckets[name](number)))
            if name in self.text_encoders:
                encoded = self.text_encoders[name](value)
                parts.append(self.text_projections[name](encoded))
        return tf.concat(parts, axis=-1)
