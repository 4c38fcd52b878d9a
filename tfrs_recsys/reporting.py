"""Metric tables and plots: what the CLI, ``compare`` and the notebooks show.

Tables:

- :func:`dataset_summary` and :func:`format_summary`: what ``inspect-data`` prints.
- :func:`metrics_markdown`: one row per model, the ranking metrics of a run
  (``train``, ``evaluate``, ``demo``).
- :func:`comparison_markdown`: the ``comparison.md`` tables of a ``compare`` report.
- :func:`popularity_markdown`: recall@10 by the item's train popularity, one row
  per model, one column per bin (the second table of ``comparison.md``).
- :func:`segment_markdown`: one metric per user segment (personality), one column per model.
- :func:`metrics_frame`: a pandas table, one row per model (the notebooks).

Plots draw onto a matplotlib ``Axes`` the caller owns, so a notebook shows them
inline and a script saves them; nothing here switches the pyplot backend:

- :func:`plot_recall_curves`: recall@K for K = 1..100, one line per model.
- :func:`plot_segment_bars`: one group of bars per segment, one bar per model.
- :func:`plot_metric_bars`: one horizontal bar per model.
- :func:`save_recall_curves`: :func:`plot_recall_curves` into a PNG file
  (matplotlib's Figure API, without pyplot).

A model's figures may be given as an
:class:`~tfrs_recsys.evaluation.protocol.EvaluationResult` or as a ``compare``
report entry (``report["models"][name]``, a dict with ``"recall@10"``,
``"recall_curve"``, ``"per_segment_recall@10"``, ``"popularity_bins"``, ...).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import numpy as np

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes

    from tfrs_recsys.data.dataset import RecDataset
    from tfrs_recsys.evaluation.protocol import EvaluationResult

__all__ = [
    "COMPARISON_KEYS",
    "FRAME_KEYS",
    "RUN_KEYS",
    "comparison_markdown",
    "dataset_summary",
    "format_summary",
    "metrics_frame",
    "metrics_markdown",
    "metrics_of",
    "popularity_bins_of",
    "popularity_markdown",
    "plot_metric_bars",
    "plot_recall_curves",
    "plot_segment_bars",
    "recall_curve_of",
    "save_recall_curves",
    "segment_markdown",
    "segment_values",
]

ModelFigures = Union["EvaluationResult", Mapping[str, Any]]
"""An :class:`EvaluationResult` or a ``compare`` report entry."""

RUN_KEYS = (
    "recall@10",
    "precision@10",
    "hit_rate@10",
    "ndcg@10",
    "recall@50",
    "ndcg@50",
    "coverage@10",
)
"""Columns of :func:`metrics_markdown`."""
COMPARISON_KEYS = ("recall@10", "ndcg@10", "recall@50", "coverage@10")
"""Metric columns of :func:`comparison_markdown` (and of ``compare``'s summary)."""
FRAME_KEYS = ("recall@10", "precision@10", "ndcg@10", "recall@50", "coverage@10")
"""Default columns of :func:`metrics_frame`."""
ORACLE = "oracle"


# --- A model's figures, whatever holds them -----------------------------------------------


def metrics_of(figures: ModelFigures) -> Mapping[str, float]:
    """``{"recall@10": ..., ...}`` of an :class:`EvaluationResult` or a report entry."""
    metrics = getattr(figures, "metrics", None)
    return metrics if metrics is not None else figures


def recall_curve_of(figures: ModelFigures | Sequence[float]) -> np.ndarray:
    """recall@K for K = 1..len, ``[max_k]``, of a result, a report entry or a plain sequence."""
    curve = getattr(figures, "recall_curve", None)
    if curve is None:
        curve = figures["recall_curve"] if isinstance(figures, Mapping) else figures
    return np.asarray(curve, dtype=np.float64)


def segment_values(figures: ModelFigures, metric: str = "recall@10") -> dict[str, float]:
    """``{segment value: metric}`` of a result (``per_segment``) or a report entry."""
    per_segment = getattr(figures, "per_segment", None)
    if per_segment is not None:
        return {segment: float(values[metric]) for segment, values in per_segment.items()}
    return {segment: float(value) for segment, value in figures[f"per_segment_{metric}"].items()}


def popularity_bins_of(figures: ModelFigures) -> Mapping[str, Mapping[str, Any]]:
    """``{bin label: {"items", "pairs", "hits@10", "recall@10"}}`` of a result or a
    report entry; empty when it was recorded before the bins existed."""
    bins = getattr(figures, "popularity_bins", None)
    if bins is None and isinstance(figures, Mapping):
        bins = figures.get("popularity_bins")
    return bins or {}


# --- Tables --------------------------------------------------------------------------------


def dataset_summary(dataset: RecDataset) -> dict[str, Any]:
    """The dataset's summary and its holdout-80-20 split's (keys ``"holdout-80-20 ..."``)."""
    from tfrs_recsys.data.splits import holdout_80_20

    summary = dataset.summary()
    split = holdout_80_20(dataset.interactions).summary()
    summary.update({f"holdout-80-20 {k}": v for k, v in split.items() if k != "split"})
    return summary


def format_summary(summary: Mapping[str, Any]) -> str:
    """``key: value`` lines, keys right-aligned; dicts inline, ``density`` as a percentage."""
    lines = []
    for key, value in summary.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in value.items())
        elif isinstance(value, float):
            value = f"{value:.4%}" if key == "density" else f"{value:.4g}"
        lines.append(f"{key:>22}: {value}")
    return "\n".join(lines)


def metrics_markdown(
    rows: Mapping[str, ModelFigures], dataset: str, split: str, keys: Sequence[str] = RUN_KEYS
) -> str:
    """A Markdown table of ranking metrics, one row per model, 4 decimals.

    Args:
        rows: ``{model name: figures}``.
        dataset, split: Named in the line above the table.
        keys: The metric columns.
    """
    lines = [
        f"dataset {dataset}, split {split}, full-catalog ranking (train items masked)",
        "",
        "| model | " + " | ".join(keys) + " |",
        "|---|" + "---:|" * len(keys),
    ]
    for name, figures in rows.items():
        metrics = metrics_of(figures)
        lines.append(f"| {name} | " + " | ".join(f"{metrics[k]:.4f}" for k in keys) + " |")
    return "\n".join(lines)


def comparison_markdown(report: Mapping[str, Any]) -> str:
    """The ``comparison.md`` table of a ``compare`` report.

    Columns: :data:`COMPARISON_KEYS`, ``recall@10 / oracle`` when the report has
    an oracle, the seed metric (``-`` for models without probabilities), train
    and evaluation seconds, and with ``compare --tune`` each TFRS model's
    tuning seconds and trials. A report of a comparison still running or
    interrupted (``"pending"`` models) says so under the table.
    """
    has_oracle = any("recall@10_vs_oracle" in m for m in report["models"].values())
    tuned = any("tuning_s" in m for m in report["models"].values())
    header = (
        ["model", *COMPARISON_KEYS]
        + (["recall@10 / oracle"] if has_oracle else [])
        + ["seed metric", "train s", "eval s"]
        + (["tuning s", "trials"] if tuned else [])
    )
    lines = [
        f"Dataset `{report['dataset']}`, split `{report['split']}`; full-catalog ranking, "
        "train items masked (docs/evaluation.md).",
        "",
        "| " + " | ".join(header) + " |",
        "|---|" + "---:|" * (len(header) - 1),
    ]
    for name, m in report["models"].items():
        cells = [name, *(f"{m[k]:.4f}" for k in COMPARISON_KEYS)]
        if has_oracle:
            cells.append(f"{m['recall@10_vs_oracle']:.3f}")
        seed = m.get("seed_metric")
        cells += [
            "-" if seed is None else f"{seed:.3f}",
            f"{m['train_s']:.1f}",
            f"{m['eval_s']:.2f}",
        ]
        if tuned:
            trials = m.get("tuning_trials")
            cells += [
                f"{m['tuning_s']:.0f}" if "tuning_s" in m else "-",
                f"{sum(trials.values())} ({trials.get('pruned', 0)} pruned)" if trials else "-",
            ]
        lines.append("| " + " | ".join(cells) + " |")
    if tuned:
        lines += [
            "",
            "tuning s: the TFRS model's config search on the validation carve of train "
            "(`compare --tune`, docs/tuning.md); EASE's and ALS's validation searches are "
            "inside their train s.",
        ]
    popularity = popularity_markdown(report["models"])
    if popularity:
        lines += ["", popularity]
    if report.get("pending"):
        lines += [
            "",
            f"Not finished yet: {', '.join(report['pending'])} "
            "(`tfrs-recsys compare ... --resume` continues the comparison).",
        ]
    return "\n".join(lines)


def popularity_markdown(rows: Mapping[str, ModelFigures]) -> str:
    """recall@10 of the holdout pairs by the item's train positives: models x bins.

    The bins and the definition are those of
    :mod:`tfrs_recsys.evaluation.popularity_bins`. The header gives each bin's
    holdout pairs when every model has the same ones (one task); otherwise each
    cell does. A bin without holdout pairs shows ``-``. Models recorded without
    the bins are named under the table. Empty string when no model has them.
    """
    binned = {name: popularity_bins_of(figures) for name, figures in rows.items()}
    missing = [name for name, bins in binned.items() if not bins]
    binned = {name: bins for name, bins in binned.items() if bins}
    if not binned:
        return ""
    labels = list(next(iter(binned.values())))
    counts = {tuple(bins[b]["pairs"] for b in labels) for bins in binned.values()}
    same = len(counts) == 1
    first = next(iter(binned.values()))
    header = [f"{b} ({first[b]['pairs']:,} pairs)" if same else b for b in labels]
    items = ", ".join(f"{b}: {first[b]['items']:,}" for b in labels)
    lines = [
        "recall@10 by the item's train positives: holdout pairs of the bin found in the "
        "user's top 10 / holdout pairs of the bin (docs/evaluation.md). Catalog items per "
        f"bin: {items}.",
        "",
        "| model | " + " | ".join(header) + " |",
        "|---|" + "---:|" * len(labels),
    ]
    for name, bins in binned.items():
        cells = []
        for b in labels:
            recall = bins[b]["recall@10"]
            cell = "-" if recall is None else f"{recall:.4f}"
            cells.append(cell if same else f"{cell} ({bins[b]['pairs']:,})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if missing:
        lines += ["", f"Recorded without the popularity bins: {', '.join(missing)}."]
    return "\n".join(lines)


def segment_markdown(
    rows: Mapping[str, ModelFigures], segment: str, metric: str = "recall@10"
) -> str:
    """A Markdown table of ``metric`` per segment value (rows) and model (columns).

    Segment values are listed in the first model's order.
    """
    values = {name: segment_values(figures, metric) for name, figures in rows.items()}
    lines = [
        "| " + segment + " | " + " | ".join(rows) + " |",
        "|---|" + "---:|" * len(rows),
    ]
    for value in next(iter(values.values()), {}):
        cells = " | ".join(f"{per_model[value]:.4f}" for per_model in values.values())
        lines.append(f"| {value} | {cells} |")
    return "\n".join(lines)


def metrics_frame(
    rows: Mapping[str, ModelFigures],
    keys: Sequence[str] = FRAME_KEYS,
    *,
    decimals: int = 4,
) -> pd.DataFrame:
    """A pandas table, one row per model and one column per metric key.

    When ``rows`` has an ``"oracle"`` model, a ``"recall@10 / oracle"`` column
    is added (unless ``keys`` holds ``"recall@10_vs_oracle"`` already). Report
    entries may also give non-metric keys such as ``"train_s"``.
    """
    import pandas as pd

    table = pd.DataFrame(
        {name: {k: metrics_of(figures)[k] for k in keys} for name, figures in rows.items()}
    ).T
    if ORACLE in rows and "recall@10" in table and "recall@10_vs_oracle" not in keys:
        table["recall@10 / oracle"] = table["recall@10"] / table.loc[ORACLE, "recall@10"]
    return table.round(decimals)


# --- Plots ---------------------------------------------------------------------------------


def plot_recall_curves(
    ax: Axes,
    curves: Mapping[str, ModelFigures | Sequence[float]],
    *,
    title: str,
    xlabel: str = "K (items recommended)",
    colors: Mapping[str, Any] | None = None,
    styles: Mapping[str, str] | None = None,
) -> Axes:
    """recall@K for K = 1..len(curve), one line per model, on ``ax``.

    Args:
        ax: The matplotlib Axes to draw on.
        curves: ``{label: result, report entry or recall curve}``.
        title, xlabel: Axis texts.
        colors, styles: Optional line color and style (``"--"``) per label.

    Returns:
        ``ax``.
    """
    for name, figures in curves.items():
        curve = recall_curve_of(figures)
        args = [styles[name]] if styles and name in styles else []
        kwargs = {"color": colors[name]} if colors and name in colors else {}
        ax.plot(np.arange(1, len(curve) + 1), curve, *args, label=name, lw=1.6, **kwargs)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("recall@K")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax


def plot_segment_bars(
    ax: Axes,
    rows: Mapping[str, ModelFigures],
    *,
    title: str,
    metric: str = "recall@10",
    colors: Mapping[str, Any] | None = None,
    rotation: float = 15,
    legend_columns: int = 1,
) -> Axes:
    """One group of bars per segment value (personality), one bar per model, on ``ax``.

    Segment values are taken in the first model's order.
    """
    values = {name: segment_values(figures, metric) for name, figures in rows.items()}
    segments = list(next(iter(values.values()), {}))
    width = 0.8 / max(len(rows), 1)
    positions = np.arange(len(segments))
    for k, (name, per_segment) in enumerate(values.items()):
        kwargs = {"color": colors[name]} if colors and name in colors else {}
        heights = [per_segment[s] for s in segments]
        ax.bar(positions + k * width, heights, width, label=name, **kwargs)
    ax.set_xticks(positions + 0.4 - width / 2, segments, rotation=rotation)
    ax.set_ylabel(metric)
    ax.set_title(title)
    ax.legend(fontsize=8 if legend_columns == 1 else 7, ncol=legend_columns)
    ax.grid(alpha=0.3, axis="y")
    return ax


def plot_metric_bars(
    ax: Axes,
    values: Mapping[str, float],
    *,
    xlabel: str,
    title: str | None = None,
    colors: Mapping[str, Any] | None = None,
    reference: float | None = None,
) -> Axes:
    """One horizontal bar per model (in the order given), on ``ax``.

    Args:
        values: ``{model: value}``.
        colors: Bar color per model (default: matplotlib's cycle).
        reference: Draws a vertical line at this value (e.g. 1.0 for ratios).
    """
    names = list(values)
    kwargs = {"color": [colors[n] for n in names]} if colors else {}
    ax.barh(names, [values[n] for n in names], **kwargs)
    if reference is not None:
        ax.axvline(reference, color="k", lw=0.8)
    ax.set_xlabel(xlabel)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3, axis="x")
    return ax


def save_recall_curves(
    curves: Mapping[str, ModelFigures | Sequence[float]], path: str | Path, *, title: str
) -> Path:
    """Writes :func:`plot_recall_curves` as a 7 x 4.5 inch PNG (120 dpi) to ``path``.

    Uses matplotlib's Figure API, so the caller's pyplot backend (e.g. a
    notebook's inline backend) is left as it was. The file is written atomically.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - matplotlib is a dependency
        from tfrs_recsys.errors import ConfigError

        raise ConfigError("the recall@K plot needs matplotlib (pip install matplotlib)") from exc
    from tfrs_recsys.atomic import atomic_file

    fig = Figure(figsize=(7, 4.5))
    plot_recall_curves(fig.subplots(), curves, title=title, xlabel="K")
    fig.tight_layout()
    path = Path(path)
    with atomic_file(path) as staging:
        fig.savefig(staging, format="png", dpi=120)
    return path
