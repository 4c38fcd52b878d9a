"""Shared helpers of the model-layer tests (imported by the test modules).

Not a conftest: the tests import what they need explicitly, so the helpers are
plain functions and a few fixtures re-exported by ``from model_fixtures import``.

- :func:`small_model_config`: a ``ModelConfig`` with tiny widths (fast to train).
- :func:`model_for`: fits the preprocessing on train pairs and builds the model.
- :func:`tower_for`: the same for one retrieval tower.
- :func:`tiny_experiment`: an ``ExperimentConfig`` pointed at a dataset directory,
  small widths, a couple of epochs.
- :func:`genre_dataset`: a hand-made 4 users x 3 items dataset whose item side has
  a ``genres`` categorical list, a log1p numeric and a categorical column.
- :func:`with_extra_user`: a copy of a tech-products dataset with one new user row
  that has no interaction at all (so it is in no train vocabulary).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import tfrs_recsys  # noqa: F401  (routes tf.keras to tf_keras before TensorFlow)
from tfrs_recsys.config import DataConfig, ExperimentConfig, ModelConfig, TrainConfig
from tfrs_recsys.data.dataset import RecDataset
from tfrs_recsys.data.schema import DatasetSchema, Feature
from tfrs_recsys.data.splits import holdout_80_20

SMALL_WIDTHS: dict[str, Any] = dict(
    id_dim=8, categorical_dim=4, text_dim=4, hidden=(16,), output_dim=8
)

NEW_USER = "new_0001"


def small_model_config(**overrides: Any) -> ModelConfig:
    """Tiny widths; any ModelConfig field can be overridden."""
    return ModelConfig(**{**SMALL_WIDTHS, **overrides})


def model_for(dataset: RecDataset, train: pd.DataFrame, config: ModelConfig):
    """``config``'s model on ``dataset``, its preprocessing fitted from ``train``."""
    from tfrs_recsys.features.preprocessing import fit_preprocessing
    from tfrs_recsys.models.factory import build_model

    return build_model(config, fit_preprocessing(dataset, train, config), dataset)


def tower_for(dataset: RecDataset, side: str, train: pd.DataFrame, config: ModelConfig):
    """The retrieval tower of ``side``, its preprocessing fitted from ``train``."""
    from tfrs_recsys.features.preprocessing import fit_preprocessing
    from tfrs_recsys.towers.build import build_tower

    return build_tower(
        fit_preprocessing(dataset, train, config).side(side), dataset.table(side), config
    )


def tiny_experiment(
    source,
    *,
    model: dict | None = None,
    train: dict | None = None,
    data: dict | None = None,
    name: str = "tiny",
) -> ExperimentConfig:
    """A fast experiment on ``source``: ids-only retrieval, small widths, 2 epochs."""
    model_kw = {**SMALL_WIDTHS, "feature_set": "ids", **(model or {})}
    train_kw = {
        "epochs": 2,
        "batch_size": 512,
        "learning_rate": 0.05,
        "patience": 0,
        **(train or {}),
    }
    data_kw = {"source": str(source), **(data or {})}
    return ExperimentConfig(
        name=name,
        data=DataConfig(**data_kw),
        model=ModelConfig(**model_kw),
        train=TrainConfig(**train_kw),
    )


@pytest.fixture(scope="module")
def small_split(small_dataset):
    """The protocol's holdout-80-20 split of the small generated dataset."""
    return holdout_80_20(small_dataset.interactions)


# --- Hand-made datasets -------------------------------------------------------------

GENRE_SCHEMA = DatasetSchema(
    name="genres-toy",
    user_features=(
        Feature("user_id", "id"),
        Feature("age", "numeric"),
        Feature("city", "categorical"),
    ),
    item_features=(
        Feature("item_id", "id"),
        Feature("genres", "categorical_list", separator="|"),
        Feature("price", "numeric", transform="log1p"),
        Feature("kind", "categorical"),
    ),
)


def genre_dataset() -> RecDataset:
    """4 users x 3 items; users u0..u2 and items i0, i1 have positives.

    ``u3`` (age 90, city "far") and ``i2`` (genres "zz|a", price 1000, kind "other")
    have none, so they are absent from any train split of these positives.
    """
    users = pd.DataFrame(
        {
            "user_id": ["u0", "u1", "u2", "u3"],
            "age": [20.0, 30.0, 40.0, 90.0],
            "city": ["paris", "rome", "paris", "far"],
        }
    )
    items = pd.DataFrame(
        {
            "item_id": ["i0", "i1", "i2"],
            "genres": ["a|b", "", "zz|a"],
            "price": [9.0, 99.0, 1000.0],
            "kind": ["book", "film", "other"],
        }
    )
    interactions = pd.DataFrame(
        {"user_id": ["u0", "u1", "u2", "u0"], "item_id": ["i0", "i1", "i0", "i1"]}
    )
    return RecDataset(GENRE_SCHEMA, users, items, interactions)


def with_extra_user(dataset: RecDataset, user_id: str = NEW_USER) -> RecDataset:
    """``dataset`` plus one user row copied from user 0 but with a new id, no positives."""
    extra = dataset.users.iloc[[0]].copy()
    extra["user_id"] = user_id
    users = pd.concat([dataset.users, extra], ignore_index=True)
    return dataclasses.replace(dataset, users=users)


def first_batch(pipeline) -> dict:
    """The first batch of a tf.data pipeline, as eager tensors."""
    return next(iter(pipeline))


def numpy_softmax_ce(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-row cross-entropy of integer ``labels`` under ``softmax(logits)`` (float64)."""
    logits = logits.astype(np.float64)
    top = logits.max(axis=1, keepdims=True)
    log_z = top[:, 0] + np.log(np.exp(logits - top).sum(axis=1))
    return log_z - logits[np.arange(len(labels)), labels]


# Start of the probe scripts the export tests run in a fresh interpreter (which
# must not import this package): the imports and ``plain(answer)``, a
# signature's outputs as JSON-ready ``{"shape", "value"}`` (strings decoded).
PROBE_PRELUDE = r"""
import json, sys
import numpy as np
import tensorflow as tf

def plain(answer):
    result = {}
    for key, value in answer.items():
        value = value.numpy()
        if value.dtype == object:
            value = np.vectorize(lambda b: b.decode("utf-8"), otypes=[object])(value) if value.size else value
        result[key] = {"shape": list(value.shape), "value": value.tolist()}
    return result
"""


def tiny_bert_pair(tmp_path_factory, name: str, seq_length: int = 16) -> Path:
    """A tiny BERT checkpoint converted into a TF Hub pair under a fresh temp dir."""
    from test_text_encoder import write_checkpoint

    from tfrs_recsys.text_encoder import convert_checkpoint

    checkpoint = write_checkpoint(tmp_path_factory.mktemp(f"{name}-bert") / "checkpoint")
    return convert_checkpoint(
        checkpoint, tmp_path_factory.mktemp(f"{name}-pair") / "tiny", seq_length=seq_length
    ).path


def embedding_cache(tmp_path_factory, name: str):
    """Generator for a module fixture: ``TFRS_RECSYS_CACHE`` points at a fresh directory."""
    directory = tmp_path_factory.mktemp(f"{name}-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TFRS_RECSYS_CACHE", str(directory))
        yield directory


def new_user_columns(trained, users, profession=None) -> dict[str, list]:
    """Raw user columns (all but the id) of ``users`` of a loaded run, as plain lists.

    ``trained`` is ``load_run(run)`` (a TrainedRun); numeric columns are floats, the
    others strings; ``profession`` replaces every user's profession (an unseen
    string for cold-start checks).
    """
    data, model = trained.data, trained.model
    frame = data.dataset.users.set_index("user_id").loc[users]
    columns = {}
    for name in model.user_columns:
        if name == "user_id":
            continue
        values = frame[name].tolist()
        numeric = data.dataset.schema.feature("user", name).kind == "numeric"
        columns[name] = [float(v) for v in values] if numeric else [str(v) for v in values]
    if profession is not None:
        columns["profession"] = [profession] * len(users)
    return columns
