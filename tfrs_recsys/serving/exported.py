"""Recommendations from an exported SavedModel (``tfrs-recsys recommend``).

Only the export directory is read: the SavedModel answers, and the item
metadata and the per-segment sample of users come from its ``assets.extra/``.
No training code, dataset or run directory is needed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tfrs_recsys.errors import ConfigError
from tfrs_recsys.serving.tf_serving import ASSETS_EXTRA, versions

ITEMS_FILE = "items.json"
REPRESENTATIVE_FILE = "representative_users.json"
MANIFEST_FILE = "export.json"


def resolve_version(model: Path, version: int | None = None) -> Path:
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
        raise ConfigError(f"--model {model}: no exported version (expected {model}/<version>/saved_model.pb)")
    if version is None:
        return model / str(found[-1])
    if version not in found:
        raise ConfigError(f"--model {model}: no version {version} (found {', '.join(map(str, found))})")
    return model / str(version)


class ExportedRecommender:
    """A loaded export: ``recommend(user_ids, n)`` with item metadata."""

    def __init__(self, path: Path) -> None:
        import tensorflow as tf

        self.path = Path(path)
        extra = self.path / ASSETS_EXTRA
        try:
            self.manifest = json.loads((extra / MANIFEST_FILE).read_text(encoding="utf-8"))
            items = json.loads((extra / ITEMS_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{self.path}: not a tfrs-recsys export ({exc})") from None
        id_column = self.manifest.get("item_id_column", "item_id")
        self.items = {str(row[id_column]): row for row in items}
        if self.manifest.get("needs_tf_text_to_load"):
            import tensorflow_text  # noqa: F401  (--cold-start-text exports hold TF Text ops)
        self._model = tf.saved_model.load(str(self.path))
        self._tf = tf

    @property
    def version(self) -> str:
        return self.path.name

    def recommend(self, user_ids: Sequence[str], n: int) -> list[dict[str, Any]]:
        """One dict per user: ``user_id``, ``known_user`` and ``items`` (columns + ``score``)."""
        tf = self._tf
        answer = self._model.signatures["recommend_k"](
            user_id=tf.constant(list(user_ids), tf.string), k=tf.constant(n, tf.int32)
        )
        ids = answer["item_ids"].numpy()
        scores = answer["scores"].numpy()
        known = answer["known_user"].numpy()
        result = []
        for row, user_id in enumerate(user_ids):
            recs = []
            for item_id, score in zip(ids[row], scores[row]):
                if not np.isfinite(score):
                    break
                item_id = item_id.decode("utf-8")
                recs.append({**self.items.get(item_id, {"item_id": item_id}), "score": float(score)})
            result.append({"user_id": user_id, "known_user": bool(known[row]), "items": recs})
        return result

    def representative_users(self) -> tuple[str | None, dict[str, list[dict[str, Any]]]]:
        """``(segment column, {segment value: [user profile dicts]})`` stored at export."""
        data = json.loads((self.path / ASSETS_EXTRA / REPRESENTATIVE_FILE).read_text(encoding="utf-8"))
        return data.get("segment"), data["groups"]
