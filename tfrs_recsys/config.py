"""Experiment configuration: frozen dataclasses loaded from TOML.

A config file has three tables, ``[data]``, ``[model]`` and ``[train]``, plus a
top-level ``name``; every key is optional and defaults to the values below.
``--set section.key=value`` overrides a key on the command line; the value is
read as a TOML value (``0.2``, ``true``, ``[128, 64]``, ``"all"``), or as a
plain string if it is not one. A run directory records the resolved config.

The package ships one config per model it reports (``tfrs_recsys/configs/``,
package data, so an installed wheel has them too): :func:`config_names` lists
them, and :func:`load_config` takes either such a name (``tech_all``) or the
path of a TOML file.

Longer than 500 lines: every key's docstring and the one table of number ranges
(:data:`NUMBER_RANGES`) sit beside the dataclasses they check.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import math
import os
import tomllib
import typing
from collections.abc import Mapping, Sequence
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from tfrs_recsys.errors import ConfigError

FEATURE_SETS = ("ids", "subset", "all")
MODEL_KINDS = ("retrieval", "ranking")
TEXT_ENCODERS = ("none", "bow", "bert")
ID_MODES = ("input", "residual", "none")
NEGATIVES = ("in_batch", "catalog", "mixed")
RETRIEVAL_LOSSES = ("softmax", "sigmoid", "catalog_sigmoid")
OPTIMIZERS = ("adam", "lazy_adam", "adagrad", "sgd")
#: ``train.strategy``: the ``tf.distribute`` strategy of training (docs/distributed.md).
STRATEGIES = ("default", "mirrored", "multi_worker", "parameter_server")
# The shipped configs: ``tfrs_recsys/configs/<name>.toml``, package data of the wheel.
SHIPPED_CONFIG_FOLDER = "configs"
# A config file is a few lines; reading stops here (say --config /dev/zero).
MAX_CONFIG_BYTES = 2**20


def _choice(section: str, key: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ConfigError(f"{section}.{key} must be one of {', '.join(allowed)}, got {value!r}")


#: The largest seed: TensorFlow's, numpy's and the stateless ops' seeds all take it.
SEED_MAX = 2**31 - 1
#: The largest whole number of any count or size (TensorFlow's int32 shapes).
INT_MAX = 2**31 - 1


@dataclasses.dataclass(frozen=True)
class _Range:
    """The values a number field takes: ``low``/``high`` inclusive unless ``open``."""

    low: float
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False

    def holds(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def text(self) -> str:
        if self.low == -math.inf:
            return "a finite number"
        if self.high == math.inf:
            return f"a finite number {'>' if self.low_open else '>='} {_number(self.low)}"
        left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
        return f"in {left}{_number(self.low)}, {_number(self.high)}{right}"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


_POSITIVE = _Range(0, low_open=True)
_NON_NEGATIVE = _Range(0)
_COUNT = _Range(1, INT_MAX)
_COUNT_OR_ZERO = _Range(0, INT_MAX)
_SEED = _Range(0, SEED_MAX)
_SHARE = _Range(0, 1, low_open=True, high_open=True)

#: The one place of the allowed range of every number field (``section.key``); float
#: fields must also be finite. For ``model.hidden`` the range is that of each width.
NUMBER_RANGES: dict[str, _Range] = {
    "data.min_rating": _Range(-math.inf),
    "data.validation_fraction": _SHARE,
    "data.validation_seed": _SEED,
    "data.shuffle_buffer": _COUNT_OR_ZERO,
    "data.eval_users": _COUNT,
    "model.id_dim": _COUNT,
    "model.categorical_dim": _COUNT,
    "model.numeric_buckets": _COUNT_OR_ZERO,
    "model.text_dim": _COUNT,
    "model.hidden": _COUNT,
    "model.output_dim": _COUNT,
    "model.dropout": _Range(0, 1, high_open=True),
    "model.id_l2": _NON_NEGATIVE,
    "model.vector_l2": _NON_NEGATIVE,
    "model.temperature": _POSITIVE,
    "model.num_hard_negatives": _COUNT_OR_ZERO,
    "model.mixed_negatives": _COUNT,
    "model.negatives_per_user": _COUNT_OR_ZERO,
    "train.epochs": _COUNT,
    "train.batch_size": _COUNT,
    "train.learning_rate": _POSITIVE,
    "train.patience": _COUNT_OR_ZERO,
    "train.seed": _SEED,
    "train.ensemble": _Range(1, 16),
    "train.shard_min_bytes": _COUNT,
}


def _check_numbers(section: str, config: Any) -> None:
    """Checks every number field of a config section against :data:`NUMBER_RANGES`."""
    for field in dataclasses.fields(config):
        key = f"{section}.{field.name}"
        value = getattr(config, field.name)
        if key not in NUMBER_RANGES:
            continue
        allowed = NUMBER_RANGES[key]
        values = value if isinstance(value, tuple) else (value,)
        if not all(_is_number(v) and allowed.holds(v) for v in values):
            shown = list(value) if isinstance(value, tuple) else value
            what = "widths must each be" if isinstance(value, tuple) else "must be"
            raise ConfigError(f"{key} {what} {allowed.text()}, got {shown!r}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where the data comes from and how it is split.

    Attributes:
        source: Dataset directory or name (``movielens-100k``); with
            ``stream``, a declared dataset (``dataset.toml`` or its directory).
        split: ``holdout-80-20`` (the protocol), ``per-user-random`` or
            ``leave-last-out``; with ``stream``, one of the streamed splits
            ``hash-80-20``, ``leave-last-out`` or ``time-80-20``
            (docs/streaming.md).
        min_rating: Explicit ratings >= this are positives.
        validation_fraction: Share of train carved off for early stopping.
        validation_seed: Seed of that carve, in ``[0, 2**31 - 1]``.
        stream: Train without loading the interactions: the declared shards
            are split into cached Parquet parts and streamed through
            ``tf.data`` (:mod:`tfrs_recsys.training.streamed`); evaluation
            uses a hash sample of ``eval_users`` users.
        shuffle_buffer: With ``stream``: rows of each shuffle block of the
            streamed pipeline (0: file order and chunk permutations only).
        eval_users: With ``stream``: users of the hash sample that validation
            and the holdout evaluation rank the catalog for (all users when
            there are fewer).
    """

    source: str = "data/tech-products"
    split: str = "holdout-80-20"
    min_rating: float = 4.0
    validation_fraction: float = 0.1
    validation_seed: int = 7
    stream: bool = False
    shuffle_buffer: int = 1_000_000
    eval_users: int = 20_000

    def __post_init__(self) -> None:
        from tfrs_recsys.data.splits import SPLITS
        from tfrs_recsys.data.stream_split import STREAM_SPLITS

        if self.stream and self.split not in STREAM_SPLITS:
            raise ConfigError(
                f"data.split = {self.split!r} is not a streamed split and data.stream = true; "
                f"choose data.split from {', '.join(STREAM_SPLITS)}, or set data.stream = false"
            )
        if not self.stream and self.split not in SPLITS and self.split in STREAM_SPLITS:
            raise ConfigError(
                f"data.split = {self.split!r} is a streamed split and data.stream = false; "
                f"set data.stream = true, or choose data.split from {', '.join(SPLITS)}"
            )
        if not self.stream:
            _choice("data", "split", self.split, tuple(SPLITS))
        _check_numbers("data", self)


#: The largest catalog the catalog losses (``catalog_sigmoid``, ``negatives =
#: "catalog"``) accept: each step scores every item.
CATALOG_LOSS_MAX_ITEMS = 100_000


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The model: towers, features and the retrieval / ranking task.

    Attributes:
        kind: ``retrieval`` (two towers, softmax over candidates) or
            ``ranking`` (pointwise binary cross-entropy on sampled negatives).
        feature_set: ``ids`` (ids only), ``subset`` (ids + numeric columns,
            the first seed notebook) or ``all`` (every column, text included).
        text_encoder: How text columns are encoded in ``all``: ``bow``
            (bag of words, in graph), ``bert`` (TF Hub sentence encoder) or
            ``none`` (text columns left out).
        text_model: The TF Hub sentence encoder of ``text_encoder = "bert"``:
            ``minilm`` (all-MiniLM-L6-v2 converted offline and cached on first
            use), a directory written by ``tfrs-recsys build-text-encoder``,
            or ``"PREPROCESSOR,ENCODER"``: two TF Hub handles or directories
            of the standard BERT interface.
        text_trainable: Fine-tune the TF Hub encoder of ``text_encoder =
            "bert"`` inside the towers (one trainable copy per side, shared by
            that side's text columns) instead of looking up frozen vectors.
            Off by default: every step then runs the encoder over the batch's
            distinct strings (the whole catalog's for the catalog losses).
        id_dim, categorical_dim, numeric_buckets, text_dim: Encoding widths.
        hidden: ReLU layer widths of each tower.
        output_dim: Embedding width.
        normalize: L2-normalise tower outputs (cosine scores); without it the
            scores are plain dot products, as in matrix factorisation.
        dropout: Dropout after hidden layers.
        id_mode: ``input`` (id embedding is a tower input), ``residual`` (an
            id embedding added to the tower output) or ``none`` (features only).
        id_l2: L2 weight on the id embedding rows each batch looks up
            (weight * mean squared norm), added to the loss.
        vector_l2: L2 weight on the final query and candidate vectors, as in
            regularised matrix factorisation: ``vector_l2 * (mean over the
            batch's users of ||q||^2 + sum over scored items of ||c||^2 /
            number of train users)`` for the catalog losses (every item is
            scored each step), the batch means of both otherwise. Unlike
            ``id_l2`` it cannot be undone by scaling a later layer.
        temperature: Softmax temperature of the retrieval task.
        item_bias: Add a learnt per-item bias to the retrieval scores (an
            extra embedding dimension, so scoring stays a dot product).
        loss: Retrieval loss: ``softmax`` over candidates (see ``negatives``),
            or ``sigmoid``: pointwise binary cross-entropy of ``q . c /
            temperature`` (+ biases) on train positives and
            ``negatives_per_user`` sampled negatives per epoch; or
            ``catalog_sigmoid``: binary cross-entropy over every (user, item)
            cell of a batch of users (their train positives are the ones), a
            full-matrix logistic loss for catalogs up to ~100k items.
        negatives: ``in_batch`` (other positives of the batch, with optional
            logQ correction), ``catalog`` (softmax over the whole catalog;
            exact, for catalogs up to ~100k items) or ``mixed`` (mixed negative
            sampling: the batch's positives plus ``mixed_negatives`` items drawn
            uniformly from the whole catalog each step, with the logQ
            correction of that mixture; for catalogs of any size).
        mixed_negatives: Uniformly drawn catalog items per step of ``negatives
            = "mixed"``.
        logq_correction: Subtract log item frequency from in-batch logits.
        remove_accidental_hits: Ignore in-batch negatives equal to the positive.
        num_hard_negatives: Keep only this many hardest in-batch negatives (0: all).
        negatives_per_user: Ranking: sampled negatives per user and epoch.
        user_history: Retrieval with a softmax loss: the query tower also reads
            the user's train items, as the mean of an item embedding
            (``id_dim`` wide) over them, next to the user's features (the
            item a training example predicts is left out of its history).
            A user without train items (a new user) gets zeros.
        cross_layer: Ranking: add a DCN cross layer.
    """

    kind: str = "retrieval"
    feature_set: str = "subset"
    text_encoder: str = "bow"
    text_model: str = "minilm"
    text_trainable: bool = False
    id_dim: int = 32
    categorical_dim: int = 16
    numeric_buckets: int = 0
    text_dim: int = 32
    hidden: tuple[int, ...] = (128,)
    output_dim: int = 64
    normalize: bool = True
    dropout: float = 0.0
    id_mode: str = "residual"
    id_l2: float = 0.0
    vector_l2: float = 0.0
    temperature: float = 0.1
    item_bias: bool = False
    loss: str = "softmax"
    negatives: str = "catalog"
    logq_correction: bool = True
    remove_accidental_hits: bool = True
    num_hard_negatives: int = 0
    mixed_negatives: int = 512
    user_history: bool = False
    negatives_per_user: int = 100
    cross_layer: bool = False

    def __post_init__(self) -> None:
        _choice("model", "kind", self.kind, MODEL_KINDS)
        _choice("model", "feature_set", self.feature_set, FEATURE_SETS)
        _choice("model", "text_encoder", self.text_encoder, TEXT_ENCODERS)
        _choice("model", "id_mode", self.id_mode, ID_MODES)
        _choice("model", "negatives", self.negatives, NEGATIVES)
        _choice("model", "loss", self.loss, RETRIEVAL_LOSSES)
        _check_numbers("model", self)
        if (
            not str(self.text_model).strip()
            or len([p for p in str(self.text_model).split(",")]) > 2
        ):
            raise ConfigError(
                "model.text_model must be 'minilm', a directory or 'PREPROCESSOR,ENCODER', "
                f"got {self.text_model!r}"
            )
        if self.text_trainable and self.text_encoder != "bert":
            raise ConfigError(
                "model.text_trainable = true needs model.text_encoder = 'bert', "
                f"got {self.text_encoder!r}"
            )
        if self.user_history and (self.kind != "retrieval" or self.loss != "softmax"):
            raise ConfigError(
                "model.user_history needs model.kind = 'retrieval' and model.loss = 'softmax' "
                f"(the item predicted is left out of its user's history), got "
                f"{self.kind!r} / {self.loss!r}"
            )
        if self.feature_set == "ids" and self.id_mode == "none":
            raise ConfigError("model.feature_set 'ids' needs model.id_mode 'input' or 'residual'")

    @property
    def scores_whole_catalog(self) -> bool:
        """Whether every training step scores every catalog item (the catalog losses)."""
        return self.kind == "retrieval" and (
            self.loss == "catalog_sigmoid"
            or (self.loss == "softmax" and self.negatives == "catalog")
        )

    def check_catalog(self, n_items: int) -> None:
        """Raises a ConfigError if a catalog loss is asked of a catalog too large for it.

        A catalog loss runs the candidate tower over every item and holds a
        ``[batch, n_items]`` score matrix (and its gradient) at every step;
        above :data:`CATALOG_LOSS_MAX_ITEMS` items that is neither fast nor
        bounded in memory, and the sampled losses are the tool.
        """
        if self.scores_whole_catalog and n_items > CATALOG_LOSS_MAX_ITEMS:
            asked = (
                "model.loss = 'catalog_sigmoid'"
                if self.loss == "catalog_sigmoid"
                else "model.negatives = 'catalog'"
            )
            raise ConfigError(
                f"{asked} scores all {n_items:,} items at every step, more than the "
                f"{CATALOG_LOSS_MAX_ITEMS:,} a catalog loss is for; use model.loss = 'softmax' "
                "with model.negatives = 'in_batch' (and logq_correction = true) or 'mixed'"
            )


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation and early stopping.

    Attributes:
        epochs: Maximum epochs.
        batch_size: Examples per step.
        learning_rate: Optimizer learning rate.
        optimizer: ``adam``, ``lazy_adam`` (Adam updating only the embedding
            rows of the batch: a step's cost does not grow with the id
            vocabularies; :mod:`tfrs_recsys.training.optimizers`), ``adagrad``
            or ``sgd``.
        patience: Stop after this many epochs without a better validation
            ``monitor`` (0: never stop early); the best epoch's weights are kept.
        monitor: Validation metric for early stopping and model selection.
        seed: Seed of weights, shuffling and negatives, in ``[0, 2**31 - 1]``
            (what ``tf.keras.utils.set_random_seed``, numpy and the stateless ops take).
        refit: After early stopping has chosen the epoch count on the
            validation split, train a fresh model on the whole train split
            for that many epochs and keep it (as the peers ALS and EASE use the
            whole train split). The holdout is still used only at the end.
        ensemble: Retrieval: train the config this many times, with seeds
            ``seed``, ``seed + 1``, ..., and score with the sum of the
            members' scores: one two-tower whose query and candidate vectors
            are the members' side by side, served as a single dot product.
            1 (the default): a single model.
        strategy: The ``tf.distribute`` strategy (docs/distributed.md):
            ``default`` (one device, no strategy: the numerics of a plain
            Keras fit), ``mirrored`` (the local GPUs, ``MirroredStrategy``),
            ``multi_worker`` (``MultiWorkerMirroredStrategy``: one process per
            worker, the cluster in ``TF_CONFIG``; synchronous, each step's
            global batch split across the replicas) or ``parameter_server``
            (``ParameterServerStrategy``: a chief, workers and parameter
            servers in ``TF_CONFIG``; asynchronous, variables of at least
            ``shard_min_bytes`` split across the parameter servers). Retrieval
            models only, without ``refit`` or ``ensemble``. ``batch_size`` is
            the global batch of a step for every strategy except
            ``parameter_server``, where it is each worker's step.
        shard_min_bytes: With ``parameter_server``: a variable is split into
            shards of at least this many bytes, at most one per parameter
            server (``MinSizePartitioner``); the id embeddings are the large ones.
    """

    epochs: int = 20
    batch_size: int = 1024
    learning_rate: float = 0.005
    optimizer: str = "adam"
    patience: int = 2
    monitor: str = "recall@10"
    seed: int = 42
    refit: bool = False
    ensemble: int = 1
    strategy: str = "default"
    shard_min_bytes: int = 256 << 10

    def __post_init__(self) -> None:
        _choice("train", "optimizer", self.optimizer, OPTIMIZERS)
        _choice("train", "strategy", self.strategy, STRATEGIES)
        _check_numbers("train", self)
        _choice("train", "monitor", self.monitor, ("recall@10", "ndcg@10", "recall@50", "ndcg@50"))


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """A whole experiment: a name and the three sections."""

    name: str = "experiment"
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        if self.train.ensemble > 1 and self.model.kind != "retrieval":
            raise ConfigError(
                f"train.ensemble = {self.train.ensemble} needs model.kind = 'retrieval' (members "
                f"are summed as one two-tower), got {self.model.kind!r}"
            )
        if self.train.strategy != "default":
            where = f"train.strategy = {self.train.strategy!r}"
            if self.model.kind != "retrieval":
                raise ConfigError(
                    f"{where} trains retrieval models only, got model.kind = {self.model.kind!r}; "
                    "set train.strategy = 'default'"
                )
            if self.train.refit or self.train.ensemble > 1:
                raise ConfigError(
                    f"{where} does not support train.refit or train.ensemble > 1; "
                    "set train.refit = false and train.ensemble = 1, or train.strategy = 'default'"
                )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_toml(self) -> str:
        lines = [f"name = {_toml_value(self.name)}"]
        for section in ("data", "model", "train"):
            lines.append(f"\n[{section}]")
            for key, value in dataclasses.asdict(getattr(self, section)).items():
                lines.append(f"{key} = {_toml_value(value)}")
        return "\n".join(lines) + "\n"


_SECTIONS = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig}


def _toml_string(text: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped."""
    out = []
    for char in text:
        if char in ('"', "\\"):
            out.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return repr(value)


def _coerce(section: str, field: dataclasses.Field, value: Any) -> Any:
    """Checks a TOML value against the field's type; returns it converted."""
    hint = typing.get_type_hints(_SECTIONS[section])[field.name]
    where = f"{section}.{field.name}"
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be a whole number, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {value!r}")
        return value
    if typing.get_origin(hint) is tuple:
        if not isinstance(value, (list, tuple)) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        ):
            raise ConfigError(f"{where} must be a list of whole numbers, got {value!r}")
        return tuple(value)
    raise ConfigError(f"{where}: unsupported type")  # pragma: no cover


def config_from_dict(data: Mapping[str, Any], *, source: str = "config") -> ExperimentConfig:
    """Builds a config from nested dicts (as TOML gives), checking every key."""
    unknown = set(data) - {"name", *_SECTIONS}
    if unknown:
        raise ConfigError(
            f"{source}: unknown key(s) {', '.join(sorted(unknown))}; "
            "expected name, data, model, train"
        )
    sections = {}
    for section, cls in _SECTIONS.items():
        values = data.get(section, {})
        if not isinstance(values, Mapping):
            raise ConfigError(f"{source}: [{section}] must be a table")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        bad = set(values) - set(fields)
        if bad:
            raise ConfigError(
                f"{source}: unknown key(s) {', '.join(f'{section}.{k}' for k in sorted(bad))}; "
                f"known: {', '.join(fields)}"
            )
        sections[section] = cls(**{k: _coerce(section, fields[k], v) for k, v in values.items()})
    name = data.get("name", "experiment")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{source}: name must be a non-empty string")
    return ExperimentConfig(name=name, **sections)


def parse_overrides(overrides: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``["model.temperature=0.2", ...]`` -> ``{"model": {"temperature": 0.2}}``."""
    result: dict[str, dict[str, Any]] = {}
    for item in overrides:
        key, sep, text = item.partition("=")
        section, dot, field = key.strip().partition(".")
        if not sep or not dot or not field:
            raise ConfigError(f"--set expects section.key=value, got {item!r}")
        try:
            value = tomllib.loads(f"v = {text.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            value = text.strip()
        result.setdefault(section, {})[field] = value
    return result


def _shipped_configs() -> Traversable:
    return importlib.resources.files("tfrs_recsys") / SHIPPED_CONFIG_FOLDER


def config_names() -> list[str]:
    """The names of the configs shipped inside the package, sorted (``tech_all``, ...)."""
    return sorted(
        entry.name.removesuffix(".toml")
        for entry in _shipped_configs().iterdir()
        if entry.name.endswith(".toml") and entry.is_file()
    )


def _not_found(name_or_path: str) -> ConfigError:
    return ConfigError(
        f"{name_or_path}: no such config file or shipped config; "
        f"shipped configs: {', '.join(config_names())}"
    )


def _shipped(name: str) -> Traversable:
    if name not in config_names():
        raise _not_found(name)
    return _shipped_configs() / f"{name}.toml"


def shipped_config_text(name: str) -> str:
    """The TOML text of the shipped config ``name`` (see :func:`config_names`)."""
    return _shipped(name).read_text(encoding="utf-8")


def shipped_config_path(name: str) -> Path:
    """The file of the shipped config ``name``, inside the installed package."""
    resource = _shipped(name)
    if not isinstance(resource, Path):  # pragma: no cover - only a zipped install
        raise ConfigError(f"{name}: the package is not installed as files; use shipped_config_text")
    return resource


def config_origin(name_or_path: str | os.PathLike[str] | None) -> str:
    """Where :func:`load_config` reads ``name_or_path`` from, in words.

    ``"built-in defaults"``, ``"config file PATH"`` or ``"shipped config NAME"``;
    raises :class:`ConfigError` as :func:`load_config` would for an unknown
    name or a missing file.
    """
    return _read_config(name_or_path)[1]


def _read_config(name_or_path: str | os.PathLike[str] | None) -> tuple[str, str]:
    """The TOML text of a config and where it came from (a file path wins over a name)."""
    if name_or_path is None:
        return "", "built-in defaults"
    text = os.fspath(name_or_path)
    path = Path(text)
    if path.is_dir():
        raise ConfigError(
            f"{path}: is a directory; a config is a TOML file or a shipped config name"
        )
    if path.exists():  # a file, or a pipe such as --config <(...)
        return _read_config_file(path), f"config file {path}"
    # A bare name (no folder, no suffix) is looked up among the shipped configs.
    if text and path.name == text and not path.suffix:
        return shipped_config_text(text), f"shipped config {text}"
    raise _not_found(text)


def _read_config_file(path: Path) -> str:
    """The text of a config file; ConfigError if it cannot be read or is not UTF-8 text."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror or exc}") from exc
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"{path}: larger than {MAX_CONFIG_BYTES // 2**20} MiB; a config is a short TOML file"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{path}: not a UTF-8 text file (byte 0x{data[exc.start]:02x} on line {line}); "
            "a config is a TOML text file in UTF-8"
        ) from exc


def load_config(
    name_or_path: str | os.PathLike[str] | None, overrides: Sequence[str] = ()
) -> ExperimentConfig:
    """Reads a config and applies ``--set`` overrides.

    Args:
        name_or_path: A TOML file, or the name of a shipped config (``tech_all``,
            ``ml100k_subset``, ...; see :func:`config_names`); an existing file
            wins over a shipped config of the same name. ``None``: the built-in
            defaults of the dataclasses.
        overrides: ``section.key=value`` items, applied in order.

    Raises:
        ConfigError: An unknown name or missing file (the message lists the
            shipped configs), invalid TOML, an unknown key or a bad value.
    """
    text, _ = _read_config(name_or_path)
    source = "--set" if name_or_path is None else os.fspath(name_or_path)
    try:
        data: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from exc
    return _overridden(data, overrides, source)


#: Keys of where a run trains, not of what it trains: a checkpoint is restored
#: under another strategy or number of workers (docs/distributed.md).
PLACEMENT_KEYS = ("strategy", "shard_min_bytes")


def config_matches(
    recorded: str | None, config: ExperimentConfig, *, any_placement: bool = False
) -> bool:
    """Whether a recorded ``config.toml`` text describes ``config``.

    Keys the recorded file lacks count as their defaults, so a run written
    before a key existed still matches the config it was trained with. With
    ``any_placement``, the :data:`PLACEMENT_KEYS` of ``[train]`` may differ.
    """
    if recorded is None:
        return False
    try:
        found = config_from_dict(tomllib.loads(recorded), source="recorded config")
    except (tomllib.TOMLDecodeError, ConfigError):
        return False
    if any_placement:
        placement = {key: getattr(config.train, key) for key in PLACEMENT_KEYS}
        try:
            found = dataclasses.replace(found, train=dataclasses.replace(found.train, **placement))
        except ConfigError:
            return False
    return found == config


def with_overrides(config: ExperimentConfig, overrides: Sequence[str]) -> ExperimentConfig:
    """``config`` with ``--set`` overrides applied, checked as :func:`load_config` checks them."""
    return _overridden(config.to_dict(), overrides, "--set")


def _overridden(data: dict[str, Any], overrides: Sequence[str], source: str) -> ExperimentConfig:
    for section, values in parse_overrides(overrides).items():
        if section == "name":
            raise ConfigError("--set name=... is not supported; use a section key")
        data.setdefault(section, {})
        if not isinstance(data[section], dict):
            raise ConfigError(f"--set {section}.*: {section} is not a table")
        data[section] = {**data[section], **values}
    return config_from_dict(data, source=source)
