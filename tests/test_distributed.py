"""``train.strategy``: tf.distribute training in real processes on 127.0.0.1.

- ``multi_worker``: two worker processes (``tfrs-recsys train --local-workers 2``,
  ``TF_CONFIG``, ``MultiWorkerMirroredStrategy`` on CPU) train the tiny model with the
  global batch of a one-process run; the holdout figures agree to 0.02, the run
  directory is a one-process run's (only the chief writes it), and the weights it
  keeps reproduce the validation figure the replicas measured;
- a worker SIGKILLed mid-training: the local cluster stops the other one and starts
  both again with ``--resume``; the result equals the uninterrupted two-worker run;
- checkpoints move between worker counts: a one-process run stopped after epoch 3 is
  continued by two workers, whose cluster is SIGKILLed after epoch 6, and finished
  by one process; its holdout figures are the uninterrupted one-process run's to 0.02;
- ``parameter_server``: a chief, two workers and two parameter servers (ports chosen
  free at run time) train with the id embeddings split in two shards, a worker
  SIGKILLed after epoch 2 and started again while the chief goes on; the plain
  model read from the checkpoint reproduces the chief's validation figure, and its
  SavedModel, loaded in a clean process, answers as the one-process model does.

Every process a test starts is in a process group of its own that the test kills
(``finally``) within a bounded time. Marked slow: about 2-3 minutes on 2 cores, most
of it TensorFlow's start-up in the cluster processes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from model_fixtures import tiny_experiment

from tfrs_recsys.config import ConfigError, ExperimentConfig, config_matches, load_config
from tfrs_recsys.training import run
from tfrs_recsys.training.distributed import Role, role_from_env, scratch_path
from tfrs_recsys.training.local_cluster import local_tf_config, logs_path
from tfrs_recsys.training.run import evaluate, load_run, train

pytestmark = pytest.mark.slow

EPOCHS = 12
#: Seconds any cluster of a test may run before the test stops it and fails.
CLUSTER_TIMEOUT_S = 480  # the suite runs in two processes: a cluster shares the cores with a test
TF_ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


# --- Config, TF_CONFIG, batch shares (no processes) ---------------------------------------------


def test_the_strategy_key_is_checked_and_limited_to_retrieval():
    assert load_config(None).train.strategy == "default"
    with pytest.raises(ConfigError, match="train.strategy must be one of default, mirrored"):
        load_config(None, ["train.strategy=horovod"])
    with pytest.raises(ConfigError, match="retrieval models only"):
        load_config(None, ["train.strategy=multi_worker", "model.kind=ranking"])
    with pytest.raises(ConfigError, match="train.refit or train.ensemble"):
        load_config(None, ["train.strategy=parameter_server", "train.refit=true"])
    with pytest.raises(ConfigError, match="train.shard_min_bytes must be"):
        load_config(None, ["train.shard_min_bytes=0"])


def test_a_recorded_run_matches_under_another_strategy_only_when_asked():
    config = load_config(None)
    recorded = config.to_toml()
    moved = load_config(None, ["train.strategy=multi_worker"])
    assert not config_matches(recorded, moved)
    assert config_matches(recorded, moved, any_placement=True)
    other = load_config(None, ["train.strategy=multi_worker", "train.epochs=3"])
    assert not config_matches(recorded, other, any_placement=True)


def test_tf_config_gives_the_role_and_the_chief():
    def role(cluster, task_type, index):
        spec = {"cluster": cluster, "task": {"type": task_type, "index": index}}
        return role_from_env({"TF_CONFIG": json.dumps(spec)})

    workers = {"worker": ["a:1", "b:2"]}
    assert role_from_env({}) == Role() and Role().is_chief
    assert role(workers, "worker", 0).is_chief and not role(workers, "worker", 1).is_chief
    ps = {"chief": ["c:1"], "worker": ["a:1", "b:2"], "ps": ["p:1"]}
    chief = role(ps, "chief", 0)
    assert chief.is_chief and (chief.workers, chief.ps) == (2, 1)
    assert not role(ps, "worker", 0).is_chief
    with pytest.raises(ConfigError, match="task worker 2 is not in the cluster"):
        role(workers, "worker", 2)
    with pytest.raises(ConfigError, match="TF_CONFIG is not a cluster description"):
        role_from_env({"TF_CONFIG": "{not json"})


def test_local_clusters_get_distinct_free_ports_and_refuse_a_one_process_strategy():
    cluster = local_tf_config("parameter_server", 2, 2)
    addresses = [a for tasks in cluster.values() for a in tasks]
    assert [len(cluster[k]) for k in ("chief", "worker", "ps")] == [1, 2, 2]
    assert len(set(addresses)) == 5 and all(a.startswith("127.0.0.1:") for a in addresses)
    with pytest.raises(ConfigError, match="train.strategy = 'multi_worker' or 'parameter_server'"):
        local_tf_config("default", 2, 0)
    with pytest.raises(ConfigError, match="--local-ps >= 1"):
        local_tf_config("parameter_server", 2, 0)


def test_local_workers_need_a_multi_process_strategy(tmp_path, capsys):
    from tfrs_recsys.cli import main

    run_dir = tmp_path / "run"
    assert main(["train", "--run-dir", str(run_dir), "--local-workers", "2"]) == 2
    assert "needs train.strategy = 'multi_worker' or 'parameter_server'" in capsys.readouterr().err
    assert main(["train", "--run-dir", str(run_dir), "--local-ps", "1"]) == 2
    assert "--local-ps goes with --local-workers" in capsys.readouterr().err
    assert not run_dir.exists()


def test_a_global_batch_must_split_evenly_and_make_a_step():
    from tfrs_recsys.training.distributed import Distribution

    two = Distribution("multi_worker", None, Role("worker", 0, 2), replicas=2, input_pipelines=2)
    assert two.steps_per_epoch(1000, 256) == 3  # the last partial global batch dropped
    with pytest.raises(ConfigError, match="batch_size = 255 does not split across 2 replicas"):
        two.steps_per_epoch(1000, 255)
    with pytest.raises(ConfigError, match="make no full step"):
        two.steps_per_epoch(100, 256)
    ps = Distribution("parameter_server", None, Role("chief", 0, 2, 1, True), 1, 2)
    assert ps.steps_per_epoch(1000, 128) == 6  # whole groups of 2 x 128 rows


def test_the_replicas_shares_are_the_global_batch(small_dir):
    """Each replica's batches are every N-th row of the one-process batches, all rows once."""
    from tfrs_recsys.models.factory import training_dataset

    config = tiny_experiment(small_dir, train={"batch_size": 64})
    data = run.prepare_data(config)
    model = _model(config, data)
    whole = [
        b["user_id"].numpy()
        for b in training_dataset(model, data.dataset, data.fit.train, config, drop_remainder=True)
    ]
    shares = [
        [
            b["user_id"].numpy()
            for b in training_dataset(
                model, data.dataset, data.fit.train, config, drop_remainder=True, replica=(i, 2)
            )
        ]
        for i in range(2)
    ]
    assert len(whole) == len(data.fit.train) // 64 == len(shares[0]) == len(shares[1])
    for step, batch in enumerate(whole):
        assert len(shares[0][step]) == len(shares[1][step]) == 32
        np.testing.assert_array_equal(
            np.sort(np.concatenate([s[step] for s in shares])), np.sort(batch)
        )
        np.testing.assert_array_equal(shares[1][step], batch[1::2])


def _model(config: ExperimentConfig, data):
    from tfrs_recsys.features.preprocessing import fit_preprocessing
    from tfrs_recsys.models.factory import build_model

    return build_model(
        config.model, fit_preprocessing(data.dataset, data.fit.train, config.model), data.dataset
    )


# --- Processes ----------------------------------------------------------------------------------


@dataclasses.dataclass
class Cluster:
    """A ``tfrs-recsys train --local-workers`` process (the local cluster's launcher)."""

    process: subprocess.Popen
    log: Path

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def pid_of(self, task: str, *, timeout_s: float = 60) -> int:
        """The pid the launcher printed for ``task`` (``"worker 1"``), last start."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            lines = [
                line
                for line in self.text().splitlines()
                if line.startswith(f"local cluster: {task} pid ")
            ]
            if lines:
                return int(lines[-1].rsplit(" ", 1)[1])
            time.sleep(0.05)
        raise AssertionError(f"no pid for {task}:\n{self.text()[-3000:]}")

    def wait(self, timeout_s: float = CLUSTER_TIMEOUT_S) -> int:
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the cluster ran past {timeout_s} s:\n{self.text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILLs the launcher's process group (the launcher and every task it started)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(30)


@contextlib.contextmanager
def cluster(args: list[str], log: Path, env: dict[str, str] | None = None):
    """Starts ``tfrs-recsys train ARGS`` in a process group of its own; kills the group at the end."""
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "tfrs_recsys", "train", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**TF_ENV, **(env or {})},
            start_new_session=True,
        )
    started = Cluster(process, log)
    try:
        yield started
    finally:
        started.kill()


def _wait_for(path: Path, started: Cluster, timeout_s: float = CLUSTER_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if started.process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{path} never appeared:\n{started.text()[-3000:]}")
        time.sleep(0.05)


def _holdout(run_dir: Path) -> dict[str, float]:
    return json.loads((run_dir / "metrics.json").read_text())["holdout"]["metrics"]


def _history_epochs(run_dir: Path) -> list[int]:
    lines = (run_dir / "history.csv").read_text(encoding="utf-8").splitlines()[1:]
    return [int(line.split(",", 1)[0]) for line in lines]


@pytest.fixture(scope="module")
def setup(small_dir, tmp_path_factory):
    """The tiny config with a global batch that divides the fit split (no partial batch),
    its one-process run, and its two-worker run."""
    root = tmp_path_factory.mktemp("distributed")
    probe = tiny_experiment(small_dir, train={"epochs": EPOCHS})
    rows = len(run.prepare_data(probe).fit.train)
    batch = next((b for b in range(600, 199, -2) if rows % b == 0), None)
    assert batch is not None, f"no even batch size in [200, 600] divides the {rows} fit rows"
    one = tiny_experiment(small_dir, train={"epochs": EPOCHS, "batch_size": batch})
    multi = dataclasses.replace(one, train=dataclasses.replace(one.train, strategy="multi_worker"))
    config_file = root / "multi.toml"
    config_file.write_text(multi.to_toml(), encoding="utf-8")
    single = train(one, root / "one", verbose=0)
    two = root / "two"
    with cluster(
        ["--config", str(config_file), "--run-dir", str(two), "--local-workers", "2"],
        root / "two.log",
    ) as started:
        code = started.wait()
    assert code == 0, started.text()[-3000:]
    return {
        "root": root,
        "one": one,
        "multi": multi,
        "config_file": config_file,
        "single": single,
        "two": two,
    }


def test_two_workers_train_as_one_process_with_the_same_global_batch(setup):
    two, single = setup["two"], setup["single"]
    metrics = json.loads((two / "metrics.json").read_text())
    assert metrics["distributed"] == {
        "strategy": "multi_worker",
        "replicas": 2,
        "workers": 2,
        "parameter_servers": 0,
        "sharded_variables": {},
    }
    for key in ("recall@10", "ndcg@10", "recall@50"):
        assert (
            abs(metrics["holdout"]["metrics"][key] - single.metrics["holdout"]["metrics"][key])
            < 0.02
        ), key
    # The chief wrote a one-process run directory; the other worker left nothing.
    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in single.run_dir.iterdir())
    assert _history_epochs(two) == list(range(EPOCHS))
    assert not scratch_path(Role("worker", 1, 2), two).exists()
    # The run loads as a one-process run; its weights reproduce the replicas' validation figure.
    loaded = load_run(two)
    assert evaluate(loaded).metrics["recall@10"] == pytest.approx(
        metrics["holdout"]["metrics"]["recall@10"], abs=1e-9
    )
    validation = evaluate(loaded.model, loaded.data.dataset, loaded.data.fit).metrics["recall@10"]
    assert validation == pytest.approx(metrics["validation_recall@10"], abs=1e-6)


def test_mirrored_on_one_device_trains_as_the_default(setup, tmp_path):
    """``MirroredStrategy`` in this process (one CPU replica): the strategy's input and
    checkpoints, the one-process figures (Adam's step count differs by one after epoch 1)."""
    one = setup["one"]
    mirrored = dataclasses.replace(one, train=dataclasses.replace(one.train, strategy="mirrored"))
    metrics = train(mirrored, tmp_path / "mirrored", verbose=0).metrics
    assert metrics["distributed"]["strategy"] == "mirrored"
    assert metrics["distributed"]["replicas"] == 1
    single = setup["single"].metrics
    for key in ("recall@10", "ndcg@10"):
        assert abs(metrics["holdout"]["metrics"][key] - single["holdout"]["metrics"][key]) < 0.02
    first = [(tmp_path / "mirrored" / "history.csv"), (setup["single"].run_dir / "history.csv")]
    rows = [path.read_text().splitlines()[1].split(",") for path in first]
    header = first[0].read_text().splitlines()[0].split(",")
    column = header.index("val_recall@10")
    assert rows[0][column] == rows[1][column]  # epoch 1: the very same batches and steps


def test_a_killed_worker_is_recovered_from_the_last_checkpoint(setup):
    root = setup["root"]
    killed = root / "killed"
    args = [
        "--config",
        str(setup["config_file"]),
        "--run-dir",
        str(killed),
        "--local-workers",
        "2",
        "--restarts",
        "1",
    ]
    with cluster(args, root / "killed.log") as started:
        _wait_for(killed / "checkpoints" / "ckpt-2.index", started)
        os.kill(started.pid_of("worker 1"), signal.SIGKILL)
        code = started.wait()
        text = started.text()
    assert code == 0, text[-3000:]
    assert "worker 1 (exit -9) failed; restarting every process with --resume" in text
    assert _history_epochs(killed) == list(range(EPOCHS))
    assert _holdout(killed) == pytest.approx(_holdout(setup["two"]), abs=1e-6)
    assert not scratch_path(Role("worker", 1, 2), killed).exists()


def test_a_checkpoint_moves_from_one_process_to_two_workers_and_back(setup, monkeypatch):
    root, one = setup["root"], setup["one"]
    moved = root / "moved"
    original = run.ValidationCheckpoint.on_epoch_begin

    def on_epoch_begin(self, current, logs=None):
        if current == 3:
            raise KeyboardInterrupt
        original(self, current, logs)

    monkeypatch.setattr(run.ValidationCheckpoint, "on_epoch_begin", on_epoch_begin)
    with pytest.raises(KeyboardInterrupt):
        train(one, moved, verbose=0)
    monkeypatch.undo()

    args = [
        "--config",
        str(moved / "config.toml"),
        "--set",
        "train.strategy=multi_worker",
        "--run-dir",
        str(moved),
        "--resume",
        "--local-workers",
        "2",
        "--restarts",
        "0",
    ]
    try:
        with cluster(args, root / "moved.log") as started:
            _wait_for(moved / "checkpoints" / "ckpt-6.index", started)
            started.kill()  # the whole job dies
        assert load_config(moved / "config.toml").train.strategy == "multi_worker"
        finished = train(one, moved, resume=True, verbose=0)
    finally:  # what the SIGKILLed processes could not remove
        shutil.rmtree(scratch_path(Role("worker", 1, 2), moved), ignore_errors=True)
        shutil.rmtree(logs_path(moved), ignore_errors=True)
    assert finished.metrics["epochs_run"] == EPOCHS
    assert _history_epochs(moved) == list(range(EPOCHS))
    for key in ("recall@10", "ndcg@10"):
        expected = setup["single"].metrics["holdout"]["metrics"][key]
        assert abs(finished.metrics["holdout"]["metrics"][key] - expected) < 0.02, key


PROBE = r"""
import json, sys
import numpy as np
import tensorflow as tf
export, users_file, out_file = sys.argv[1:]
users = json.loads(open(users_file, encoding="utf-8").read())
model = tf.saved_model.load(export)
answer = model.signatures["serving_default"](user_id=tf.constant(users, tf.string))
ids = [[i.decode("utf-8") for i in row] for row in answer["item_ids"].numpy().tolist()]
open(out_file, "w", encoding="utf-8").write(json.dumps(ids))
"""


def test_a_parameter_server_cluster_trains_sharded_embeddings_that_serve_as_one_process(
    setup, small_dir
):
    """Also: worker 1 SIGKILLed after epoch 2; the coordinator goes on with worker 0,
    the local cluster starts worker 1 again, and the chief finishes every epoch."""
    from tfrs_recsys.serving.export import export_run
    from tfrs_recsys.serving.recommend import recommend

    root = setup["root"]
    config = tiny_experiment(
        small_dir,
        train={
            "epochs": 8,
            "batch_size": 128,
            "strategy": "parameter_server",
            "shard_min_bytes": 1024,
        },
    )
    config_file = root / "ps.toml"
    config_file.write_text(config.to_toml(), encoding="utf-8")
    ps_run = root / "ps"
    args = [
        "--config",
        str(config_file),
        "--run-dir",
        str(ps_run),
        "--local-workers",
        "2",
        "--local-ps",
        "2",
        "--restarts",
        "0",
    ]
    with cluster(args, root / "ps.log") as started:
        _wait_for(ps_run / "checkpoints" / "ckpt-2.index", started)
        os.kill(started.pid_of("worker 1"), signal.SIGKILL)
        code = started.wait()
        text = started.text()
    assert code == 0, text[-3000:]
    assert "local cluster: worker 1 exited (-9); starting it again" in text
    assert "restarting every process" not in text  # the chief never stopped
    assert _history_epochs(ps_run) == list(range(8))
    metrics = json.loads((ps_run / "metrics.json").read_text())
    distributed = metrics["distributed"]
    assert (distributed["strategy"], distributed["workers"], distributed["parameter_servers"]) == (
        "parameter_server",
        2,
        2,
    )
    embeddings = {
        k: v
        for k, v in distributed["sharded_variables"].items()
        if k.endswith("_id_embedding/embeddings")
    }
    assert embeddings == {
        "query_tower/user_features/user_id_embedding/embeddings": 2,
        "candidate_tower/item_features/item_id_embedding/embeddings": 2,
    }
    # The one-process model read from the sharded checkpoint is the chief's model.
    loaded = load_run(ps_run)
    validation = evaluate(loaded.model, loaded.data.dataset, loaded.data.fit).metrics["recall@10"]
    assert validation == pytest.approx(metrics["validation_recall@10"], abs=1e-6)
    single = train(
        dataclasses.replace(config, train=dataclasses.replace(config.train, strategy="default")),
        root / "ps-one",
        verbose=0,
    )
    assert (
        metrics["holdout"]["metrics"]["recall@10"]
        > 0.7 * single.metrics["holdout"]["metrics"]["recall@10"]
    )

    export = export_run(ps_run, root / "exported" / "ps", n=10, notice=lambda text: None)
    users = [str(u) for u in loaded.data.dataset.table("user").ids[:25]]
    users_file, out_file = root / "users.json", root / "answers.json"
    users_file.write_text(json.dumps(users), encoding="utf-8")
    probe = subprocess.run(
        [sys.executable, "-c", PROBE, str(export.path), str(users_file), str(out_file)],
        capture_output=True,
        text=True,
        env=TF_ENV,
        timeout=180,
        check=False,
    )
    assert probe.returncode == 0, probe.stderr[-3000:]
    served = json.loads(out_file.read_text(encoding="utf-8"))
    expected = recommend(
        loaded.model.scorer(), loaded.data.dataset, users, n=10, exclude=loaded.data.split.train
    )
    assert served == [[r["item_id"] for r in recs] for recs in expected]


def test_streamed_training_shards_the_train_files_across_two_workers(tmp_path, monkeypatch):
    """``data.stream``: each worker streams its share of the train part files.

    The chunk orders of a streamed epoch derive from the part files' paths (under
    pytest's temporary folder, new each session): 8 epochs put recall@10 at 0.41-0.44
    over sessions (4 epochs: 0.30-0.41), clear of popularity's 0.30.
    """
    from tfrs_recsys.data.declared import read_declaration
    from tfrs_recsys.data.generator_scale import ScaleConfig, write_scale_dataset
    from tfrs_recsys.data.stream_split import split_declared
    from tfrs_recsys.evaluation.protocol import EvaluationTask
    from tfrs_recsys.evaluation.protocol import evaluate as evaluate_scores
    from tfrs_recsys.training.streamed import SPLIT_SEED, split_cache_key, split_parts

    data, cache = tmp_path / "data", tmp_path / "cache"
    write_scale_dataset(
        data, ScaleConfig(users=600, items=80, positives_per_user=10, seed=3), shard_users=200
    )
    monkeypatch.setenv("TFRS_RECSYS_CACHE", str(cache))
    # The split and its carve, cached in parts of 1,000 rows: files for both workers.
    declaration = read_declaration(data)
    key = split_cache_key(declaration, "hash-80-20", seed=SPLIT_SEED, min_rating=4.0)
    split = split_declared(
        declaration,
        cache / "splits" / f"{declaration.name}-hash-80-20-{key}",
        "hash-80-20",
        seed=SPLIT_SEED,
        rows_per_part=1000,
    )
    carve = split_parts(
        split, split.directory / "validation-0.1-7", fraction=0.1, seed=7, rows_per_part=1000
    )
    assert len(carve.train_files) >= 4
    config = load_config(
        None,
        [
            f"data.source={json.dumps(str(data))}",
            "data.stream=true",
            'data.split="hash-80-20"',
            "data.shuffle_buffer=1000",
            "data.eval_users=250",
            'model.negatives="in_batch"',
            'model.feature_set="ids"',
            "model.output_dim=16",
            "model.id_dim=8",
            "train.epochs=8",
            "train.batch_size=128",
            "train.learning_rate=0.05",
            "train.patience=0",
            'train.strategy="multi_worker"',
        ],
    )
    config_file = tmp_path / "stream.toml"
    config_file.write_text(config.to_toml(), encoding="utf-8")
    run_dir = tmp_path / "run"
    args = ["--config", str(config_file), "--run-dir", str(run_dir), "--local-workers", "2"]
    with cluster(args, tmp_path / "stream.log", env={"TFRS_RECSYS_CACHE": str(cache)}) as started:
        code = started.wait()
        text = started.text()
    assert code == 0, text[-3000:]
    assert "splitting" not in text  # both workers read the cached parts
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["distributed"]["workers"] == 2 and metrics["epochs_run"] == 8
    assert _history_epochs(run_dir) == list(range(8))
    loaded = load_run(run_dir)
    result = evaluate(loaded)
    for key, value in metrics["holdout"]["metrics"].items():
        assert result.metrics[key] == pytest.approx(value, abs=1e-6), key
    # Better than popularity on the same sampled users.
    import pandas as pd

    train_rows = pd.concat([pd.read_parquet(f) for f in split.train_files])
    counts = (
        train_rows["item_id"]
        .value_counts()
        .reindex(loaded.data.dataset.table("item").ids, fill_value=0)
        .to_numpy(dtype=np.float32)
    )
    task = EvaluationTask.from_split(loaded.data.dataset, loaded.data.split)
    popularity = evaluate_scores(lambda rows: np.tile(counts, (len(rows), 1)), task)
    assert result.metrics["recall@10"] > popularity.metrics["recall@10"] + 0.02
