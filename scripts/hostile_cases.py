"""A hostile user's battery: bad files, bad flags, kills, full disks and odd serving requests.

Every case runs the real command line (``.venv/bin/tfrs-recsys ...``) as a subprocess on tiny
generated data in a fresh temporary directory (or, for serving, the Python API of a tiny
export, ``tfrs_recsys.load_exported``), and is classified automatically:

- ``clean``: exit status 2 and exactly one error line on stderr, the last (progress lines of
  long commands may come before it), no traceback, no warning, no native TensorFlow log line;
- ``traceback``: a Python traceback, a crash, or warnings printed besides the error;
- ``wrong``: exit status 0 but a silently wrong result (what is right is stated by the case:
  a NaN score, a rating 7 counted as a positive, a resumed run unlike the uninterrupted one);
- ``debris``: a leftover staging entry (``.NAME.tmp-*``), a half-written output, or a
  directory that blocks the documented re-run (a failed ``train`` that left its run
  directory, a killed command whose recovery command fails);
- ``ok``: valid input handled correctly.

Usage::

    .venv/bin/python scripts/hostile_cases.py [--jobs 2] [--only train,serving]
        [--json results.json] [--keep] [--seed 12]

It prints one table per kind (generate-data, fetch-data, inspect-data, train, kill, evaluate,
export, recommend, serving, compare) and the totals, headed by the command and the machine.
``fetch-data`` cases that download (a full disk, a kill) fetch ML-100K from PyPI with pip;
``--offline`` leaves them out. Full disks are simulated with ``RLIMIT_FSIZE`` in the child
(writes past the limit fail with EFBIG), read-only directories with ``chmod 0o555`` when not
running as root (root writes through it, so those cases then say so and use the size limit).
15-20 minutes on 2 cores with ``--jobs 3`` (while other jobs ran), most of it TensorFlow's
start-up in ~80 subprocesses.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import os
import platform
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
VERDICTS = ("clean", "traceback", "wrong", "debris", "ok")
KINDS = (
    "generate-data",
    "fetch-data",
    "inspect-data",
    "train",
    "kill",
    "evaluate",
    "export",
    "recommend",
    "serving",
    "compare",
)
ERROR_LINE = re.compile(r"^tfrs-recsys( [\w-]+)?: error: ")
TIMEOUT_S = 900
# Names a finished command must never leave behind: staging and backup siblings.
DEBRIS = re.compile(r"\.tmp-|\.old-|\.download-")
# What must never be on stderr: warnings, tracebacks and TensorFlow's native log lines (the
# CLI filters those). Other lines besides the error are progress lines of long commands.
NOISE = re.compile(
    r"Warning|Traceback|warnings\.warn|^\s+File \"|^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] "
    r"|^[IWEF]\d{4} \d\d:\d\d:\d\d"
)


# --- Running commands -----------------------------------------------------------------------------


def cli_command() -> list[str]:
    script = REPO / ".venv" / "bin" / "tfrs-recsys"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "tfrs_recsys"]


def python_command() -> str:
    python = REPO / ".venv" / "bin" / "python"
    return str(python) if python.is_file() else sys.executable


@dataclasses.dataclass
class Proc:
    """A finished (or killed) subprocess."""

    command: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    def lines(self) -> list[str]:
        """Non-blank stderr lines."""
        return [line for line in self.stderr.splitlines() if line.strip()]


def _limits(fsize: int | None, memory: int | None) -> Callable[[], None] | None:
    if fsize is None and memory is None:
        return None

    def apply() -> None:
        if fsize is not None:
            # A write past the limit then fails with EFBIG instead of killing the process.
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
        if memory is not None:
            resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    return apply


def run(
    args: Sequence[str],
    cwd: Path,
    env: dict[str, str],
    *,
    fsize: int | None = None,
    memory: int | None = None,
    timeout: float = TIMEOUT_S,
    program: Sequence[str] | None = None,
) -> Proc:
    command = [*(cli_command() if program is None else program), *map(str, args)]
    started = time.perf_counter()
    try:
        result = subprocess.run(
            command,
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            preexec_fn=_limits(fsize, memory),
            check=False,
        )
        code, out, err = result.returncode, result.stdout, result.stderr
    except subprocess.TimeoutExpired as exc:
        code, out, err = -999, _text(exc.stdout), _text(exc.stderr) + f"\n(timed out {timeout} s)"
    return Proc(command, code, out, err, time.perf_counter() - started)


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data if isinstance(data, str) else data.decode("utf-8", "replace")


def run_and_kill(
    args: Sequence[str],
    cwd: Path,
    env: dict[str, str],
    ready: Callable[[], bool],
    delay: float,
    *,
    timeout: float = 600,
) -> tuple[bool, Proc]:
    """Starts the command, waits until ``ready()`` (polled), sleeps ``delay``, SIGKILLs it.

    Returns whether it was killed (False: it finished first) and the process.
    """
    command = [*cli_command(), *map(str, args)]
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=err, text=True)
        deadline = time.monotonic() + timeout
        while process.poll() is None and time.monotonic() < deadline and not ready():
            time.sleep(0.05)
        if process.poll() is None:
            time.sleep(delay)
        killed = process.poll() is None
        if killed:
            process.send_signal(signal.SIGKILL)
        process.wait()
        out.seek(0)
        err.seek(0)
        return killed, Proc(
            command, process.returncode, out.read(), err.read(), time.perf_counter() - started
        )


# --- Outcomes -------------------------------------------------------------------------------------


@dataclasses.dataclass
class Outcome:
    kind: str
    name: str
    verdict: str
    command: str
    detail: str
    seconds: float


def shown(command: Sequence[str], workdir: Path) -> str:
    text = " ".join(_quote(str(part)) for part in command)
    text = text.replace(str(workdir), "$W")
    for prefix in (" ".join(cli_command()), python_command()):
        text = text.replace(prefix, "tfrs-recsys" if prefix != python_command() else "python")
    return text if len(text) < 240 else text[:237] + "..."


def _quote(part: str) -> str:
    if len(part) > 60:
        part = part[:40] + f"...({len(part)} chars)"
    return part if re.fullmatch(r"[\w@%+=:,./$\-]*", part) and part else repr(part)


def debris_in(root: Path) -> list[str]:
    """Staging / backup entries anywhere under ``root``."""
    if not root.exists():
        return []
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if DEBRIS.search(p.name))


def judge(
    proc: Proc,
    *,
    expect: str,
    check: Callable[[Proc], str | None] | None = None,
    debris: Callable[[Proc], str | None] | None = None,
) -> tuple[str, str]:
    """``(verdict, detail)`` of a finished command.

    ``expect``: ``error`` (invalid input: exit 2 expected; exit 0 is ``wrong``), ``ok`` (valid
    input: exit 0 and ``check`` passing expected; a clean refusal is ``wrong``) or ``either``
    (a clean refusal or a correct result are both fine).
    """
    lines = proc.lines()
    first = lines[-1] if lines else ""
    errors = [line for line in lines if ERROR_LINE.match(line)]
    noisy = [line for line in lines if NOISE.search(line)]
    if "Traceback" in proc.stderr:
        return "traceback", _last_exception(proc.stderr)
    if proc.returncode not in (0, 2):
        return "traceback", f"exit {proc.returncode}: {first[:200]}"
    if proc.returncode == 2 and (len(errors) != 1 or errors[0] != first or noisy):
        shown_lines = noisy + errors if noisy or errors else lines
        return "traceback", "not one error line: " + " | ".join(shown_lines)[:300]
    if proc.returncode == 0 and noisy:
        return "traceback", f"exit 0 with warnings: {noisy[0][:200]}"
    wrong = None
    if proc.returncode == 0:
        if expect == "error":
            wrong = "accepted: exit 0"
        elif check is not None:
            wrong = check(proc)
    elif expect == "ok":
        wrong = f"valid input refused: {first[:200]}"
    if wrong:
        return "wrong", wrong
    left = debris(proc) if debris is not None else None
    if left:
        return "debris", left
    if proc.returncode == 2:
        return "clean", first[:300]
    return "ok", "exit 0" + (f"; {check.__doc__}" if check is not None and check.__doc__ else "")


def _last_exception(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    for line in reversed(lines):
        if re.match(r"^[\w.]+(Error|Exception|Exhausted\w*|Interrupt)\b", line.strip()):
            return line.strip()[:300]
    return lines[-1][:300] if lines else "Traceback"


# --- The world the cases run in -------------------------------------------------------------------


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
batch_size = 32
learning_rate = 0.02
patience = 0
refit = true
"""
# The same tiny model for every TFRS model of ``compare`` (shipped configs + these).
COMPARE_SETS = [
    "train.epochs=2",
    "train.patience=0",
    "train.batch_size=32",
    "model.id_dim=8",
    "model.output_dim=8",
]
MATRIX = "user_product_rating_matrix.csv"


@dataclasses.dataclass
class World:
    """The shared inputs: tiny data, a tiny config, a trained run, its export, a comparison."""

    root: Path
    env: dict[str, str]
    seed: int
    data: Path = Path()
    config: Path = Path()
    run: Path | None = None
    export: Path | None = None
    comparison: Path | None = None
    big: Path | None = None
    ml100k: Path = Path()
    mllatest: Path = Path()
    setup: list[Outcome] = dataclasses.field(default_factory=list)
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)
    counter: int = 0
    done: int = 0

    def case_dir(self, name: str) -> Path:
        with self.lock:
            self.counter += 1
            number = self.counter
        path = self.root / "cases" / f"{number:03d}-{re.sub(r'[^A-Za-z0-9]+', '-', name)[:40]}"
        path.mkdir(parents=True)
        return path

    def copy_data(self, target: Path) -> Path:
        shutil.copytree(self.data, target)
        return target


GENERATE_ARGS = ["--users", "300", "--items", "60", "--seed", "42"]
BIG_ARGS = ["--users", "20000", "--items", "500", "--seed", "7"]
TRAIN_ARGS = ["--config", "{config}"]


def build_world(root: Path, seed: int, needs: set[str]) -> World:
    env = {**os.environ, "TFRS_RECSYS_CACHE": str(root / "cache")}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    world = World(root=root, env=env, seed=seed)
    world.data = root / "data" / "tech"
    world.config = root / "tiny.toml"
    proc = run(["generate-data", "--out", world.data, *GENERATE_ARGS], root, env)
    world.setup.append(_setup_outcome("generate-data", "valid tiny dataset", proc, root))
    if proc.returncode != 0:
        raise SystemExit(f"cannot generate the tiny dataset:\n{proc.stderr}")
    world.config.write_text(TINY_CONFIG.format(data=world.data), encoding="utf-8")
    write_ml100k(root / "data" / "ml100k")
    write_ml_latest(root / "data" / "ml-latest")
    world.ml100k, world.mllatest = root / "data" / "ml100k", root / "data" / "ml-latest"

    def train_base() -> None:
        run_dir = root / "base" / "run"
        p = run(["train", "--config", world.config, "--run-dir", run_dir], root, env)
        world.setup.append(_setup_outcome("train", "valid tiny run (2 epochs + refit)", p, root))
        if p.returncode == 0 and (run_dir / "metrics.json").is_file():
            world.run = run_dir
            out = root / "base" / "exported" / "tiny"
            e = run(["export", "--run-dir", run_dir, "--out", out, "-n", "5"], root, env)
            world.setup.append(_setup_outcome("export", "valid export of the tiny run", e, root))
            if e.returncode == 0:
                world.export = out

    def compare_base() -> None:
        out = root / "base" / "comparison"
        p = run(compare_args(world, out), root, env)
        world.setup.append(_setup_outcome("compare", "valid comparison", p, root))
        if p.returncode == 0 and (out / "comparison.json").is_file():
            world.comparison = out

    def big_base() -> None:
        out = root / "data" / "big"
        p = run(["generate-data", "--out", out, *BIG_ARGS], root, env)
        world.setup.append(_setup_outcome("generate-data", "valid larger dataset", p, root))
        if p.returncode == 0:
            world.big = out

    wanted = [
        step
        for step, names in (
            (train_base, {"run", "export"}),
            (compare_base, {"comparison"}),
            (big_base, {"big"}),
        )
        if names & needs
    ]
    with ThreadPoolExecutor(3) as pool:
        for future in [pool.submit(step) for step in wanted]:
            future.result()
    return world


def compare_args(world: World, out: Path, *extra: str) -> list[Any]:
    sets = [part for item in COMPARE_SETS for part in ("--set", item)]
    return [
        "compare",
        "--data",
        world.data,
        "--models",
        "popularity,retrieval_ids",
        "--out",
        out,
        *sets,
        *extra,
    ]


def _setup_outcome(kind: str, name: str, proc: Proc, root: Path) -> Outcome:
    verdict, detail = judge(proc, expect="ok")
    return Outcome(kind, name, verdict, shown(proc.command, root), detail, proc.seconds)


# Hand-made MovieLens files: 4 users, 4 items, ratings 1..5.
ML100K_USERS = (
    "1|24|M|technician|85711\n2|53|F|other|94043\n3|23|M|writer|32067\n4|24|M|other|43537\n"
)
ML100K_ITEMS = "".join(
    f"{i}|Movie {i} (199{i})|01-Jan-199{i}||http://x|"
    + "|".join("1" if g == i else "0" for g in range(19))
    + "\n"
    for i in range(1, 5)
)
ML100K_RATINGS = [
    (1, 1, 5),
    (1, 2, 3),
    (2, 1, 4),
    (2, 3, 5),
    (3, 2, 4),
    (3, 4, 2),
    (4, 4, 5),
    (4, 3, 1),
]


def ml100k_data(rows: Sequence[tuple[Any, Any, Any]]) -> str:
    return "".join(f"{u}\t{i}\t{r}\t8812{n:04d}\n" for n, (u, i, r) in enumerate(rows))


def write_ml100k(directory: Path, ratings: str | bytes | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "u.user").write_text(ML100K_USERS, encoding="latin-1")
    (directory / "u.item").write_text(ML100K_ITEMS, encoding="latin-1")
    data = ml100k_data(ML100K_RATINGS) if ratings is None else ratings
    path = directory / "u.data"
    path.write_bytes(data if isinstance(data, bytes) else data.encode("latin-1"))
    return directory


MOVIES_CSV = 'movieId,title,genres\n1,Toy Story (1995),Animation|Comedy\n2,"Heat, The (1995)",Action\n3,Up (2009),Animation\n'
ML_LATEST_RATINGS = [(1, 1, 4.5), (1, 2, 3.0), (2, 1, 5.0), (2, 3, 4.0), (3, 2, 4.0), (3, 3, 0.5)]


def ml_latest_ratings(rows: Sequence[tuple[Any, Any, Any]]) -> str:
    lines = "".join(f"{u},{i},{r},96498{n:04d}\n" for n, (u, i, r) in enumerate(rows))
    return "userId,movieId,rating,timestamp\n" + lines


def write_ml_latest(directory: Path, ratings: str | bytes | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "movies.csv").write_text(MOVIES_CSV, encoding="utf-8")
    data = ml_latest_ratings(ML_LATEST_RATINGS) if ratings is None else ratings
    (directory / "ratings.csv").write_bytes(data if isinstance(data, bytes) else data.encode())
    return directory


def positives_is(expected: int, what: str) -> Callable[[Proc], str | None]:
    """A check of ``inspect-data --json``: the number of positives."""

    def check(proc: Proc) -> str | None:
        try:
            found = json.loads(proc.stdout)["positives"]
        except (ValueError, KeyError) as exc:
            return f"no summary ({exc})"
        if found != expected:
            return f"{found} positives, expected {expected}: {what}"
        return None

    check.__doc__ = f"{expected} positives"
    return check


# --- Case definitions -----------------------------------------------------------------------------


@dataclasses.dataclass
class Case:
    kind: str
    name: str
    body: Callable[[World, Path], list[Outcome] | Outcome]
    needs: tuple[str, ...] = ()
    heavy: bool = False  # started first in the pool (kills, trainings)


CASES: list[Case] = []


def case(kind: str, name: str, *, needs: tuple[str, ...] = (), heavy: bool = False):
    def register(body):
        CASES.append(Case(kind, name, body, needs, heavy))
        return body

    return register


def cli_case(
    kind: str,
    name: str,
    args: Sequence[Any],
    *,
    expect: str = "error",
    prepare: Callable[[World, Path], None] | None = None,
    check: Callable[[Proc], str | None] | None = None,
    fresh: str | None = None,
    fsize: int | None = None,
    memory: int | None = None,
    needs: tuple[str, ...] = (),
    heavy: bool = False,
    resumable: str | None = None,
) -> None:
    """A case that runs one command; ``args`` may use {data} {config} {run} {export} {case}
    {ml100k} {mllatest} {big}. ``fresh``: an output path (template) that did not exist before
    and must not exist after a failure (a failed command leaves nothing that blocks its re-run),
    unless it holds ``resumable`` (a file that makes it continuable with ``--resume``).
    """

    def body(world: World, where: Path) -> Outcome:
        if prepare is not None:
            prepare(world, where)
        values = {
            "data": world.data,
            "config": world.config,
            "run": world.run,
            "export": world.export,
            "case": where,
            "ml100k": world.ml100k,
            "mllatest": world.mllatest,
            "big": world.big,
        }
        argv = [str(a).format(**values) if isinstance(a, str) else a for a in args]
        output = Path(fresh.format(**values)) if fresh else None
        before = output.exists() if output else False
        proc = run(argv, where, world.env, fsize=fsize, memory=memory)

        def leftovers(p: Proc) -> str | None:
            found = debris_in(where)
            if found:
                return "left " + ", ".join(found[:3])
            if output is not None and not before and p.returncode != 0 and output.exists():
                if resumable and (output / resumable).exists():
                    return None  # kept on purpose: the documented --resume continues it
                if not output.is_dir() or any(output.iterdir()):
                    return f"a failed command left {output.name}/ behind (blocks the re-run)"
            return None

        verdict, detail = judge(proc, expect=expect, check=check, debris=leftovers)
        return Outcome(kind, name, verdict, shown(proc.command, world.root), detail, proc.seconds)

    CASES.append(Case(kind, name, body, needs, heavy))


def corrupt(relative: str, data: bytes | Callable[[bytes], bytes], source: str = "data"):
    """A ``prepare`` that copies a dataset into ``case/data`` and rewrites one file."""

    def prepare(world: World, where: Path) -> None:
        origin = {"data": world.data, "ml100k": world.ml100k, "mllatest": world.mllatest}[source]
        shutil.copytree(origin, where / "data")
        path = where / "data" / relative
        if data is None:
            path.unlink()
            return
        old = path.read_bytes() if path.is_file() else b""
        new = data(old) if callable(data) else data
        if path.is_dir():
            shutil.rmtree(path)
        path.write_bytes(new)

    return prepare


def replace_line(number: int, edit: Callable[[bytes], bytes]) -> Callable[[bytes], bytes]:
    """Edits line ``number`` (1-based, the header is 1) of a file's bytes."""

    def apply(old: bytes) -> bytes:
        lines = old.split(b"\n")
        lines[number - 1] = edit(lines[number - 1])
        return b"\n".join(lines)

    return apply


def set_cell(line: int, column: int, value: bytes) -> Callable[[bytes], bytes]:
    def edit(text: bytes) -> bytes:
        cells = text.split(b",")
        cells[column] = value
        return b",".join(cells)

    return replace_line(line, edit)


def binary_bytes(size: int = 3000) -> bytes:
    rng = random.Random(1)
    return bytes(rng.randrange(256) for _ in range(size))


def as_directory(world: World, where: Path) -> None:
    (where / "dir.toml").mkdir()


def file_at(name: str, content: bytes = b"not a directory\n"):
    def prepare(world: World, where: Path) -> None:
        (where / name).write_bytes(content)

    return prepare


def nonempty_dir(name: str):
    def prepare(world: World, where: Path) -> None:
        (where / name).mkdir()
        (where / name / "keep.txt").write_text("someone else's file\n")

    return prepare


FULL = 8 * 1024  # bytes: any file past this fails with EFBIG ("disk full")
READ_ONLY_NOTE = "root writes through chmod 0o555"


def read_only_dir(world: World, where: Path) -> None:
    (where / "ro").mkdir()
    os.chmod(where / "ro", 0o555)


def is_root() -> bool:
    return os.geteuid() == 0


class Skipped(Exception):
    """A case that cannot run on this machine (the reason is reported)."""


TMPFS_KB = 32


def tiny_tmpfs(world: World, where: Path) -> None:
    """Mounts a 32 KB tmpfs at ``case/tiny``: a real full file system (ENOSPC)."""
    (where / "tiny").mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_KB}k", "tmpfs", str(where / "tiny")]
    try:
        result = subprocess.run(mount, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise Skipped(f"cannot mount a tmpfs ({exc})") from None
    if result.returncode != 0:
        raise Skipped(f"cannot mount a tmpfs: {result.stderr.strip()[:100]}")


def unmount_under(where: Path) -> None:
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return
    for line in mounts:
        point = line.split()[1]
        if point.startswith(str(where) + "/"):
            subprocess.run(["umount", point], capture_output=True, check=False)


# --- generate-data ----------------------------------------------------------------------------------

G = "generate-data"
for label, extra in [
    ("--users 0", ["--users", "0"]),
    ("--users -5", ["--users", "-5"]),
    ("--users abc", ["--users", "abc"]),
    ("--seed -1", ["--seed", "-1"]),
    ("--seed 2**64 (OverflowError)", ["--seed", str(2**64)]),
    ("--layout bogus", ["--layout", "bogus"]),
]:
    cli_case(G, label, ["generate-data", "--out", "{case}/out", *extra], fresh="{case}/out")
for label, extra in [
    ("--seed 2**63 (numpy warns)", ["--seed", str(2**63)]),
    ("--seed 2**32", ["--seed", str(2**32)]),
]:
    cli_case(
        G,
        label,
        ["generate-data", "--out", "{case}/out", "--users", "50", "--items", "20", *extra],
        expect="either",
        fresh="{case}/out",
    )
# Would need ~8 GB for the wide matrix: must say so before allocating (memory capped at 4 GB).
cli_case(
    G,
    "--users 1000000000",
    ["generate-data", "--out", "{case}/out", "--users", "1000000000"],
    fresh="{case}/out",
    memory=4 << 30,
)
cli_case(G, "--out ''", ["generate-data", "--out", ""])
cli_case(G, "--out an existing file", ["generate-data", "--out", "{case}/f"], prepare=file_at("f"))
cli_case(G, "--out under a file", ["generate-data", "--out", "{case}/f/out"], prepare=file_at("f"))
cli_case(
    G,
    "--out a non-empty dir, no --force",
    ["generate-data", "--out", "{case}/d"],
    prepare=nonempty_dir("d"),
)


def _out_has(*names: str) -> Callable[[Proc], str | None]:
    def check(proc: Proc) -> str | None:
        out = Path(proc.command[proc.command.index("--out") + 1])
        missing = [n for n in names if not (out / n).exists()]
        extra = [p.name for p in out.iterdir() if p.name == "keep.txt"] if out.is_dir() else []
        if missing or extra:
            return f"output lacks {missing} or keeps {extra}"
        return None

    check.__doc__ = "complete output"
    return check


cli_case(
    G,
    "--out a non-empty dir with --force",
    ["generate-data", "--out", "{case}/d", *GENERATE_ARGS, "--force"],
    expect="ok",
    prepare=nonempty_dir("d"),
    check=_out_has("users.csv", "items.csv", MATRIX, "dataset.json"),
)
cli_case(
    G,
    "long layout, csv shards",
    ["generate-data", "--out", "{case}/out", *GENERATE_ARGS, "--layout", "long"]
    + ["--shard-format", "csv"],
    expect="ok",
    check=_out_has("users.csv", "items.csv", "interactions", "dataset.json"),
)
cli_case(
    G,
    "--out with unicode and spaces",
    ["generate-data", "--out", "{case}/dönnées et 数据", *GENERATE_ARGS],
    expect="ok",
    check=_out_has("users.csv", MATRIX),
)
cli_case(
    G,
    "full disk (RLIMIT_FSIZE 8 KB)",
    ["generate-data", "--out", "{case}/out", *GENERATE_ARGS],
    fresh="{case}/out",
    fsize=FULL,
)
cli_case(
    G,
    "full disk, long layout",
    ["generate-data", "--out", "{case}/out", *GENERATE_ARGS, "--layout", "long"],
    fresh="{case}/out",
    fsize=FULL,
)
cli_case(
    G,
    "read-only parent directory" + (f" ({READ_ONLY_NOTE}: EFBIG)" if is_root() else ""),
    ["generate-data", "--out", "{case}/ro/out", *GENERATE_ARGS],
    prepare=read_only_dir,
    fresh="{case}/ro/out",
    fsize=FULL if is_root() else None,
)
cli_case(
    G,
    f"a full {TMPFS_KB} KB tmpfs (ENOSPC)",
    ["generate-data", "--out", "{case}/tiny/out", *GENERATE_ARGS],
    prepare=tiny_tmpfs,
    fresh="{case}/tiny/out",
)
cli_case(
    G,
    "a dead run's staging dir beside --out (removed)",
    ["generate-data", "--out", "{case}/out", *GENERATE_ARGS],
    expect="ok",
    prepare=lambda world, where: _dead_staging(world, where),
    check=_out_has("users.csv", MATRIX),
)
cli_case(
    G,
    "--force over a dir, full disk",
    ["generate-data", "--out", "{case}/d", *GENERATE_ARGS, "--force"],
    prepare=nonempty_dir("d"),
    fsize=FULL,
)


def _same_files(a: Path, b: Path) -> str | None:
    names_a = sorted(str(p.relative_to(a)) for p in a.rglob("*") if p.is_file())
    names_b = sorted(str(p.relative_to(b)) for p in b.rglob("*") if p.is_file())
    if names_a != names_b:
        return f"files differ: {sorted(set(names_a) ^ set(names_b))[:4]}"
    for name in names_a:
        if (a / name).read_bytes() != (b / name).read_bytes():
            return f"{name} differs from an uninterrupted run's"
    return None


def kill_generate(point: int):
    def body(world: World, where: Path) -> Outcome:
        rng = random.Random(world.seed * 1000 + point)
        out = where / "out"
        args = ["generate-data", "--out", out, *BIG_ARGS]
        delay = rng.uniform(0.0, 1.5)

        def ready() -> bool:
            return any(p.name.startswith(".out.tmp-") for p in where.iterdir())

        killed, first = run_and_kill(args, where, world.env, ready, delay)
        proc = run(args, where, world.env)  # the documented recovery: run it again
        return kill_outcome(
            world,
            G,
            f"SIGKILL {delay:.2f} s after staging appears, then re-run",
            killed,
            first,
            proc,
            lambda: _same_files(out, world.big) if world.big else "no reference dataset",
            where,
        )

    return body


def kill_outcome(
    world: World,
    kind: str,
    name: str,
    killed: bool,
    first: Proc,
    recovery: Proc,
    same: Callable[[], str | None],
    where: Path,
) -> Outcome:
    """Verdict of a kill + recovery: the recovery must succeed, equal an uninterrupted
    run and leave no debris."""
    name = name if killed else name + " (finished before the kill)"
    if not killed:  # nothing was interrupted: the first run itself must be right
        recovery = first
    verdict, detail = judge(recovery, expect="ok")
    if verdict == "wrong" and recovery.returncode != 0:
        # A clean refusal to recover: what the killed run left blocks the re-run.
        verdict, detail = "debris", "recovery failed: " + detail
    elif verdict == "ok":
        differs = same()
        left = debris_in(where)
        if differs:
            verdict, detail = "wrong", differs
        elif left:
            verdict, detail = "debris", "left " + ", ".join(left[:3])
        elif killed:
            detail = "recovered, equal to an uninterrupted run, no debris"
        else:
            detail = "not interrupted; its result is right, no debris"
    command = shown(first.command, world.root) + "; kill; " + shown(recovery.command, world.root)
    seconds = first.seconds + (recovery.seconds if killed else 0.0)
    return Outcome(kind, name, verdict, command, detail, seconds)


for point in range(3):
    CASES.append(Case(G, f"kill {point}", kill_generate(point), needs=("big",), heavy=True))


# --- fetch-data -------------------------------------------------------------------------------------

F = "fetch-data"
cli_case(F, "unknown dataset", ["fetch-data", "movielens-9m", "--cache", "{case}/cache"])
cli_case(F, "empty name", ["fetch-data", "", "--cache", "{case}/cache"])
cli_case(
    F,
    "--cache an existing file",
    ["fetch-data", "movielens-100k", "--cache", "{case}/f"],
    prepare=file_at("f"),
)


def _fake_cache(world: World, where: Path) -> None:
    target = where / "cache" / "datasets" / "movielens-100k"
    target.mkdir(parents=True)
    for name in ("ml-100k.inter", "ml-100k.user", "ml-100k.item"):
        (target / name).write_text("x\n")


cli_case(
    F,
    "already cached (no download)",
    ["fetch-data", "movielens-100k", "--cache", "{case}/cache"],
    expect="ok",
    prepare=_fake_cache,
)


def dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def _dead_staging(world: World, where: Path) -> None:
    """A half-written staging directory of a dead process, named as the package names them."""
    stale = where / f".out.tmp-{dead_pid()}-0123456789ab"
    stale.mkdir()
    (stale / "users.csv").write_text("user_id,age\n")


NETWORK_CASES: list[Case] = []


def _fetched(proc: Proc) -> str | None:
    """ML-100K files in the cache"""
    path = Path(proc.stdout.strip().splitlines()[-1]) if proc.stdout.strip() else None
    if path is None or not all(
        (path / f"ml-100k.{e}").is_file() for e in ("inter", "user", "item")
    ):
        return f"no complete dataset at {path}"
    return None


def fetch_full_disk(world: World, where: Path) -> Outcome:
    args = ["fetch-data", "movielens-100k", "--cache", where / "cache"]
    proc = run(args, where, world.env, fsize=FULL)
    target = where / "cache" / "datasets" / "movielens-100k"

    def leftovers(p: Proc) -> str | None:
        found = debris_in(where)
        if found:
            return "left " + ", ".join(found[:3])
        if target.exists():
            return "a partial dataset directory was left"
        return None

    verdict, detail = judge(proc, expect="error", debris=leftovers)
    return Outcome(
        F,
        "full disk (RLIMIT_FSIZE 8 KB)",
        verdict,
        shown(proc.command, world.root),
        detail,
        proc.seconds,
    )


def fetch_kill(world: World, where: Path) -> Outcome:
    rng = random.Random(world.seed * 1000 + 77)
    delay = rng.uniform(0.0, 2.0)
    cache = where / "cache"
    args = ["fetch-data", "movielens-100k", "--cache", cache]

    def ready() -> bool:
        datasets = cache / "datasets"
        return datasets.is_dir() and any(datasets.iterdir())

    killed, first = run_and_kill(args, where, world.env, ready, delay)
    proc = run(args, where, world.env)
    return kill_outcome(
        world,
        F,
        f"SIGKILL {delay:.2f} s into the download, then re-run",
        killed,
        first,
        proc,
        lambda: _fetched(proc),
        where,
    )


NETWORK_CASES.append(Case(F, "full disk (RLIMIT_FSIZE 8 KB)", fetch_full_disk, heavy=True))
NETWORK_CASES.append(Case(F, "kill", fetch_kill, heavy=True))


# --- inspect-data: bad data files ---------------------------------------------------------------------

IN = "inspect-data"
LATIN1 = b"caf\xe9"


def inspect(
    name: str,
    relative: str | None,
    data,
    *,
    expect="error",
    check=None,
    source="data",
    flags: Sequence[str] = (),
) -> None:
    prepare = corrupt(relative, data, source) if relative else None
    cli_case(
        IN,
        name,
        ["inspect-data", "{case}/data" if relative else "{data}", "--json", *flags],
        expect=expect,
        prepare=prepare,
        check=check,
    )


cli_case(IN, "missing directory", ["inspect-data", "{case}/nope"])
cli_case(IN, "a file, not a dataset", ["inspect-data", "{case}/f"], prepare=file_at("f"))
cli_case(
    IN, "an empty directory", ["inspect-data", "{case}/e"], prepare=lambda w, c: (c / "e").mkdir()
)
cli_case(IN, "--min-rating abc", ["inspect-data", "{ml100k}", "--min-rating", "abc"])
cli_case(IN, "--min-rating nan", ["inspect-data", "{ml100k}", "--min-rating", "nan"])

# The wide matrix (line 1 is the header, line 2 the first user).
M = MATRIX
inspect("matrix not UTF-8 (latin-1 user id)", M, replace_line(3, lambda t: LATIN1 + t[8:]))
inspect("matrix UTF-16", M, lambda old: old.decode().encode("utf-16"))
inspect("matrix binary", M, binary_bytes())
inspect("matrix empty", M, b"")
inspect("matrix header only", M, lambda old: old.split(b"\n")[0] + b"\n")
inspect("matrix cell 2", M, set_cell(2, 1, b"2"))
inspect("matrix cell 'yes' (DtypeWarning)", M, set_cell(2, 1, b"yes"))
inspect("matrix cell empty", M, set_cell(2, 1, b""))
inspect("matrix cell 0.5", M, set_cell(2, 1, b"0.5"))
inspect("matrix duplicated user row", M, lambda old: old + old.split(b"\n")[1] + b"\n")
inspect(
    "matrix duplicated item column",
    M,
    replace_line(1, lambda t: t.replace(b"item_0002", b"item_0001")),
)
inspect(
    "matrix item not in items.csv",
    M,
    replace_line(1, lambda t: t.replace(b"item_0002", b"item_9999")),
)
inspect("matrix user not in users.csv", M, replace_line(2, lambda t: b"zzz_9999" + t[8:]))
inspect("matrix ragged row", M, replace_line(2, lambda t: t + b",1"))
inspect("matrix truncated mid-row", M, lambda old: old[: len(old) // 2])


def _matrix_dir(world: World, where: Path) -> None:
    shutil.copytree(world.data, where / "data")
    (where / "data" / M).unlink()
    (where / "data" / M).mkdir()


cli_case(IN, "matrix path is a directory", ["inspect-data", "{case}/data"], prepare=_matrix_dir)
inspect("matrix missing", M, None)


def _ones(path: Path) -> int:
    rows = path.read_text().splitlines()[1:]
    return sum(cell.strip() == "1" for row in rows for cell in row.split(",")[1:])


def _positives_of_base(extra: int) -> Callable[[Proc], str | None]:
    """A check: positives of the base dataset plus ``extra``."""

    def check(proc: Proc) -> str | None:
        expected = _BASE_POSITIVES[0] + extra
        return positives_is(expected, "cell 1.0 read as 1")(proc)

    check.__doc__ = "1.0 counted as a positive"
    return check


_BASE_POSITIVES = [0]


def _first_zero_cell(world: World) -> tuple[int, int]:
    lines = (world.data / M).read_text().splitlines()
    for number, line in enumerate(lines[1:], start=2):
        cells = line.split(",")
        for column, cell in enumerate(cells[1:], start=1):
            if cell == "0":
                return number, column
    raise RuntimeError("no zero cell")


def _one_point_zero(world: World, where: Path) -> None:
    _BASE_POSITIVES[0] = _ones(world.data / M)
    line, column = _first_zero_cell(world)
    corrupt(M, set_cell(line, column, b"1.0"))(world, where)


cli_case(
    IN,
    "matrix cell 1.0 (a 1?)",
    ["inspect-data", "{case}/data", "--json"],
    expect="either",
    prepare=_one_point_zero,
    check=_positives_of_base(1),
)
inspect(
    "matrix with a UTF-8 BOM", M, lambda old: b"\xef\xbb\xbf" + old, expect="either", check=None
)
inspect("matrix with CRLF line ends", M, lambda old: old.replace(b"\n", b"\r\n"), expect="either")

# users.csv and items.csv (line 2 is the first row).
inspect(
    "users.csv latin-1 byte in line 4",
    "users.csv",
    replace_line(4, lambda t: t.replace(b"science", b"sci\xe9nce").replace(b"engineering", LATIN1)),
)
inspect("users.csv UTF-16", "users.csv", lambda old: old.decode().encode("utf-16"))
inspect("users.csv empty", "users.csv", b"")
inspect(
    "users.csv no user_id column",
    "users.csv",
    replace_line(1, lambda t: t.replace(b"user_id", b"who")),
)
inspect("users.csv duplicated user", "users.csv", lambda old: old + old.split(b"\n")[1] + b"\n")
inspect("users.csv age 'abc'", "users.csv", set_cell(2, 1, b"abc"))
inspect("users.csv age nan", "users.csv", set_cell(2, 1, b"nan"), expect="either")
inspect("users.csv age inf", "users.csv", set_cell(2, 1, b"inf"))
inspect("users.csv missing", "users.csv", None)
inspect(
    "items.csv price 'free'",
    "items.csv",
    lambda old: re.sub(rb",\d+\.\d+,", b",free,", old, count=1),
)
inspect(
    "items.csv price nan",
    "items.csv",
    lambda old: re.sub(rb",\d+\.\d+,", b",nan,", old, count=1),
    expect="either",
)
inspect("items.csv duplicated item", "items.csv", lambda old: old + old.split(b"\n")[1] + b"\n")
inspect("items.csv not UTF-8", "items.csv", lambda old: old.replace(b"tablet", b"tabl\xe9t", 1))

# ML-100K (u.data: user, item, rating 1..5, timestamp; >= 4 are positives).
ML100K_POSITIVES = sum(r >= 4 for _, _, r in ML100K_RATINGS)


def _ml100k(name: str, rows=None, raw: bytes | None = None, *, expect="error", check=None):
    data = raw if raw is not None else ml100k_data(rows).encode("latin-1")
    inspect(name, "u.data", data, expect=expect, check=check, source="ml100k")


_ml100k("ml-100k valid", ML100K_RATINGS, expect="ok", check=positives_is(ML100K_POSITIVES, "valid"))
_ml100k(
    "ml-100k rating 7",
    [*ML100K_RATINGS, (1, 3, 7)],
    expect="either",
    check=positives_is(ML100K_POSITIVES, "rating 7 counted as a positive"),
)
_ml100k(
    "ml-100k rating 0",
    [*ML100K_RATINGS, (1, 3, 0)],
    expect="either",
    check=positives_is(ML100K_POSITIVES, "rating 0 accepted"),
)
_ml100k(
    "ml-100k rating 4.5",
    [*ML100K_RATINGS, (1, 3, 4.5)],
    expect="either",
    check=positives_is(ML100K_POSITIVES, "rating 4.5 (not a whole star) counted"),
)
_ml100k("ml-100k rating 'five'", [*ML100K_RATINGS, (1, 3, "five")])
_ml100k(
    "ml-100k rating nan",
    [*ML100K_RATINGS, (1, 3, "nan")],
    expect="either",
    check=positives_is(ML100K_POSITIVES, "rating nan accepted"),
)
_ml100k("ml-100k unknown user", [*ML100K_RATINGS, (99, 1, 5)])
_ml100k("ml-100k 3 columns", raw=b"1\t1\t5\n2\t1\t4\n")
_ml100k("ml-100k empty u.data", raw=b"")
_ml100k("ml-100k UTF-16 u.data", raw=ml100k_data(ML100K_RATINGS).encode("utf-16"))
_ml100k(
    "ml-100k duplicated rating",
    [*ML100K_RATINGS, ML100K_RATINGS[0]],
    expect="either",
    check=positives_is(ML100K_POSITIVES, "a duplicated (user, item) counted twice"),
)
ML_LATEST_POSITIVES = sum(r >= 4 for _, _, r in ML_LATEST_RATINGS)


def _mll(name: str, rows=None, raw: bytes | None = None, *, expect="error", check=None):
    data = raw if raw is not None else ml_latest_ratings(rows).encode()
    inspect(name, "ratings.csv", data, expect=expect, check=check, source="mllatest")


_mll(
    "ml-latest valid",
    ML_LATEST_RATINGS,
    expect="ok",
    check=positives_is(ML_LATEST_POSITIVES, "valid"),
)
_mll(
    "ml-latest rating 6.0",
    [*ML_LATEST_RATINGS, (1, 3, 6.0)],
    expect="either",
    check=positives_is(ML_LATEST_POSITIVES, "rating 6.0 counted as a positive"),
)
_mll(
    "ml-latest rating 4.25",
    [*ML_LATEST_RATINGS, (1, 3, 4.25)],
    expect="either",
    check=positives_is(ML_LATEST_POSITIVES, "rating 4.25 (not a half star) counted"),
)
_mll(
    "ml-latest rating inf",
    [*ML_LATEST_RATINGS, (1, 3, "inf")],
    expect="either",
    check=positives_is(ML_LATEST_POSITIVES, "rating inf counted as a positive"),
)
_mll("ml-latest unknown movie", [*ML_LATEST_RATINGS, (1, 99, 5.0)])
_mll("ml-latest wrong header", raw=b"user,movie,stars,time\n1,1,5.0,1\n")
_mll(
    "ml-latest not UTF-8", raw=ml_latest_ratings(ML_LATEST_RATINGS).encode() + b"\xff\xfe,1,4.0,1\n"
)


# --- train: bad configs, --set values, paths, full disks ---------------------------------------------

T = "train"


def train_case(
    name: str,
    extra: Sequence[str],
    *,
    expect="error",
    prepare=None,
    run_dir="{case}/run",
    fresh=True,
    fsize=None,
    config: Sequence[str] = ("--config", "{config}"),
    check=None,
    heavy=False,
) -> None:
    cli_case(
        T,
        name,
        ["train", *config, *extra, "--run-dir", run_dir],
        expect=expect,
        prepare=prepare,
        fresh=run_dir if fresh else None,
        fsize=fsize,
        check=check,
        resumable="checkpoints/checkpoint",
        heavy=heavy,
    )


def _finite_metrics(proc: Proc) -> str | None:
    """finite holdout metrics"""
    run_dir = Path(proc.command[proc.command.index("--run-dir") + 1])
    try:
        metrics = json.loads((run_dir / "metrics.json").read_text())["holdout"]["metrics"]
    except (OSError, ValueError, KeyError) as exc:
        return f"no metrics.json ({exc})"
    bad = [k for k, v in metrics.items() if isinstance(v, float) and not math.isfinite(v)]
    return f"non-finite holdout metrics {bad}" if bad else None


def _write(name: str, content: bytes):
    def prepare(world: World, where: Path) -> None:
        (where / name).write_bytes(content.replace(b"@DATA@", str(world.data).encode()))

    return prepare


train_case("--config a directory", [], config=("--config", "{case}/dir.toml"), prepare=as_directory)
train_case(
    "--config binary",
    [],
    config=("--config", "{case}/b.toml"),
    prepare=_write("b.toml", binary_bytes()),
)
train_case(
    "--config UTF-16",
    [],
    config=("--config", "{case}/u.toml"),
    prepare=_write("u.toml", "[train]\nepochs = 1\n".encode("utf-16")),
)
train_case("--config missing", [], config=("--config", "{case}/nope.toml"))
train_case(
    "--config not TOML",
    [],
    config=("--config", "{case}/x.toml"),
    prepare=_write("x.toml", b"[train\nepochs 3\n"),
)
train_case(
    "--config unknown key",
    [],
    config=("--config", "{case}/x.toml"),
    prepare=_write("x.toml", b'[data]\nsource = "@DATA@"\n[train]\nepochz = 3\n'),
)
train_case(
    "--config wrong type",
    [],
    config=("--config", "{case}/x.toml"),
    prepare=_write("x.toml", b'[data]\nsource = "@DATA@"\n[train]\nepochs = "two"\n'),
)
for key, value in [
    ("train.seed", "-1"),
    ("train.seed", "99999999999"),
    ("train.seed", str(2**32)),
    ("data.validation_seed", "-5"),
    ("train.learning_rate", "nan"),
    ("train.learning_rate", "inf"),
    ("train.epochs", "0"),
    ("model.temperature", "nan"),
    ("data.min_rating", "nan"),
    ("data.source", '"/nonexistent/data"'),
]:
    train_case(f"--set {key}={value}", ["--set", f"{key}={value}"])
# Values that are valid: the run must train and give finite metrics.
train_case(
    "--set train.seed=2**31-1",
    ["--set", f"train.seed={2**31 - 1}"],
    expect="ok",
    check=_finite_metrics,
    heavy=True,
)
train_case("--run-dir an existing file", [], run_dir="{case}/f", prepare=file_at("f"), fresh=False)
train_case(
    "--run-dir holds other files", [], run_dir="{case}/d", prepare=nonempty_dir("d"), fresh=False
)
train_case("--resume, nothing there", ["--resume"], fresh=False)
train_case("full disk (RLIMIT_FSIZE 8 KB)", [], fsize=FULL)
train_case(
    f"a full {TMPFS_KB} KB tmpfs (ENOSPC)", [], run_dir="{case}/tiny/run", prepare=tiny_tmpfs
)
train_case(
    "read-only parent" + (f" ({READ_ONLY_NOTE}: EFBIG)" if is_root() else ""),
    [],
    run_dir="{case}/ro/run",
    prepare=read_only_dir,
    fsize=FULL if is_root() else None,
)


def _data_with(relative: str, edit):
    def prepare(world: World, where: Path) -> None:
        corrupt(relative, edit)(world, where)

    return prepare


for label, relative, edit in [
    ("matrix UTF-16", M, lambda old: old.decode().encode("utf-16")),
]:
    train_case(
        f"data: {label}", ["--set", 'data.source="data"'], prepare=_data_with(relative, edit)
    )


# --- kills of train, then `train --run-dir R --resume` -----------------------------------------------

K = "kill"


def _holdout(run_dir: Path) -> dict[str, float] | None:
    try:
        return json.loads((run_dir / "metrics.json").read_text())["holdout"]["metrics"]
    except (OSError, ValueError, KeyError):
        return None


def same_metrics(run_dir: Path, reference: Path | None) -> str | None:
    if reference is None:
        return "no uninterrupted run to compare with"
    got, want = _holdout(run_dir), _holdout(reference)
    if got is None or want is None:
        return "no metrics.json"
    diffs = {k: abs(got[k] - want[k]) for k in want if isinstance(want[k], float) and k in got}
    worst = max(diffs, key=diffs.get) if diffs else None
    if worst is not None and diffs[worst] > 0:
        return (
            f"resumed {worst} {got[worst]:.4f} vs uninterrupted {want[worst]:.4f} "
            f"(max |diff| {diffs[worst]:.2g})"
        )
    return None


def kill_train(label: str, marker: str, base_delay: float, spread: float, point: int):
    def body(world: World, where: Path) -> Outcome:
        rng = random.Random(world.seed * 1000 + 100 + point)
        delay = base_delay + rng.uniform(0.0, spread)
        run_dir = where / "run"
        args = ["train", "--config", world.config, "--run-dir", run_dir]

        def ready() -> bool:
            return (run_dir / marker).exists()

        killed, first = run_and_kill(args, where, world.env, ready, delay)
        at = sorted(p.name for p in run_dir.iterdir()) if run_dir.is_dir() else []
        recovery = run(["train", "--run-dir", run_dir, "--resume"], where, world.env)
        outcome = kill_outcome(
            world,
            K,
            f"train: {label} (+{delay:.2f} s), then --resume",
            killed,
            first,
            recovery,
            lambda: same_metrics(run_dir, world.run),
            where,
        )
        outcome.detail += f" [run dir at the kill: {', '.join(at) or 'absent'}]"
        return outcome

    return body


for point, (label, marker, base, spread) in enumerate(
    [
        ("killed 1.5 s after config.toml appears", "config.toml", 1.5, 0.5),
        ("killed after the first checkpoint (mid-epoch 2)", "checkpoints/checkpoint", 0.1, 0.4),
        ("killed during the refit", "refit", 0.2, 0.8),
    ]
):
    CASES.append(
        Case(
            K,
            f"train {label}",
            kill_train(label, marker, base, spread, point),
            needs=("run",),
            heavy=True,
        )
    )


def kill_export(point: int):
    def body(world: World, where: Path) -> Outcome:
        rng = random.Random(world.seed * 1000 + 200 + point)
        delay = rng.uniform(0.0, 3.0)
        out = where / "exported" / "tiny"
        args = ["export", "--run-dir", world.run, "--out", out, "-n", "5"]

        def ready() -> bool:
            return out.is_dir() and any(".tmp-" in p.name for p in out.iterdir())

        killed, first = run_and_kill(args, where, world.env, ready, delay)
        partial = [p.name for p in out.iterdir() if p.name.isdigit()] if out.is_dir() else []
        recovery = run(args, where, world.env)

        def same() -> str | None:
            # A version the killed run published (renamed before the kill) must be complete.
            for version in partial:
                if not (out / version / "assets.extra" / "export.json").is_file():
                    return f"the killed export published an incomplete version {version}"
            return _export_loads(world, out)

        return kill_outcome(
            world,
            K,
            f"export: killed {delay:.2f} s after staging appears, then re-run",
            killed,
            first,
            recovery,
            same,
            where,
        )

    return body


def _export_loads(world: World, out: Path) -> str | None:
    code = (
        "import sys, tfrs_recsys as tr; m = tr.load_exported(sys.argv[1]); "
        "a = m.recommend([sys.argv[2]], k=3)[0]; "
        "sys.exit(0 if len(a['items']) == 3 and a['known_user'] else 3)"
    )
    proc = run(["-c", code, out, "tec_0001"], out.parent, world.env, program=[python_command()])
    return (
        None
        if proc.returncode == 0
        else f"the export does not load/answer: {_last_exception(proc.stderr)}"
    )


for point in range(2):
    CASES.append(Case(K, f"export kill {point}", kill_export(point), needs=("run",), heavy=True))


def kill_compare(label: str, marker: str, base_delay: float, spread: float, point: int):
    def body(world: World, where: Path) -> Outcome:
        rng = random.Random(world.seed * 1000 + 300 + point)
        delay = base_delay + rng.uniform(0.0, spread)
        out = where / "comparison"

        def ready() -> bool:
            return (out / marker).exists()

        killed, first = run_and_kill(compare_args(world, out), where, world.env, ready, delay)
        recovery = run(compare_args(world, out, "--resume"), where, world.env)
        return kill_outcome(
            world,
            K,
            f"compare: {label} (+{delay:.2f} s), then --resume",
            killed,
            first,
            recovery,
            lambda: same_comparison(out, world.comparison),
            where,
        )

    return body


def same_comparison(out: Path, reference: Path | None) -> str | None:
    if reference is None:
        return "no uninterrupted comparison to compare with"
    try:
        got = json.loads((out / "comparison.json").read_text())["models"]
        want = json.loads((reference / "comparison.json").read_text())["models"]
    except (OSError, ValueError, KeyError) as exc:
        return f"no comparison.json ({exc})"
    if sorted(got) != sorted(want):
        return f"models {sorted(got)} vs {sorted(want)}"
    for model, figures in want.items():
        for key in ("recall@10", "ndcg@10", "recall@50", "coverage@10"):
            if key in figures and got[model].get(key) != figures[key]:
                return f"{model} {key} {got[model].get(key)} vs uninterrupted {figures[key]}"
    return None


for point, (label, marker, base, spread) in enumerate(
    [
        ("killed once popularity's result is written", "models/popularity.json", 0.0, 1.0),
        (
            "killed mid-training of retrieval_ids",
            "runs/retrieval_ids/checkpoints/checkpoint",
            0.0,
            0.5,
        ),
    ]
):
    CASES.append(
        Case(
            K,
            f"compare {label}",
            kill_compare(label, marker, base, spread, point),
            needs=("comparison",),
            heavy=True,
        )
    )


# --- evaluate -----------------------------------------------------------------------------------------

E = "evaluate"


def run_copy(edit: Callable[[Path], None]):
    def prepare(world: World, where: Path) -> None:
        shutil.copytree(world.run, where / "run")
        edit(where / "run")

    return prepare


def _rm(relative: str) -> Callable[[Path], None]:
    def edit(run_dir: Path) -> None:
        path = run_dir / relative
        shutil.rmtree(path) if path.is_dir() else path.unlink()

    return edit


def _put(relative: str, content: bytes) -> Callable[[Path], None]:
    def edit(run_dir: Path) -> None:
        (run_dir / relative).write_bytes(content)

    return edit


def _truncate(relative: str) -> Callable[[Path], None]:
    def edit(run_dir: Path) -> None:
        path = run_dir / relative
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])

    return edit


def _retarget(run_dir: Path) -> None:
    path = run_dir / "config.toml"
    text = re.sub(r'source = ".*"', 'source = "/nonexistent/data"', path.read_text())
    path.write_text(text)


def _same_metrics_as_run(proc: Proc) -> str | None:
    """the run's own holdout metrics"""
    run_dir = Path(proc.command[proc.command.index("--run-dir") + 1])
    want = _holdout(run_dir)
    try:
        got = json.loads(proc.stdout)["metrics"]
    except (ValueError, KeyError) as exc:
        return f"no JSON result ({exc})"
    if want is None:
        return None
    if any(abs(got[k] - want[k]) > 1e-9 for k in ("recall@10", "ndcg@10")):
        return f"recall@10 {got['recall@10']} vs metrics.json {want['recall@10']}"
    return None


cli_case(
    E,
    "valid run",
    ["evaluate", "--run-dir", "{run}", "--json"],
    expect="ok",
    check=_same_metrics_as_run,
    needs=("run",),
)
cli_case(E, "--run-dir missing", ["evaluate", "--run-dir", "{case}/nope"])
for label, edit in [
    ("config.toml binary", _put("config.toml", binary_bytes())),
    ("best/ removed", _rm("best")),
    ("refit weights truncated", _truncate("refit/weights.data-00000-of-00001")),
    ("metrics.json garbage", _put("metrics.json", b"{not json")),
    ("dataset gone", _retarget),
]:
    expect = "either" if label == "metrics.json garbage" else "error"
    cli_case(
        E,
        f"run with {label}",
        ["evaluate", "--run-dir", "{case}/run", "--json"],
        expect=expect,
        prepare=run_copy(edit),
        check=_same_metrics_as_run,
        needs=("run",),
    )


def _only_config(world: World, where: Path) -> None:
    (where / "run").mkdir()
    shutil.copy(world.run / "config.toml", where / "run" / "config.toml")


cli_case(
    E,
    "run killed before its first checkpoint",
    ["evaluate", "--run-dir", "{case}/run"],
    prepare=_only_config,
    needs=("run",),
)


# --- export -------------------------------------------------------------------------------------------

X = "export"


def export_case(
    name: str,
    extra: Sequence[str],
    *,
    run_dir="{run}",
    out="{case}/exported/m",
    prepare=None,
    fsize=None,
    expect="error",
) -> None:
    def prepare_all(world: World, where: Path) -> None:
        if prepare is not None:
            prepare(world, where)

    cli_case(
        X,
        name,
        ["export", "--run-dir", run_dir, "--out", out, *extra],
        expect=expect,
        prepare=prepare_all,
        fresh=out,
        fsize=fsize,
        needs=("run",),
    )


export_case("--run-dir missing", [], run_dir="{case}/nope")
export_case("--run-dir without weights", [], run_dir="{case}/run", prepare=run_copy(_rm("refit")))
export_case("--out an existing file", [], out="{case}/f", prepare=file_at("f"))
export_case("-n 0", ["-n", "0"])
export_case("-n -1", ["-n", "-1"])
export_case("--index bogus", ["--index", "bogus"])
export_case("--cold-start-text on a bag-of-words run", ["--cold-start-text"])
export_case("full disk (RLIMIT_FSIZE 8 KB)", [], fsize=FULL)
export_case(f"a full {TMPFS_KB} KB tmpfs (ENOSPC)", [], out="{case}/tiny/m", prepare=tiny_tmpfs)
export_case(
    "read-only parent" + (f" ({READ_ONLY_NOTE}: EFBIG)" if is_root() else ""),
    [],
    out="{case}/ro/m",
    prepare=read_only_dir,
    fsize=FULL if is_root() else None,
)


# --- recommend (command line) ---------------------------------------------------------------------

R = "recommend"


def _recommended(count: int, known: bool | None = None) -> Callable[[Proc], str | None]:
    def check(proc: Proc) -> str | None:
        try:
            users = json.loads(proc.stdout)["users"]
        except (ValueError, KeyError) as exc:
            return f"no JSON answer ({exc})"
        for user in users:
            scores = [item["score"] for item in user["items"]]
            if len(scores) != count or not all(math.isfinite(s) for s in scores):
                return f"{user['user_id'][:20]!r}: {len(scores)} items, scores {scores[:3]}"
            if known is not None and user["known_user"] != known:
                return f"known_user {user['known_user']}"
        return None

    check.__doc__ = f"{count} items with finite scores"
    return check


for label, user, known in [
    ("known user", "tec_0001", True),
    ("unknown user", "nobody", False),
    ("unicode id", "ünïcødé-用户-🙂", False),
]:
    cli_case(
        R,
        label,
        ["recommend", "--model", "{export}", "--user", user, "-n", "3", "--json"],
        expect="ok",
        check=_recommended(3, known),
        needs=("export",),
    )
cli_case(
    R,
    "-n 1000 (more than the catalog)",
    ["recommend", "--model", "{export}", "--user", "tec_0001", "-n", "1000", "--json"],
    expect="either",
    needs=("export",),
)
for label, extra in [
    ("-n 0", ["--user", "tec_0001", "-n", "0"]),
    ("-n -3", ["--user", "tec_0001", "-n", "-3"]),
    ("no --user", []),
    ("--version 99", ["--user", "tec_0001", "--version", "99"]),
]:
    cli_case(R, label, ["recommend", "--model", "{export}", *extra], needs=("export",))
cli_case(R, "--model missing", ["recommend", "--model", "{case}/nope", "--user", "a"])
cli_case(
    R, "--model a file", ["recommend", "--model", "{case}/f", "--user", "a"], prepare=file_at("f")
)


def export_copy(edit: Callable[[Path], None]):
    def prepare(world: World, where: Path) -> None:
        shutil.copytree(world.export, where / "m")
        versions = sorted((where / "m").iterdir(), key=lambda p: p.name)
        edit([p for p in versions if p.name.isdigit()][-1])

    return prepare


for label, edit in [
    ("saved_model.pb garbage", _put("saved_model.pb", binary_bytes())),
    ("items.json removed", _rm("assets.extra/items.json")),
]:
    cli_case(
        R,
        f"export with {label}",
        ["recommend", "--model", "{case}/m", "--user", "tec_0001"],
        prepare=export_copy(edit),
        needs=("export",),
    )


# --- serving: odd requests through the Python API of the export ----------------------------------

PROBE = r"""
import csv, json, math, sys
import numpy as np
import tfrs_recsys as tr  # first: it routes tf.keras to Keras 2
import tensorflow as tf
from tfrs_recsys.errors import RecsysError

model_dir, data_dir = sys.argv[1], sys.argv[2]
model = tr.load_exported(model_dir)
raw = tf.saved_model.load(str(model.path))
users = list(csv.DictReader(open(f"{data_dir}/users.csv", encoding="utf-8")))
items = list(csv.DictReader(open(f"{data_dir}/items.csv", encoding="utf-8")))
known = users[0]["user_id"]
catalog = {row["item_id"] for row in items}
results = []

def specs(name):
    if name not in raw.signatures:
        return None
    return raw.signatures[name].structured_input_signature[1]

def record(name, call, check=None, expect="ok"):
    try:
        value = call()
    except RecsysError as exc:
        text = str(exc)
        verdict = "clean" if text and "\n" not in text.strip() else "traceback"
        if expect == "ok":
            verdict, text = "wrong", "valid request refused: " + text
        results.append({"name": name, "verdict": verdict, "detail": text[:300]})
        return
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        results.append({"name": name, "verdict": "traceback",
                        "detail": f"{type(exc).__name__}: {first[:250]}"})
        return
    problem = check(value) if check else None
    if problem is None and expect == "error":
        problem = "accepted"
    results.append({"name": name, "verdict": "wrong" if problem else "ok",
                    "detail": problem or "answered correctly"})

def lists_ok(count=None, nonempty=True):
    def check(lists):
        for row in lists:
            scores = [item["score"] for item in row]
            if nonempty and not row:
                return "an empty item list"
            if count is not None and len(row) != count:
                return f"{len(row)} items, expected {count}"
            if not all(math.isfinite(s) for s in scores):
                return f"non-finite scores {scores[:3]}"
            if any(item["item_id"] not in catalog for item in row):
                return "an item id outside the catalog"
        return None
    return check

def rec(ids, k):
    return [answer["items"] for answer in model.recommend(ids, k=k)]

for label, user in [("known user", known), ("unknown user", "nobody"), ("empty id", ""),
                    ("unicode id", "ünïcødé-用户-🙂"), ("1 MB id", "x" * 1_000_000),
                    ("id with NUL", "a\x00b"), ("id with newline", "a\nb")]:
    record(f"recommend: {label}", lambda u=user: rec([u], 5), lists_ok(5))
record("recommend: 1000 users at once", lambda: rec([f"u{i}" for i in range(1000)], 3), lists_ok(3))
record("recommend: no users", lambda: rec([], 5), lambda v: None if v == [] else f"{v!r}"[:80],
       expect="either")
record("recommend: k=0", lambda: rec([known], 0), lambda v: None if v == [[]] else f"{len(v[0])} items",
       expect="either")
record("recommend: k=-1", lambda: rec([known], -1),
       lambda v: None if v == [[]] else f"negative k returned {len(v[0])} items", expect="either")
record("recommend: k=10**6", lambda: rec([known], 10**6), lists_ok(None), expect="either")
record("recommend: k=2**31", lambda: rec([known], 2**31), lists_ok(None), expect="either")
record("recommend: k=nan", lambda: rec([known], float("nan")), lists_ok(None), expect="error")
record("recommend: k='5'", lambda: rec([known], "5"), lists_ok(5), expect="either")

features = specs("recommend_from_features")
if features is not None:
    row = users[0]
    def base_columns():
        return {c: [row.get(c, "")] for c in features}
    numeric = [c for c, s in features.items() if s.dtype != tf.string]
    def rff(k=None, **change):
        cols = base_columns()
        cols.update(change)
        return model.recommend_from_features(k=k, **cols)
    record("from_features: valid", lambda: rff(), lists_ok(None))
    for column in numeric:
        for label, value in [("nan", float("nan")), ("inf", float("inf")), ("-inf", float("-inf")),
                             ("1e39 (inf in float32)", 1e39), ("None", None)]:
            record(f"from_features: {column}={label}", lambda c=column, v=value: rff(**{c: [v]}),
                   lists_ok(None))
        record(f"from_features: {column}='abc'", lambda c=column: rff(**{c: ["abc"]}), expect="error")
        def agree(c=column):
            answers = [[i["item_id"] for i in rff(**{c: [v]})[0]]
                       for v in (float("nan"), float("inf"), float("-inf"))]
            return answers
        record(f"from_features: {column} nan, inf, -inf answer alike (missing)", agree,
               lambda a: None if a[0] and a[0] == a[1] == a[2] else f"answers differ: {a}")
    strings = [c for c, s in features.items() if s.dtype == tf.string]
    for column in strings:
        record(f"from_features: unseen {column}", lambda c=column: rff(**{c: ["zzz-unseen"]}), lists_ok(None))
    record("from_features: missing column", lambda: model.recommend_from_features(), expect="error")
    record("from_features: unknown column", lambda: rff(shoe_size=[42]), expect="error")
    if len(features) > 1:
        first = next(iter(features))
        record("from_features: columns of different lengths",
               lambda: rff(**{first: base_columns()[first] * 2}), expect="error")
    record("from_features: k=0", lambda: rff(k=0), lambda v: None if v == [[]] else f"{v}"[:80], expect="either")
    record("from_features: k=-1", lambda: rff(k=-1), expect="error")
    record("from_features: k past -n", lambda: rff(k=10**6), expect="error")
    record("from_features: empty batch",
           lambda: model.recommend_from_features(**{c: [] for c in features}),
           lambda v: None if v == [] else f"{v}"[:80], expect="either")

item_specs = specs("score_items")
if item_specs is not None:
    item = items[0]
    item_columns = [c for c in item_specs if c != "user_id"]
    item_numeric = [c for c in item_columns if item_specs[c].dtype != tf.string]
    def score(user_ids=(known,), **change):
        cols = {c: [item.get(c, "")] for c in item_columns}
        cols.update(change)
        return model.score_items(list(user_ids), **cols).scores
    def finite(shape):
        def check(scores):
            if tuple(scores.shape) != shape:
                return f"shape {scores.shape}"
            return None if np.isfinite(scores).all() else f"non-finite scores {scores.ravel()[:3]}"
        return check
    record("score_items: valid", lambda: score(), finite((1, 1)))
    record("score_items: new item id", lambda: score(item_id=["item_new"]), finite((1, 1)))
    record("score_items: unicode item id", lambda: score(item_id=["ünïcødé-🙂"]), finite((1, 1)))
    record("score_items: unknown user", lambda: score(("nobody",)), finite((1, 1)))
    for column in item_numeric:
        for label, value in [("nan", float("nan")), ("inf", float("inf")), ("-inf", float("-inf")),
                             ("-5 (log1p undefined)", -5.0), ("None", None)]:
            record(f"score_items: {column}={label}", lambda c=column, v=value: score(**{c: [v]}),
                   finite((1, 1)))
    record("score_items: no users", lambda: score(()), finite((0, 1)), expect="either")
    record("score_items: no items", lambda: score(**{c: [] for c in item_columns}), finite((1, 0)),
           expect="either")
    record("score_items: columns of different lengths",
           lambda: score(item_id=["a", "b"]), expect="error")
    record("score_items: a column missing",
           lambda: model.score_items([known], item_id=["item_0001"]) if len(item_columns) > 1
           else model.score_items([known]), expect="error")
    record("score_items: user_id as a column", lambda: score(user_id=["x"]), expect="error")

print(json.dumps(results))
"""


def serving_cases(world: World, where: Path) -> list[Outcome]:
    program = [python_command(), "-c", PROBE]
    proc = run([world.export, world.data], where, world.env, program=program)
    command = (
        f"python -c PROBE $W/{world.export.relative_to(world.root)} (tfrs_recsys.load_exported)"
    )
    try:
        answers = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return [
            Outcome(
                "serving",
                "load_exported and the requests",
                "traceback",
                command,
                _last_exception(proc.stderr),
                proc.seconds,
            )
        ]
    share = proc.seconds / max(1, len(answers))
    return [
        Outcome("serving", a["name"], a["verdict"], command, a["detail"], share) for a in answers
    ]


CASES.append(Case("serving", "requests", serving_cases, needs=("export",), heavy=True))


# --- compare ------------------------------------------------------------------------------------------

C = "compare"


def compare_case(
    name: str,
    *,
    extra: Sequence[str] = (),
    models="popularity,retrieval_ids",
    data="{data}",
    out="{case}/out",
    prepare=None,
    expect="error",
    fsize=None,
    sets: Sequence[str] = COMPARE_SETS,
    needs=(),
    check=None,
) -> None:
    set_args = [part for item in sets for part in ("--set", item)]
    cli_case(
        C,
        name,
        ["compare", "--data", data, "--models", models, "--out", out, *set_args, *extra],
        expect=expect,
        prepare=prepare,
        fresh=out,
        fsize=fsize,
        needs=needs,
        check=check,
        resumable="settings.json",
    )


compare_case("--models bogus", models="popularity,bogus")
compare_case("--data missing", data="{case}/nope")
compare_case("--data a bad dataset", data="{case}/data", prepare=corrupt(M, set_cell(2, 1, b"yes")))
compare_case("--out an existing file", out="{case}/f", prepare=file_at("f"))
compare_case("--set train.seed=-1 (checked before training)", sets=[*COMPARE_SETS, "train.seed=-1"])
compare_case(
    "--config-dir with a broken TOML",
    extra=["--config-dir", "{case}/cfg"],
    prepare=lambda w, c: (
        (c / "cfg").mkdir(),
        (c / "cfg" / "tech_ids.toml").write_text("[train\n"),
    ),
)
compare_case(
    "--json under a file",
    extra=["--json", "{case}/f/x.json"],
    prepare=file_at("f"),
    models="popularity",
)
compare_case(
    "--out holds another comparison",
    out="{case}/out",
    models="popularity",
    prepare=lambda w, c: shutil.copytree(w.comparison, c / "out"),
    needs=("comparison",),
)
compare_case("full disk (RLIMIT_FSIZE 8 KB)", models="popularity,ease", fsize=FULL)


def _popularity_only(proc: Proc) -> str | None:
    """comparison.json with popularity's figures"""
    out = Path(proc.command[proc.command.index("--out") + 1])
    try:
        figures = json.loads((out / "comparison.json").read_text())["models"]["popularity"]
    except (OSError, ValueError, KeyError) as exc:
        return f"no comparison.json ({exc})"
    return None if math.isfinite(figures["recall@10"]) else "non-finite recall@10"


compare_case(
    "peers only (no TFRS model)", models="popularity,ease", expect="ok", check=_popularity_only
)


# --- Running the battery --------------------------------------------------------------------------


def run_case(world: World, item: Case) -> list[Outcome]:
    missing = [n for n in item.needs if getattr(world, n) is None]
    if missing:
        return [Outcome(item.kind, item.name, "skipped", "", f"setup failed: no {missing[0]}", 0.0)]
    where = world.case_dir(f"{item.kind}-{item.name}")
    try:
        result = item.body(world, where)
    except Skipped as exc:
        return [Outcome(item.kind, item.name, "skipped", "", str(exc), 0.0)]
    except Exception as exc:  # a bug of the battery, not of the package
        return [Outcome(item.kind, item.name, "error", "", f"battery error: {exc!r}", 0.0)]
    finally:
        unmount_under(where)
        for path in [where, *where.rglob("*")]:
            if path.is_dir() and not os.access(path, os.W_OK):
                os.chmod(path, 0o755)
    result = result if isinstance(result, list) else [result]
    with world.lock:
        world.done += 1
        for o in result:
            print(
                f"[{world.done}] {o.kind}: {o.name[:60]} -> {o.verdict} ({o.seconds:.0f} s)",
                file=sys.stderr,
                flush=True,
            )
    return result


def machine() -> str:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    except OSError:
        commit, dirty = "?", ""
    return (
        f"{platform.node()}, {platform.platform()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, uid {os.geteuid()}, "
        f"commit {commit}{' + uncommitted changes' if dirty else ''}"
    )


def print_tables(outcomes: list[Outcome], header: Sequence[str]) -> None:
    for line in header:
        print(line)
    for kind in KINDS:
        rows = [o for o in outcomes if o.kind == kind]
        if not rows:
            continue
        counts = {v: sum(o.verdict == v for o in rows) for v in (*VERDICTS, "skipped", "error")}
        summary = ", ".join(f"{v} {n}" for v, n in counts.items() if n)
        print(f"\n## {kind} ({len(rows)} cases: {summary})\n")
        print("| verdict | case | detail | s |")
        print("|---|---|---|---:|")
        for o in rows:
            detail = o.detail.replace("|", "/").replace("\n", " ")[:160]
            print(f"| {o.verdict} | {o.name} | {detail} | {o.seconds:.0f} |")
    counted = [o for o in outcomes if o.verdict in VERDICTS]
    print("\n## Totals\n")
    print("| " + " | ".join(VERDICTS) + " | cases |")
    print("|" + "---:|" * (len(VERDICTS) + 1))
    print(
        "| "
        + " | ".join(str(sum(o.verdict == v for o in counted)) for v in VERDICTS)
        + f" | {len(counted)} |"
    )
    other = [o for o in outcomes if o.verdict not in VERDICTS]
    if other:
        print(
            f"\nnot classified: {len(other)} ("
            + "; ".join(f"{o.name}: {o.detail}" for o in other[:5])
            + ")"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, default=None, help="also write the outcomes here")
    parser.add_argument("--jobs", type=int, default=2, help="cases run at once (default 2)")
    parser.add_argument("--only", default="", help="comma-separated kinds to run (default all)")
    parser.add_argument("--match", default="", help="only cases whose name contains this")
    parser.add_argument("--seed", type=int, default=12, help="seed of the kill delays")
    parser.add_argument("--offline", action="store_true", help="skip cases that download")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    args = parser.parse_args(argv)
    cases = CASES + ([] if args.offline else NETWORK_CASES)
    if args.only:
        kinds = set(args.only.split(","))
        unknown = kinds - set(KINDS)
        if unknown:
            parser.error(f"unknown kinds {sorted(unknown)}; choose from {', '.join(KINDS)}")
        cases = [c for c in cases if c.kind in kinds]
    if args.match:
        cases = [c for c in cases if args.match in c.name]
    if args.list:
        for c in cases:
            print(f"{c.kind}: {c.name}")
        print(f"{len(cases)} entries (serving expands into its requests)")
        return 0
    started = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="hostile-cases-"))
    header = [
        "# Hostile-user battery",
        "",
        "command: "
        + " ".join(
            [
                Path(sys.argv[0]).name if sys.argv else "hostile_cases.py",
                *(argv if argv is not None else sys.argv[1:]),
            ]
        ),
        f"machine: {machine()}",
        f"started: {datetime.datetime.now().isoformat(timespec='seconds')}, work dir {root}",
    ]
    print("\n".join(header), flush=True)
    try:
        world = build_world(root, args.seed, {n for c in cases for n in c.needs})
        ordered = sorted(cases, key=lambda c: not c.heavy)
        with ThreadPoolExecutor(max(1, args.jobs)) as pool:
            results = list(pool.map(lambda c: run_case(world, c), ordered))
        order = {id(c): n for n, c in enumerate(cases)}
        outcomes = list(world.setup)
        for c, result in sorted(zip(ordered, results), key=lambda pair: order[id(pair[0])]):
            outcomes.extend(result)
    finally:
        if not args.keep:
            for path in [root, *root.rglob("*")]:
                if path.is_dir() and not os.access(path, os.W_OK):
                    os.chmod(path, 0o755)
            shutil.rmtree(root, ignore_errors=True)
    seconds = time.perf_counter() - started
    header.append(f"wall time: {seconds / 60:.1f} min")
    print_tables(outcomes, header[-1:])
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {
                    "command": header[2].removeprefix("command: "),
                    "machine": machine(),
                    "seconds": round(seconds, 1),
                    "totals": {v: sum(o.verdict == v for o in outcomes) for v in VERDICTS},
                    "cases": [dataclasses.asdict(o) for o in outcomes],
                },
                indent=2,
                ensure_ascii=False,
            )
            + "\n",
            encoding="utf-8",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
