"""Preprocessing fitted once: everything a model learns from data before training.

:func:`fit_preprocessing` computes, from the *train* positives only, what the
towers' preprocessing layers need, one :class:`SidePreprocessing` per side:

- vocabularies of id, categorical and categorical-list columns (the train
  entities' values; anything else maps to the OOV bucket);
- normalisation statistics (mean, variance after the column's transform) and
  optional quantile bucket boundaries of numeric columns;
- text: the bag-of-words vocabulary and IDF weights (``text_encoder = "bow"``),
  or the table of sentence vectors of every distinct string of the feature
  table (``"bert"``, computed once by the TF Hub encoder);
- the ids of the train entities (bias and residual vocabularies);

plus the train item frequencies (for the logQ correction) and the number of
train users. The result is saved in a run directory (:meth:`Preprocessing.save`)
and handed to the models, whose towers consume it and fit nothing
(:mod:`tfrs_recsys.towers`). Loading a run, evaluating or exporting it never
refits anything.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tfrs_recsys.atomic import atomic_directory
from tfrs_recsys.config import ModelConfig
from tfrs_recsys.data.dataset import FeatureTable, RecDataset
from tfrs_recsys.data.schema import Feature, Side
from tfrs_recsys.errors import ConfigError
from tfrs_recsys.features.columns import feature_columns, text_model_spec, uses_text

FORMAT = 1
MANIFEST_FILE = "preprocessing.json"
ARRAYS_FILE = "arrays.npz"
BOW_MAX_TOKENS = 2000
BOW_NGRAMS = 2


@dataclasses.dataclass(frozen=True, eq=False)
class BagOfWords:
    """A fitted TF-IDF bag of words: vocabulary (with the OOV token first) and IDF weights."""

    vocabulary: tuple[str, ...]
    idf_weights: np.ndarray
    max_tokens: int = BOW_MAX_TOKENS
    ngrams: int = BOW_NGRAMS


@dataclasses.dataclass(frozen=True, eq=False)
class TextTable:
    """Sentence vectors ``[n, dim]`` of ``n`` distinct strings."""

    texts: tuple[str, ...]
    vectors: np.ndarray


@dataclasses.dataclass(frozen=True, eq=False)
class SidePreprocessing:
    """What one side's tower learns from the train split.

    Attributes:
        side: ``user`` or ``item``.
        features: The columns the model reads on this side (id included).
        vocabularies: id / categorical / categorical-list column -> sorted labels.
        normalization: numeric column -> ``(mean [1], variance [1])`` float32,
            after the column's transform.
        bucket_boundaries: numeric column -> quantile boundaries (only with
            ``model.numeric_buckets``).
        bag_of_words: text column -> fitted TF-IDF (``text_encoder = "bow"``).
        text_tables: text column -> vectors of every distinct string of the
            feature table (``text_encoder = "bert"``, frozen encoder).
        train_ids: Sorted ids of this side's train entities.
    """

    side: Side
    features: tuple[Feature, ...]
    vocabularies: Mapping[str, tuple[str, ...]]
    normalization: Mapping[str, tuple[np.ndarray, np.ndarray]]
    bucket_boundaries: Mapping[str, tuple[float, ...]]
    bag_of_words: Mapping[str, BagOfWords]
    text_tables: Mapping[str, TextTable]
    train_ids: tuple[str, ...]

    @property
    def id_column(self) -> str:
        return next(f.name for f in self.features if f.kind == "id")

    @property
    def columns(self) -> list[str]:
        """The columns the model reads on this side, id included."""
        return [f.name for f in self.features]


@dataclasses.dataclass(frozen=True, eq=False)
class Preprocessing:
    """Both sides' fitted preprocessing and the train statistics of the interactions.

    Attributes:
        user: The query side.
        item: The candidate side.
        item_counts: ``[n_items]`` train positives of each catalog item (row
            order of the item table).
        n_train_users: Distinct users with a train positive.
        user_history: With ``model.user_history``: each user's train items as
            ``(offsets [n_users + 1], item_rows)``, rows of the user and item
            tables (user ``u``'s items are ``item_rows[offsets[u]:offsets[u+1]]``).
    """

    user: SidePreprocessing
    item: SidePreprocessing
    item_counts: np.ndarray
    n_train_users: int
    user_history: tuple[np.ndarray, np.ndarray] | None = None

    def side(self, side: Side) -> SidePreprocessing:
        return self.user if side == "user" else self.item

    @property
    def n_items(self) -> int:
        return len(self.item_counts)

    def save(self, directory: Path) -> Path:
        """Writes ``directory`` (atomically; replaces an older copy) and returns it."""
        manifest: dict[str, Any] = {
            "format": FORMAT,
            "n_train_users": int(self.n_train_users),
            "sides": {},
        }
        arrays: dict[str, np.ndarray] = {"item_counts": self.item_counts}
        if self.user_history is not None:
            arrays["user_history/offsets"], arrays["user_history/items"] = self.user_history
        for side in (self.user, self.item):
            prefix = side.side
            manifest["sides"][prefix] = {
                "features": [dataclasses.asdict(f) for f in side.features],
                "vocabularies": sorted(side.vocabularies),
                "normalization": sorted(side.normalization),
                "bucket_boundaries": {k: list(v) for k, v in side.bucket_boundaries.items()},
                "bag_of_words": {
                    k: {"max_tokens": v.max_tokens, "ngrams": v.ngrams}
                    for k, v in side.bag_of_words.items()
                },
                "text_tables": sorted(side.text_tables),
            }
            arrays[f"{prefix}/train_ids"] = _strings(side.train_ids)
            for name, labels in side.vocabularies.items():
                arrays[f"{prefix}/vocabulary/{name}"] = _strings(labels)
            for name, (mean, variance) in side.normalization.items():
                arrays[f"{prefix}/mean/{name}"] = mean
                arrays[f"{prefix}/variance/{name}"] = variance
            for name, bow in side.bag_of_words.items():
                arrays[f"{prefix}/bow_vocabulary/{name}"] = _strings(bow.vocabulary)
                arrays[f"{prefix}/bow_idf/{name}"] = bow.idf_weights
            for name, table in side.text_tables.items():
                arrays[f"{prefix}/text_texts/{name}"] = _strings(table.texts)
                arrays[f"{prefix}/text_vectors/{name}"] = table.vectors
        with atomic_directory(Path(directory), overwrite=True) as staging:
            with open(staging / ARRAYS_FILE, "wb") as handle:
                np.savez(handle, **arrays)
            (staging / MANIFEST_FILE).write_text(
                json.dumps(manifest, indent=2) + "\n", encoding="utf-8"
            )
        return Path(directory)

    @classmethod
    def load(cls, directory: Path) -> Preprocessing:
        """Reads what :meth:`save` wrote.

        Raises:
            ConfigError: ``directory`` holds no (or an unreadable) preprocessing.
        """
        directory = Path(directory)
        try:
            manifest = json.loads((directory / MANIFEST_FILE).read_text(encoding="utf-8"))
            with np.load(directory / ARRAYS_FILE, allow_pickle=False) as stored:
                arrays = {key: stored[key] for key in stored.files}
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{directory}: no readable fitted preprocessing ({exc})") from None
        if manifest.get("format") != FORMAT:
            raise ConfigError(
                f"{directory}: preprocessing format {manifest.get('format')!r}, expected {FORMAT}"
            )
        sides = {}
        for prefix, entry in manifest["sides"].items():
            sides[prefix] = SidePreprocessing(
                side=prefix,
                features=tuple(Feature(**f) for f in entry["features"]),
                vocabularies={
                    n: _tuple(arrays[f"{prefix}/vocabulary/{n}"]) for n in entry["vocabularies"]
                },
                normalization={
                    n: (arrays[f"{prefix}/mean/{n}"], arrays[f"{prefix}/variance/{n}"])
                    for n in entry["normalization"]
                },
                bucket_boundaries={n: tuple(v) for n, v in entry["bucket_boundaries"].items()},
                bag_of_words={
                    n: BagOfWords(
                        _tuple(arrays[f"{prefix}/bow_vocabulary/{n}"]),
                        arrays[f"{prefix}/bow_idf/{n}"],
                        max_tokens=v["max_tokens"],
                        ngrams=v["ngrams"],
                    )
                    for n, v in entry["bag_of_words"].items()
                },
                text_tables={
                    n: TextTable(
                        _tuple(arrays[f"{prefix}/text_texts/{n}"]),
                        arrays[f"{prefix}/text_vectors/{n}"],
                    )
                    for n in entry["text_tables"]
                },
                train_ids=_tuple(arrays[f"{prefix}/train_ids"]),
            )
        return cls(
            user=sides["user"],
            item=sides["item"],
            item_counts=arrays["item_counts"],
            n_train_users=int(manifest["n_train_users"]),
            user_history=(
                (arrays["user_history/offsets"], arrays["user_history/items"])
                if "user_history/offsets" in arrays
                else None
            ),
        )


class Untracked:
    """Holds a :class:`Preprocessing` on a Keras model out of TF tracking (not a Trackable)."""

    __slots__ = ("value",)

    def __init__(self, value: Preprocessing) -> None:
        self.value = value


def _strings(values) -> np.ndarray:
    # Fixed-width unicode: no pickle needed to read it back.
    return (
        np.asarray([str(v) for v in values], dtype=str) if len(values) else np.zeros(0, dtype="<U1")
    )


def _tuple(values: np.ndarray) -> tuple[str, ...]:
    return tuple(str(v) for v in values.tolist())


# --- Fitting -----------------------------------------------------------------------------------


def fit_preprocessing(
    dataset: RecDataset, train: pd.DataFrame, config: ModelConfig
) -> Preprocessing:
    """Fits both sides' preprocessing of ``config``'s columns from the ``train`` positives.

    Args:
        dataset: Gives the schema and the feature tables.
        train: ``user_id``, ``item_id`` train pairs; every statistic comes from
            the entities they name (the text tables of a ``bert`` model cover
            every distinct string of the feature table: the encoder is fixed).
        config: The model's configuration (feature set, text encoder, buckets).
    """
    user_rows, item_rows = dataset.encode(train)
    counts = np.bincount(item_rows, minlength=dataset.n_items).astype(np.float64)
    return Preprocessing(
        user=fit_side(
            dataset.table("user"),
            feature_columns(dataset.schema, "user", config),
            user_rows,
            config,
        ),
        item=fit_side(
            dataset.table("item"),
            feature_columns(dataset.schema, "item", config),
            item_rows,
            config,
        ),
        item_counts=counts,
        n_train_users=max(len(np.unique(user_rows)), 1),
        user_history=(
            user_histories(user_rows, item_rows, dataset.n_users) if config.user_history else None
        ),
    )


def user_histories(
    user_rows: np.ndarray, item_rows: np.ndarray, n_users: int
) -> tuple[np.ndarray, np.ndarray]:
    """Each user's items as ``(offsets [n_users + 1], item_rows)``, items in row order."""
    order = np.lexsort((item_rows, user_rows))
    offsets = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(user_rows, minlength=n_users), out=offsets[1:])
    return offsets, np.asarray(item_rows, dtype=np.int64)[order]


def fit_side(
    table: FeatureTable, features: tuple[Feature, ...], train_rows: np.ndarray, config: ModelConfig
) -> SidePreprocessing:
    """One side's :class:`SidePreprocessing` from the table rows of its train entities."""
    rows = np.unique(np.asarray(train_rows, dtype=np.int64))
    vocabularies: dict[str, tuple[str, ...]] = {}
    normalization: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    boundaries: dict[str, tuple[float, ...]] = {}
    for feature in features:
        values = table.columns[feature.name][rows]
        if feature.kind in ("id", "categorical", "categorical_list"):
            vocabularies[feature.name] = tuple(sorted(set(_labels(feature, values))))
        elif feature.kind == "numeric":
            numbers = numeric_transform(feature, np.asarray(values, dtype=np.float32))
            normalization[feature.name], buckets = _numeric_statistics(
                numbers, config.numeric_buckets
            )
            if buckets is not None:
                boundaries[feature.name] = buckets
    bag_of_words: dict[str, BagOfWords] = {}
    text_tables: dict[str, TextTable] = {}
    if uses_text(config) and not config.text_trainable:
        for feature in features:
            if not feature.is_text:
                continue
            column = table.columns[feature.name]
            if config.text_encoder == "bow":
                bag_of_words[feature.name] = fit_bag_of_words(list(np.unique(column[rows])))
            else:
                from tfrs_recsys.text_encoder import embed_texts

                # The encoder is fixed: every distinct string of the table is embedded once.
                texts = sorted({str(t) for t in column})
                vectors = embed_texts(texts, text_model_spec(config.text_model))
                text_tables[feature.name] = TextTable(
                    tuple(texts), np.asarray(vectors, dtype=np.float32)
                )
    return SidePreprocessing(
        side=table.side,
        features=tuple(features),
        vocabularies=vocabularies,
        normalization=normalization,
        bucket_boundaries=boundaries,
        bag_of_words=bag_of_words,
        text_tables=text_tables,
        train_ids=tuple(sorted(set(table.ids[rows]))),
    )


def _labels(feature: Feature, values: np.ndarray) -> list[str]:
    if feature.kind == "categorical_list":
        return [label for value in values for label in str(value).split(feature.separator) if label]
    return [str(v) for v in values if str(v)]


def numeric_transform(feature: Feature, values):
    """The column's transform (``log1p`` of non-negative values, or none), numpy or TF."""
    if feature.transform == "log1p":
        if isinstance(values, np.ndarray):
            return np.log1p(np.maximum(values, 0.0)).astype(np.float32)
        import tensorflow as tf

        return tf.math.log1p(tf.maximum(values, 0.0))
    return values


def _numeric_statistics(numbers: np.ndarray, buckets: int):
    # Keras' own adapt computes the statistics, so the towers normalise exactly
    # as layers adapted in place would.
    import tensorflow as tf

    normalizer = tf.keras.layers.Normalization(axis=None)
    normalizer.adapt(numbers)
    stats = (
        normalizer.mean.numpy().astype(np.float32),
        normalizer.variance.numpy().astype(np.float32),
    )
    if buckets <= 0:
        return stats, None
    discretizer = tf.keras.layers.Discretization(num_bins=buckets)
    discretizer.adapt(numbers)
    return stats, tuple(float(b) for b in discretizer.bin_boundaries)


def fit_bag_of_words(
    train_texts: list[str], max_tokens: int = BOW_MAX_TOKENS, ngrams: int = BOW_NGRAMS
) -> BagOfWords:
    """TF-IDF vocabulary and IDF weights adapted on the train entities' texts."""
    import tensorflow as tf

    texts = [str(t) for t in train_texts]
    if not texts:
        raise ConfigError("a bag-of-words encoder needs at least one train text")
    vectorizer = tf.keras.layers.TextVectorization(
        max_tokens=max_tokens, output_mode="tf_idf", ngrams=ngrams
    )
    vectorizer.adapt(tf.constant(texts))
    return BagOfWords(
        vocabulary=tuple(str(v) for v in vectorizer.get_vocabulary()),
        idf_weights=vectorizer.get_weights()[0].astype(
            np.float32
        ),  # [vocabulary] incl. the OOV token
        max_tokens=max_tokens,
        ngrams=ngrams,
    )
