"""``compare``: several models on one split, the report files, and the CLI's
compare / train / evaluate subcommands."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from model_fixtures import tiny_experiment

import tfrs_recsys.training.compare as compare_module
import tfrs_recsys.training.run as run_module
from tfrs_recsys.config import load_config
from tfrs_recsys.errors import ConfigError
from tfrs_recsys.progress import LOGGER_NAME
from tfrs_recsys.training.compare import MODEL_NAMES, compare, model_config, parse_models

MODELS = ["popularity", "oracle", "ease", "retrieval_ids"]
SUMMARY = {
    "recall@10",
    "ndcg@10",
    "recall@50",
    "coverage@10",
    "train_s",
    "eval_s",
    "recall@10_vs_oracle",
}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def cli(monkeypatch):
    """The CLI module (imported here, so a broken CLI fails only the CLI tests)."""
    # cli.main() sets TF_CPP_MIN_LOG_LEVEL if unset; keep the environment as it was.
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    from tfrs_recsys import cli as module

    return module


@pytest.fixture(scope="module")
def config_dir(tmp_path_factory):
    """An empty config directory: the TFRS models use the defaults from the data's statistics."""
    return tmp_path_factory.mktemp("no-configs")


@pytest.fixture(scope="module")
def comparison(small_dir, tmp_path_factory, config_dir):
    """``compare`` of MODELS with defaults (empty config dir), 1 epoch: ``(out, report)``."""
    out = tmp_path_factory.mktemp("compare") / "report"
    report = compare(
        str(small_dir), MODELS, out, config_dir=config_dir, overrides=["train.epochs=1"]
    )
    return out, report


# --- compare() ----------------------------------------------------------------------------------


def test_report_files_are_written(comparison):
    out, _ = comparison
    assert (out / "comparison.md").is_file()
    assert (out / "comparison.json").is_file()
    assert (out / "recall_at_k.png").read_bytes()[:8] == PNG_MAGIC


def test_comparison_json_has_every_model_with_the_summary_figures(comparison):
    out, report = comparison
    written = json.loads((out / "comparison.json").read_text(encoding="utf-8"))
    assert written == json.loads(json.dumps(report))
    assert written["dataset"] == "tech-products"
    assert written["split"] == "holdout-80-20"
    assert list(written["models"]) == MODELS
    for name, entry in written["models"].items():
        assert SUMMARY <= set(entry), name
        for key in ("recall@10", "ndcg@10", "recall@50", "coverage@10"):
            assert 0.0 <= entry[key] <= 1.0, (name, key)
        assert entry["train_s"] >= 0 and entry["eval_s"] >= 0


def test_seed_metric_is_reported_for_probability_models_only(comparison):
    """The notebooks' figure (mean p of one holdout positive per user): popularity and the
    oracle give probabilities; EASE and a softmax two-tower give ranking scores only."""
    out, report = comparison
    models = report["models"]
    for name in ("popularity", "oracle"):
        assert 0.0 < models[name]["seed_metric"] < 1.0, name
    assert models["oracle"]["seed_metric"] > models["popularity"]["seed_metric"]
    assert models["ease"]["seed_metric"] is None
    assert models["retrieval_ids"]["seed_metric"] is None  # default loss: softmax
    table = (out / "comparison.md").read_text(encoding="utf-8")
    assert "seed metric" in table
    assert f"{models['oracle']['seed_metric']:.3f}" in table


def test_recall_vs_oracle_is_the_ratio_of_recalls(comparison):
    models = comparison[1]["models"]
    oracle = models["oracle"]["recall@10"]
    assert models["oracle"]["recall@10_vs_oracle"] == pytest.approx(1.0)
    for name, entry in models.items():
        assert entry["recall@10_vs_oracle"] == pytest.approx(entry["recall@10"] / oracle), name


def test_oracle_beats_popularity(comparison):
    models = comparison[1]["models"]
    assert models["oracle"]["recall@10"] >= models["popularity"]["recall@10"]


def test_recall_curve_is_non_decreasing_and_ends_the_report_entry(comparison):
    for name, entry in comparison[1]["models"].items():
        curve = entry["recall_curve"]
        assert len(curve) == 100, name
        assert all(b >= a - 1e-12 for a, b in zip(curve, curve[1:])), name
        assert curve[9] == pytest.approx(entry["recall@10"]), name
        assert curve[49] == pytest.approx(entry["recall@50"]), name


def test_tfrs_model_is_trained_into_its_run_directory_with_the_overrides(comparison):
    out, report = comparison
    entry = report["models"]["retrieval_ids"]
    assert entry["epochs_run"] == 1
    metrics = json.loads((out / "runs" / "retrieval_ids" / "metrics.json").read_text())
    assert metrics["holdout"]["metrics"]["recall@10"] == pytest.approx(entry["recall@10"])
    config_text = (out / "runs" / "retrieval_ids" / "config.toml").read_text()
    assert 'name = "retrieval_ids"' in config_text
    assert 'feature_set = "ids"' in config_text


def test_ease_records_its_tuned_penalty(comparison):
    assert "l2" in comparison[1]["models"]["ease"]["tuned"]


def test_markdown_table_has_a_row_per_model(comparison):
    # The first table; the second (by item popularity) has its own test.
    text = (comparison[0] / "comparison.md").read_text(encoding="utf-8").split("\n\n")[1]
    rows = [
        line
        for line in text.splitlines()
        if line.startswith("| ") and not line.startswith("| model")
    ]
    assert [row.split("|")[1].strip() for row in rows] == MODELS
    oracle_row = rows[MODELS.index("oracle")]
    assert "1.000" in oracle_row


def test_every_model_records_recall_by_item_popularity(comparison):
    out, report = comparison
    bins = {name: entry["popularity_bins"] for name, entry in report["models"].items()}
    labels = ["0", "1-4", "5-19", "20-99", "100-499", "500+"]
    assert all(list(b) == labels for b in bins.values())
    pairs = {name: [b[label]["pairs"] for label in labels] for name, b in bins.items()}
    assert len({tuple(p) for p in pairs.values()}) == 1  # one task for every model
    assert sum(pairs["oracle"]) > 0
    text = (out / "comparison.md").read_text(encoding="utf-8")
    table = text.split("\n\n")[3].splitlines()
    assert [row.split("|")[1].strip() for row in table[2:]] == MODELS


def test_compare_refuses_an_existing_report(comparison, small_dir):
    out, _ = comparison
    with pytest.raises(ConfigError, match="already holds a comparison.*--resume"):
        compare(str(small_dir), ["popularity"], out)


def test_each_model_result_and_the_settings_are_on_disk(comparison):
    out, report = comparison
    for name in MODELS:
        record = json.loads((out / "models" / f"{name}.json").read_text(encoding="utf-8"))
        entry = {k: v for k, v in report["models"][name].items() if k != "recall@10_vs_oracle"}
        assert record["entry"] == entry, name
        assert (record["config_toml"] is None) == (name != "retrieval_ids"), name
    settings = json.loads((out / "settings.json").read_text(encoding="utf-8"))
    assert settings["overrides"] == ["train.epochs=1"]
    assert (settings["dataset"], settings["split"]) == ("tech-products", "holdout-80-20")
    assert "pending" not in report


def test_oracle_needs_generated_data(make_tech_dir, tmp_path):
    directory = make_tech_dir()  # hand-made: no truth.npz
    with pytest.raises(ConfigError, match="oracle"):
        compare(str(directory), ["oracle"], tmp_path / "out")


# --- Checked before training, written as it finishes, resumed -------------------------------------


def _no_timings(report):
    """``report["models"]`` without the wall-clock figures (which differ between runs)."""
    return {
        name: {k: v for k, v in entry.items() if k not in ("train_s", "eval_s")}
        for name, entry in report["models"].items()
    }


class _Calls:
    """Records which models were fitted or trained (a spy around the real functions)."""

    def __init__(self, monkeypatch, fail: str | None = None):
        self.names: list[str] = []
        fit_peer, train = compare_module._fit_peer, run_module.train

        def fit_spy(name, *args, **kwargs):
            self.names.append(name)
            if name == fail:
                raise RuntimeError(f"injected crash in {name}")
            return fit_peer(name, *args, **kwargs)

        def train_spy(config, run_dir, **kwargs):
            self.names.append(config.name)
            return train(config, run_dir, **kwargs)

        monkeypatch.setattr(compare_module, "_fit_peer", fit_spy)
        monkeypatch.setattr(run_module, "train", train_spy)


def write_ml_latest(directory, users=30, movies=20, seed=0):
    """A tiny dataset in the ml-latest format: ratings.csv and movies.csv, no user file."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True)
    lines = ["movieId,title,genres"]
    lines += [f"{m},Movie {m} (199{m % 10}),Drama|Comedy" for m in range(1, movies + 1)]
    (directory / "movies.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    lines = ["userId,movieId,rating,timestamp"]
    for user in range(1, users + 1):
        for movie in rng.choice(np.arange(1, movies + 1), size=8, replace=False):
            lines.append(f"{user},{movie},{rng.choice([3.0, 4.0, 5.0])},{1000 + user}")
    (directory / "ratings.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return directory


@pytest.fixture(scope="module")
def interrupted(small_dir, tmp_path_factory, config_dir):
    """MODELS compared with a crash injected in the 2nd model (oracle), then ``--resume``.

    Returns ``{"out", "config_dir", "after_crash": {file: text}, "crash_calls",
    "resume_calls", "report", "log"}``.
    """
    out = tmp_path_factory.mktemp("interrupted") / "report"
    kwargs = dict(config_dir=config_dir, overrides=["train.epochs=1"], verbose=0)
    state = {"out": out, "config_dir": config_dir}
    with pytest.MonkeyPatch.context() as patch:
        calls = _Calls(patch, fail="oracle")
        with pytest.raises(RuntimeError, match="injected crash in oracle"):
            compare(str(small_dir), MODELS, out, **kwargs)
        state["crash_calls"] = calls.names
    state["after_crash"] = {
        str(path.relative_to(out)): path.read_text(encoding="utf-8")
        for path in sorted(out.rglob("*"))
        if path.is_file() and path.suffix in (".json", ".md")
    }
    with pytest.MonkeyPatch.context() as patch:
        calls = _Calls(patch)
        records = []
        handler = logging.Handler()
        handler.emit = records.append
        progress = logging.getLogger(LOGGER_NAME)
        level = progress.level
        progress.addHandler(handler)
        progress.setLevel(logging.INFO)
        try:
            state["report"] = compare(str(small_dir), MODELS, out, resume=True, **kwargs)
        finally:
            progress.removeHandler(handler)
            progress.setLevel(level)
        state["resume_calls"] = calls.names
        state["log"] = [record.getMessage() for record in records]
    return state


def test_a_crash_in_the_second_model_keeps_the_first_on_disk(interrupted):
    assert interrupted["crash_calls"] == ["popularity", "oracle"]
    files = interrupted["after_crash"]
    assert set(files) == {
        "settings.json",
        "models/popularity.json",
        "comparison.json",
        "comparison.md",
    }
    report = json.loads(files["comparison.json"])
    assert list(report["models"]) == ["popularity"]
    assert report["pending"] == ["oracle", "ease", "retrieval_ids"]
    record = json.loads(files["models/popularity.json"])
    assert record["entry"] == report["models"]["popularity"]
    assert "Not finished yet: oracle, ease, retrieval_ids" in files["comparison.md"]
    assert "--resume" in files["comparison.md"]


def test_resume_trains_only_the_models_not_written(interrupted):
    # retrieval_ids has the statistics-based default: a seed ensemble of three runs.
    assert interrupted["resume_calls"] == [
        "oracle",
        "ease",
        "retrieval_ids",
        "retrieval_ids-member1",
        "retrieval_ids-member2",
    ]
    skipped = [line for line in interrupted["log"] if "not trained again" in line]
    assert len(skipped) == 1 and skipped[0].startswith("[1/4] popularity: done already")


def test_resumed_comparison_equals_an_uninterrupted_one(interrupted, comparison):
    resumed, uninterrupted = interrupted["report"], comparison[1]
    assert list(resumed["models"]) == MODELS
    assert _no_timings(resumed) == _no_timings(uninterrupted)
    # The finished model's figures, timings included, are those written before the crash.
    before = json.loads(interrupted["after_crash"]["models/popularity.json"])["entry"]
    assert {k: v for k, v in resumed["models"]["popularity"].items() if k in before} == before
    written = json.loads((interrupted["out"] / "comparison.json").read_text(encoding="utf-8"))
    assert written == json.loads(json.dumps(resumed))
    assert "Not finished" not in (interrupted["out"] / "comparison.md").read_text()


def test_resume_of_a_finished_comparison_trains_nothing(interrupted, small_dir, monkeypatch):
    calls = _Calls(monkeypatch)
    report = compare(
        str(small_dir),
        MODELS,
        interrupted["out"],
        config_dir=interrupted["config_dir"],
        overrides=["train.epochs=1"],
        resume=True,
    )
    assert calls.names == []
    assert report == interrupted["report"]


def test_resume_reads_a_finished_run_whose_result_was_not_written(
    interrupted, small_dir, monkeypatch
):
    """Killed after the run's metrics.json but before models/<name>.json: not retrained."""
    (interrupted["out"] / "models" / "retrieval_ids.json").unlink()
    calls = _Calls(monkeypatch)
    report = compare(
        str(small_dir),
        MODELS,
        interrupted["out"],
        config_dir=interrupted["config_dir"],
        overrides=["train.epochs=1"],
        resume=True,
    )
    assert calls.names == []
    assert report["models"]["retrieval_ids"] == interrupted["report"]["models"]["retrieval_ids"]
    assert (interrupted["out"] / "models" / "retrieval_ids.json").is_file()


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"overrides": ["train.epochs=2"]}, "--set was ['train.epochs=1'], now ['train.epochs=2']"),
        ({"split_name": "per-user-random"}, "split was 'holdout-80-20', now 'per-user-random'"),
        ({"config_dir": None}, "--config-dir was"),
    ],
)
def test_resume_refuses_other_settings_naming_them(comparison, small_dir, change, needle):
    out, _ = comparison
    settings = json.loads((out / "settings.json").read_text(encoding="utf-8"))
    kwargs = {"config_dir": settings["config_dir"], "overrides": ["train.epochs=1"], **change}
    with pytest.raises(ConfigError, match="cannot --resume") as info:
        compare(str(small_dir), ["popularity"], out, resume=True, **kwargs)
    assert needle in str(info.value)
    assert "\n" not in str(info.value)


def test_resume_refuses_other_data(comparison, make_tech_dir):
    out, _ = comparison
    settings = json.loads((out / "settings.json").read_text(encoding="utf-8"))
    with pytest.raises(ConfigError, match="--data was .*the data's train/holdout pairs was"):
        compare(
            str(make_tech_dir()),
            ["popularity"],
            out,
            config_dir=settings["config_dir"],
            overrides=["train.epochs=1"],
            resume=True,
        )


def test_resume_of_an_out_without_a_comparison_starts_one(small_dir, tmp_path):
    """Killed before anything was recorded: --resume is still the recovery."""
    report = compare(str(small_dir), ["popularity"], tmp_path / "out", resume=True)
    assert list(report["models"]) == ["popularity"]
    assert (tmp_path / "out" / "models" / "popularity.json").is_file()


def test_resume_refuses_results_without_recorded_settings(small_dir, tmp_path):
    (tmp_path / "out" / "runs" / "retrieval_ids").mkdir(parents=True)
    (tmp_path / "out" / "runs" / "retrieval_ids" / "config.toml").write_text("")
    with pytest.raises(ConfigError, match="no settings.json.*choose a new --out"):
        compare(str(small_dir), ["popularity"], tmp_path / "out", resume=True)


def test_resume_refuses_a_model_whose_config_changed(interrupted, small_dir):
    config_dir = interrupted["config_dir"]
    (config_dir / "tech_ids.toml").write_text(
        '[model]\nfeature_set = "ids"\noutput_dim = 8\n', encoding="utf-8"
    )
    try:
        with pytest.raises(ConfigError, match="retrieval_ids.json: retrieval_ids was trained"):
            compare(
                str(small_dir),
                MODELS,
                interrupted["out"],
                config_dir=config_dir,
                overrides=["train.epochs=1"],
                resume=True,
            )
    finally:
        (config_dir / "tech_ids.toml").unlink()


def test_a_model_that_cannot_run_fails_before_anything_trains(tmp_path, monkeypatch):
    """ml-latest data has no user features: seed_subset (needs age) is found before
    popularity and retrieval_ids train, and nothing is written."""
    data = write_ml_latest(tmp_path / "ml-latest-small")
    calls = _Calls(monkeypatch)
    out = tmp_path / "out"
    with pytest.raises(ConfigError) as info:
        compare(str(data), ["popularity", "retrieval_ids", "seed_subset"], out)
    message = str(info.value)
    assert message.startswith("model seed_subset cannot run on movielens-latest-small:")
    assert "seed_subset needs a numeric user column 'age'" in message
    assert "\n" not in message
    assert calls.names == []
    assert not out.exists()


def test_the_check_builds_each_tfrs_model_before_training(tmp_path, monkeypatch):
    """The check builds the towers: an encoder failure of the 2nd TFRS model is found
    before the 1st trains (the way retrieval_subset once failed after 13 minutes)."""
    from tfrs_recsys.features import side_encoder

    data = write_ml_latest(tmp_path / "ml-latest-small")
    original = side_encoder.SideEncoder.__init__

    def fail_for_subset(self, features, preprocessing, *args, **kwargs):
        if len(features) and all(f.kind == "numeric" for f in features):
            raise ConfigError("injected: no usable numeric feature")
        return original(self, features, preprocessing, *args, **kwargs)

    monkeypatch.setattr(side_encoder.SideEncoder, "__init__", fail_for_subset)
    calls = _Calls(monkeypatch)
    with pytest.raises(ConfigError, match="^model retrieval_subset cannot run on movielens-"):
        compare(str(data), ["retrieval_ids", "retrieval_subset"], tmp_path / "out")
    assert calls.names == []
    assert not (tmp_path / "out").exists()


def test_an_unavailable_text_encoder_is_found_before_training(tmp_path, monkeypatch, small_dir):
    calls = _Calls(monkeypatch)
    with pytest.raises(ConfigError, match="^model retrieval_all cannot run on tech-products:"):
        compare(
            str(small_dir),
            ["popularity", "retrieval_all"],
            tmp_path / "out",
            config_dir=tmp_path,
            overrides=['model.text_encoder="bert"', f'model.text_model="{tmp_path}/nothing"'],
        )
    assert calls.names == []


# --- parse_models / model_config ---------------------------------------------------------------


def test_parse_models_trims_and_keeps_order():
    assert parse_models(" oracle, popularity ,retrieval_ids") == [
        "oracle",
        "popularity",
        "retrieval_ids",
    ]
    assert set(parse_models(",".join(MODEL_NAMES))) == set(MODEL_NAMES)


@pytest.mark.parametrize("text", ["popularity,bogus", "retrieval", "", " , "])
def test_parse_models_rejects_unknown_or_no_names(text):
    with pytest.raises(ConfigError, match="unknown model"):
        parse_models(text)


def test_parse_models_names_the_unknown_model():
    with pytest.raises(ConfigError, match="bogus"):
        parse_models("popularity,bogus")


def test_model_config_uses_the_shipped_file(tmp_path):
    (tmp_path / "tech_subset.toml").write_text(
        '[data]\nsource = "elsewhere"\n[model]\nfeature_set = "subset"\noutput_dim = 8\n',
        encoding="utf-8",
    )
    config, origin = model_config(
        "retrieval_subset", "tech-products", "my/data", tmp_path, ["train.epochs=2"]
    )
    assert origin == f"config file {tmp_path / 'tech_subset.toml'}"
    assert config.name == "retrieval_subset"
    assert config.data.source == "my/data"
    assert config.model.output_dim == 8
    assert config.train.epochs == 2


def test_model_config_keeps_a_source_path_with_quotes_and_backslashes(tmp_path):
    source = str(tmp_path / 'a "quoted" dir\\with backslash and é')
    config, _ = model_config("retrieval_ids", "movielens-100k", source)
    assert config.data.source == source


def test_model_config_defaults_without_a_file(tmp_path):
    config, origin = model_config("ranking_all", "tech-products", "d", tmp_path)
    assert (config.model.kind, config.model.feature_set) == ("ranking", "all")
    assert origin.startswith("built-in defaults") and "tech_ranking_all.toml" in origin


def test_model_config_without_a_config_dir_uses_the_shipped_config():
    config, origin = model_config(
        "retrieval_all", "movielens-100k", "d", overrides=["train.epochs=2"]
    )
    shipped = load_config("ml100k_all")
    assert origin == "shipped config ml100k_all"
    assert config.model == shipped.model
    assert (config.data.source, config.train.epochs) == ("d", 2)


def test_model_config_says_when_no_config_ships_for_the_model():
    config, origin = model_config("ranking_ids", "movielens-100k", "d")
    assert (config.model.kind, config.model.feature_set) == ("ranking", "ids")
    assert origin == (
        "built-in defaults because no config named ml100k_ranking_ids ships for dataset movielens-100k"
    )
    _, origin = model_config("retrieval_ids", "my-data", "d")
    assert origin == "built-in defaults because no configs ship for dataset my-data"


def test_model_config_rejects_a_file_of_another_model(tmp_path):
    (tmp_path / "tech_ids.toml").write_text('[model]\nkind = "ranking"\nfeature_set = "ids"\n')
    with pytest.raises(ConfigError, match="retrieval_ids"):
        model_config("retrieval_ids", "tech-products", "d", tmp_path)


# --- The CLI -----------------------------------------------------------------------------------------


def test_cli_module_imports_and_has_every_subcommand():
    from tfrs_recsys import cli

    assert {"train", "evaluate", "compare"} <= set(cli.COMMANDS)


def _one_error_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("tfrs-recsys") and "error:" in lines[0]
    return lines[0]


def test_cli_compare_writes_the_json_summary(cli, small_dir, tmp_path, capsys):
    out, summary = tmp_path / "out", tmp_path / "summary.json"
    code = cli.main(
        [
            "compare",
            "--data",
            str(small_dir),
            "--models",
            "popularity,oracle",
            "--out",
            str(out),
            "--json",
            str(summary),
        ]
    )
    assert code == 0
    data = json.loads(summary.read_text(encoding="utf-8"))
    assert set(data) == {"dataset", "split", "models"}
    assert (data["dataset"], data["split"]) == ("tech-products", "holdout-80-20")
    assert list(data["models"]) == ["popularity", "oracle"]
    full = json.loads((out / "comparison.json").read_text(encoding="utf-8"))
    for name, entry in data["models"].items():
        assert set(entry) == SUMMARY
        for key in SUMMARY:
            assert entry[key] == full["models"][name][key]
    assert "popularity" in capsys.readouterr().out


def test_cli_train_then_evaluate(cli, small_dir, tmp_path, capsys):
    config_path = tmp_path / "tiny.toml"
    config_path.write_text(
        tiny_experiment(small_dir, train={"epochs": 1}).to_toml(), encoding="utf-8"
    )
    run_dir = tmp_path / "run"
    assert cli.main(["train", "--config", str(config_path), "--run-dir", str(run_dir)]) == 0
    assert "recall@10" in capsys.readouterr().out
    metrics = json.loads((run_dir / "metrics.json").read_text())

    assert cli.main(["evaluate", "--run-dir", str(run_dir), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["model"] == "retrieval_ids"
    assert printed["split"] == "holdout-80-20"
    assert printed["metrics"]["recall@10"] == pytest.approx(
        metrics["holdout"]["metrics"]["recall@10"], abs=1e-6
    )
    assert (
        metrics["holdout_seed_metric"] is None and printed["seed_metric"] is None
    )  # softmax: no probabilities


def test_a_logistic_run_reports_the_seed_metric(cli, small_dir, tmp_path, capsys):
    experiment = tiny_experiment(small_dir, model={"loss": "catalog_sigmoid"}, train={"epochs": 1})
    config_path = tmp_path / "logistic.toml"
    config_path.write_text(experiment.to_toml(), encoding="utf-8")
    run_dir = tmp_path / "run"
    assert cli.main(["train", "--config", str(config_path), "--run-dir", str(run_dir)]) == 0
    capsys.readouterr()
    seed = json.loads((run_dir / "metrics.json").read_text())["holdout_seed_metric"]
    assert 0.0 < seed < 1.0
    assert cli.main(["evaluate", "--run-dir", str(run_dir)]) == 0
    assert (
        f"seed metric (the notebooks' mean p of one holdout positive per user): {seed:.4f}"
        in capsys.readouterr().out
    )


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["train", "--run-dir", "{tmp}/r", "--set", "model.kind=bogus"], "model.kind"),
        (["train", "--run-dir", "{tmp}/r", "--set", "model.temperature"], "--set"),
        (["train", "--run-dir", "{tmp}/r", "--config", "{tmp}/missing.toml"], "missing.toml"),
        (
            ["train", "--run-dir", "{tmp}/r", "--config", "tech_everything"],
            "shipped configs: ml100k_all",
        ),
        (["train", "--run-dir", "{tmp}/r", "--resume"], "config.toml"),
        (["evaluate", "--run-dir", "{tmp}"], "not a run directory"),
        (["compare", "--data", "{tmp}", "--models", "bogus", "--out", "{tmp}/o"], "bogus"),
    ],
)
def test_cli_config_errors_exit_2_with_one_line(cli, tmp_path, capsys, argv, needle):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    assert needle in _one_error_line(captured.err)


def test_cli_compare_resume(cli, small_dir, tmp_path, capsys):
    argv = ["compare", "--data", str(small_dir), "--models", "popularity,oracle"]
    argv += ["--out", str(tmp_path / "out")]
    assert cli.main(argv) == 0
    first = capsys.readouterr().out
    assert cli.main(argv) == 2
    assert "--resume" in _one_error_line(capsys.readouterr().err)
    assert cli.main([*argv, "--resume"]) == 0
    captured = capsys.readouterr()
    assert captured.out == first
    assert "[1/2] popularity: done already" in captured.err
    assert "[2/2] oracle: done already" in captured.err


@pytest.mark.parametrize(
    "argv",
    [
        ["compare", "--data", "d", "--out", "o"],  # --models missing
        ["train"],  # --run-dir missing
        ["evaluate", "--run-dir", "r", "--bogus-flag"],
    ],
)
def test_cli_bad_flags_exit_2_with_one_line(cli, capsys, argv):
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    _one_error_line(capsys.readouterr().err)
