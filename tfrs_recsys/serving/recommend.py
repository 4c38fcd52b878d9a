"""Top-N recommendations with item metadata, from any scorer.

The in-process counterpart of the notebooks' ``recommend_for_user``: score the
whole catalog for a user, drop the user's train items, keep the top N, and
attach the item's columns (type, price, description, ... on the default data).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from tfrs_recsys.data.dataset import RecDataset
from tfrs_recsys.data.schema import USER_ID
from tfrs_recsys.recommender import Scorer


def recommend(
    scorer: Scorer,
    dataset: RecDataset,
    user_ids: Sequence[str],
    *,
    n: int = 5,
    exclude: pd.DataFrame | None = None,
) -> list[list[dict[str, Any]]]:
    """The top ``n`` items of each user, best first, as dicts of item columns + score.

    Args:
        scorer: user rows -> ``[len, n_items]`` scores.
        dataset: Supplies the user and item tables.
        user_ids: Users to recommend for (must be in the user table).
        n: Items per user.
        exclude: Pairs never recommended (typically the train positives).
    """
    rows = dataset.table("user").index_of(list(user_ids), where="recommend")
    scores = np.array(scorer(rows), dtype=np.float32, copy=True)
    if exclude is not None and len(exclude):
        mine = exclude[exclude[USER_ID].isin(set(user_ids))]
        ex_users, ex_items = dataset.encode(mine)
        # A user may be asked for more than once: mask every position of theirs.
        positions = pd.DataFrame({"row": rows, "position": np.arange(len(rows))})
        pairs = pd.DataFrame({"row": ex_users, "item": ex_items}).merge(positions, on="row")
        scores[pairs["position"].to_numpy(), pairs["item"].to_numpy()] = -np.inf
    top = np.argsort(-scores, axis=1, kind="stable")[:, :n]
    items = dataset.items.reset_index(drop=True)
    result = []
    for k, user_id in enumerate(user_ids):
        recs = []
        for item_row in top[k]:
            if not np.isfinite(scores[k, item_row]):
                break
            record = {column: _plain(items.at[item_row, column]) for column in items.columns}
            record["score"] = float(scores[k, item_row])
            recs.append(record)
        result.append(recs)
    return result


def representative_users(
    dataset: RecDataset, *, per_segment: int = 3, seed: int = 0
) -> dict[str, list[str]]:
    """``per_segment`` random users of each segment value (e.g. personality).

    Datasets without a segment column give one group, ``"all users"``.
    """
    rng = np.random.default_rng(seed)
    users = dataset.users
    segment = dataset.schema.user_segment
    groups = users.groupby(segment, sort=False) if segment else [("all users", users)]
    picked = {}
    for value, frame in groups:
        ids = frame[USER_ID].to_numpy()
        picked[str(value)] = [
            str(u) for u in rng.choice(ids, size=min(per_segment, len(ids)), replace=False)
        ]
    return picked


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


__all__ = ["recommend", "representative_users"]
