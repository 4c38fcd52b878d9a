"""Checks that a SavedModel export answers as the trained model does.

Run by the exporter on the staged version before it is published: a failure
leaves no version behind.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from tfrs_recsys.errors import RecsysError
from tfrs_recsys.models.serving_parts import ServingParts
from tfrs_recsys.serving.ops import input_names

#: The text :func:`verify_cold_start` gives every text column (no table holds it).
COLD_START_CHECK_TEXT = "cold-start check: a text no feature table holds"
_NOT_A_USER = "\x00 not a user \x00"


class ExportError(RecsysError):
    """The exported SavedModel did not give the trained model's answer."""


def verify_export(
    path: Path,
    model,
    data,
    user: str,
    *,
    n: int,
    exclude: bool,
    exact: bool = True,
    loaded=None,
    popularity: np.ndarray | None = None,
) -> None:
    """Reloads the SavedModel and checks a known user's and an unknown user's answer.

    The known user's items must be the trained model's top ``n`` (train items
    masked when ``exclude``), with the same scores; the unknown id must get
    ``known_user = false`` and the popularity ranking.

    Args:
        path: The SavedModel directory.
        model: The trained model (its ``scorer()`` is the reference).
        data: The run's data (``.dataset``, ``.split.train``).
        user: A known user id with train positives.
        n: Items of ``serving_default``.
        exclude: Whether train items were masked.
        exact: Compare the whole top ``n`` (brute force), not only the scores
            of the items returned (an approximate index).
        loaded: The SavedModel at ``path`` if already loaded.
        popularity: ``[n_items]`` train positive counts of the fallback; default
            counted from ``data.split.train`` (a streamed run's holds a sample
            only: its counts come from the streaming pass over the train parts).

    Raises:
        ExportError: The export answers otherwise.
    """
    if loaded is None:
        loaded = tf.saved_model.load(str(path))
    answer = loaded.signatures["serving_default"](user_id=tf.constant([user, _NOT_A_USER]))
    ids = answer["item_ids"].numpy().astype(str)
    scores = answer["scores"].numpy()
    known = answer["known_user"].numpy()
    if known.tolist() != [True, False]:
        raise ExportError(
            f"exported model: known_user {known.tolist()} for [{user!r}, an unknown id]"
        )
    dataset = data.dataset
    row = dataset.table("user").index_of([user])
    expected = np.array(model.scorer()(row), dtype=np.float64)[0]
    item_rows = dataset.table("item").index_of([i for i in ids[0] if i])
    seen = set()
    if exclude:
        _, seen_rows = dataset.encode(data.split.train[data.split.train["user_id"] == user])
        seen = set(seen_rows.tolist())
        expected[list(seen)] = -np.inf
    best = np.sort(expected)[::-1][:n]
    if seen & set(item_rows.tolist()):
        raise ExportError(f"exported model recommends {user!r} one of their train items")
    tolerance = 1e-4 * max(1.0, float(np.abs(best[np.isfinite(best)]).max(initial=1.0)))
    if exact and not np.allclose(scores[0], best, atol=tolerance, rtol=1e-4):
        raise ExportError(
            f"exported model: scores {scores[0].tolist()} for {user!r}, expected {best.tolist()}"
        )
    if not np.allclose(scores[0][: len(item_rows)], expected[item_rows], atol=tolerance, rtol=1e-4):
        raise ExportError(f"exported model: scores of {user!r}'s items differ from the model's")
    if popularity is None:
        _, pop_items = dataset.encode(data.split.train)
        counts = np.bincount(pop_items, minlength=dataset.n_items)
    else:
        counts = np.asarray(popularity)
    popular = dataset.table("item").ids[np.argsort(-counts, kind="stable")[:n]]
    if ids[1].tolist() != [str(i) for i in popular]:
        raise ExportError("exported model: the unknown-user fallback is not the popularity ranking")


def verify_scann_recall(loaded, tables, tuning) -> float:
    """The reloaded SavedModel's recall@k on the tuning sample (``recommend_k``).

    The tuned tree is the one saved, so the served answers of the sampled
    users must reach the recall measured before saving.

    Args:
        loaded: The reloaded SavedModel.
        tables: The export's tables (the sampled users' ids).
        tuning: The :class:`~tfrs_recsys.serving.scann_tuning.ScannTuning`.

    Returns:
        The recall@k of the reloaded model.

    Raises:
        ExportError: It is below the target.
    """
    from tfrs_recsys.serving.scann_tuning import recall_at_k

    users = tables.user_ids[tuning.users]
    rows_of = {str(item): row for row, item in enumerate(tables.item_ids)}
    found = []
    for start in range(0, len(users), 512):
        answer = loaded.signatures["recommend_k"](
            user_id=tf.constant([str(u) for u in users[start : start + 512]]),
            k=tf.constant(tuning.k, tf.int32),
        )
        ids = answer["item_ids"].numpy().astype(str)
        found.append(np.array([[rows_of.get(i, -1) for i in row] for row in ids], np.int64))
    recall = recall_at_k(np.concatenate(found, 0), tuning.exact)
    if recall < tuning.target:
        raise ExportError(
            f"exported model: the reloaded ScaNN index reaches recall@{tuning.k} {recall:.4f} on "
            f"the tuning sample, below the target {tuning.target:g} measured before saving "
            f"({tuning.recall:.4f})"
        )
    return round(recall, 5)


def verify_text_encoder(parts: ServingParts, encoder, count: int = 4) -> None:
    """ExportError unless ``encoder`` gives the precomputed vectors of a few known strings.

    Each precomputed lookup's first ``count`` strings go through its own
    fine-tuned encoder if it has one, else through ``encoder``.
    """
    from tfrs_recsys.features.text import source_encoder

    for side, lookups in parts.text_lookups.items():
        for column, layer in lookups.items():
            keys, rows = layer.table.export()
            keys, rows = keys[:count], rows[:count]
            if int(tf.size(keys)) == 0:
                continue
            got = (source_encoder(layer) or encoder)(keys, training=False).numpy()
            want = tf.gather(layer.vectors, rows).numpy()
            if not np.allclose(got, want, atol=1e-4):
                raise ExportError(
                    f"--cold-start-text: the text encoder {encoder.encoder_handle} does not reproduce "
                    f"the precomputed vectors of the {side} column {column!r} (largest difference "
                    f"{float(np.abs(got - want).max()):.3g})"
                )


def _side_inputs(
    table, rows: Sequence[int], names: Sequence[str], specs: Mapping[str, tf.TensorSpec], texts
) -> list[tf.Tensor]:
    """Raw feature columns of ``table``'s ``rows``, every column of ``texts`` an unseen string."""
    values = []
    for name in names:
        column = np.asarray(table.columns[name])[list(rows)]
        if specs[name].dtype == tf.float32:
            values.append(tf.constant(column.astype(np.float32)))
        else:
            strings = [COLD_START_CHECK_TEXT if name in texts else str(v) for v in column]
            values.append(tf.constant(strings, tf.string))
    return values


def verify_cold_start(
    loaded, signatures: Mapping[str, Any], parts: ServingParts, data, user: str
) -> None:
    """Checks a reloaded cold-start signature on text no precomputed table holds.

    Every text column gets :data:`COLD_START_CHECK_TEXT`; the reloaded
    ``recommend_from_features`` (or, without user text columns,
    ``score_items``) must answer as the function traced in process (whose
    text lookups fall back to the encoder) does: the encoder's variables,
    tables and assets were saved with the export. One signature is enough
    (both share the encoder), and each first call costs seconds.

    Args:
        loaded: The reloaded SavedModel.
        signatures: The in-process concrete functions it was saved with.
        parts: The model's serving parts.
        data: The run's data (``.dataset``).
        user: A known user id.

    Raises:
        ExportError: The reloaded signature answers otherwise.
    """
    dataset = data.dataset
    cases = {}
    user_texts = parts.text_lookups.get("user", {})
    item_texts = parts.text_lookups.get("item", {})
    if "recommend_from_features" in signatures and user_texts:
        names = input_names(signatures["recommend_from_features"])
        rows = dataset.table("user").index_of([user])
        cases["recommend_from_features"] = _side_inputs(
            dataset.table("user"), rows, names, parts.user_feature_specs, user_texts
        )
    elif "score_items" in signatures and item_texts:
        names = input_names(signatures["score_items"])[1:]
        rows = list(range(min(3, dataset.n_items)))
        items = _side_inputs(
            dataset.table("item"), rows, names, parts.item_feature_specs, item_texts
        )
        id_position = names.index(dataset.schema.id_column("item"))
        items[id_position] = tf.concat([["cold-start-check-item"], items[id_position][1:]], 0)
        cases["score_items"] = [tf.constant([user, _NOT_A_USER]), *items]
    for name, values in cases.items():
        want = signatures[name](*values)
        got = loaded.signatures[name](**dict(zip(input_names(signatures[name]), values)))
        for key, value in want.items():
            a, b = got[key].numpy(), value.numpy()
            if a.dtype.kind in "OSUb":
                same = np.array_equal(a, b)
            else:
                same = np.allclose(a, b, atol=1e-4, rtol=1e-4)
            if not same:
                raise ExportError(
                    f"exported model: {name} {key} with an unseen text differs from the model's"
                )
