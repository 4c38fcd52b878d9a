"""The second seed notebook's model (``seed_all``), reproduced as written.

See :class:`SeedAllModel`. The negatives are the notebook's leaky ones
(:mod:`~tfrs_recsys.notebook_models.negatives`).
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pandas as pd
import tensorflow as tf

from tfrs_recsys.data.dataset import RecDataset
from tfrs_recsys.data.schema import ITEM_ID, USER_ID
from tfrs_recsys.errors import ConfigError
from tfrs_recsys.notebook_models.encoders import min_max_scale
from tfrs_recsys.notebook_models.negatives import check_cell_count, notebook_negatives

__all__ = ["SeedAllModel", "seed_all_network"]


@dataclasses.dataclass
class SeedAllModel:
    """The second notebook's model on the package's data and split.

    As written there: each user is the sentence embedding of their profession
    plus min-max scaled age; each item the embeddings of its description and
    its features plus min-max scaled price (scalers fitted on the whole user
    and item tables). Train positives plus the notebook's 100 leaky negatives
    per user, shuffled (``random_state=42``), the first 200,000 rows kept;
    one 64-unit ReLU layer per side, the two concatenated into one sigmoid
    unit; Adam, binary cross-entropy, 10 epochs of batch 32 with Keras's
    ``validation_split=0.1``.

    The notebook used bert-base-uncased with an unmasked mean over padded
    tokens; here the sentence encoder is the package's TF Hub encoder
    (``text_model``, mask-aware mean). Because the towers meet in one linear
    unit, ``logit = w_u . h(user) + w_i . h(item) + b``: every user gets the
    same item order, which :meth:`scorer` computes exactly from the two parts.

    Attributes:
        model: The Keras model (inputs ``user_input``, ``item_input``).
        user_features: ``[n_users, d_u]`` per user table row.
        item_features: ``[n_items, d_i]`` per item table row.
        train_s: Seconds spent in ``fit``.
    """

    model: tf.keras.Model
    user_features: np.ndarray
    item_features: np.ndarray
    train_s: float = 0.0

    @staticmethod
    def check_dataset(dataset: RecDataset) -> None:
        """Raises :class:`ConfigError` if ``dataset`` lacks what :meth:`fit` needs."""
        needed = {"user": ("profession", "age"), "item": ("description", "features", "price")}
        for side, columns in needed.items():
            for column in columns:
                if column not in dataset.table(side).columns:
                    raise ConfigError(f"seed_all needs a {side} column {column!r}")
        check_cell_count(dataset)

    @classmethod
    def fit(
        cls,
        dataset: RecDataset,
        train: pd.DataFrame,
        holdout: pd.DataFrame,
        *,
        text_model: str = "minilm",
        rows: int = 200_000,
        epochs: int = 10,
        batch_size: int = 32,
        negatives_per_user: int = 100,
        seed: int = 42,
        verbose: int = 0,
    ) -> SeedAllModel:
        """Trains as the notebook does (see the class docstring).

        ``holdout`` is used only to reproduce the notebook's leaky negatives.
        """
        from tfrs_recsys.features.columns import text_model_spec
        from tfrs_recsys.text_encoder import embed_texts

        cls.check_dataset(dataset)
        users, items = dataset.table("user").columns, dataset.table("item").columns
        spec = text_model_spec(text_model)
        ages = users["age"].astype(np.float64)
        prices = items["price"].astype(np.float64)
        user_features = np.concatenate(
            [
                embed_texts([str(p) for p in users["profession"]], spec),
                min_max_scale(ages, ages)[:, None],
            ],
            axis=1,
        ).astype(np.float32)
        item_features = np.concatenate(
            [
                embed_texts([str(t) for t in items["description"]], spec),
                embed_texts([str(t) for t in items["features"]], spec),
                min_max_scale(prices, prices)[:, None],
            ],
            axis=1,
        ).astype(np.float32)

        tf.keras.utils.set_random_seed(seed)
        negatives = notebook_negatives(
            dataset, pd.concat([train, holdout], ignore_index=True), per_user=negatives_per_user
        )
        frame = pd.concat([train[[USER_ID, ITEM_ID]].assign(label=1), negatives], ignore_index=True)
        frame = frame.sample(frac=1, random_state=seed).reset_index(drop=True).head(rows)
        user_rows, item_rows = dataset.encode(frame)
        model = seed_all_network(user_features.shape[1], item_features.shape[1])
        start = time.perf_counter()
        model.fit(
            [user_features[user_rows], item_features[item_rows]],
            frame["label"].to_numpy(dtype=np.float32),
            epochs=epochs,
            batch_size=batch_size,
            validation_split=0.1,
            verbose=verbose,
        )
        return cls(model, user_features, item_features, time.perf_counter() - start)

    @property
    def gives_probabilities(self) -> bool:
        """True: the network's sigmoid output is p(user likes item)."""
        return True

    def probabilities(self, user_rows: np.ndarray, item_rows: np.ndarray) -> np.ndarray:
        """The model's sigmoid output ``[n]`` for pairs of table rows."""
        x = [self.user_features[user_rows], self.item_features[item_rows]]
        return self.model.predict(x, batch_size=65536, verbose=0)[:, 0]

    def scorer(self):
        """All-catalog probabilities from the two additive parts of the logit."""
        user_dense = self.model.get_layer("user_dense")
        item_dense = self.model.get_layer("item_dense")
        kernel, bias = self.model.get_layer("output").get_weights()
        width = user_dense.units
        item_part = (
            item_dense(tf.constant(self.item_features)).numpy() @ kernel[width:, 0] + bias[0]
        )

        def score(user_rows: np.ndarray) -> np.ndarray:
            user_part = (
                user_dense(tf.constant(self.user_features[np.asarray(user_rows)])).numpy()
                @ kernel[:width, 0]
            )
            return 1.0 / (1.0 + np.exp(-(user_part[:, None] + item_part[None, :])))

        return score


def seed_all_network(user_width: int, item_width: int) -> tf.keras.Model:
    """The second notebook's Keras network, compiled as there (Adam, BCE)."""
    layers = tf.keras.layers
    user_input = tf.keras.Input(shape=(user_width,), name="user_input")
    item_input = tf.keras.Input(shape=(item_width,), name="item_input")
    user = layers.Dense(64, activation="relu", name="user_dense")(user_input)
    item = layers.Dense(64, activation="relu", name="item_dense")(item_input)
    output = layers.Dense(1, activation="sigmoid", name="output")(
        layers.Concatenate()([user, item])
    )
    model = tf.keras.Model([user_input, item_input], output)
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return model
