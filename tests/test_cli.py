"""The ``tfrs-recsys`` command: generate-data and inspect-data, errors on one line
with exit status 2, and no half-written output."""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import sys
import warnings

import pandas as pd
import pytest

from tfrs_recsys import cli, tensorflow_logs
from tfrs_recsys.data import techproducts
from tfrs_recsys.data.techproducts import (
    INTERACTIONS_DIR,
    ITEMS_FILE,
    MANIFEST_FILE,
    MATRIX_FILE,
    TRUTH_FILE,
    USERS_FILE,
)

GENERATED_FILES = {USERS_FILE, ITEMS_FILE, MATRIX_FILE, TRUTH_FILE, MANIFEST_FILE}


@pytest.fixture(autouse=True)
def _quiet_tensorflow(monkeypatch):
    # main() sets TF_CPP_MIN_LOG_LEVEL if unset; keep the process environment as it was.
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")


def _stderr_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def _matrix_positives(directory) -> int:
    """Positives counted straight from the matrix file with pandas."""
    return int(pd.read_csv(directory / MATRIX_FILE, index_col="user_id").to_numpy().sum())


def _siblings(path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir() if p.name != path.name)


# --- Entry point ----------------------------------------------------------------------------


def test_module_help_exits_0(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "tfrs_recsys", "--help"],
        capture_output=True,
        check=False,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "generate-data" in result.stdout and "inspect-data" in result.stdout


# --- TensorFlow's log noise -------------------------------------------------------------------------

NATIVE_NOISE = [
    b"2026-12-01 23:29:25.959692: E external/local_xla/xla/stream_executor/cuda/cuda_platform.cc:51] "
    b"failed call to cuInit: INTERNAL: CUDA error\n",
    b"2026-12-01 23:29:14.258076: I tensorflow/core/platform/cpu_feature_guard.cc:210] This binary\n",
    b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n",
    b"W0000 00:00:1796169932.468428   27339 loop_optimizer.cc:934] Skipping loop optimization\n",
    b"I0000 00:00:1796169932.468428   27339 some_file.cc:1] info\n",
]
KEPT = [
    b"F0000 00:00:1796169932.468428   27339 check.cc:1] Check failed: fatal\n",
    b"tfrs-recsys: error: something the user must see\n",
    b"W0000 looks like a log line but is not one\n",
]


def test_native_noise_is_recognised_and_fatal_lines_are_not():
    assert all(tensorflow_logs.is_native_noise(line) for line in NATIVE_NOISE)
    assert not any(tensorflow_logs.is_native_noise(line) for line in KEPT)


def test_commands_run_with_native_log_lines_dropped_from_stderr(monkeypatch, capfd):
    def noisy(args):
        for line in NATIVE_NOISE + KEPT:
            os.write(2, line)
        return 0

    monkeypatch.setitem(cli.COMMANDS, "fetch-data", noisy)
    assert cli.main(["fetch-data", "x"]) == 0
    assert capfd.readouterr().err.encode() == b"".join(KEPT)


def test_verbose_keeps_native_log_lines(monkeypatch, capfd):
    monkeypatch.setitem(cli.COMMANDS, "fetch-data", lambda args: os.write(2, NATIVE_NOISE[3]) and 0)
    assert cli.main(["-v", "fetch-data", "x"]) == 0
    assert capfd.readouterr().err.encode() == NATIVE_NOISE[3]
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"


def test_quiet_sets_the_native_level_before_tensorflow_loads(monkeypatch):
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL")
    monkeypatch.setattr(logging.getLogger("tensorflow"), "level", logging.NOTSET)
    tensorflow_logs.quiet_tensorflow(verbose=False)
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "3"
    assert logging.getLogger("tensorflow").level == logging.ERROR


# --- generate-data ----------------------------------------------------------------------------


def test_generate_writes_the_dataset_and_prints_a_summary(tmp_path, capsys):
    out = tmp_path / "ds"
    code = cli.main(
        ["generate-data", "--out", str(out), "--users", "50", "--items", "20", "--seed", "3"]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert {p.name for p in out.iterdir()} == GENERATED_FILES
    assert pd.read_csv(out / USERS_FILE).shape == (50, 4)
    assert pd.read_csv(out / ITEMS_FILE).shape == (20, 5)
    lines = {
        line.split(":", 1)[0].strip(): line.split(":", 1)[1].strip()
        for line in captured.out.splitlines()
    }
    assert lines["users"] == "50" and lines["items"] == "20"
    assert lines["layout"] == "wide"
    assert int(lines["positives"]) == _matrix_positives(out)
    assert captured.err == ""


def test_generate_json_summary(tmp_path, capsys):
    out = tmp_path / "ds"
    code = cli.main(
        ["generate-data", "--out", str(out), "--users", "50", "--items", "20", "--json"]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    summary = json.loads(captured.out)
    assert summary["users"] == 50 and summary["items"] == 20
    assert summary["positives"] == _matrix_positives(out)
    assert summary["density"] == pytest.approx(summary["positives"] / (50 * 20))


def test_generate_long_layout(tmp_path, capsys):
    out = tmp_path / "ds"
    code = cli.main(
        [
            "generate-data",
            "--out",
            str(out),
            "--users",
            "50",
            "--items",
            "20",
            "--layout",
            "long",
            "--shard-format",
            "csv",
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert not (out / MATRIX_FILE).exists()
    assert [p.name for p in (out / INTERACTIONS_DIR).iterdir()] == ["part-00000.csv"]


def test_generate_into_non_empty_dir_without_force_fails_and_keeps_it(tmp_path, capsys):
    out = tmp_path / "ds"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    code = cli.main(["generate-data", "--out", str(out), "--users", "50", "--items", "20"])
    captured = capsys.readouterr()
    assert code == 2
    lines = _stderr_lines(captured.err)
    assert len(lines) == 1 and lines[0].startswith("tfrs-recsys: error:"), captured.err
    assert "--force" in lines[0]
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert (out / "keep.txt").read_text() == "precious"
    assert _siblings(out) == []


def test_generate_with_force_replaces_the_dir(tmp_path, capsys):
    out = tmp_path / "ds"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    code = cli.main(
        ["generate-data", "--out", str(out), "--users", "50", "--items", "20", "--force"]
    )
    assert code == 0, capsys.readouterr().err
    assert {p.name for p in out.iterdir()} == GENERATED_FILES
    assert _siblings(out) == []  # no backup or staging directory left behind


def test_generate_into_an_existing_file_fails(tmp_path, capsys):
    out = tmp_path / "ds"
    out.write_text("a file")
    code = cli.main(
        ["generate-data", "--out", str(out), "--users", "50", "--items", "20", "--force"]
    )
    lines = _stderr_lines(capsys.readouterr().err)
    assert code == 2 and len(lines) == 1 and "not a directory" in lines[0]
    assert out.read_text() == "a file"


@pytest.mark.parametrize(
    "argv",
    [
        ["generate-data", "--out", "OUT", "--users", "-3"],
        ["generate-data", "--out", "OUT", "--users", "abc"],
        ["generate-data", "--out", "OUT", "--items", "0"],
        ["generate-data", "--out", "OUT", "--layout", "bogus"],
        ["generate-data", "--users", "50"],
        ["generate-data", "--out", "OUT", "--no-such-flag"],
        [],
    ],
    ids=[
        "negative-users",
        "text-users",
        "zero-items",
        "bad-layout",
        "missing-out",
        "unknown-flag",
        "no-command",
    ],
)
def test_bad_flags_exit_2_with_one_line(tmp_path, capsys, argv):
    out = tmp_path / "ds"
    argv = [str(out) if a == "OUT" else a for a in argv]
    with pytest.raises(SystemExit) as excinfo:
        cli.main(argv)
    captured = capsys.readouterr()
    assert excinfo.value.code == 2
    lines = _stderr_lines(captured.err)
    assert len(lines) == 1, captured.err
    assert "error:" in lines[0]
    assert not out.exists()


def test_too_few_users_is_a_one_line_error(tmp_path, capsys):
    """--users 3 passes argparse but the generator needs one user per personality (5)."""
    out = tmp_path / "ds"
    code = cli.main(["generate-data", "--out", str(out), "--users", "3", "--items", "20"])
    lines = _stderr_lines(capsys.readouterr().err)
    assert code == 2
    assert len(lines) == 1 and lines[0].startswith("tfrs-recsys: error:") and "users" in lines[0]
    assert not out.exists()


def test_interrupted_generation_leaves_nothing(tmp_path, capsys, monkeypatch):
    """A Ctrl-C while the matrix is half written: exit 130, no target, no staging dir."""
    real_writer = techproducts._write_wide_matrix

    def interrupted(path, data, chunk):
        real_writer(path, data, chunk)  # the file exists, as if the kill came late
        raise KeyboardInterrupt

    monkeypatch.setattr(techproducts, "_write_wide_matrix", interrupted)
    out = tmp_path / "ds"
    code = cli.main(["generate-data", "--out", str(out), "--users", "50", "--items", "20"])
    assert code == 130
    assert "interrupted" in capsys.readouterr().err
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # no .ds.tmp-* sibling either


def test_failed_forced_generation_keeps_the_old_dir(tmp_path, capsys, monkeypatch):
    def failing(path, data, chunk):
        path.write_text("user_id,item_0001\n")
        raise RuntimeError("disk full")

    monkeypatch.setattr(techproducts, "_write_wide_matrix", failing)
    out = tmp_path / "ds"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    with pytest.raises(RuntimeError, match="disk full"):
        cli.main(["generate-data", "--out", str(out), "--users", "50", "--items", "20", "--force"])
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert (out / "keep.txt").read_text() == "precious"
    assert _siblings(out) == []


# --- inspect-data --------------------------------------------------------------------------------


def test_inspect_json(small_dir, small_dataset, capsys):
    code = cli.main(["inspect-data", str(small_dir), "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    summary = json.loads(captured.out)
    n = _matrix_positives(small_dir)
    assert summary["users"] == 500 and summary["items"] == 120
    assert summary["positives"] == n
    assert summary["holdout-80-20 holdout"] == math.ceil(0.2 * n)
    assert summary["holdout-80-20 train"] == n - math.ceil(0.2 * n)
    assert summary["users_per_personality"] == {
        "Tech Enthusiast": 100,
        "Budget Conscious": 100,
        "Creative Explorer": 100,
        "Practical Buyer": 100,
        "Performance Seeker": 100,
    }


def test_inspect_text_summary(make_tech_dir, capsys):
    """The tiny directory: 3 users, 3 items, 4 positives, density 4/9 = 44.4444 %."""
    code = cli.main(["inspect-data", str(make_tech_dir())])
    out = capsys.readouterr().out
    assert code == 0
    fields = {
        line.split(":", 1)[0].strip(): line.split(":", 1)[1].strip() for line in out.splitlines()
    }
    assert fields["users"] == "3" and fields["items"] == "3" and fields["positives"] == "4"
    assert fields["density"] == "44.4444%"


def test_inspect_broken_dataset_is_one_line_naming_file_line_column(
    make_tech_dir, tiny_tables, capsys
):
    users = tiny_tables["users"].replace("bud_0001,25,", "bud_0001,-25,")
    code = cli.main(["inspect-data", str(make_tech_dir(users=users))])
    captured = capsys.readouterr()
    assert code == 2
    lines = _stderr_lines(captured.err)
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("tfrs-recsys: error:")
    assert USERS_FILE in lines[0] and "line 3" in lines[0] and "'age'" in lines[0]
    assert captured.out == ""


def test_inspect_missing_directory(tmp_path, capsys):
    code = cli.main(["inspect-data", str(tmp_path / "nowhere")])
    lines = _stderr_lines(capsys.readouterr().err)
    assert code == 2
    assert len(lines) == 1 and "nowhere" in lines[0]


def test_demo_trains_evaluates_and_recommends_on_small_data(small_dir, tmp_path, capsys):
    """The main job on the small generated data with a 1-epoch config."""
    config = tmp_path / "tiny.toml"
    config.write_text(
        'name = "tiny"\n[model]\nfeature_set = "all"\nhidden = []\noutput_dim = 8\n'
        "id_dim = 8\ncategorical_dim = 4\ntext_dim = 4\n[train]\nepochs = 1\n",
        encoding="utf-8",
    )
    run_dir = tmp_path / "run"
    export = tmp_path / "exported" / "tiny"
    code = cli.main(
        [
            "demo",
            "--data",
            str(small_dir),
            "--config",
            str(config),
            "--run-dir",
            str(run_dir),
            "--export",
            str(export),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    table_rows = [line.split("|")[1].strip() for line in out.splitlines() if line.startswith("| ")]
    assert {"popularity", "retrieval_all", "oracle"} <= set(table_rows)
    # Three users for each of the five personalities, each with recommendations.
    assert out.count("\n== ") == 5
    assert (run_dir / "metrics.json").is_file()
    # The trained model is exported as TF Serving version 1.
    assert (export / "1" / "saved_model.pb").is_file()
    assert (export.parent / "models.config").is_file()
    assert f"Exported version 1 to {export / '1'}" in out
    # The last line says where the time went, phase by phase, in order.
    time_line = out.strip().splitlines()[-1]
    assert time_line.startswith("time: data ")
    order = [time_line.index(f"{name} ") for name in
             ("data", "training", "baselines", "recommendations", "export")]  # fmt: skip
    assert order == sorted(order)
    assert "early stopping " in time_line and " over 1 epochs" in time_line


# --- Hostile arguments: one line each ------------------------------------------------------------


def test_generate_removes_a_killed_runs_staging_and_keeps_a_live_ones(tmp_path, capsys):
    """Re-running a killed generate-data is the recovery: the dead process's staging goes."""
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)  # fmt: skip
    dead_pid = int(finished.stdout)
    dead = tmp_path / f".ds.tmp-{dead_pid}-0123456789ab"
    live = tmp_path / f".ds.tmp-{os.getpid()}-ba9876543210"
    for staging in (dead, live):
        staging.mkdir()
        (staging / USERS_FILE).write_text("user_id,age\ntec_0001,3")  # half written
    out = tmp_path / "ds"
    assert cli.main(["generate-data", "--out", str(out), "--users", "50", "--items", "20"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["ds", live.name])
    assert {p.name for p in out.iterdir()} == GENERATED_FILES


@pytest.mark.parametrize("seed", ["18446744073709551616", "99999999999999999999999"])
def test_generate_with_a_seed_beyond_64_bits_is_one_line(tmp_path, capsys, seed):
    out = tmp_path / "ds"
    code = cli.main(["generate-data", "--out", str(out), "--users", "50", "--seed", seed])
    lines = _stderr_lines(capsys.readouterr().err)
    assert code == 2
    assert lines == [
        f"tfrs-recsys: error: seed must be a whole number in [0, 18446744073709551615] "
        f"(a 64-bit key), got {seed}"
    ]
    assert list(tmp_path.iterdir()) == []


def test_generate_with_a_seed_of_2_to_the_63_runs_without_warnings(tmp_path, capsys):
    out = tmp_path / "ds"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        code = cli.main(
            ["generate-data", "--out", str(out), "--users", "50", "--items", "20",
             "--seed", str(2**63)]
        )  # fmt: skip
    assert code == 0 and capsys.readouterr().err == ""
    assert json.loads((out / MANIFEST_FILE).read_text())["generator"]["seed"] == 2**63


def test_generate_a_billion_users_says_the_memory_it_needs(tmp_path, capsys, monkeypatch):
    from tfrs_recsys.data import generator

    monkeypatch.setattr(generator, "physical_memory", lambda: 8 * 2**30)
    out = tmp_path / "ds"
    code = cli.main(["generate-data", "--out", str(out), "--users", "1000000000"])
    lines = _stderr_lines(capsys.readouterr().err)
    assert code == 2 and len(lines) == 1
    assert "1,000,000,000 users x 1,000 items need about" in lines[0]
    assert "this machine has 8.0 GiB; try --users" in lines[0]
    assert list(tmp_path.iterdir()) == []


def test_train_into_a_run_dir_that_is_a_file_is_one_line(tmp_path, capsys):
    path = tmp_path / "notes.txt"
    path.write_text("keep")
    for extra in ([], ["--resume"]):
        code = cli.main(["train", "--run-dir", str(path), *extra])
        lines = _stderr_lines(capsys.readouterr().err)
        assert code == 2
        assert lines == [
            f"tfrs-recsys: error: --run-dir {path}: exists and is not a directory; "
            "name a new run directory"
        ]
    assert path.read_text() == "keep"


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda p: p.mkdir(), "is a directory"),
        (lambda p: p.write_bytes(b"\x00\xff\xfe binary"), "not a UTF-8 text file"),
    ],
)
def test_train_with_a_config_that_is_not_a_toml_file_is_one_line(tmp_path, capsys, make, words):
    config = tmp_path / "config.toml"
    make(config)
    code = cli.main(["train", "--config", str(config), "--run-dir", str(tmp_path / "r")])
    lines = _stderr_lines(capsys.readouterr().err)
    assert code == 2
    assert len(lines) == 1 and lines[0].startswith(f"tfrs-recsys: error: {config}: {words}")
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("train.seed=-1", "train.seed"),
        ("train.seed=99999999999", "train.seed"),
        ("data.validation_seed=-5", "data.validation_seed"),
        ("train.learning_rate=nan", "train.learning_rate"),
        ("train.learning_rate=inf", "train.learning_rate"),
    ],
)
def test_train_with_a_value_tensorflow_would_reject_is_one_line(tmp_path, capsys, override, key):
    code = cli.main(["train", "--set", override, "--run-dir", str(tmp_path / "r")])
    lines = _stderr_lines(capsys.readouterr().err)
    assert code == 2
    assert len(lines) == 1 and lines[0].startswith(f"tfrs-recsys: error: {key} must be")
    assert not (tmp_path / "r").exists()


def test_generate_into_a_path_below_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    out = tmp_path / "file" / "ds"
    code = cli.main(["generate-data", "--out", str(out), "--users", "50", "--items", "20"])
    lines = _stderr_lines(capsys.readouterr().err)
    assert code == 2 and len(lines) == 1
    assert lines[0].startswith(f"tfrs-recsys: error: {tmp_path / 'file'}: is a file")


def test_generate_into_a_too_long_path_is_one_line(tmp_path, capsys):
    out = tmp_path / ("x" * 300)
    code = cli.main(["generate-data", "--out", str(out), "--users", "50", "--items", "20"])
    lines = _stderr_lines(capsys.readouterr().err)
    assert code == 2 and len(lines) == 1
    assert "file name too long (ENAMETOOLONG)" in lines[0]
    assert list(tmp_path.iterdir()) == []
