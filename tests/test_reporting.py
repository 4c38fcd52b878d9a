"""Metric tables and plots (tfrs_recsys.reporting) and progress lines (tfrs_recsys.progress)."""

from __future__ import annotations

import logging

import matplotlib
import numpy as np
import pytest

from tfrs_recsys import progress, reporting

REPORT = {
    "dataset": "toy",
    "split": "holdout-80-20",
    "models": {
        "popularity": {
            "recall@10": 0.25,
            "ndcg@10": 0.125,
            "recall@50": 0.5,
            "coverage@10": 0.1,
            "recall@10_vs_oracle": 0.5,
            "seed_metric": 0.0625,
            "train_s": 0.04,
            "eval_s": 0.125,
            "recall_curve": [0.1, 0.2, 0.25],
            "per_segment_recall@10": {"a": 0.2, "b": 0.3},
        },
        "oracle": {
            "recall@10": 0.5,
            "ndcg@10": 0.375,
            "recall@50": 0.75,
            "coverage@10": 1.0,
            "recall@10_vs_oracle": 1.0,
            "seed_metric": None,
            "train_s": 12.34,
            "eval_s": 0.5,
            "recall_curve": [0.3, 0.4, 0.5],
            "per_segment_recall@10": {"a": 0.45, "b": 0.55},
        },
    },
}


def test_metrics_markdown_is_the_run_table():
    rows = {"m": dict.fromkeys(reporting.RUN_KEYS, 0.123456)}
    expected = (
        "dataset toy, split s, full-catalog ranking (train items masked)\n"
        "\n"
        "| model | recall@10 | precision@10 | hit_rate@10 | ndcg@10 | recall@50 | ndcg@50 | coverage@10 |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|\n"
        "| m | 0.1235 | 0.1235 | 0.1235 | 0.1235 | 0.1235 | 0.1235 | 0.1235 |"
    )
    assert reporting.metrics_markdown(rows, "toy", "s") == expected


def test_comparison_markdown_rows_oracle_ratio_and_missing_seed_metric():
    lines = reporting.comparison_markdown(REPORT).splitlines()
    assert lines[2] == (
        "| model | recall@10 | ndcg@10 | recall@50 | coverage@10 | recall@10 / oracle "
        "| seed metric | train s | eval s |"
    )
    assert (
        lines[4]
        == "| popularity | 0.2500 | 0.1250 | 0.5000 | 0.1000 | 0.500 | 0.062 | 0.0 | 0.12 |"
    )
    assert lines[5] == "| oracle | 0.5000 | 0.3750 | 0.7500 | 1.0000 | 1.000 | - | 12.3 | 0.50 |"


def test_comparison_markdown_without_an_oracle_has_no_ratio_column():
    models = {
        name: {k: v for k, v in m.items() if k != "recall@10_vs_oracle"}
        for name, m in REPORT["models"].items()
    }
    text = reporting.comparison_markdown({**REPORT, "models": models})
    assert "oracle |" not in text.splitlines()[2]


def test_comparison_markdown_of_an_unfinished_comparison_names_the_pending_models():
    lines = reporting.comparison_markdown({**REPORT, "pending": ["ease", "als"]}).splitlines()
    assert lines[-2:] == [
        "",
        "Not finished yet: ease, als (`tfrs-recsys compare ... --resume` continues the "
        "comparison).",
    ]
    assert "Not finished" not in reporting.comparison_markdown(REPORT)


def bins(pairs, hits, items=(3, 2)):
    """A report entry's ``popularity_bins`` with two bins, ``0`` and ``1-4``."""
    return {
        label: {
            "items": n_items,
            "pairs": n,
            "hits@10": h,
            "recall@10": h / n if n else None,
        }
        for label, n_items, n, h in zip(("0", "1-4"), items, pairs, hits)
    }


def with_bins(**per_model):
    models = {
        name: {**REPORT["models"][name], "popularity_bins": b} for name, b in per_model.items()
    }
    return {**REPORT, "models": models}


def test_popularity_table_has_pair_counts_in_the_header_and_a_dash_for_empty_bins():
    report = with_bins(popularity=bins((0, 1200), (0, 300)), oracle=bins((0, 1200), (0, 600)))
    assert reporting.popularity_markdown(report["models"]).splitlines() == [
        "recall@10 by the item's train positives: holdout pairs of the bin found in the "
        "user's top 10 / holdout pairs of the bin (docs/evaluation.md). Catalog items per "
        "bin: 0: 3, 1-4: 2.",
        "",
        "| model | 0 (0 pairs) | 1-4 (1,200 pairs) |",
        "|---|---:|---:|",
        "| popularity | - | 0.2500 |",
        "| oracle | - | 0.5000 |",
    ]


def test_popularity_table_follows_the_comparison_table():
    report = with_bins(popularity=bins((4, 8), (1, 2)), oracle=bins((4, 8), (2, 2)))
    lines = reporting.comparison_markdown(report).splitlines()
    assert lines[5].startswith("| oracle | 0.5000")
    assert lines[7].startswith("recall@10 by the item's train positives")
    assert lines[-2:] == ["| popularity | 0.2500 | 0.2500 |", "| oracle | 0.5000 | 0.2500 |"]


def test_popularity_table_with_other_pair_counts_per_model_puts_them_in_the_cells():
    report = with_bins(popularity=bins((4, 8), (1, 2)), oracle=bins((5, 8), (5, 4)))
    lines = reporting.popularity_markdown(report["models"]).splitlines()
    assert lines[2] == "| model | 0 | 1-4 |"
    assert lines[4:] == [
        "| popularity | 0.2500 (4) | 0.2500 (8) |",
        "| oracle | 1.0000 (5) | 0.5000 (8) |",
    ]


def test_popularity_table_names_models_recorded_without_bins_and_is_absent_without_any():
    report = with_bins(popularity=bins((4, 8), (1, 2)))
    report["models"]["oracle"] = REPORT["models"]["oracle"]
    lines = reporting.popularity_markdown(report["models"]).splitlines()
    assert [line.split(" |")[0] for line in lines[4:5]] == ["| popularity"]
    assert lines[-1] == "Recorded without the popularity bins: oracle."
    assert reporting.popularity_markdown(REPORT["models"]) == ""
    assert "train positives" not in reporting.comparison_markdown(REPORT)


def test_segment_markdown_has_a_row_per_segment_and_a_column_per_model():
    text = reporting.segment_markdown(REPORT["models"], "personality")
    assert text.splitlines() == [
        "| personality | popularity | oracle |",
        "|---|---:|---:|",
        "| a | 0.2000 | 0.4500 |",
        "| b | 0.3000 | 0.5500 |",
    ]


def test_metrics_frame_adds_the_oracle_ratio():
    frame = reporting.metrics_frame(REPORT["models"], ("recall@10", "train_s"))
    assert list(frame.index) == ["popularity", "oracle"]
    # 0.25 / 0.5 and 0.5 / 0.5.
    assert frame["recall@10 / oracle"].tolist() == [0.5, 1.0]
    assert frame.loc["oracle", "train_s"] == 12.34


def test_format_summary_aligns_keys_and_formats_values():
    text = reporting.format_summary({"users": 3, "density": 0.0955, "ratio": 1 / 3, "by": {"a": 1}})
    assert text.splitlines() == [
        f"{'users':>22}: 3",
        f"{'density':>22}: 9.5500%",
        f"{'ratio':>22}: 0.3333",
        f"{'by':>22}: a 1",
    ]


def test_plot_recall_curves_draws_one_line_per_model_on_the_given_axes():
    from matplotlib.figure import Figure

    backend = matplotlib.get_backend()
    ax = Figure().subplots()
    reporting.plot_recall_curves(ax, REPORT["models"], title="t", styles={"oracle": "--"})
    lines = ax.get_lines()
    assert [line.get_label() for line in lines] == ["popularity", "oracle"]
    np.testing.assert_array_equal(lines[1].get_xdata(), [1, 2, 3])
    np.testing.assert_array_equal(lines[1].get_ydata(), [0.3, 0.4, 0.5])
    assert lines[1].get_linestyle() == "--"
    assert matplotlib.get_backend() == backend


def test_plot_segment_bars_draws_a_bar_per_model_and_segment():
    from matplotlib.figure import Figure

    ax = Figure().subplots()
    reporting.plot_segment_bars(ax, REPORT["models"], title="t")
    heights = [patch.get_height() for patch in ax.patches]
    assert heights == pytest.approx([0.2, 0.3, 0.45, 0.55])


def test_save_recall_curves_writes_a_png_and_no_staging_file(tmp_path):
    path = reporting.save_recall_curves({"m": [0.1, 0.2]}, tmp_path / "plot.png", title="t")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["plot.png"]


@pytest.fixture
def caplog(caplog, monkeypatch):
    # The CLI makes the progress logger write to stderr itself (no propagation).
    monkeypatch.setattr(progress.logger, "propagate", True)
    return caplog


def test_periodic_progress_logs_each_interval_and_the_end(caplog):
    caplog.set_level(logging.INFO, logger=progress.LOGGER_NAME)
    ticker = progress.Periodic("embedding", total=4, unit="batches", interval=0.0)
    for _ in range(4):
        ticker.advance()
    ticker.finish()
    messages = [r.getMessage() for r in caplog.records]
    # One line per step but the last (interval 0), then the final line.
    assert [m.split(",")[0] for m in messages] == [
        "embedding: 1/4 batches (25%)",
        "embedding: 2/4 batches (50%)",
        "embedding: 3/4 batches (75%)",
        "embedding: 4/4 batches (100%)",
    ]


def test_periodic_progress_is_silent_for_a_short_job(caplog):
    caplog.set_level(logging.INFO, logger=progress.LOGGER_NAME)
    ticker = progress.Periodic("embedding", total=2, interval=3600.0)
    ticker.advance(2)
    ticker.finish()
    assert caplog.records == []
