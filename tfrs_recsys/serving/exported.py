"""A loaded export as a Python object: :func:`load_exported` -> :class:`ExportedRecommender`.

Only the export directory is read: the SavedModel's signatures answer, and the
item metadata and the per-segment sample of users come from its
``assets.extra/``. No training code, dataset or run directory is needed
(``tfrs-recsys recommend`` uses the same object).

Example:
    >>> model = load_exported("exported_models/tech_subset")   # the latest version
    >>> model.recommend(["tec_0001", "someone-new"], k=3)
    [{"user_id": "tec_0001", "known_user": True, "items": [{"item_id": ..., "score": ...}, ...]},
     {"user_id": "someone-new", "known_user": False, "items": [...the most popular items...]}]
    >>> model.recommend_from_features(age=[31.0], profession=["engineering"],
    ...                               personality=["Tech Enthusiast"])
    >>> model.score_items(["tec_0001"], item_id=["item_new"], product_type=["laptop"], ...)
"""

from __future__ import annotations

import dataclasses
import json
import math
import operator
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tfrs_recsys.errors import ConfigError
from tfrs_recsys.serving.tf_serving import ASSETS_EXTRA, versions

ITEMS_FILE = "items.json"
REPRESENTATIVE_FILE = "representative_users.json"
MANIFEST_FILE = "export.json"
INT32_MAX = 2**31 - 1
SEQUENCES = (list, tuple, set, np.ndarray)


def resolve_version(model: str | os.PathLike, version: int | None = None) -> Path:
    """The version directory to load: ``version``, or the latest one.

    ``model`` is a model directory (``exported_models/<name>``) or a version
    directory itself.
    """
    model = Path(model)
    if not model.is_dir():
        raise ConfigError(f"--model {model}: no such directory")
    if (model / "saved_model.pb").is_file() and version is None:
        return model
    found = versions(model)
    if not found:
        raise ConfigError(
            f"--model {model}: no exported version (expected {model}/<version>/saved_model.pb)"
        )
    if version is None:
        return model / str(found[-1])
    if version not in found:
        raise ConfigError(
            f"--model {model}: no version {version} (found {', '.join(map(str, found))})"
        )
    return model / str(version)


def load_exported(model_dir: str | os.PathLike, version: int | None = None) -> ExportedRecommender:
    """Loads an export: ``model_dir`` is ``exported_models/<name>`` (latest or ``version``)
    or a version directory.

    Raises:
        ConfigError: No such directory or version, or not an export of this package.
    """
    return ExportedRecommender(resolve_version(model_dir, version))


@dataclasses.dataclass(frozen=True)
class ItemScores:
    """The answer of :meth:`ExportedRecommender.score_items`.

    Attributes:
        scores: ``[users, items]`` float32, the model's score of each pair.
        known_user: ``[users]`` bool; an unknown user's row scores the items
            by what the model knows of them alone (e.g. an item bias).
    """

    scores: np.ndarray
    known_user: np.ndarray


class ExportedRecommender:
    """A loaded export (a version directory), answering through its signatures.

    Args:
        path: The version directory (``exported_models/<name>/<version>``);
            :func:`load_exported` finds it from the model directory.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        import tensorflow as tf

        self.path = Path(path)
        extra = self.path / ASSETS_EXTRA
        try:
            self.manifest = json.loads((extra / MANIFEST_FILE).read_text(encoding="utf-8"))
            items = json.loads((extra / ITEMS_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{self.path}: not a tfrs-recsys export ({exc})") from None
        id_column = self.manifest.get("item_id_column", "item_id")
        self._id_column = id_column
        self.items = {str(row[id_column]): row for row in items}
        if self.manifest.get("needs_tf_text_to_load"):
            import tensorflow_text  # noqa: F401  (--cold-start-text exports hold TF Text ops)
        self._model = tf.saved_model.load(str(self.path))
        self._tf = tf

    @property
    def version(self) -> str:
        """The version directory's name."""
        return self.path.name

    @property
    def signatures(self) -> list[str]:
        """The SavedModel's signature names."""
        return sorted(self._model.signatures.keys())

    def recommend(self, user_ids: Sequence[str], k: int = 10) -> list[dict[str, Any]]:
        """The top ``k`` items of each user (signature ``recommend_k``), best first.

        Known users' train items are masked (if the export was made so);
        unknown ids get the most popular items.

        Args:
            user_ids: Raw user ids, a list (any strings; ``bytes`` are read as
                UTF-8, ``None`` as ``""``).
            k: Items per user, a whole number >= 0, clipped to the catalog size.

        Returns:
            One dict per user: ``user_id``, ``known_user`` and ``items``, a
            list of the item's columns plus ``score`` (fewer than ``k`` when
            the mask leaves fewer).

        Raises:
            ConfigError: ``user_ids`` is not a list of ids, or ``k`` is not a
                whole number >= 0.
        """
        tf = self._tf
        user_ids = string_column("recommend", "user_ids", user_ids)
        k = min(whole_number("recommend", "k", k), INT32_MAX)
        answer = self._model.signatures["recommend_k"](
            user_id=tf.constant(user_ids, tf.string, shape=[len(user_ids)]),
            k=tf.constant(k, tf.int32),
        )
        known = answer["known_user"].numpy()
        return [
            {"user_id": user_id, "known_user": bool(known[row]), "items": items}
            for row, (user_id, items) in enumerate(zip(user_ids, self._item_lists(answer)))
        ]

    def recommend_from_features(
        self, k: int | None = None, **columns: Sequence[Any]
    ) -> list[list[dict[str, Any]]]:
        """The top items of new users described by their feature columns.

        Signature ``recommend_from_features``: the user tower runs on the raw
        columns (the user id is not an input); nothing is masked.

        Args:
            k: Items per user, at most the export's ``n`` (default ``n``).
            **columns: Every user feature column of the model, one value per
                user (e.g. ``age=[31.0], profession=["engineering"], ...``).
                A numeric value that is NaN, infinite (or beyond float32) or
                ``None`` counts as missing: the column's train mean.

        Returns:
            One list per user of the item's columns plus ``score``, best first.

        Raises:
            ConfigError: The export has no such signature (an ids-only model),
                a column is missing or unknown, not a list, holds a value of
                the wrong kind, lengths differ, or ``k`` is not in ``[0, n]``.
        """
        n = int(self.manifest.get("n", 0))
        if k is None:
            k = n
        k = whole_number("recommend_from_features", "k", k)
        if k > n:
            raise ConfigError(
                f"recommend_from_features: k must be in [0, {n}] (the export's -n), got {k}"
            )
        answer = self._call("recommend_from_features", columns)
        return [items[:k] for items in self._item_lists(answer)]

    def score_items(self, user_ids: Sequence[str], **item_columns: Sequence[Any]) -> ItemScores:
        """Scores of (new or known) items for users (signature ``score_items``).

        Args:
            user_ids: Raw user ids, a list; unknown ones get the model's prior.
            **item_columns: Every item feature column of the model (the id
                included; an unseen id is fine), one value per item. A
                numeric value that is NaN, infinite or ``None`` counts as
                missing: the column's train mean.

        Returns:
            :class:`ItemScores`: ``scores [users, items]``, ``known_user [users]``.

        Raises:
            ConfigError: The export has no ``score_items`` (a ranking export),
                or a column is missing, unknown, not a list or holds a value
                of the wrong kind, or lengths differ.
        """
        if "user_id" in item_columns:
            raise ConfigError("score_items: pass the users as user_ids, not as a user_id column")
        answer = self._call(
            "score_items",
            {"user_id": string_column("score_items", "user_ids", user_ids), **item_columns},
            batch="user_id",
        )
        return ItemScores(scores=answer["scores"].numpy(), known_user=answer["known_user"].numpy())

    def representative_users(self) -> tuple[str | None, dict[str, list[dict[str, Any]]]]:
        """``(segment column, {segment value: [user profile dicts]})`` stored at export."""
        data = json.loads(
            (self.path / ASSETS_EXTRA / REPRESENTATIVE_FILE).read_text(encoding="utf-8")
        )
        return data.get("segment"), data["groups"]

    # --- helpers ---------------------------------------------------------------------------------

    def _call(self, name: str, columns: Mapping[str, Sequence[Any]], batch: str | None = None):
        """Calls signature ``name`` with ``columns`` converted to its input dtypes.

        All columns must have one length, except ``batch`` (a separate axis).
        """
        tf = self._tf
        if name not in self._model.signatures:
            raise ConfigError(
                f"{self.path}: this {self.manifest.get('kind', '')} export has no {name} signature "
                f"(it has {', '.join(self.signatures)})"
            )
        specs = self._model.signatures[name].structured_input_signature[1]
        missing = [c for c in specs if c not in columns]
        unknown = [c for c in columns if c not in specs]
        if missing or unknown:
            problems = [
                f"missing {', '.join(missing)}" if missing else "",
                f"unknown {', '.join(unknown)}" if unknown else "",
            ]
            raise ConfigError(
                f"{name}: {'; '.join(p for p in problems if p)} (expected columns: "
                f"{', '.join(c for c in specs if c != batch)})"
            )
        inputs = {}
        for column, spec in specs.items():
            if spec.dtype == tf.string:
                values = string_column(name, column, columns[column])
                inputs[column] = tf.constant(values, tf.string, shape=[len(values)])
            else:
                inputs[column] = tf.constant(
                    numeric_column(name, column, columns[column], spec.dtype.as_numpy_dtype)
                )
        lengths = {c: int(t.shape[0]) for c, t in inputs.items() if c != batch}
        if len(set(lengths.values())) > 1:
            raise ConfigError(f"{name}: the columns differ in length ({lengths})")
        return self._model.signatures[name](**inputs)

    def _item_lists(self, answer) -> list[list[dict[str, Any]]]:
        """Rows of ``item_ids`` / ``scores`` as lists of item dicts, padding dropped."""
        ids = answer["item_ids"].numpy()
        scores = answer["scores"].numpy()
        result = []
        for row_ids, row_scores in zip(ids, scores):
            items = []
            for item_id, score in zip(row_ids, row_scores):
                if not np.isfinite(score):
                    break
                item_id = item_id.decode("utf-8")
                items.append(
                    {**self.items.get(item_id, {self._id_column: item_id}), "score": float(score)}
                )
            result.append(items)
        return result


# --- Request values ---------------------------------------------------------------------------


def whole_number(where: str, name: str, value: Any) -> int:
    """``value`` as an ``int`` >= 0 (a bool or a float is refused, even ``5.0``).

    Raises:
        ConfigError: Naming ``where`` and ``name``.
    """
    if not isinstance(value, bool):
        try:
            number = operator.index(value)
        except TypeError:
            pass
        else:
            if number >= 0:
                return number
    raise ConfigError(f"{where}: {name} must be a whole number >= 0, got {value!r}")


def _values(where: str, name: str, values: Any) -> list[Any]:
    """``values`` as a list, one per row (a list, tuple, 1-d array or Series; not a string).

    Raises:
        ConfigError: A string, a scalar, a mapping, or a row holding a list.
    """
    problem = None
    if isinstance(values, (str, bytes, bytearray, Mapping)):
        problem = f"got {type(values).__name__} {values!r:.60}"
    else:
        try:
            values = list(values)
        except TypeError:
            problem = f"got {type(values).__name__} {values!r:.60}"
    if problem is None:
        nested = [row for row, v in enumerate(values) if isinstance(v, (*SEQUENCES, Mapping))]
        if nested:
            problem = f"{name}[{nested[0]}] is {values[nested[0]]!r:.60}"
    if problem is not None:
        raise ConfigError(f"{where}: {name} must be a list with one value per row, {problem}")
    return values


def string_column(where: str, name: str, values: Any) -> list[str]:
    """A string column as ``str`` values, as the feature tables read them.

    ``bytes`` are decoded as UTF-8; ``None`` and float NaN (a missing cell)
    become ``""``; anything else is ``str(value)``.

    Raises:
        ConfigError: Not a list, or bytes that are not UTF-8 (naming the row).
    """
    result = []
    for row, value in enumerate(_values(where, name, values)):
        if isinstance(value, (bytes, bytearray)):
            try:
                value = bytes(value).decode("utf-8")
            except UnicodeDecodeError:
                raise ConfigError(
                    f"{where}: {name}[{row}] = {bytes(value)!r:.60} is not UTF-8 text"
                ) from None
        elif value is None or (isinstance(value, float) and math.isnan(value)):
            value = ""
        result.append(value if isinstance(value, str) else str(value))
    return result


def numeric_column(where: str, name: str, values: Any, dtype) -> np.ndarray:
    """A numeric column as a ``[rows]`` array of ``dtype``.

    Numbers and numeric strings (``"31"``) are read as numbers; ``None`` and
    blank strings become NaN. NaN, infinities and values beyond ``dtype``'s
    range (which become infinite) reach the graph, which treats them as
    missing (the column's train mean).

    Raises:
        ConfigError: Not a list, or a value that is not a number (naming the row).
    """
    numbers = []
    for row, value in enumerate(_values(where, name, values)):
        if value is None or (isinstance(value, (str, bytes)) and not value.strip()):
            numbers.append(math.nan)
            continue
        try:
            numbers.append(float(value))
        except (TypeError, ValueError):
            raise ConfigError(
                f"{where}: {name}[{row}] = {value!r:.60} is not a number (column {name} is numeric)"
            ) from None
    with np.errstate(over="ignore"):
        return np.asarray(numbers, dtype=np.float64).astype(dtype)
