"""Long tail: recall@10 by the item's train popularity, peers against TFRS retrieval models.

Runs ``compare`` (by default popularity, EASE, ALS, ``retrieval_ids``,
``retrieval_subset`` and ``retrieval_all``, shipped configs, split
holdout-80-20) on one dataset into ``--out``, then prints its two tables: the
protocol's metrics and recall@10 of the holdout pairs binned by the item's
number of train positives (bins 0, 1-4, 5-19, 20-99, 100-499, 500+; defined in
docs/evaluation.md), with each bin's pair count.

``--out`` holding a comparison of the same settings is resumed: finished models
are not trained again, so the tables can be printed again for free. A TFRS
model whose finished run recorded no bins (a run older than them) is evaluated
again from its run directory, by the same protocol.

``--cold-by-features`` also evaluates each retrieval run that has an id
residual and an item bias with its cold items (0 train positives) scored by
their feature encoding alone, the out-of-vocabulary id row and bias replaced
(see :func:`cold_items_by_features`): an experiment, not an option of the models.

Run (one at a time, ~15 min for ML-100K, ~25 min for the default data)::

    TFRS_RECSYS_CACHE=... nice -n 5 .venv/bin/python -m benchmarks.long_tail \\
        --data movielens-100k --out runs/long_tail_ml100k
    nice -n 5 .venv/bin/python -m benchmarks.long_tail \\
        --data data/tech-products --out runs/long_tail_tech
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import tfrs_recsys  # noqa: F401  (Keras 2 before TensorFlow)

# isort: split
from benchmarks.machine import describe
from tfrs_recsys.reporting import comparison_markdown, popularity_bins_of
from tfrs_recsys.training.compare import TFRS_MODELS, compare, parse_models
from tfrs_recsys.training.comparison_dir import SETTINGS_FILE, ComparisonDir

DEFAULT_MODELS = "popularity,ease,als,retrieval_ids,retrieval_subset,retrieval_all"


def fill_missing_bins(report: dict, out: Path) -> list[str]:
    """Evaluates again each finished TFRS run of ``report`` recorded without bins."""
    import tfrs_recsys as tr

    filled = []
    for name, entry in report["models"].items():
        if popularity_bins_of(entry) or name not in TFRS_MODELS:
            continue
        result = tr.evaluate(tr.load_run(ComparisonDir(out).runs_dir / name))
        if abs(result.metrics["recall@10"] - entry["recall@10"]) > 5e-5:
            raise RuntimeError(f"{name}: evaluated again, recall@10 differs from the report")
        entry["popularity_bins"] = result.popularity_bins
        filled.append(name)
    return filled


def cold_items_by_features(run_dir: Path):
    """A retrieval run's scorer with its cold items scored by their features alone.

    Items without train positives share the out-of-vocabulary row of the id
    residual and of the item bias, which a catalog softmax pushes down (they
    are negatives in every batch, never positives). Here a cold item's vector
    is its feature encoding without the residual, and its bias the warm
    items' mean bias. Returns ``(scorer, task, {"oov_bias", "warm_bias"})``.
    """
    import numpy as np
    import tensorflow as tf

    import tfrs_recsys as tr
    from tfrs_recsys.evaluation.protocol import EvaluationTask

    run = tr.load_run(run_dir)
    model, tower = run.model, run.model.candidate_tower
    if tower.id_residual is None or model.item_bias is None:
        raise ValueError(f"{run_dir}: needs an id residual and an item bias")
    task = EvaluationTask.from_split(run.data.dataset, run.data.split)
    cold = task.train_positives_per_item == 0
    items = model.item_gather(tf.range(model.n_items))
    x = tower.encoder({c: items[c] for c in model.item_columns})
    for layer in tower.hidden_layers:
        x = layer(x)
    x = tower.output_layer(x)
    features = (tf.math.l2_normalize(x, axis=-1) if tower.normalize else x).numpy()
    vectors = model.item_embeddings()  # builds the layers of a loaded run
    bias = model.item_bias.get_weights()[0][:, 0]  # row 0: the out-of-vocabulary row
    vectors[cold, :-1] = features[cold]
    vectors[cold, -1] = bias[1:].mean()
    candidates = tf.constant(vectors)

    def score(user_rows):
        queries = model.query_vectors(model.user_gather(tf.constant(user_rows)))
        return tf.matmul(queries, candidates, transpose_b=True)

    return score, task, {"oov_bias": float(bias[0]), "warm_bias": float(np.mean(bias[1:]))}


def print_cold_variants(report: dict, out: Path) -> None:
    """The binned table of each retrieval run whose cold items are scored by features."""
    from tfrs_recsys.evaluation.protocol import evaluate
    from tfrs_recsys.reporting import metrics_markdown, popularity_markdown

    rows, notes = {}, []
    for name in report["models"]:
        if name not in TFRS_MODELS:
            continue
        try:
            score, task, bias = cold_items_by_features(ComparisonDir(out).runs_dir / name)
        except ValueError:
            continue
        rows[f"{name}, cold items by features"] = evaluate(score, task)
        notes.append(f"{name}: OOV bias {bias['oov_bias']:.3f}, warm mean {bias['warm_bias']:.3f}")
    if rows:
        print("\nCold items scored by their features (no OOV id residual, mean warm bias):")
        print("; ".join(notes) + "\n")
        print(metrics_markdown(rows, report["dataset"], report["split"]) + "\n")
        print(popularity_markdown(rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data/tech-products", help="dataset directory or name")
    parser.add_argument("--out", type=Path, required=True, help="compare's report directory")
    parser.add_argument("--models", default=DEFAULT_MODELS)
    parser.add_argument(
        "--cold-by-features",
        action="store_true",
        help="also evaluate each retrieval run with its cold items scored by their features only",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("tfrs_recsys.progress").setLevel(logging.INFO)
    print(describe(), flush=True)
    resume = (args.out / SETTINGS_FILE).is_file()
    report = compare(args.data, parse_models(args.models), args.out, verbose=0, resume=resume)
    filled = fill_missing_bins(report, args.out)
    print()
    print(comparison_markdown(report))
    if filled:
        print(f"\n(binned figures of {', '.join(filled)} evaluated again from their runs)")
    if args.cold_by_features:
        print_cold_variants(report, args.out)
    print()
    print(json.dumps({n: m.get("popularity_bins") for n, m in report["models"].items()}))


if __name__ == "__main__":
    main()
