"""Training under a ``tf.distribute`` strategy (``train.strategy``; docs/distributed.md).

:func:`tfrs_recsys.training.run.train` hands a config whose ``train.strategy``
is not ``default`` to :func:`start_strategy` first thing, before any other
TensorFlow op of the process (``MultiWorkerMirroredStrategy`` configures the
collective ops of the process and cannot once TensorFlow has started):

- ``mirrored``: ``MirroredStrategy`` over the local devices (its GPUs; one
  replica on a CPU-only machine);
- ``multi_worker``: ``MultiWorkerMirroredStrategy``, one process per worker,
  the cluster and this process's task in ``TF_CONFIG``; one replica per worker
  on CPUs. Synchronous: each step's global batch (``train.batch_size``) is
  split across the replicas, every worker builds the same global batches and
  keeps its share (:func:`~tfrs_recsys.data.pipelines.replica_rows`), the
  gradients are summed. The chief (task ``chief``, else worker 0) writes the
  run directory; every other worker writes its checkpoints to a scratch
  directory of its own that is removed at the end, and reads the chief's on
  ``--resume``;
- ``parameter_server``: ``ParameterServerStrategy``. The chief is the
  coordinator and runs this module; ``worker`` and ``ps`` tasks start a
  ``tf.distribute.Server`` and serve until they are stopped
  (:func:`serve`). Variables are split across the parameter servers by a
  ``MinSizePartitioner`` (``train.shard_min_bytes``), the id embeddings first
  of all; workers run steps asynchronously, each on batches of
  ``train.batch_size`` rows of its own share of the data.

Only the chief evaluates and writes ``metrics.json``; the model it evaluates
(and that :func:`~tfrs_recsys.training.run.load_run` and export see) is a
plain one-process model built outside the strategy and read from the best
checkpoint, so evaluation, the seen-item mask and export are those of a
one-process run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import tensorflow as tf

from tfrs_recsys.config import ExperimentConfig
from tfrs_recsys.errors import ConfigError

__all__ = [
    "TF_CONFIG",
    "Distribution",
    "Role",
    "role_from_env",
    "scratch_directory",
    "scratch_path",
    "serve",
    "start_strategy",
]

logger = logging.getLogger(__name__)

TF_CONFIG = "TF_CONFIG"
#: Seconds a collective (an all-reduce of ``multi_worker``) waits for a peer
#: before it fails, so that a worker whose peer died stops instead of hanging.
COLLECTIVE_TIMEOUT_S = 120.0


@dataclasses.dataclass(frozen=True)
class Role:
    """This process's place in the cluster of ``TF_CONFIG``.

    Attributes:
        task_type: ``chief``, ``worker`` or ``ps`` (``""``: no ``TF_CONFIG``).
        task_index: The task's index within its type.
        workers: Tasks of type ``worker``.
        ps: Tasks of type ``ps``.
        has_chief: Whether the cluster has a ``chief`` task.
    """

    task_type: str = ""
    task_index: int = 0
    workers: int = 0
    ps: int = 0
    has_chief: bool = False

    @property
    def is_chief(self) -> bool:
        """The task that writes the run: ``chief``, else worker 0, or a process without a cluster."""
        if self.task_type in ("", "chief"):
            return True
        return self.task_type == "worker" and self.task_index == 0 and not self.has_chief


def role_from_env(environ: dict[str, str] | os._Environ | None = None) -> Role:
    """The :class:`Role` of ``TF_CONFIG`` (in ``environ``, default the process's).

    Raises:
        ConfigError: ``TF_CONFIG`` is not the JSON of a cluster and a task in it.
    """
    environ = os.environ if environ is None else environ
    text = environ.get(TF_CONFIG, "").strip()
    if not text:
        return Role()
    try:
        spec = json.loads(text)
        cluster, task = spec["cluster"], spec["task"]
        task_type, index = str(task["type"]), int(task["index"])
        tasks = {name: list(addresses) for name, addresses in cluster.items()}
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"{TF_CONFIG} is not a cluster description ({exc}); expected "
            '{"cluster": {"worker": ["host:port", ...], ...}, "task": {"type": "worker", "index": 0}}'
        ) from None
    if task_type not in tasks or not 0 <= index < len(tasks[task_type]):
        raise ConfigError(
            f"{TF_CONFIG}: task {task_type} {index} is not in the cluster "
            f"({', '.join(f'{k}: {len(v)}' for k, v in tasks.items())})"
        )
    return Role(
        task_type=task_type,
        task_index=index,
        workers=len(tasks.get("worker", [])),
        ps=len(tasks.get("ps", [])),
        has_chief="chief" in tasks,
    )


@dataclasses.dataclass
class Distribution:
    """A started strategy and what training needs to know of it.

    Attributes:
        name: ``train.strategy``.
        strategy: The ``tf.distribute.Strategy``.
        role: This process's task.
        replicas: Replicas of a synchronous step (``num_replicas_in_sync``; 1
            for ``parameter_server``).
        input_pipelines: Input pipelines that share the data (workers).
    """

    name: str
    strategy: tf.distribute.Strategy
    role: Role
    replicas: int
    input_pipelines: int

    @property
    def is_chief(self) -> bool:
        return self.role.is_chief

    def scope(self) -> contextlib.AbstractContextManager:
        return self.strategy.scope()

    def describe(self) -> dict[str, Any]:
        """What ``metrics.json`` records of the strategy."""
        return {
            "strategy": self.name,
            "replicas": self.replicas,
            "workers": self.input_pipelines,
            "parameter_servers": self.role.ps if self.name == "parameter_server" else 0,
        }

    def steps_per_epoch(self, examples: int, batch_size: int) -> int:
        """Steps of an epoch: every full global batch (``parameter_server``: every
        worker's full batch), the last partial one dropped so that every replica
        steps on ``batch_size / replicas`` rows.

        Raises:
            ConfigError: ``batch_size`` does not split evenly across the
                replicas, or an epoch has no full batch.
        """
        if batch_size % self.replicas:
            raise ConfigError(
                f"train.batch_size = {batch_size} does not split across {self.replicas} replicas; "
                f"use a multiple of {self.replicas} (it is the global batch of a step)"
            )
        group = batch_size * (self.input_pipelines if self.name == "parameter_server" else 1)
        steps = (examples // group) * (group // batch_size)
        if steps < 1:
            raise ConfigError(
                f"{examples} training examples make no full step of train.batch_size = "
                f"{batch_size} on {self.input_pipelines} worker(s); use a smaller batch"
            )
        return steps

    def fit_input(
        self,
        make_dataset: Callable[[int, tuple[int, int]], tf.data.Dataset],
        batch_size: int,
        steps: int,
    ) -> Callable[[int], tuple[Any, int]]:
        """``initial_epoch -> (DatasetCreator, steps)`` for ``Model.fit`` under the strategy.

        ``make_dataset(batch_size, (index, replicas))`` builds one replica's
        pipeline: every epoch's global batches of ``batch_size`` rows, the last
        partial one dropped, and keeps the ``index``-th share of each. Each
        input pipeline (worker) repeats it and skips the epochs a resumed run
        has done, so a resumed epoch sees the batches of the uninterrupted one.

        One more epoch is skipped at the start: a one-process ``Model.fit``
        iterates the pipeline twice before its first epoch (Keras makes an
        iterator, then a fresh one for the epoch), so its epoch ``e`` has the
        order of the pipeline's iteration ``e + 1``; skipping it gives a
        distributed run the very batches of the one-process run.
        """
        parameter_server = self.name == "parameter_server"
        workers = self.input_pipelines

        def make(initial_epoch: int) -> tuple[Any, int]:
            def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
                pipelines, index = context.num_input_pipelines, context.input_pipeline_id
                if parameter_server:  # each worker's step is a whole batch of its share
                    # Traced once for every worker: the worker's index is a tensor.
                    pipelines = workers
                    index = tf.distribute.coordinator.experimental_get_current_worker_index()
                    group = batch_size * pipelines
                    local = 1
                else:
                    group = batch_size
                    per_replica = context.get_per_replica_batch_size(batch_size)
                    local = batch_size // (per_replica * pipelines)  # replicas of this worker
                dataset = make_dataset(group, (index, pipelines))
                if local > 1:  # one element per local replica (several GPUs)
                    dataset = dataset.rebatch(per_replica)
                per_pipeline_steps = steps // pipelines if parameter_server else steps
                skipped = (initial_epoch + 1) * per_pipeline_steps * local
                return dataset.repeat().skip(skipped)

            creator = tf.keras.utils.experimental.DatasetCreator(dataset_fn)
            return creator, steps

        return make

    def streamed_fit_input(
        self,
        make_stream: Callable[[int, tuple[int | tf.Tensor, int], int], tf.data.Dataset],
        batch_size: int,
        steps: int,
        seed: int,
    ) -> Callable[[int], tuple[Any, int]]:
        """``initial_epoch -> (DatasetCreator, steps)`` for streamed training (``data.stream``).

        ``make_stream(worker_batch, (index, workers), seed)`` streams one
        worker's share of the train files (:func:`~tfrs_recsys.data.stream_pipeline.shard_files`)
        in batches of ``worker_batch`` rows (``batch_size / replicas`` for
        ``multi_worker``, ``batch_size`` for ``parameter_server``), the last
        partial batch dropped, repeated. The workers' shares differ in rows, so an
        epoch is ``steps`` steps, not one pass over each share. A resumed run
        does not read the epochs it has done again: it streams with the seed
        ``seed + initial_epoch`` (fresh orders, not those of an uninterrupted run).
        """
        parameter_server = self.name == "parameter_server"
        workers = self.input_pipelines

        def make(initial_epoch: int) -> tuple[Any, int]:
            def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
                if parameter_server:
                    index = tf.distribute.coordinator.experimental_get_current_worker_index()
                    share, worker_batch = (index, workers), batch_size
                else:
                    share = (context.input_pipeline_id, context.num_input_pipelines)
                    worker_batch = context.get_per_replica_batch_size(batch_size)
                return make_stream(worker_batch, share, seed + initial_epoch).repeat()

            return tf.keras.utils.experimental.DatasetCreator(dataset_fn), steps

        return make


def start_strategy(config: ExperimentConfig) -> Distribution:
    """Creates ``config.train.strategy``'s strategy; call it before any other TensorFlow op.

    A ``worker`` or ``ps`` task of ``parameter_server`` does not return: it
    serves (:func:`serve`) until it is stopped.

    Raises:
        ConfigError: ``TF_CONFIG`` is missing or wrong for the strategy.
    """
    name = config.train.strategy
    role = role_from_env()
    if name == "mirrored":
        strategy = tf.distribute.MirroredStrategy()
        replicas = strategy.num_replicas_in_sync
        return Distribution(name, strategy, Role(), replicas, 1)
    if name == "multi_worker":
        if role.ps or role.has_chief:
            raise ConfigError(
                f"train.strategy = 'multi_worker': {TF_CONFIG} must list 'worker' tasks only "
                "(worker 0 is the chief); a 'chief' or 'ps' task is for 'parameter_server'"
            )
        options = tf.distribute.experimental.CommunicationOptions(
            timeout_seconds=COLLECTIVE_TIMEOUT_S
        )
        strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
        return Distribution(
            name, strategy, role, strategy.num_replicas_in_sync, max(role.workers, 1)
        )
    if name == "parameter_server":
        if not role.has_chief or role.workers < 1 or role.ps < 1:
            raise ConfigError(
                f"train.strategy = 'parameter_server' needs a {TF_CONFIG} with a 'chief', at "
                f"least one 'worker' and one 'ps' task, got "
                f"{os.environ.get(TF_CONFIG) or 'no ' + TF_CONFIG}"
            )
        resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
        if role.task_type in ("worker", "ps"):
            serve(resolver)
        partitioner = tf.distribute.experimental.partitioners.MinSizePartitioner(
            min_shard_bytes=config.train.shard_min_bytes, max_shards=role.ps
        )
        strategy = tf.distribute.ParameterServerStrategy(resolver, variable_partitioner=partitioner)
        return Distribution(name, strategy, role, 1, role.workers)
    raise ConfigError(f"train.strategy = {name!r} is not a tf.distribute strategy")


def serve(resolver: tf.distribute.cluster_resolver.ClusterResolver) -> None:
    """Runs this ``worker`` or ``ps`` task's server until the process is stopped."""
    os.environ.setdefault("GRPC_FAIL_FAST", "use_caller")
    server = tf.distribute.Server(
        resolver.cluster_spec(),
        job_name=resolver.task_type,
        task_index=resolver.task_id,
        protocol=resolver.rpc_layer or "grpc",
        start=True,
    )
    logger.info("%s %d serving", resolver.task_type, resolver.task_id)
    print(f"{resolver.task_type} {resolver.task_id}: serving", flush=True)
    server.join()
    raise SystemExit(0)  # pragma: no cover - join returns only when the server stops


def scratch_path(role: Role, run_dir: Path) -> Path:
    """Where a non-chief worker of ``run_dir`` keeps its checkpoints (see :func:`scratch_directory`)."""
    key = hashlib.sha256(str(Path(run_dir).resolve()).encode("utf-8")).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"tfrs-recsys-{key}-{role.task_type}{role.task_index}"


@contextlib.contextmanager
def scratch_directory(role: Role, run_dir: Path) -> Iterator[Path]:
    """A non-chief worker's own run directory in the system's temporary folder, removed afterwards.

    Its name is fixed by the run directory and the task, so a worker started
    again after a kill (which leaves its directory behind) replaces it.
    """
    scratch = scratch_path(role, run_dir)
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def sharded_variables(model: tf.keras.Model) -> dict[str, int]:
    """``{variable name: shards}`` of the model's variables split across parameter servers."""
    from tensorflow.python.distribute.sharded_variable import ShardedVariable

    found = model._flatten(
        predicate=lambda v: isinstance(v, ShardedVariable), expand_composites=False
    )
    return {
        variable.variables[0].name.rsplit("/part_", 1)[0]: len(variable.variables)
        for variable in found
    }
