"""The search space of ``tfrs-recsys tune``: what a trial may change in a config.

One space per model kind. Retrieval searches the loss (exact softmax over the
catalog, logistic loss over every catalog cell, in-batch softmax with logQ
correction, mixed negatives: in-batch plus uniform catalog draws), the
temperature and whether vectors are normalised, the item bias, whether the
query tower reads the user's train items (``user_history``), tower depth and
widths, the id embedding width, the L2 penalties, the learning rate and the
batch size. Ranking searches the tower and head
widths, a cross layer, dropout, the negatives sampled per user, the learning
rate and the batch size. The epoch count is not searched: each trial stops
early on validation (the base config's ``train.patience``, :data:`PATIENCE` if
it has none) within the base config's ``train.epochs``, and the tuned config
is refitted on the whole train split for the epochs early stopping chose.

What a trial never changes: the data section (source, split, rating threshold,
validation carve), the feature set and text encoder of the model (the model
name fixes them), the seed.

The catalog losses score every item each step; they are left out of the space
for catalogs above :data:`CATALOG_LOSS_MAX_ITEMS` items.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Protocol

from tfrs_recsys.config import CATALOG_LOSS_MAX_ITEMS, ExperimentConfig, config_from_dict

#: Retrieval losses of the space, by name: the config keys each one sets.
RETRIEVAL_LOSSES: dict[str, dict[str, Any]] = {
    "catalog_softmax": {"loss": "softmax", "negatives": "catalog"},
    "catalog_sigmoid": {"loss": "catalog_sigmoid", "normalize": False, "temperature": 1.0},
    "in_batch_logq": {"loss": "softmax", "negatives": "in_batch", "logq_correction": True},
    "mixed": {"loss": "softmax", "negatives": "mixed", "logq_correction": True},
}
#: Uniform catalog draws per step the space tries for the ``mixed`` loss.
MIXED_NEGATIVES = (128, 512, 2048)
#: Epochs without a better validation value before a trial stops, if the base sets none.
PATIENCE = 4


class Suggest(Protocol):
    """The part of ``optuna.Trial`` a space uses (a fixed dict serves in tests)."""

    def suggest_categorical(self, name: str, choices: Any) -> Any: ...

    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False) -> float: ...

    def suggest_int(self, name: str, low: int, high: int) -> int: ...


def retrieval_losses(n_items: int) -> list[str]:
    """The losses searched for a catalog of ``n_items`` items."""
    if n_items > CATALOG_LOSS_MAX_ITEMS:
        return ["in_batch_logq", "mixed"]
    return list(RETRIEVAL_LOSSES)


def suggest_config(trial: Suggest, base: ExperimentConfig, n_items: int) -> ExperimentConfig:
    """The config of one trial: ``base`` with the searched keys drawn by ``trial``."""
    if base.model.kind == "retrieval":
        model = _retrieval(trial, base, n_items)
    else:
        model = _ranking(trial, base)
    train = {
        "learning_rate": trial.suggest_float("learning_rate", 1e-3, 5e-2, log=True),
        "batch_size": trial.suggest_categorical("batch_size", [128, 256, 512, 1024, 2048]),
        "epochs": base.train.epochs,
        "patience": base.train.patience or PATIENCE,
        "refit": True,
    }
    return with_values(base, model=model, train=train)


def _tower(trial: Suggest, min_depth: int) -> tuple[int, ...]:
    depth = trial.suggest_int("depth", min_depth, 2 if min_depth == 0 else 3)
    width = trial.suggest_categorical("width", [64, 128, 256])
    return tuple(max(32, width // 2**layer) for layer in range(depth))


def _retrieval(trial: Suggest, base: ExperimentConfig, n_items: int) -> dict[str, Any]:
    loss = trial.suggest_categorical("loss", retrieval_losses(n_items))
    model: dict[str, Any] = dict(RETRIEVAL_LOSSES[loss])
    if loss == "mixed":
        model["mixed_negatives"] = trial.suggest_categorical("mixed_negatives", MIXED_NEGATIVES)
    if loss == "catalog_sigmoid":
        normalize = False
    else:
        normalize = trial.suggest_categorical("normalize", [True, False])
        model["normalize"] = normalize
        model["temperature"] = (
            trial.suggest_float("temperature", 0.02, 1.0, log=True) if normalize else 1.0
        )
    model["vector_l2"] = (
        0.0 if normalize else trial.suggest_float("vector_l2", 1e-5, 1e-1, log=True)
    )
    model["item_bias"] = trial.suggest_categorical("item_bias", [True, False])
    model["user_history"] = loss != "catalog_sigmoid" and trial.suggest_categorical(
        "user_history", [False, True]
    )
    model["hidden"] = _tower(trial, 0)
    model["output_dim"] = trial.suggest_categorical("output_dim", [32, 64, 128])
    model["id_dim"] = trial.suggest_categorical("id_dim", [16, 32, 64])
    model["id_l2"] = trial.suggest_float("id_l2", 1e-7, 1e-2, log=True)
    if base.model.feature_set != "ids":
        model["id_mode"] = trial.suggest_categorical("id_mode", ["input", "residual"])
    if model["hidden"]:
        model["dropout"] = trial.suggest_categorical("dropout", [0.0, 0.1, 0.3])
    else:
        model["dropout"] = 0.0
    return model


def _ranking(trial: Suggest, base: ExperimentConfig) -> dict[str, Any]:
    hidden = _tower(trial, 1)
    return {
        "hidden": hidden,
        "output_dim": trial.suggest_categorical("output_dim", [32, 64]),
        "id_dim": trial.suggest_categorical("id_dim", [16, 32, 64]),
        "id_l2": trial.suggest_float("id_l2", 1e-7, 1e-2, log=True),
        "dropout": trial.suggest_categorical("dropout", [0.0, 0.1, 0.3]),
        "cross_layer": trial.suggest_categorical("cross_layer", [True, False]),
        "negatives_per_user": trial.suggest_categorical("negatives_per_user", [10, 30, 100, 300]),
    }


def with_values(base: ExperimentConfig, **sections: Mapping[str, Any]) -> ExperimentConfig:
    """``base`` with the given keys of each section replaced, checked like a config file."""
    data = base.to_dict()
    for section, values in sections.items():
        data[section] = {**data[section], **values}
    return config_from_dict(data, source=f"tuned config {base.name}")


def params_of(config: ExperimentConfig, base: ExperimentConfig, n_items: int) -> dict[str, Any]:
    """The trial parameters that reproduce ``config`` (to enqueue a known config first).

    Only keys of the space are read; a config outside the space (say a
    temperature below its range) gives the nearest parameters the space has.
    """
    model, train = config.model, config.train
    params: dict[str, Any] = {
        "learning_rate": min(max(train.learning_rate, 1e-3), 5e-2),
        "batch_size": min([128, 256, 512, 1024, 2048], key=lambda b: abs(b - train.batch_size)),
        "output_dim": model.output_dim,
        "id_dim": model.id_dim,
        "id_l2": min(max(model.id_l2, 1e-7), 1e-2),
        "depth": len(model.hidden),
        "width": min(
            [64, 128, 256], key=lambda w: abs(w - (model.hidden[0] if model.hidden else 128))
        ),
    }
    if config.model.kind == "ranking":
        params["output_dim"] = min([32, 64], key=lambda d: abs(d - model.output_dim))
        params.update(
            depth=max(1, len(model.hidden)),
            dropout=min([0.0, 0.1, 0.3], key=lambda d: abs(d - model.dropout)),
            cross_layer=model.cross_layer,
            negatives_per_user=min(
                [10, 30, 100, 300], key=lambda n: abs(n - model.negatives_per_user)
            ),
        )
        return params
    params["output_dim"] = min([32, 64, 128], key=lambda d: abs(d - model.output_dim))
    params["id_dim"] = min([16, 32, 64], key=lambda d: abs(d - model.id_dim))
    if model.loss == "catalog_sigmoid":
        loss = "catalog_sigmoid"
    elif model.negatives == "catalog":
        loss = "catalog_softmax"
    elif model.negatives == "mixed":
        loss = "mixed"
        params["mixed_negatives"] = min(
            MIXED_NEGATIVES, key=lambda n: abs(n - model.mixed_negatives)
        )
    else:
        loss = "in_batch_logq"
    if loss not in retrieval_losses(n_items):
        loss = "in_batch_logq"
    params["loss"] = loss
    normalize = False if loss == "catalog_sigmoid" else model.normalize
    if loss != "catalog_sigmoid":
        params["normalize"] = normalize
        if normalize:
            params["temperature"] = min(max(model.temperature, 0.02), 1.0)
    if not normalize:
        params["vector_l2"] = min(max(model.vector_l2, 1e-5), 1e-1)
    params["item_bias"] = model.item_bias
    if loss != "catalog_sigmoid":
        params["user_history"] = model.user_history
    params["depth"] = min(len(model.hidden), 2)
    if base.model.feature_set != "ids":
        params["id_mode"] = model.id_mode
    if model.hidden:
        params["dropout"] = min([0.0, 0.1, 0.3], key=lambda d: abs(d - model.dropout))
    return params


@dataclasses.dataclass(frozen=True)
class FixedParams:
    """A :class:`Suggest` that answers from a dict (a known config, or a test)."""

    params: Mapping[str, Any]

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        return self.params[name]

    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False) -> float:
        return self.params[name]

    def suggest_int(self, name: str, low: int, high: int) -> int:
        return self.params[name]
