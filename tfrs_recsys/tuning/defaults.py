"""Configs for a dataset without a shipped config, chosen from its statistics.

:func:`dataset_stats` measures what the choice reads (users, items, positives,
density, positives per user and per item, the feature columns of each side)
on the train split; :func:`default_config` turns them into a config for one of
``compare``'s TFRS models. The rules, and the tuning runs they come from, are
in docs/tuning.md; in short:

- the loss: an exact softmax over the whole catalog when it fits
  (:data:`~tfrs_recsys.tuning.space.CATALOG_LOSS_MAX_ITEMS` items), else the
  in-batch softmax with logQ correction;
- the batch size grows with the number of train positives, so that an epoch
  keeps enough steps (between 128 and 2048);
- id-only towers are linear-plus-one-layer with an item bias; feature towers
  add the id embedding to the tower's output (``id_mode = "residual"``), so an
  item with few positives still gets its features' vector;
- early stopping on the validation carve picks the epoch count, and the model
  is refitted on the whole train split;
- above :data:`LAZY_ADAM_MIN_IDS` user and item ids, the optimizer is
  ``lazy_adam`` (Adam's sparse step visits every embedding row);
- retrieval models are seed ensembles of :data:`ENSEMBLE_MEMBERS` members
  (``train.ensemble``) up to :data:`ENSEMBLE_MAX_POSITIVES` train positives,
  where a member trains in minutes; one model above.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd

from tfrs_recsys.config import ExperimentConfig, config_from_dict
from tfrs_recsys.data.dataset import RecDataset
from tfrs_recsys.data.schema import ITEM_ID, USER_ID
from tfrs_recsys.training.optimizers import LAZY_ADAM_MIN_IDS
from tfrs_recsys.tuning.space import CATALOG_LOSS_MAX_ITEMS

#: Members of a default retrieval config's seed ensemble (``train.ensemble``).
ENSEMBLE_MEMBERS = 3
#: Above this many train positives a default retrieval config is one model:
#: each member costs a whole training, and larger data leave less variance to average.
ENSEMBLE_MAX_POSITIVES = 2_000_000


@dataclasses.dataclass(frozen=True)
class DatasetStats:
    """The statistics the default configs read, measured on a train split.

    Attributes:
        users: Users in the catalog (the user feature table).
        items: Items in the catalog.
        positives: Train positives.
        density: ``positives / (users * items)``.
        positives_per_user: Median train positives of a user with any.
        positives_per_item: Median train positives of an item with any.
        user_features: Feature columns of the user table (besides the id).
        item_features: Feature columns of the item table (besides the id).
        text_columns: Text columns of either side.
    """

    users: int
    items: int
    positives: int
    density: float
    positives_per_user: float
    positives_per_item: float
    user_features: tuple[str, ...]
    item_features: tuple[str, ...]
    text_columns: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def dataset_stats(dataset: RecDataset, train: pd.DataFrame) -> DatasetStats:
    """:class:`DatasetStats` of ``dataset``'s ``train`` positives."""
    per_user = train.groupby(USER_ID, sort=False).size().to_numpy()
    per_item = train.groupby(ITEM_ID, sort=False).size().to_numpy()
    cells = dataset.n_users * dataset.n_items
    schema = dataset.schema
    return DatasetStats(
        users=dataset.n_users,
        items=dataset.n_items,
        positives=len(train),
        density=len(train) / cells if cells else 0.0,
        positives_per_user=float(np.median(per_user)) if per_user.size else 0.0,
        positives_per_item=float(np.median(per_item)) if per_item.size else 0.0,
        user_features=tuple(f.name for f in schema.side("user") if f.kind != "id"),
        item_features=tuple(f.name for f in schema.side("item") if f.kind != "id"),
        text_columns=tuple(
            f.name for side in ("user", "item") for f in schema.side(side) if f.is_text
        ),
    )


def default_batch_size(positives: int) -> int:
    """A power of two near ``positives / 150`` (about 150 steps an epoch), in [128, 2048]."""
    target = max(positives, 1) / 150
    return int(min(2048, max(128, 2 ** round(np.log2(max(target, 1.0))))))


def default_config(model_name: str, source: str, stats: DatasetStats) -> ExperimentConfig:
    """The config of ``compare``'s ``model_name`` (``retrieval_ids``, ...) on data like ``stats``."""
    kind, feature_set = model_name.split("_", 1)
    model: dict[str, Any] = {"kind": kind, "feature_set": feature_set, "text_encoder": "bow"}
    train: dict[str, Any] = {
        "epochs": 60,
        "patience": 4,
        "refit": True,
        "learning_rate": 0.005,
        "batch_size": default_batch_size(stats.positives),
    }
    if kind == "retrieval":
        model.update(
            id_mode="input" if feature_set == "ids" else "residual",
            item_bias=True,
            hidden=[128],
            output_dim=64,
            temperature=0.2,
        )
        if stats.items <= CATALOG_LOSS_MAX_ITEMS:
            model.update(loss="softmax", negatives="catalog")
        else:
            model.update(loss="softmax", negatives="in_batch", logq_correction=True)
        if stats.positives <= ENSEMBLE_MAX_POSITIVES:
            train["ensemble"] = ENSEMBLE_MEMBERS
    else:
        model.update(hidden=[128, 64], output_dim=32, negatives_per_user=100)
    if stats.users + stats.items > LAZY_ADAM_MIN_IDS:
        # Adam's sparse update visits every embedding row each step.
        train["optimizer"] = "lazy_adam"
    return config_from_dict(
        {
            "name": model_name,
            "data": {"source": source, "split": "holdout-80-20", "validation_fraction": 0.1},
            "model": model,
            "train": train,
        },
        source=f"default config of {model_name}",
    )


def known_configs(
    base: ExperimentConfig, origin: str, stats: DatasetStats
) -> dict[str, ExperimentConfig]:
    """The configs a study of ``base`` tries first, by origin: ``base`` and the
    statistics-based default of its model (only the searched keys of the latter
    are read, so its data section is ``base``'s)."""
    name = f"{base.model.kind}_{base.model.feature_set}"
    default = dataclasses.replace(default_config(name, base.data.source, stats), data=base.data)
    known = {origin: base}
    known.setdefault("defaults from the dataset's statistics", default)
    return known
