"""tfrs_recsys: two-tower recommenders with TensorFlow Recommenders and tf.data.

The public API, in the order a project uses it::

    import tfrs_recsys as tr

    tr.generate_dataset("data/tech-products")        # or tr.fetch_dataset("movielens-100k")
    dataset = tr.load_dataset("data/tech-products")  # a RecDataset
    split = tr.split_dataset(dataset)                # holdout-80-20: train / holdout
    config = tr.load_config("tech_subset")           # a shipped config by name, or a TOML path
    run = tr.train(config, "runs/tech_subset")       # a TrainedRun (metrics, model, preprocessing)
    run = tr.load_run("runs/tech_subset")            # the same, from its run directory
    result = tr.evaluate(run)                        # holdout metrics (EvaluationResult)
    tr.export(run, "exported_models/tech_subset")    # the next TF Serving version
    model = tr.load_exported("exported_models/tech_subset")
    model.recommend(["tec_0001"], k=5)               # through the SavedModel's signatures

``tr.compare(...)`` trains and evaluates several models on one split.
Every model that ranks the catalog is a :class:`Recommender`.

Importing the package routes ``tf.keras`` to Keras 2 (``tf_keras``), which
TensorFlow Recommenders and TF Hub need, so import it before ``tensorflow``.
TensorFlow itself is imported lazily, on first use of a name that needs it, so
the data layer and the command-line interface start quickly.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from tfrs_recsys._backend import use_legacy_keras

use_legacy_keras()

__version__ = "0.1.0"

# Public name -> the module that defines it (imported on first access).
_EXPORTS: dict[str, str] = {
    # data
    "generate_dataset": "tfrs_recsys.data.techproducts",
    "fetch_dataset": "tfrs_recsys.data.fetch",
    "load_dataset": "tfrs_recsys.data.loading",
    "split_dataset": "tfrs_recsys.data.splits",
    "RecDataset": "tfrs_recsys.data.dataset",
    "Split": "tfrs_recsys.data.splits",
    # configs
    "load_config": "tfrs_recsys.config",
    "config_names": "tfrs_recsys.config",
    "ExperimentConfig": "tfrs_recsys.config",
    # training and evaluation
    "train": "tfrs_recsys.training.run",
    "load_run": "tfrs_recsys.training.run",
    "TrainedRun": "tfrs_recsys.training.run",
    "evaluate": "tfrs_recsys.training.run",
    "EvaluationResult": "tfrs_recsys.evaluation.protocol",
    "compare": "tfrs_recsys.training.compare",
    "Recommender": "tfrs_recsys.recommender",
    # serving
    "export": "tfrs_recsys.serving.export",
    "load_exported": "tfrs_recsys.serving.exported",
    "ExportedRecommender": "tfrs_recsys.serving.exported",
    # errors
    "RecsysError": "tfrs_recsys.errors",
    "ConfigError": "tfrs_recsys.errors",
    "DataValidationError": "tfrs_recsys.errors",
}

__all__ = [
    "__version__",
    "generate_dataset",
    "fetch_dataset",
    "load_dataset",
    "split_dataset",
    "RecDataset",
    "Split",
    "load_config",
    "config_names",
    "ExperimentConfig",
    "train",
    "load_run",
    "TrainedRun",
    "evaluate",
    "EvaluationResult",
    "compare",
    "Recommender",
    "export",
    "load_exported",
    "ExportedRecommender",
    "RecsysError",
    "ConfigError",
    "DataValidationError",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tfrs_recsys' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names load lazily
    from tfrs_recsys.config import ExperimentConfig, config_names, load_config
    from tfrs_recsys.data.dataset import RecDataset
    from tfrs_recsys.data.fetch import fetch_dataset
    from tfrs_recsys.data.loading import load_dataset
    from tfrs_recsys.data.splits import Split, split_dataset
    from tfrs_recsys.data.techproducts import generate_dataset
    from tfrs_recsys.errors import ConfigError, DataValidationError, RecsysError
    from tfrs_recsys.evaluation.protocol import EvaluationResult
    from tfrs_recsys.recommender import Recommender
    from tfrs_recsys.serving.export import export
    from tfrs_recsys.serving.exported import ExportedRecommender, load_exported
    from tfrs_recsys.training.compare import compare
    from tfrs_recsys.training.run import TrainedRun, evaluate, load_run, train
