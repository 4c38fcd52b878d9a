"""A pointwise TFRS ranking model: p(user likes item) from both sides' features.

It trains on the ranking pipeline (train positives + sampled negatives,
binary cross-entropy) and can score or re-rank any candidates; as a scorer it
scores the whole catalog for a batch of users.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

from tfrs_recsys.config import ModelConfig
from tfrs_recsys.data.dataset import FeatureTable
from tfrs_recsys.data.pipelines import LABEL, FeatureGather
from tfrs_recsys.features.columns import encoded_features
from tfrs_recsys.features.preprocessing import Preprocessing, Untracked
from tfrs_recsys.towers.build import build_side_encoder


class RankingModel(tfrs.Model):
    """User and item feature encoders -> [DCN cross] -> MLP -> one logit.

    Args:
        config: ``feature_set``, widths, ``hidden``, ``cross_layer``.
        preprocessing: Both sides' fitted preprocessing (from the train split).
        users: The user feature table.
        items: The item feature table (the catalog).
    """

    def __init__(
        self,
        config: ModelConfig,
        preprocessing: Preprocessing,
        users: FeatureTable,
        items: FeatureTable,
    ) -> None:
        super().__init__()
        self.config = config
        self._fitted = Untracked(preprocessing)
        user_features = preprocessing.user.features
        item_features = preprocessing.item.features
        if config.id_mode == "none":
            # The id goes in with the other features unless the mode leaves it out.
            user_features = encoded_features(user_features, config)
            item_features = encoded_features(item_features, config)
        self.user_columns = preprocessing.user.columns
        self.item_columns = preprocessing.item.columns
        self.user_encoder = build_side_encoder(
            preprocessing.user, user_features, users, config, name="user_features"
        )
        self.item_encoder = build_side_encoder(
            preprocessing.item, item_features, items, config, name="item_features"
        )
        self.cross = tfrs.layers.dcn.Cross() if config.cross_layer else None
        self.hidden_layers = [tf.keras.layers.Dense(w, activation="relu") for w in config.hidden]
        self.logit = tf.keras.layers.Dense(1)
        self.task = tfrs.tasks.Ranking(
            loss=tf.keras.losses.BinaryCrossentropy(from_logits=True),
            metrics=[tf.keras.metrics.AUC(from_logits=True, name="auc")],
        )
        self.user_gather = FeatureGather(users, self.user_columns)
        self.item_gather = FeatureGather(items, self.item_columns)
        self.n_items = len(items)

    @property
    def preprocessing(self) -> Preprocessing:
        """The fitted preprocessing the model was built from."""
        return self._fitted.value

    @property
    def gives_probabilities(self) -> bool:
        """A ranking model's sigmoid output is p(user likes item)."""
        return True

    def encode_users(
        self, features: Mapping[str, tf.Tensor], training: bool | None = None
    ) -> tf.Tensor:
        """User feature vectors ``[batch, width]``."""
        return self.user_encoder({c: features[c] for c in self.user_columns}, training=training)

    def encode_items(
        self, features: Mapping[str, tf.Tensor], training: bool | None = None
    ) -> tf.Tensor:
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
        return self.head(
            self.encode_users(features, training), self.encode_items(features, training)
        )

    def compute_loss(self, features: Mapping[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        logits = self(features, training=training)
        return self.task(labels=features[LABEL][:, None], predictions=logits)

    def probabilities(
        self, user_rows: np.ndarray, item_rows: np.ndarray, batch_size: int = 65536
    ) -> np.ndarray:
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
                score_chunk(vectors[s : s + users_per_chunk])
                for s in range(0, len(rows), users_per_chunk)
            ]
            return tf.concat(parts, 0).numpy() if parts else np.zeros((0, self.n_items), np.float32)

        return score

    def candidate_scorer(self, pairs_per_call: int = 131_072):
        """Logits of given candidates per user, for re-ranking (the second of two stages).

        The catalog is encoded once; each call encodes its users once and runs
        the interaction head on each user's own candidates only.

        Returns:
            ``score(user_rows [b], item_rows [b, m]) -> logits [b, m]`` (numpy
            float32), in chunks of about ``pairs_per_call`` pairs.
        """
        items = self.encode_items(self.item_gather(tf.range(self.n_items)), training=False)

        @tf.function(reduce_retracing=True)
        def score_chunk(user_vectors: tf.Tensor, item_rows: tf.Tensor) -> tf.Tensor:
            width = tf.shape(item_rows)[1]
            logits = self.head(
                tf.repeat(user_vectors, width, axis=0),
                tf.gather(items, tf.reshape(item_rows, [-1])),
            )
            return tf.reshape(logits, [-1, width])

        def score(user_rows: np.ndarray, item_rows: np.ndarray) -> np.ndarray:
            rows = np.asarray(user_rows, dtype=np.int64)
            candidates = np.asarray(item_rows, dtype=np.int64)
            width = candidates.shape[1]
            if len(rows) == 0 or width == 0:
                return np.zeros((len(rows), width), np.float32)
            vectors = self.encode_users(self.user_gather(tf.constant(rows)), training=False)
            per = max(1, pairs_per_call // width)
            parts = [
                score_chunk(vectors[s : s + per], tf.constant(candidates[s : s + per]))
                for s in range(0, len(rows), per)
            ]
            return tf.concat(parts, 0).numpy()

        return score

    def serving_parts(self, dataset):
        """What a SavedModel export needs from this model (:class:`~tfrs_recsys.models.serving_parts.ServingParts`).

        User and item encodings of every table row, the head as the score of
        user x item pairs (and its sigmoid as the pair probability), and the
        user encoder on raw user columns for new users.

        Args:
            dataset: The dataset the model was built on (its user and item
                tables, in row order, and its schema).
        """
        from tfrs_recsys.models import serving_parts as parts
        from tfrs_recsys.towers.text_slots import precomputed_text_lookups

        user_id = dataset.schema.id_column("user")
        user_specs = parts.column_specs(
            dataset.schema, "user", [c for c in self.user_columns if c != user_id]
        )

        def score_chunk(users: tf.Tensor, items: tf.Tensor) -> tf.Tensor:
            count = tf.shape(users)[0]
            n_items = tf.shape(items)[0]
            logits = self.head(tf.repeat(users, n_items, axis=0), tf.tile(items, [count, 1]))
            return tf.reshape(logits, [count, n_items])

        return parts.ServingParts(
            kind="ranking",
            user_vectors=parts.vectors_of_rows(
                lambda rows: self.encode_users(self.user_gather(rows), training=False),
                dataset.n_users,
            ),
            item_vectors=parts.vectors_of_rows(
                lambda rows: self.encode_items(self.item_gather(rows), training=False),
                dataset.n_items,
            ),
            score_chunk=score_chunk,
            cells_per_chunk=parts.RANKING_PAIRS_PER_CHUNK,
            encode_user_features=(
                (
                    lambda f: self.encode_users(
                        parts.with_blank_id(f, user_id, self.user_columns), training=False
                    )
                )
                if user_specs
                else None
            ),
            user_feature_specs=user_specs,
            pair_probability=lambda users, items: tf.sigmoid(self.head(users, items))[:, 0],
            text_lookups=precomputed_text_lookups(self),
        )
