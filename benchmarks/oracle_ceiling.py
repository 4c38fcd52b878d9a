"""How close to the oracle can a model learnt from this data get?

The oracle of the evaluation protocol (docs/evaluation.md) ranks by the generator's true probabilities,
which include two things no model can learn from the train split:

- the per-cell logistic noise of every (user, item) cell (independent of
  everything else, so the train cells say nothing about a holdout cell's);
- each user's low-rank ``taste`` vector, of which the data only gives an
  estimate: about 77 train positives per user for an 8-dimensional vector.

This benchmark measures, on the protocol's holdout-80-20 split of the default
data, a ladder of *oracle-assisted* rankers (none of them is a model one could
train; they bound what a model can reach):

1. ``oracle``: the true probabilities (the protocol's oracle);
2. ``oracle without cell noise``: the true logits minus the per-cell noise;
3. ``oracle without the taste term``: also without the user x item taste term;
4. ``taste estimated (MAP)``: every true parameter *except* each user's taste
   vector and activity offset, which are fitted to the user's train cells by
   a per-user logistic regression (Newton, the true Gaussian prior of the
   taste vectors), as a perfectly specified model that already knows every
   item-side parameter would;
5. ``taste estimated (posterior predictive)``: the same, ranking by the
   expected probability under the Laplace posterior (probit approximation).

Rows 4-5 are the Bayes limit of any model that has to estimate the user's
taste from the train split, with every item-side and group parameter given
for free; a learnt model also has to estimate those, so it lands below them.

Run: ``.venv/bin/python -m benchmarks.oracle_ceiling [--data DIR]``
(default: the default data generated into a temp dir; ~1 minute).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import tfrs_recsys  # noqa: F401  (Keras 2 before TensorFlow)

# isort: split
import numpy as np

from benchmarks.machine import dataset_dir, describe
from tfrs_recsys.data.splits import holdout_80_20
from tfrs_recsys.data.techproducts import load_tech_products, load_truth
from tfrs_recsys.evaluation.protocol import EvaluationTask, evaluate


def fit_user_taste(
    offsets: np.ndarray,
    labels: np.ndarray,
    item_taste: np.ndarray,
    prior_var: float,
    iterations: int = 30,
    tolerance: float = 1e-5,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-user MAP logistic regression of the taste vector (and an offset).

    ``logit[u, i] = offsets[u, i] + w[u] . item_taste[i] + a[u]`` with the
    prior ``w ~ N(0, prior_var I)`` and a flat prior on ``a``; Newton's method,
    all users at once.

    Returns:
        ``(W, H)``: the fitted ``[users, r + 1]`` (taste, offset) and the
        ``[users, r + 1, r + 1]`` Hessians of the negative log posterior.
    """
    users, _ = labels.shape
    rank = item_taste.shape[1]
    design = np.concatenate([item_taste, np.ones((len(item_taste), 1))], axis=1).astype(np.float64)
    precision = np.diag([1.0 / prior_var] * rank + [1e-6])
    weights = np.zeros((users, rank + 1))
    hessian = None
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(offsets + weights @ design.T)))
        gradient = (labels - p) @ design - weights @ precision
        hessian = np.einsum("ui,ij,ik->ujk", p * (1.0 - p), design, design) + precision
        weights = weights + np.linalg.solve(hessian, gradient[..., None])[..., 0]
        if np.abs(gradient).max() < tolerance:
            break
    return weights, hessian


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="tech-products directory with truth.npz (default: generate the default data)",
    )
    args = parser.parse_args(argv)
    print(describe())
    args.data, _tmp = dataset_dir(args.data)
    start = time.perf_counter()
    dataset = load_tech_products(args.data)
    truth = load_truth(args.data)
    if truth is None:
        raise SystemExit(
            f"--data {args.data}: no truth.npz, the oracle ceiling needs the generator's true model"
        )
    split = holdout_80_20(dataset.interactions)
    task = EvaluationTask.from_split(dataset, split)
    users, items = truth.n_users, truth.n_items
    labels = np.zeros((users, items), np.float64)
    user_rows, item_rows = dataset.encode(split.train)
    labels[user_rows, item_rows] = 1.0
    print(
        f"data: {args.data}; split holdout-80-20: {len(split.train):,} train, {len(split.holdout):,} holdout pairs; "
        f"{task.user_rows.size:,} evaluated users; taste rank {truth.item_taste.shape[1]}"
    )
    print()
    print("| ranker (oracle-assisted, not a model) | recall@10 | ndcg@10 | recall@10 / oracle |")
    print("|---|---:|---:|---:|")
    reference = None

    def row(name: str, scorer) -> None:
        nonlocal reference
        metrics = evaluate(scorer, task).metrics
        reference = reference or metrics["recall@10"]
        print(
            f"| {name} | {metrics['recall@10']:.4f} | {metrics['ndcg@10']:.4f} | "
            f"{metrics['recall@10'] / reference:.3f} |",
            flush=True,
        )

    row("oracle (true probabilities)", truth.probabilities)
    no_noise = dataclasses.replace(truth, noise_scale=0.0)
    row("oracle without cell noise", no_noise.probabilities)
    no_taste = dataclasses.replace(no_noise, user_taste=np.zeros_like(truth.user_taste))
    row("oracle without the taste term", no_taste.probabilities)

    # Everything but the users' taste vectors and activity offsets is known.
    offsets = no_taste.logits(np.arange(users)).astype(np.float64) - truth.activity[:, None]
    prior_var = float(np.var(truth.user_taste))
    weights, hessian = fit_user_taste(
        offsets, labels, truth.item_taste.astype(np.float64), prior_var
    )
    rank = truth.item_taste.shape[1]
    estimated = dataclasses.replace(no_taste, user_taste=weights[:, :rank].astype(np.float32))
    row("taste estimated (MAP), every other parameter known", estimated.probabilities)
    design = np.concatenate([truth.item_taste, np.ones((items, 1))], axis=1).astype(np.float64)
    mean = offsets + weights @ design.T
    variance = np.einsum("ij,ujk,ik->ui", design, np.linalg.inv(hessian), design)
    predictive = (1.0 / (1.0 + np.exp(-mean / np.sqrt(1.0 + np.pi * variance / 8.0)))).astype(
        np.float32
    )
    row(
        "taste estimated (posterior predictive), every other parameter known",
        lambda rows: predictive[rows],
    )
    correlation = np.corrcoef(weights[:, :rank].ravel(), truth.user_taste.ravel())[0, 1]
    print()
    print(
        f"correlation of the estimated and true taste vectors: {correlation:.3f}; "
        f"{time.perf_counter() - start:.0f} s"
    )


if __name__ == "__main__":
    main()
