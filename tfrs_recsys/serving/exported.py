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
            user_ids: Raw user ids (any strings).
            k: Items per user, clipped to the catalog size.

        Returns:
            One dict per user: ``user_id``, ``known_user`` and ``items``, a
            list of the item's columns plus ``score`` (fewer than ``k`` when
            the mask leaves fewer).
        """
        tf = self._tf
        user_ids = [str(u) for u in user_ids]
        answer = self._model.signatures["recommend_k"](
            user_id=tf.constant(user_ids, tf.string, shape=[len(user_ids)]),
            k=tf.constant(int(k), tf.int32),
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

        Returns:
            One list per user of the item's columns plus ``score``, best first.

        Raises:
            ConfigError: The export has no such signature (an ids-only model),
                a column is missing or unknown, lengths differ, or ``k > n``.
        """
        n = int(self.manifest.get("n", 0))
        if k is None:
            k = n
        if not 0 <= k <= n:
            raise ConfigError(
                f"recommend_from_features: k must be in [0, {n}] (the export's -n), got {k}"
            )
        answer = self._call("recommend_from_features", columns)
        return [items[:k] for items in self._item_lists(answer)]

    def score_items(self, user_ids: Sequence[str], **item_columns: Sequence[Any]) -> ItemScores:
        """Scores of (new or known) items for users (signature ``score_items``).

        Args:
            user_ids: Raw user ids; unknown ones get the model's prior.
            **item_columns: Every item feature column of the model (the id
                included; an unseen id is fine), one value per item.

        Returns:
            :class:`ItemScores`: ``scores [users, items]``, ``known_user [users]``.

        Raises:
            ConfigError: The export has no ``score_items`` (a ranking export),
                or a column is missing or unknown, or lengths differ.
        """
        if "user_id" in item_columns:
            raise ConfigError("score_items: pass the users as user_ids, not as a user_id column")
        answer = self._call(
            "score_items", {"user_id": list(user_ids), **item_columns}, batch="user_id"
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
        lengths = {c: len(v) for c, v in columns.items() if c != batch}
        if len(set(lengths.values())) > 1:
            raise ConfigError(f"{name}: the columns differ in length ({lengths})")
        inputs = {}
        for column, spec in specs.items():
            values = list(columns[column])
            if spec.dtype == tf.string:
                inputs[column] = tf.constant(
                    [str(v) for v in values], tf.string, shape=[len(values)]
                )
            else:
                try:
                    array = np.asarray(values, dtype=spec.dtype.as_numpy_dtype).reshape(len(values))
                except (TypeError, ValueError) as exc:
                    raise ConfigError(f"{name}: column {column} must be numeric ({exc})") from None
                inputs[column] = tf.constant(array)
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
