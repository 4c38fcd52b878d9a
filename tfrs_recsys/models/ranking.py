"""A pointwise TFRS ranking model: p(user likes item) from both sides' features.

It trains on the ranking pipeline (train positives + sampled negatives,
binary cross-entropy) and can score or re-rank any candidates; as a scorer it
scores the whole catalog for a batch of users.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import tensorflow as tf
import tensorflow_recommenders as tfrs

from tfrs_recsys.config import ModelConfig
from tfrs_recsys.data.dataset import RecDataset
from tfrs_recsys.data.pipelines import LABEL, FeatureGather
from tfrs_recsys.features.side_encoder import EncoderDims, SideEncoder
from tfrs_recsys.models.retrieval import _text_encoders, feature_columns


class RankingModel(tfrs.Model):
    """User and item feature encoders -> [DCN cross] -> MLP -> one logit.

    Args:
        dataset: Supplies the schema and feature tables.
        train: Train positives (vocabularies and statistics come from these).
        config: ``feature_set``, widths, ``hidden``, ``cross_layer``.
    """

    def __init__(self, dataset: RecDataset, train: pd.DataFrame, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        user_rows, item_rows = dataset.encode(train)
        dims = EncoderDims(
            id_dim=config.id_dim,
            categorical_dim=config.categorical_dim,
            numeric_buckets=config.numeric_buckets,
            text_dim=config.text_dim,
            embeddings_l2=config.id_l2,
        )
        user_features = feature_columns(dataset, "user", config)
        item_features = feature_columns(dataset, "item", config)
        if config.id_mode == "none" and config.feature_set != "ids":
            user_features = tuple(f for f in user_features if f.kind != "id")
            item_features = tuple(f for f in item_features if f.kind != "id")
        self.user_columns = [f.name for f in feature_columns(dataset, "user", config)]
        self.item_columns = [f.name for f in feature_columns(dataset, "item", config)]
        self.user_encoder = SideEncoder(
            user_features,
            dataset.table("user"),
            user_rows,
            dims,
            text_encoders=_text_encoders(dataset, "user", user_features, user_rows, config),
            name="user_features",
        )
        self.item_encoder = SideEncoder(
            item_features,
            dataset.table("item"),
            item_rows,
            dims,
            text_encoders=_text_encoders(dataset, "item", item_features, item_rows, config),
            name="item_features",
        )
        self.cross = tfrs.layers.dcn.Cross() if config.cross_layer else None
        self.hidden_layers = [tf.keras.layers.Dense(w, activation="relu") for w in config.hidden]
        self.logit = tf.keras.layers.Dense(1)
        self.task = tfrs.tasks.Ranking(
            loss=tf.keras.losses.BinaryCrossentropy(from_logits=True),
            metrics=[tf.keras.metrics.AUC(from_logits=True, name="auc")],
        )
        self.user_gather = FeatureGather(dataset.table("user"), self.user_columns)
        self.item_gather = FeatureGather(dataset.table("item"), self.item_columns)
        self.n_items = dataset.n_items

    def encode_users(self, features: Mapping[str, tf.Tensor], training: bool | None = None) -> tf.Tensor:
        """User feature vectors ``[batch, width]``."""
        return self.user_encoder({c: features[c] for c in self.user_columns}, training=training)

    def encode_items(self, features: Mapping[str, tf.Tensor], training: bool | None = None) -> tf.Tensor:
        """Item feature vectors ``[batch, width]``."""
        return self.item_encoder({c: features[c] for c in self.item_columns}, training=training)

    def head(self, users: tf.Tensor, items: tf.Tensor) -> tf.Tensor:
        """Logits ``[batch, 1]`` of encoded user and item vectors, paired row by row."""
        x = tf.concat([users, items], axis=-1)
        if self.cross is not None:
            x = self.cross(x)
        for layer in self.hidden_layers:
            x = layer(x)
        return self.logit(x)

    def call(self, features: Mapping[str, tf.Tensor], training: bool | None = None) -> tf.Tensor:
        """Logits ``[batch, 1]`` of user-item pairs given as one feature dict."""
        return self.head(self.encode_users(features, training), self.encode_items(features, training))

    def compute_loss(self, features: Mapping[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        logits = self(features, training=training)
        return self.task(labels=features[LABEL][:, None], predictions=logits)

    def probabilities(self, user_rows: np.ndarray, item_rows: np.ndarray, batch_size: int = 65536) -> np.ndarray:
        """p(like) ``[n]`` of the pairs ``(user_rows[k], item_rows[k])``."""
        parts = []
        for s in range(0, len(user_rows), batch_size):
            features = {
                **self.user_gather(tf.constant(user_rows[s : s + batch_size])),
                **self.item_gather(tf.constant(item_rows[s : s + batch_size])),
            }
            parts.append(tf.sigmoid(self(features, training=False))[:, 0])
        return tf.concat(parts, 0).numpy() if parts else np.zeros(0, np.float32)

    def scorer(self, pairs_per_call: int = 131_072):
        """A scorer for the evaluator: logits of every catalog item per user.

        The catalog is encoded once; each call encodes its users once and runs
        only the interaction head on the ``users x items`` pairs, in chunks of
        about ``pairs_per_call`` pairs to bound memory.
        """
        items = self.encode_items(self.item_gather(tf.range(self.n_items)), training=False)
        users_per_chunk = max(1, pairs_per_call // self.n_items)

        @tf.function(reduce_retracing=True)
        def score_chunk(user_vectors: tf.Tensor) -> tf.Tensor:
            batch = tf.shape(user_vectors)[0]
            logits = self.head(
                tf.repeat(user_vectors, self.n_items, axis=0), tf.tile(items, [batch, 1])
            )
            return tf.reshape(logits, [batch, self.n_items])

        def score(user_rows: np.ndarray) -> np.ndarray:
            rows = np.asarray(user_rows, dtype=np.int64)
            vectors = self.encode_users(self.user_gather(tf.constant(rows)), training=False)
            parts = [
                score_chunk(vectors[s : s + users_per_chunk]) for s in range(0, len(rows), users_per_chunk)
            ]
            return tf.concat(parts, 0).numpy() if parts else np.zeros((0, self.n_items), np.float32)

        return score
