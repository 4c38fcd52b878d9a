"""Tuning: the search space, one trial, the Optuna study (``tune``), its resume and the CLI."""

from __future__ import annotations

import dataclasses
import json
import time
import types

import pandas as pd
import pytest
from model_fixtures import tiny_experiment

from tfrs_recsys.config import load_config
from tfrs_recsys.data.splits import Split
from tfrs_recsys.errors import ConfigError
from tfrs_recsys.training.run import prepare_data
from tfrs_recsys.tuning.defaults import dataset_stats, default_batch_size, default_config
from tfrs_recsys.tuning.space import (
    CATALOG_LOSS_MAX_ITEMS,
    FixedParams,
    params_of,
    retrieval_losses,
    suggest_config,
)
from tfrs_recsys.tuning.trial import TrialData, run_trial
from tfrs_recsys.tuning.tuner import RESULT_FILE, TRIALS_FILE, select_trial, study_dir_of, tune

optuna = pytest.importorskip("optuna", reason="tuning needs the tune extra (optuna)")

SEARCHED_MODEL_KEYS = (
    "loss",
    "negatives",
    "normalize",
    "temperature",
    "item_bias",
    "user_history",
    "hidden",
    "output_dim",
    "id_dim",
)


def _tiny(small_dir, **train):
    return tiny_experiment(small_dir, train={"epochs": 2, "patience": 2, **train})


# --- the space ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ml100k_ids", "ml100k_subset", "tech_all", "tech_ids"])
def test_a_shipped_config_inside_the_space_is_reproduced_by_its_parameters(name):
    config = load_config(name)
    again = suggest_config(FixedParams(params_of(config, config, 1_000)), config, 1_000)
    for key in SEARCHED_MODEL_KEYS:
        assert getattr(again.model, key) == getattr(config.model, key), key
    assert again.train.learning_rate == config.train.learning_rate
    assert again.train.batch_size == config.train.batch_size


def test_the_catalog_losses_are_left_out_above_the_catalog_limit():
    assert set(retrieval_losses(CATALOG_LOSS_MAX_ITEMS)) == {
        "catalog_softmax",
        "catalog_sigmoid",
        "in_batch_logq",
        "mixed",
    }
    assert retrieval_losses(CATALOG_LOSS_MAX_ITEMS + 1) == ["in_batch_logq", "mixed"]
    config = load_config("ml100k_ids")
    params = params_of(config, config, CATALOG_LOSS_MAX_ITEMS + 1)
    assert params["loss"] == "in_batch_logq"
    tuned = suggest_config(FixedParams(params), config, CATALOG_LOSS_MAX_ITEMS + 1)
    assert (tuned.model.loss, tuned.model.negatives) == ("softmax", "in_batch")


def test_a_trial_keeps_the_data_section_and_the_feature_set():
    config = load_config("tech_all")
    params = params_of(config, config, 1_000) | {"loss": "catalog_softmax", "normalize": True}
    params |= {"temperature": 0.1, "id_mode": "residual", "dropout": 0.1, "user_history": True}
    tuned = suggest_config(FixedParams(params), config, 1_000)
    assert tuned.data == config.data
    assert (tuned.model.feature_set, tuned.model.text_encoder) == ("all", "bert")
    assert tuned.model.temperature == 0.1 and tuned.model.id_mode == "residual"
    assert tuned.model.user_history
    assert tuned.train.refit and tuned.train.epochs == config.train.epochs


# --- statistics-based defaults -------------------------------------------------------------------


def test_dataset_stats_count_the_train_split(small_dir):
    data = prepare_data(_tiny(small_dir))
    stats = dataset_stats(data.dataset, data.split.train)
    train = data.split.train
    assert stats.positives == len(train)
    assert stats.users == data.dataset.n_users and stats.items == data.dataset.n_items
    assert stats.density == pytest.approx(len(train) / (stats.users * stats.items))
    per_user = train.groupby("user_id").size()
    assert stats.positives_per_user == float(per_user.median())
    assert "price" in stats.item_features and "description" in stats.text_columns


@pytest.mark.parametrize(
    ("positives", "batch"), [(10, 128), (40_000, 256), (72_000, 512), (10**8, 2048)]
)
def test_the_default_batch_size_grows_with_the_positives(positives, batch):
    assert default_batch_size(positives) == batch


def test_a_default_config_uses_the_catalog_softmax_only_where_the_catalog_fits(small_dir):
    data = prepare_data(_tiny(small_dir))
    stats = dataset_stats(data.dataset, data.split.train)
    small = default_config("retrieval_ids", "x", stats)
    large = default_config(
        "retrieval_subset", "x", dataclasses.replace(stats, items=CATALOG_LOSS_MAX_ITEMS + 1)
    )
    assert (small.model.loss, small.model.negatives) == ("softmax", "catalog")
    assert (large.model.negatives, large.model.logq_correction) == ("in_batch", True)
    assert small.model.id_mode == "input" and large.model.id_mode == "residual"
    ranking = default_config("ranking_all", "x", stats)
    assert (ranking.model.kind, ranking.model.feature_set) == ("ranking", "all")


# --- one trial ------------------------------------------------------------------------------------


def test_a_trial_never_reads_the_holdout(small_dir):
    data = prepare_data(_tiny(small_dir))
    blind = dataclasses.replace(data, split=Split(data.split.name, data.split.train, None))
    config = _tiny(small_dir)
    seen = run_trial(TrialData(data), config)
    without_holdout = run_trial(TrialData(blind), config)
    assert without_holdout.best == seen.best and without_holdout.best_epoch == seen.best_epoch
    assert 0.0 < seen.best <= 1.0 and seen.epochs_run == 2


def test_a_trial_stops_when_its_report_says_so(small_dir):
    calls = []

    def report(epoch, value):
        calls.append((epoch, value))
        return True

    result = run_trial(TrialData(prepare_data(_tiny(small_dir))), _tiny(small_dir), report)
    assert result.stopped_by_report and result.epochs_run == 1
    assert calls == [(1, result.best)]


def test_a_trial_past_its_deadline_stops_after_the_current_epoch(small_dir):
    config = _tiny(small_dir)  # 2 epochs without a deadline (see the test above)
    result = run_trial(TrialData(prepare_data(config)), config, deadline=time.perf_counter())
    assert result.stopped_at_deadline and not result.stopped_by_report
    assert result.epochs_run == 1 and result.best_epoch == 1 and 0.0 < result.best <= 1.0


def _trial(number, value, se):
    return types.SimpleNamespace(number=number, value=value, user_attrs={"validation_se": se})


def test_the_starting_config_is_kept_unless_beaten_by_more_than_a_standard_error():
    start = _trial(0, 0.200, 0.008)
    close, clear = _trial(3, 0.207, 0.006), _trial(4, 0.210, 0.007)
    chosen, why = select_trial(close, [start, close])
    assert chosen is start and "led it by 0.0070" in why and "(0.0080)" in why
    chosen, why = select_trial(clear, [start, clear])
    assert chosen is clear and "more than one standard error" in why
    # Without a finished starting trial the best one is taken.
    assert select_trial(close, [close])[0] is close
    assert select_trial(start, [start, close])[0] is start


# --- the study ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def study(small_dir, tmp_path_factory):
    """A 3-trial study of the tiny config, the tiny config itself enqueued first."""
    out = tmp_path_factory.mktemp("tune") / "tiny_ids.toml"
    base = _tiny(small_dir)
    result = tune(base, out, known={"the tiny config": base}, trials=3, seed=0)
    return base, out, result


def test_the_study_writes_its_best_trial_as_a_config_that_trains(study):
    base, out, result = study
    table = pd.read_csv(study_dir_of(out) / TRIALS_FILE)
    assert len(table) == 3 and set(table["state"]) <= {"COMPLETE", "PRUNED"}
    complete = table[table["state"] == "COMPLETE"]
    assert result.best_value == complete["value"].max()
    assert result.best_trial == int(complete.loc[complete["value"].idxmax(), "number"])
    tuned = load_config(out)
    assert tuned.name == "tiny_ids" and tuned.data == base.data
    best = table.loc[table["number"] == result.best_trial].iloc[0]
    assert tuned.train.batch_size == best["params_batch_size"]
    assert tuned.train.learning_rate == pytest.approx(best["params_learning_rate"])
    summary = json.loads((study_dir_of(out) / RESULT_FILE).read_text())
    assert summary["trials"]["complete"] == len(complete)


def test_the_known_configs_are_the_first_trials(study):
    base, out, _ = study
    table = pd.read_csv(study_dir_of(out) / TRIALS_FILE)
    first = table.iloc[0]
    assert first["user_attrs_origin"] == "the tiny config"
    assert first["params_batch_size"] == base.train.batch_size
    assert first["params_learning_rate"] == pytest.approx(base.train.learning_rate)


def test_an_existing_study_is_refused_without_resume(study):
    base, out, _ = study
    with pytest.raises(ConfigError, match="--resume"):
        tune(base, out, trials=3)


def test_a_resumed_study_runs_only_the_missing_trials(study, tmp_path):
    base, out, _ = study
    copy = tmp_path / out.name
    copy.write_text(out.read_text())
    directory = study_dir_of(out)
    (study_dir_of(copy)).mkdir()
    for path in directory.iterdir():
        (study_dir_of(copy) / path.name).write_bytes(path.read_bytes())
    result = tune(base, copy, trials=4, seed=0, resume=True)
    table = pd.read_csv(study_dir_of(copy) / TRIALS_FILE)
    assert len(table) == 4 and sum(result.trials.values()) == 4


def test_resume_with_other_settings_is_refused(study):
    base, out, _ = study
    other = dataclasses.replace(base, data=dataclasses.replace(base.data, min_rating=3.0))
    with pytest.raises(ConfigError, match=r"\(data, base changed\)"):
        tune(other, out, trials=4, resume=True)


def test_a_trial_left_running_by_a_kill_is_failed_and_run_again(small_dir, tmp_path):
    base = _tiny(small_dir)
    out = tmp_path / "killed.toml"
    study_dir = study_dir_of(out)
    study_dir.mkdir()
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(study_dir / "journal.log"))
    )
    killed = optuna.create_study(study_name="tune", storage=storage, direction="maximize")
    suggest_config(killed.ask(), base, 120)  # drawn, then the process was killed
    tune(base, out, trials=1, seed=0, resume=True)
    trials = optuna.load_study(study_name="tune", storage=storage).trials
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE"]
    assert trials[1].params == trials[0].params
    assert trials[1].user_attrs["origin"] == "rerun after a kill"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "--trials or --budget-s"),
        ({"trials": 0}, "--trials must be at least 1"),
        ({"budget_s": float("nan")}, "--budget-s must be a positive"),
    ],
)
def test_a_study_without_a_valid_budget_is_refused(small_dir, tmp_path, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        tune(_tiny(small_dir), tmp_path / "x.toml", **kwargs)
    assert not (tmp_path / "x.tuning").exists()


def test_the_tuned_config_must_be_a_toml_file(small_dir, tmp_path):
    with pytest.raises(ConfigError, match="a .toml file"):
        tune(_tiny(small_dir), tmp_path / "x.json", trials=1)


# --- compare --tune and the CLI -------------------------------------------------------------------


@pytest.fixture
def cli(monkeypatch):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    from tfrs_recsys import cli as module

    return module


def test_compare_tune_trains_the_tuned_config_and_reports_the_tuning(small_dir, tmp_path):
    from tfrs_recsys.training.compare import compare
    from tfrs_recsys.tuning.plan import TuningPlan

    out = tmp_path / "report"
    plan = TuningPlan(budget_s=None, trials=2)
    overrides = ["train.epochs=2", "train.patience=2"]
    report = compare(
        str(small_dir), ["retrieval_ids"], out, overrides=overrides, tuning=plan, verbose=0
    )
    entry = report["models"]["retrieval_ids"]
    assert sum(entry["tuning_trials"].values()) == 2 and entry["tuning_s"] > 0
    assert entry["config"].startswith(f"tuned config {out}/tuning/retrieval_ids.toml")
    assert entry["tuned_from"] == "shipped config tech_ids"
    tuned = load_config(out / "tuning" / "retrieval_ids.toml")
    recorded = (out / "runs" / "retrieval_ids" / "config.toml").read_text()
    assert recorded == dataclasses.replace(tuned, name="retrieval_ids").to_toml()
    settings = json.loads((out / "settings.json").read_text())
    assert settings["tune"] == {"budget_s": None, "trials": 2, "seed": 0}
    with pytest.raises(ConfigError, match="tune"):
        compare(str(small_dir), ["retrieval_ids"], out, overrides=overrides, resume=True)


def test_tune_cli_writes_the_config_and_prints_the_best_trial(cli, small_dir, tmp_path, capsys):
    out = tmp_path / "ids.toml"
    argv = ["tune", "--data", str(small_dir), "--model", "retrieval_ids", "--trials", "2"]
    code = cli.main([*argv, "--set", "train.epochs=2", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0 and out.is_file()
    assert "best validation recall@10" in printed and "2 complete" in printed
    assert load_config(out).model.feature_set == "ids"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["compare", "--models", "popularity", "--budget-s", "5"], "--budget-s and --trials go"),
        (["tune", "--model", "retrieval_ids", "--budget-s", "0"], "--budget-s: expected a pos"),
        (["tune", "--model", "retrieval_ids", "--trials", "-1"], "--trials: expected a pos"),
        (["tune", "--model", "retrieval_ids"], "--trials or --budget-s"),
        (
            ["tune", "--model", "ranking_all", "--trials", "1", "--config", "tech_ids"],
            "not ranking_all",
        ),
    ],
)
def test_bad_tuning_flags_are_one_line_errors(cli, small_dir, tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) if "expected" in message else _no_exit() as stopped:
        code = cli.main([*argv, "--data", str(small_dir), "--out", str(tmp_path / "o.toml")])
    err = capsys.readouterr().err
    if stopped is not None:
        code = stopped.value.code
    assert code == 2 and message in err
    assert not (tmp_path / "o.toml").exists() and not (tmp_path / "o.tuning").exists()


class _no_exit:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def test_compare_gives_a_dataset_without_a_shipped_config_the_statistics_default(small_dir):
    from tfrs_recsys.training.compare import model_config

    data = prepare_data(_tiny(small_dir))
    stats = dataset_stats(data.dataset, data.split.train)
    config, origin = model_config("retrieval_subset", "my-data", "src", stats=stats)
    expected = default_config("retrieval_subset", "src", stats)
    assert config == dataclasses.replace(expected, name="retrieval_subset")
    assert origin == (
        "defaults from the dataset's statistics because no configs ship for dataset my-data"
    )
    overridden, _ = model_config(
        "retrieval_subset", "my-data", "src", overrides=["model.temperature=0.5"], stats=stats
    )
    assert overridden.model.temperature == 0.5
    shipped, origin = model_config("retrieval_ids", "movielens-100k", "src", stats=stats)
    assert (
        origin == "shipped config ml100k_ids" and shipped.model == load_config("ml100k_ids").model
    )


def test_the_comparison_table_shows_tuning_seconds_and_trials():
    from tfrs_recsys.reporting import COMPARISON_KEYS, comparison_markdown

    figures = {k: 0.1 for k in COMPARISON_KEYS} | {"train_s": 1.0, "eval_s": 0.1}
    tuned = figures | {"tuning_s": 812.4, "tuning_trials": {"complete": 3, "pruned": 7}}
    table = comparison_markdown(
        {"dataset": "d", "split": "s", "models": {"ease": figures, "retrieval_ids": tuned}}
    )
    rows = [line for line in table.splitlines() if line.startswith("| ")]
    assert rows[0].endswith("| tuning s | trials |")
    assert rows[1].endswith("| - | - |") and rows[2].endswith("| 812 | 10 (7 pruned) |")
    untuned = comparison_markdown({"dataset": "d", "split": "s", "models": {"ease": figures}})
    assert "tuning s" not in untuned


def test_the_cli_tunes_exactly_compares_tfrs_models(cli):
    from tfrs_recsys.training.compare import TFRS_MODELS

    assert cli.TUNABLE_MODELS == TFRS_MODELS
