"""The first seed notebook's model (``seed_subset``), reproduced as written.

``seed_subset`` is the first notebook's model, reproduced as written: user id +
scaled age and item id + scaled price, a Keras two-tower network (32-wide id
embeddings, one 64-unit ReLU layer per tower, dot product, sigmoid), binary
cross-entropy on the train positives plus 100 negatives per user drawn once,
Adam, 5 epochs of batch 64, numpy arrays fed to ``fit``.

The negatives are the notebook's leaky ones (:mod:`~tfrs_recsys.notebook_models.negatives`).
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
from tfrs_recsys.notebook_models.encoders import label_codes, min_max_scale
from tfrs_recsys.notebook_models.negatives import check_cell_count, notebook_negatives

__all__ = ["SeedSubsetModel", "notebook_network"]


@dataclasses.dataclass
class SeedSubsetModel:
    """The first notebook's model on the package's data and split.

    Attributes:
        model: The Keras model (inputs ``user_id``, ``user_age``, ``item_id``,
            ``item_price``).
        train_s: Seconds spent in ``fit``.
    """

    model: tf.keras.Model
    user_codes: np.ndarray  # user table row -> LabelEncoder code (-1: unseen)
    item_codes: np.ndarray
    age_scaled: np.ndarray  # per user table row
    price_scaled: np.ndarray  # per item table row
    train_s: float = 0.0

    @staticmethod
    def check_dataset(dataset: RecDataset) -> None:
        """Raises :class:`ConfigError` if ``dataset`` lacks what :meth:`fit` needs."""
        for column in ("age", "price"):
            side = "user" if column == "age" else "item"
            if column not in dataset.table(side).columns:
                raise ConfigError(f"seed_subset needs a numeric {side} column {column!r}")
        check_cell_count(dataset)

    @classmethod
    def fit(
        cls,
        dataset: RecDataset,
        train: pd.DataFrame,
        holdout: pd.DataFrame,
        *,
        epochs: int = 5,
        batch_size: int = 64,
        negatives_per_user: int = 100,
        embedding_dim: int = 32,
        seed: int = 42,
        verbose: int = 0,
    ) -> SeedSubsetModel:
        """Trains as the notebook does (see module docstring).

        ``holdout`` is used only to reproduce the notebook's leaky negatives.
        """
        cls.check_dataset(dataset)
        tf.keras.utils.set_random_seed(seed)
        negatives = notebook_negatives(
            dataset, pd.concat([train, holdout], ignore_index=True), per_user=negatives_per_user
        )
        frame = pd.concat([train[[USER_ID, ITEM_ID]].assign(label=1), negatives], ignore_index=True)
        user_rows, item_rows = dataset.encode(frame)
        ages = dataset.table("user").columns["age"].astype(np.float64)
        prices = dataset.table("item").columns["price"].astype(np.float64)

        # LabelEncoder: sorted distinct ids of the training frame -> 0..n-1.
        user_codes = label_codes(user_rows, dataset.table("user").ids)
        item_codes = label_codes(item_rows, dataset.table("item").ids)
        # MinMaxScaler fitted on the training frame's rows (as the notebook).
        age_scaled = min_max_scale(ages, ages[user_rows])
        price_scaled = min_max_scale(prices, prices[item_rows])

        model = notebook_network(
            int(user_codes.max()) + 1, int(item_codes.max()) + 1, embedding_dim
        )
        x = {
            "user_id": user_codes[user_rows].astype(np.int32),
            "user_age": age_scaled[user_rows][:, None].astype(np.float32),
            "item_id": item_codes[item_rows].astype(np.int32),
            "item_price": price_scaled[item_rows][:, None].astype(np.float32),
        }
        y = frame["label"].to_numpy(dtype=np.float32)
        start = time.perf_counter()
        model.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=verbose)
        return cls(
            model, user_codes, item_codes, age_scaled, price_scaled, time.perf_counter() - start
        )

    @property
    def gives_probabilities(self) -> bool:
        """True: the network's sigmoid output is p(user likes item)."""
        return True

    def probabilities(self, user_rows: np.ndarray, item_rows: np.ndarray) -> np.ndarray:
        """The sigmoid output ``[n]`` for pairs of table rows (unseen ids -> code 0)."""
        x = {
            "user_id": np.maximum(self.user_codes[user_rows], 0).astype(np.int32),
            "user_age": self.age_scaled[user_rows][:, None].astype(np.float32),
            "item_id": np.maximum(self.item_codes[item_rows], 0).astype(np.int32),
            "item_price": self.price_scaled[item_rows][:, None].astype(np.float32),
        }
        return self.model.predict(x, batch_size=65536, verbose=0)[:, 0]

    def scorer(self):
        n_items = len(self.item_codes)

        def score(user_rows: np.ndarray) -> np.ndarray:
            users = np.repeat(np.asarray(user_rows), n_items)
            items = np.tile(np.arange(n_items), len(user_rows))
            return self.probabilities(users, items).reshape(len(user_rows), n_items)

        return score


def notebook_network(n_users: int, n_items: int, embedding_dim: int) -> tf.keras.Model:
    """The first notebook's Keras network, compiled as there (Adam, BCE).

    Inputs: ``user_id`` and ``item_id`` (int32 codes, ``[batch]``), ``user_age``
    and ``item_price`` (scaled, ``[batch, 1]``); output: ``[batch, 1]`` sigmoid.
    """
    layers = tf.keras.layers
    user_id = tf.keras.Input(shape=(), name="user_id", dtype=tf.int32)
    user_age = tf.keras.Input(shape=(1,), name="user_age", dtype=tf.float32)
    item_id = tf.keras.Input(shape=(), name="item_id", dtype=tf.int32)
    item_price = tf.keras.Input(shape=(1,), name="item_price", dtype=tf.float32)
    user = layers.Flatten()(layers.Embedding(n_users, embedding_dim)(user_id))
    user = layers.Dense(64, activation="relu")(layers.Concatenate()([user, user_age]))
    item = layers.Flatten()(layers.Embedding(n_items, embedding_dim)(item_id))
    item = layers.Dense(64, activation="relu")(layers.Concatenate()([item, item_price]))
    output = layers.Activation("sigmoid")(layers.Dot(axes=1)([user, item]))
    model = tf.keras.Model([user_id, user_age, item_id, item_price], output)
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return model
