"""Fault injection: SIGKILL a command at a point, run the documented recovery, compare.

Each test starts a real ``python -m tfrs_recsys`` subprocess on tiny data, waits until a
file shows that the command reached the point under test (its staging directory,
``config.toml``, the first checkpoint, ``refit/``, a finished model's result), waits a
further seeded random delay and kills it with SIGKILL. Then it runs the recovery that
docs/reliability.md documents for that command and checks that the result equals an
uninterrupted run's and that nothing is left behind:

- ``generate-data``: re-run the command; the files are byte-identical;
- ``train`` (killed before its first checkpoint, mid-epoch, during the refit):
  ``train --run-dir R --resume``; ``metrics.json``'s holdout metrics are identical;
- ``export``: re-run the command; the new version is complete and answers, no partial
  version was published;
- ``compare``: ``compare ... --resume``; the comparison figures are identical.

The delays come from ``random.Random(f"{TFRS_FAULT_SEED}-<test>")`` (``TFRS_FAULT_SEED``,
default 12), so a failure is reproducible; each assertion message names the delay.

Marked ``faults`` and left out of the default run (``pytest -m faults`` or ``make faults``
runs them): 13-23 minutes on a 2-core machine busy with other jobs (load 4-6), most of it
TensorFlow's start-up in ~20 subprocesses and the three uninterrupted reference runs.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tfrs_recsys.data.generator import GeneratorConfig, generate
from tfrs_recsys.data.techproducts import write_tech_products

pytestmark = pytest.mark.faults

REPO = Path(__file__).resolve().parents[1]
SEED = os.environ.get("TFRS_FAULT_SEED", "12")
TIMEOUT_S = 600
STAGING_MARKS = (".tmp-", ".old-", ".download-")
# Big enough that writing it takes a moment; the staging directory exists meanwhile.
GENERATE_ARGS = ["--users", "20000", "--items", "500", "--seed", "7"]
TINY_CONFIG = """\
name = "tiny"

[data]
source = "{data}"

[model]
kind = "retrieval"
feature_set = "subset"
text_encoder = "bow"
id_mode = "input"
loss = "catalog_sigmoid"
item_bias = true
temperature = 1.0
normalize = false
hidden = []
id_dim = 8
categorical_dim = 4
output_dim = 8
vector_l2 = 0.003

[train]
epochs = 2
batch_size = 16
learning_rate = 0.02
patience = 0
refit = true
"""
COMPARE_SETS = [
    "train.epochs=2",
    "train.patience=0",
    "train.batch_size=16",
    "model.id_dim=8",
    "model.output_dim=8",
]
COMPARE_KEYS = ("recall@10", "ndcg@10", "recall@50", "coverage@10")


# --- Running and killing the command line -------------------------------------------------------


def _env(cache: Path) -> dict[str, str]:
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TFRS_RECSYS_CACHE": str(cache)}


def cli(args: list, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Runs ``python -m tfrs_recsys ARGS`` to the end."""
    return subprocess.run(
        [sys.executable, "-m", "tfrs_recsys", *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )


def kill_at(
    args: list, cwd: Path, env: dict[str, str], reached: Callable[[], bool], delay: float
) -> str:
    """Starts the command, polls ``reached()``, waits ``delay`` s more and SIGKILLs it.

    Returns the command's stderr. Fails if the command ends before it is killed (the
    point under test was never interrupted).
    """
    # stderr goes to a file: a pipe nobody reads while polling could fill and stall the command.
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "tfrs_recsys", *map(str, args)],
            cwd=cwd,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
            text=True,
        )
        deadline = time.monotonic() + TIMEOUT_S
        while process.poll() is None and not reached():
            if time.monotonic() > deadline:
                process.kill()
                pytest.fail("the command never reached the point to kill at")
            time.sleep(0.02)
        if process.poll() is None:
            time.sleep(delay)
        finished = process.poll() is not None
        if not finished:
            process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
        log.seek(0)
        stderr = log.read()
    assert not finished, (
        f"the command finished (exit {process.returncode}) before the kill "
        f"(delay {delay:.2f} s): {stderr[-500:]}"
    )
    assert process.returncode == -signal.SIGKILL
    return stderr


def debris(root: Path) -> list[str]:
    """Staging or backup entries left anywhere under ``root``."""
    return sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if any(mark in p.name for mark in STAGING_MARKS)
    )


def delay_for(test: str, low: float, high: float) -> float:
    return random.Random(f"{SEED}-{test}").uniform(low, high)


def ok(result: subprocess.CompletedProcess[str], what: str) -> None:
    assert result.returncode == 0, f"{what} failed (exit {result.returncode}): {result.stderr}"


# --- Shared inputs: tiny data, a tiny config, uninterrupted reference runs -------------------------


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("faults")
    data = root / "tech"
    write_tech_products(
        generate(GeneratorConfig(users=300, items=60, seed=42)), data, layout="wide"
    )
    config = root / "tiny.toml"
    config.write_text(TINY_CONFIG.format(data=data), encoding="utf-8")
    return {"root": root, "data": data, "config": config, "env": _env(root / "cache")}


@pytest.fixture(scope="module")
def reference_run(world) -> Path:
    """An uninterrupted run of the tiny config (2 epochs + refit)."""
    run_dir = world["root"] / "reference-run"
    ok(
        cli(
            ["train", "--config", world["config"], "--run-dir", run_dir],
            world["root"],
            world["env"],
        ),
        "the uninterrupted train",
    )
    return run_dir


def _compare_args(world: dict, out: Path, *extra: str) -> list:
    sets = [part for item in COMPARE_SETS for part in ("--set", item)]
    return [
        "compare",
        "--data",
        world["data"],
        "--models",
        "popularity,retrieval_ids",
        "--out",
        out,
        *sets,
        *extra,
    ]


@pytest.fixture(scope="module")
def reference_comparison(world) -> Path:
    out = world["root"] / "reference-comparison"
    ok(cli(_compare_args(world, out), world["root"], world["env"]), "the uninterrupted compare")
    return out


def holdout(run_dir: Path) -> dict[str, float]:
    return json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))["holdout"]["metrics"]


# --- generate-data ----------------------------------------------------------------------------------


def test_killed_generate_data_rerun_gives_the_same_files(world, tmp_path):
    reference = tmp_path / "reference"
    ok(
        cli(["generate-data", "--out", reference, *GENERATE_ARGS], tmp_path, world["env"]),
        "the uninterrupted generate-data",
    )
    work = tmp_path / "killed"
    work.mkdir()
    out = work / "data"
    delay = delay_for("generate-data", 0.0, 0.8)
    kill_at(
        ["generate-data", "--out", out, *GENERATE_ARGS],
        work,
        world["env"],
        lambda: any(p.name.startswith(".data.tmp-") for p in work.iterdir()),
        delay,
    )
    assert not out.exists(), f"a killed generate-data published {out} (delay {delay:.2f} s)"

    ok(cli(["generate-data", "--out", out, *GENERATE_ARGS], work, world["env"]), "the re-run")
    files = sorted(p.relative_to(reference) for p in reference.rglob("*") if p.is_file())
    assert sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file()) == files
    for name in files:
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name
    assert debris(work) == [], f"delay {delay:.2f} s"


# --- train: killed at three points, then --resume ----------------------------------------------------


@pytest.mark.parametrize(
    ("point", "marker", "low", "high"),
    [
        # TensorFlow is imported before config.toml is written; the first epoch is seconds away.
        pytest.param(
            "before the first checkpoint", "config.toml", 0.0, 1.0, id="before-checkpoint"
        ),
        pytest.param(
            "mid-epoch, after the first checkpoint",
            "checkpoints/checkpoint",
            0.0,
            0.3,
            id="mid-epoch",
        ),
        pytest.param("during the refit", "refit", 0.0, 0.5, id="refit"),
    ],
)
def test_killed_train_resumes_to_the_uninterrupted_metrics(
    world, reference_run, tmp_path, point, marker, low, high
):
    run_dir = tmp_path / "run"
    delay = delay_for(f"train {point}", low, high)
    seen_at_kill: list[str] = []

    def reached() -> bool:
        if (run_dir / marker).exists():
            seen_at_kill.extend(sorted(p.name for p in run_dir.iterdir()))
            return True
        return False

    kill_at(
        ["train", "--config", world["config"], "--run-dir", run_dir],
        tmp_path,
        world["env"],
        reached,
        delay,
    )
    assert not (run_dir / "metrics.json").exists()
    if point == "before the first checkpoint":
        assert not (run_dir / "checkpoints" / "checkpoint").exists(), seen_at_kill

    resumed = cli(["train", "--run-dir", run_dir, "--resume"], tmp_path, world["env"])
    ok(resumed, f"train --resume after a kill {point} (+{delay:.2f} s)")
    assert holdout(run_dir) == holdout(reference_run), f"killed {point} (+{delay:.2f} s)"
    assert debris(tmp_path) == []


# --- export -----------------------------------------------------------------------------------------


def test_killed_export_rerun_publishes_one_complete_version(world, reference_run, tmp_path):
    import tfrs_recsys as tr

    out = tmp_path / "exported" / "tiny"
    args = ["export", "--run-dir", reference_run, "--out", out, "-n", "5"]
    delay = delay_for("export", 0.0, 2.0)
    kill_at(
        args,
        tmp_path,
        world["env"],
        lambda: out.is_dir() and any(".tmp-" in p.name for p in out.iterdir()),
        delay,
    )
    # The rename that publishes a version is atomic: a kill before it leaves no version,
    # a kill after it (while models.config is written) leaves a complete one.
    published = sorted(int(p.name) for p in out.iterdir() if p.name.isdigit())
    assert published in ([], [1]), published

    ok(cli(args, tmp_path, world["env"]), "the re-run of export")
    versions = sorted(int(p.name) for p in out.iterdir() if p.name.isdigit())
    assert versions == [*published, len(published) + 1], f"delay {delay:.2f} s"
    for version in versions:
        answer = tr.load_exported(out, version).recommend(["tec_0001"], k=3)[0]
        assert answer["known_user"] and len(answer["items"]) == 3, (version, delay)
    assert debris(tmp_path) == [], f"delay {delay:.2f} s"


# --- compare ----------------------------------------------------------------------------------------


def _figures(out: Path) -> dict[str, dict[str, float]]:
    models = json.loads((out / "comparison.json").read_text(encoding="utf-8"))["models"]
    return {name: {k: m[k] for k in COMPARE_KEYS} for name, m in models.items()}


@pytest.mark.parametrize(
    ("point", "marker", "low", "high"),
    [
        pytest.param(
            "after popularity's result", "models/popularity.json", 0.0, 1.0, id="peer-done"
        ),
        pytest.param(
            "mid-training of retrieval_ids",
            "runs/retrieval_ids/checkpoints/checkpoint",
            0.0,
            0.3,
            id="mid-training",
        ),
    ],
)
def test_killed_compare_resumes_to_the_same_figures(
    world, reference_comparison, tmp_path, point, marker, low, high
):
    out = tmp_path / "comparison"
    delay = delay_for(f"compare {point}", low, high)
    kill_at(
        _compare_args(world, out), tmp_path, world["env"], lambda: (out / marker).exists(), delay
    )
    # A model whose result was written before the kill is not trained again.
    finished = out / "models" / "popularity.json"
    kept = finished.read_bytes()  # its timings would differ if it ran again
    ok(
        cli(_compare_args(world, out, "--resume"), tmp_path, world["env"]),
        f"compare --resume after a kill {point} (+{delay:.2f} s)",
    )
    assert _figures(out) == _figures(reference_comparison), f"killed {point} (+{delay:.2f} s)"
    assert finished.read_bytes() == kept
    assert debris(tmp_path) == []
