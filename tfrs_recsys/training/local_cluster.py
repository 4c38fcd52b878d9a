"""A cluster of ``tfrs-recsys train`` processes on 127.0.0.1, for trying a strategy on one machine.

``tfrs-recsys train ... --local-workers N [--local-ps M]`` runs
:func:`run_local_cluster`: it picks free ports, starts one ``python -m
tfrs_recsys train`` process per task with its ``TF_CONFIG`` (as a cluster
manager such as a Kubernetes Job would, one process per worker), and watches
them:

- ``multi_worker``: N worker processes (worker 0 is the chief and prints to
  this terminal; the others' output goes to log files shown if they fail);
- ``parameter_server``: a chief (the coordinator, which trains), N ``worker``
  and M ``ps`` server processes; the servers are stopped when the chief ends.

Recovery (docs/distributed.md): when a training process dies (a worker of
``multi_worker``, the chief or a parameter server of ``parameter_server``),
every process is stopped and the cluster is started again with ``--resume``
(from the chief's last checkpoint), at most ``restarts`` times. A
``parameter_server`` worker that dies is started again alone, on its port:
the coordinator runs its steps on the other workers meanwhile.

Every process this module starts is stopped before it returns, or when this
process gets SIGTERM or Ctrl-C (SIGTERM, then SIGKILL after :data:`STOP_GRACE_S`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from tfrs_recsys.errors import ConfigError

__all__ = ["free_ports", "local_tf_config", "logs_path", "run_local_cluster"]

#: Seconds a stopped process gets between SIGTERM and SIGKILL.
STOP_GRACE_S = 10.0
POLL_S = 0.2
_LOG_TAIL_LINES = 30


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports free on 127.0.0.1 now (bound, then released)."""
    sockets, ports = [], []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
            ports.append(sock.getsockname()[1])
    finally:
        for sock in sockets:
            sock.close()
    return ports


def local_tf_config(strategy: str, workers: int, ps: int) -> dict[str, list[str]]:
    """The ``cluster`` of a localhost ``TF_CONFIG`` with free ports.

    Raises:
        ConfigError: The strategy is not a multi-process one, or the counts are wrong.
    """
    if strategy == "multi_worker":
        if workers < 1 or ps:
            raise ConfigError(
                f"train.strategy = 'multi_worker' runs --local-workers >= 1 and no --local-ps, "
                f"got {workers} and {ps}"
            )
        ports = free_ports(workers)
        return {"worker": [f"127.0.0.1:{p}" for p in ports]}
    if strategy == "parameter_server":
        if workers < 1 or ps < 1:
            raise ConfigError(
                f"train.strategy = 'parameter_server' needs --local-workers >= 1 and "
                f"--local-ps >= 1, got {workers} and {ps}"
            )
        ports = free_ports(1 + workers + ps)
        addresses = [f"127.0.0.1:{p}" for p in ports]
        return {
            "chief": addresses[:1],
            "worker": addresses[1 : 1 + workers],
            "ps": addresses[1 + workers :],
        }
    raise ConfigError(
        f"--local-workers starts a cluster of processes: it needs train.strategy = "
        f"'multi_worker' or 'parameter_server', got {strategy!r} (set it with --set "
        "train.strategy=multi_worker)"
    )


class _Task:
    """One process of the cluster."""

    def __init__(self, task_type: str, index: int, trains: bool) -> None:
        self.task_type = task_type
        self.index = index
        self.trains = trains  # its exit ends the job (else it is a server)
        self.process: subprocess.Popen | None = None
        self.log: Path | None = None

    @property
    def name(self) -> str:
        return f"{self.task_type} {self.index}"

    def start(self, command: list[str], cluster: dict, logs: Path, show: bool) -> None:
        env = dict(os.environ)
        env["TF_CONFIG"] = json.dumps(
            {"cluster": cluster, "task": {"type": self.task_type, "index": self.index}}
        )
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        if show:
            out = None
        else:
            self.log = logs / f"{self.task_type}-{self.index}.log"
            out = open(self.log, "ab")  # noqa: SIM115 - closed below, the child keeps its copy
        try:
            self.process = subprocess.Popen(
                command, env=env, stdout=out, stderr=subprocess.STDOUT if out else None
            )
        finally:
            if out is not None:
                out.close()
        print(f"local cluster: {self.name} pid {self.process.pid}", flush=True)

    def returncode(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            self.process.wait(STOP_GRACE_S)

    def tail(self) -> str:
        if self.log is None or not self.log.is_file():
            return ""
        lines = self.log.read_text(encoding="utf-8", errors="replace").splitlines()
        return "\n".join(lines[-_LOG_TAIL_LINES:])


def _tasks(cluster: dict[str, list[str]]) -> list[_Task]:
    if "chief" in cluster:  # parameter_server: the chief trains, the rest serve
        return [
            _Task("chief", 0, True),
            *(_Task("worker", i, False) for i in range(len(cluster["worker"]))),
            *(_Task("ps", i, False) for i in range(len(cluster["ps"]))),
        ]
    return [_Task("worker", i, True) for i in range(len(cluster["worker"]))]


def run_local_cluster(
    train_args: Sequence[str],
    *,
    strategy: str,
    workers: int,
    ps: int = 0,
    run_dir: Path,
    restarts: int = 2,
    timeout_s: float | None = None,
) -> int:
    """Runs ``tfrs-recsys train TRAIN_ARGS`` as a localhost cluster; returns the chief's exit code.

    Args:
        train_args: The arguments of ``train`` for every process (``--config``,
            ``--set``, ``--run-dir``; ``--resume`` is added on a restart).
        strategy: ``multi_worker`` or ``parameter_server``.
        workers: Worker processes.
        ps: Parameter-server processes (``parameter_server``).
        run_dir: The run directory (a restart resumes it when it holds a run).
        restarts: Times the cluster is started again after a process died.
        timeout_s: Stop everything and fail after this many seconds (None: no limit).

    Raises:
        ConfigError: A strategy that is not multi-process, or wrong counts.
    """
    local_tf_config(strategy, workers, ps)  # checks the counts before anything starts
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    base = [sys.executable, "-m", "tfrs_recsys", "train", *train_args]
    attempt = 0
    resume = "--resume" in train_args
    logs = logs_path(run_dir)
    shutil.rmtree(logs, ignore_errors=True)  # left by a launcher that was killed
    logs.mkdir(parents=True)
    previous = _stop_on_sigterm()
    try:
        while True:
            cluster = local_tf_config(strategy, workers, ps)
            tasks = _tasks(cluster)
            command = base + (["--resume"] if resume and "--resume" not in base else [])
            try:
                for task in tasks:
                    task.start(command, cluster, logs, show=task.index == 0 and task.trains)
                failed = _watch(tasks, command, cluster, logs, deadline)
            finally:
                for task in reversed(tasks):
                    task.stop()
            if failed is None:
                return 0
            for task in tasks:
                if task.tail():
                    print(f"--- {task.name} (last lines) ---\n{task.tail()}", file=sys.stderr)
            if failed == "timeout":
                print(f"local cluster: stopped after {timeout_s:g} s", file=sys.stderr)
                return 1
            if attempt >= restarts:
                print(
                    f"local cluster: {failed} failed; no restart left ({restarts} done)",
                    file=sys.stderr,
                )
                return 1
            attempt += 1
            resume = (run_dir / "config.toml").is_file()
            print(
                f"local cluster: {failed} failed; restarting every process "
                f"{'with --resume from the last checkpoint' if resume else 'from the start'} "
                f"(restart {attempt} of {restarts})",
                flush=True,
            )
    finally:
        shutil.rmtree(logs, ignore_errors=True)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _stop_on_sigterm():
    """SIGTERM raises SystemExit in this process, so that its ``finally`` stops the tasks;
    returns the previous handler (None off the main thread, where it cannot be set)."""

    def stop(signum, frame):
        raise SystemExit(128 + signum)

    try:
        return signal.signal(signal.SIGTERM, stop)
    except ValueError:  # not the main thread
        return None


def logs_path(run_dir: Path) -> Path:
    """Where the launcher of ``run_dir``'s local cluster keeps the other tasks' logs
    (in the temporary folder; a fixed name, so a later launch removes a killed one's)."""
    key = hashlib.sha256(str(Path(run_dir).resolve()).encode("utf-8")).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"tfrs-recsys-{key}-cluster-logs"


def _watch(
    tasks: list[_Task], command: list[str], cluster: dict, logs: Path, deadline: float | None
) -> str | None:
    """Waits for the training processes; None when they all succeeded, else what failed."""
    while True:
        trainers = [t for t in tasks if t.trains]
        codes = [t.returncode() for t in trainers]
        failed = [t for t, code in zip(trainers, codes, strict=True) if code not in (None, 0)]
        if failed:
            return f"{failed[0].name} (exit {failed[0].returncode()})"
        if all(code == 0 for code in codes):
            return None
        for task in tasks:
            if task.trains or task.returncode() is None:
                continue
            if task.task_type == "ps":
                return f"{task.name} (exit {task.returncode()})"
            # A parameter_server worker: started again alone, the coordinator waits for it.
            print(
                f"local cluster: {task.name} exited ({task.returncode()}); starting it again",
                flush=True,
            )
            task.start(command, cluster, logs, show=False)
        if deadline is not None and time.monotonic() > deadline:
            return "timeout"
        time.sleep(POLL_S)
