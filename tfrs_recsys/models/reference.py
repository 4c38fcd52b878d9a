"""Faithful reproductions of the seed notebooks' models, for comparisons.

``seed_subset`` is the first notebook's model, reproduced as written: user id +
scaled age and item id + scaled price, a Keras two-tower network (32-wide id
embeddings, one 64-unit ReLU layer per tower, dot product, sigmoid), binary
cross-entropy on the train positives plus 100 negatives per user drawn once,
Adam, 5 epochs of batch 64, numpy arrays fed to ``fit``.

Its negatives are the notebook's: the zeros of the *full* matrix (train and
holdout positives excluded), globally shuffled with ``random_state=42``, the
first 100 per user. Excluding holdout positives from the negatives leaks the
holdout into training; it is kept here only to reproduce the notebook, and
named ``leaky`` wherever it appears. The package's own models never do this.
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


def notebook_negatives(
    dataset: RecDataset, positives: pd.DataFrame, *, per_user: int = 100, seed: int = 42
) -> pd.DataFrame:
    """The notebooks' negatives: first ``per_user`` zeros per user after a shuffle.

    Equivalent to the notebook code on the melted full matrix::

        negatives = interactions_df[interactions_df['label'] == 0]
        negatives = negatives.sample(frac=1, random_state=42).reset_index(drop=True)
        neg_samples = negatives.groupby('user_id', group_keys=False).head(100)

    where the melt walks items (columns) in catalog order and users in table
    order. ``positives`` must be *all* positives (train and holdout), as in the
    notebooks: this is the leaky part.
    """
    n_users, n_items = dataset.n_users, dataset.n_items
    if n_users * n_items > 50_000_000:
        raise ConfigError(
            f"the notebooks' negative sampling enumerates every cell; {n_users} x {n_items} is too large"
        )
    user_rows, item_rows = dataset.encode(positives)
    positive = np.zeros((n_items, n_users), dtype=bool)  # melt order: item-major
    positive[item_rows, user_rows] = True
    zero_cells = np.flatnonzero(~positive.ravel())
    shuffled = zero_cells[np.random.RandomState(seed).permutation(len(zero_cells))]
    users = shuffled % n_users
    # groupby(...).head(k) keeps the first k rows of each user in shuffled order.
    order = np.argsort(users, kind="stable")
    counts = np.bincount(users, minlength=n_users)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty(len(users), dtype=np.int64)
    rank[order] = np.arange(len(users)) - np.repeat(starts, counts)
    keep = np.sort(np.flatnonzero(rank < per_user))
    cells = shuffled[keep]
    return pd.DataFrame(
        {
            USER_ID: dataset.table("user").ids[cells % n_users],
            ITEM_ID: dataset.table("item").ids[cells // n_users],
            "label": 0,
        }
    )


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
        for column in ("age", "price"):
            side = "user" if column == "age" else "item"
            if column not in dataset.table(side).columns:
                raise ConfigError(f"seed_subset needs a numeric {side} column {column!r}")
        tf.keras.utils.set_random_seed(seed)
        negatives = notebook_negatives(
            dataset, pd.concat([train, holdout], ignore_index=True), per_user=negatives_per_user
        )
        frame = pd.concat(
            [train[[USER_ID, ITEM_ID]].assign(label=1), negatives], ignore_index=True
        )
        user_rows, item_rows = dataset.encode(frame)
        ages = dataset.table("user").columns["age"].astype(np.float64)
        prices = dataset.table("item").columns["price"].astype(np.float64)

        # LabelEncoder: sorted distinct ids of the training frame -> 0..n-1.
        user_codes = _label_codes(user_rows, dataset.table("user").ids)
        item_codes = _label_codes(item_rows, dataset.table("item").ids)
        # MinMaxScaler fitted on the training frame's rows (as the notebook).
        age_scaled = _min_max(ages, ages[user_rows])
        price_scaled = _min_max(prices, prices[item_rows])

        model = notebook_network(int(user_codes.max()) + 1, int(item_codes.max()) + 1, embedding_dim)
        x = {
            "user_id": user_codes[user_rows].astype(np.int32),
            "user_age": age_scaled[user_rows][:, None].astype(np.float32),
            "item_id": item_codes[item_rows].astype(np.int32),
            "item_price": price_scaled[item_rows][:, None].astype(np.float32),
        }
        y = frame["label"].to_numpy(dtype=np.float32)
        start = time.perf_counter()
        model.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=verbose)
        return cls(model, user_codes, item_codes, age_scaled, price_scaled, time.perf_counter() - start)

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


def _label_codes(rows: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """LabelEncoder codes per table row: sorted distinct ids of ``rows`` -> 0..n-1."""
    seen = np.unique(rows)
    ordered = seen[np.argsort(ids[seen].astype(str), kind="stable")]
    codes = np.full(len(ids), -1, dtype=np.int64)
    codes[ordered] = np.arange(len(ordered))
    return codes


def _min_max(values: np.ndarray, fitted_on: np.ndarray) -> np.ndarray:
    low, high = float(fitted_on.min()), float(fitted_on.max())
    return (values - low) / (high - low) if high > low else np.zeros_like(values)


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
        from tfrs_recsys.models.retrieval import text_model_spec
        from tfrs_recsys.text_encoder import embed_texts

        users, items = dataset.table("user").columns, dataset.table("item").columns
        needed = {"user": ("profession", "age"), "item": ("description", "features", "price")}
        for side, columns in needed.items():
            for column in columns:
                if column not in dataset.table(side).columns:
                    raise ConfigError(f"seed_all needs a {side} column {column!r}")
        spec = text_model_spec(text_model)
        ages = users["age"].astype(np.float64)
        prices = items["price"].astype(np.float64)
        user_features = np.concatenate(
            [embed_texts([str(p) for p in users["profession"]], spec), _min_max(ages, ages)[:, None]], axis=1
        ).astype(np.float32)
        item_features = np.concatenate(
            [
                embed_texts([str(t) for t in items["description"]], spec),
                embed_texts([str(t) for t in items["features"]], spec),
                _min_max(prices, prices)[:, None],
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
        item_part = item_dense(tf.constant(self.item_features)).numpy() @ kernel[width:, 0] + bias[0]

        def score(user_rows: np.ndarray) -> np.ndarray:
            user_part = user_dense(tf.constant(self.user_features[np.asarray(user_rows)])).numpy() @ kernel[:width, 0]
            return 1.0 / (1.0 + np.exp(-(user_part[:, None] + item_part[None, :])))

        return score


def seed_all_network(user_width: int, item_width: int) -> tf.keras.Model:
    """The second notebook's Keras network, compiled as there (Adam, BCE)."""
    layers = tf.keras.layers
    user_input = tf.keras.Input(shape=(user_width,), name="user_input")
    item_input = tf.keras.Input(shape=(item_width,), name="item_input")
    user = layers.Dense(64, activation="relu", name="user_dense")(user_input)
    item = layers.Dense(64, activation="relu", name="item_dense")(item_input)
    output = layers.Dense(1, activation="sigmoid", name="output")(layers.Concatenate()([user, item]))
    model = tf.keras.Model([user_input, item_input], output)
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return model
