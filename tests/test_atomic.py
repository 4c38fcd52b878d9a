"""tfrs_recsys.atomic: staging names carry the pid, and the staging of dead processes is
removed (or, for the backup of a replaced directory, restored) before the next write."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest

from tfrs_recsys import atomic
from tfrs_recsys.atomic import (
    atomic_directory,
    file_lock,
    remove_stale_staging,
    scratch_directory,
    staging_path,
    staging_target,
    write_text_atomic,
)
from tfrs_recsys.errors import ConfigError


@pytest.fixture(scope="module")
def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    process = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                             capture_output=True, text=True, check=True)  # fmt: skip
    pid = int(process.stdout)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    return pid


def _stale(parent, name, pid, *, tag="", directory=True):
    path = parent / f".{name}.tmp-{pid}-{tag}{'-' if tag else ''}{uuid.uuid4().hex[:12]}"
    if directory:
        path.mkdir()
        (path / "half-written.csv").write_text("user_id,item_id\nu1,")
    else:
        path.write_text("half")
    return path


def test_staging_path_is_hidden_and_names_the_target_and_our_pid(tmp_path):
    path = staging_path(tmp_path / "data.csv")
    assert path.parent == tmp_path
    assert path.name.startswith(f".data.csv.tmp-{os.getpid()}-")
    assert staging_path(tmp_path / "data.csv") != path


def test_staging_target_maps_a_staging_component_back_to_its_output(tmp_path):
    staging = staging_path(tmp_path / "ds")
    assert staging_target(staging / "users.csv") == tmp_path / "ds" / "users.csv"
    assert staging_target(tmp_path / ".hidden" / "x") == tmp_path / ".hidden" / "x"


def test_remove_stale_staging_removes_only_dead_processes_staging(tmp_path, dead_pid):
    dead = _stale(tmp_path, "ds", dead_pid)
    dead_file = _stale(tmp_path, "ds", dead_pid, directory=False)
    live = _stale(tmp_path, "ds", os.getppid())
    ours = _stale(tmp_path, "ds", os.getpid())
    other_target = _stale(tmp_path, "other", dead_pid)
    no_pid = tmp_path / ".ds.tmp-abcdef012345"  # the names of older versions: kept
    no_pid.mkdir()
    removed = remove_stale_staging(tmp_path / "ds")
    assert sorted(removed) == sorted([dead, dead_file])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        p.name for p in (live, ours, other_target, no_pid)
    )


def test_remove_stale_staging_of_a_missing_folder_is_a_no_op(tmp_path):
    assert remove_stale_staging(tmp_path / "missing" / "ds") == []


def test_a_backup_of_a_killed_replace_comes_back_when_the_target_is_gone(tmp_path, dead_pid):
    # Killed between the two renames of replace_directory: the old output is only in the backup.
    backup = _stale(tmp_path, "ds", dead_pid, tag="old")
    assert remove_stale_staging(tmp_path / "ds") == [backup]
    assert (tmp_path / "ds" / "half-written.csv").is_file()
    assert not backup.exists()


def test_a_backup_is_removed_when_the_target_is_there(tmp_path, dead_pid):
    (tmp_path / "ds").mkdir()
    backup = _stale(tmp_path, "ds", dead_pid, tag="old")
    assert remove_stale_staging(tmp_path / "ds") == [backup]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_atomic_directory_clears_stale_staging_first(tmp_path, dead_pid):
    dead = _stale(tmp_path, "ds", dead_pid)
    live = _stale(tmp_path, "ds", os.getppid())
    with atomic_directory(tmp_path / "ds") as staging:
        assert staging.name.startswith(f".ds.tmp-{os.getpid()}-")
        assert not dead.exists()
        (staging / "a.txt").write_text("a")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["ds", live.name])


def test_atomic_directory_replaces_through_a_pid_tagged_backup(tmp_path, monkeypatch):
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "old.txt").write_text("old")
    renames = []
    real_rename = os.rename
    monkeypatch.setattr(
        atomic.os, "rename", lambda a, b: renames.append((a, b)) or real_rename(a, b)
    )
    with atomic_directory(tmp_path / "ds", overwrite=True) as staging:
        (staging / "new.txt").write_text("new")
    assert [p.name for p in (tmp_path / "ds").iterdir()] == ["new.txt"]
    backup = renames[0][1]
    assert backup.name.startswith(f".ds.tmp-{os.getpid()}-old-")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_atomic_directory_refuses_a_non_empty_target_before_writing(tmp_path):
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "keep.txt").write_text("keep")
    with pytest.raises(ConfigError, match="--force"):
        with atomic_directory(tmp_path / "ds"):
            pass  # pragma: no cover - not reached
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_write_text_atomic_clears_stale_staging_of_that_file(tmp_path, dead_pid):
    dead = _stale(tmp_path, "metrics.json", dead_pid, directory=False)
    live = _stale(tmp_path, "metrics.json", os.getppid(), directory=False)
    write_text_atomic(tmp_path / "metrics.json", "{}\n")
    assert (tmp_path / "metrics.json").read_text() == "{}\n"
    assert not dead.exists() and live.exists()


def test_scratch_directory_is_staging_and_is_removed_after(tmp_path, dead_pid):
    (tmp_path / "cache").mkdir()
    dead = _stale(tmp_path / "cache", "ml", dead_pid)
    with scratch_directory(tmp_path / "cache" / "ml") as scratch:
        assert scratch.name.startswith(f".ml.tmp-{os.getpid()}-")
        assert not dead.exists()
        (scratch / "x.whl").write_bytes(b"x")
    assert list((tmp_path / "cache").iterdir()) == []


def test_a_killed_writer_leaves_staging_that_the_next_write_removes(tmp_path):
    code = (
        "import os, sys\n"
        "from tfrs_recsys.atomic import atomic_directory\n"
        "with atomic_directory(sys.argv[1]) as staging:\n"
        "    (staging / 'part.csv').write_text('x')\n"
        "    os._exit(9)  # as killed: no clean-up runs\n"
    )
    target = tmp_path / "ds"
    result = subprocess.run([sys.executable, "-c", code, str(target)], check=False, timeout=120)
    assert result.returncode == 9
    (left,) = tmp_path.iterdir()
    assert left.name.startswith(".ds.tmp-")
    with atomic_directory(target) as staging:
        (staging / "part.csv").write_text("y")
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]


# --- file_lock ------------------------------------------------------------------------------


def test_file_lock_makes_the_second_holder_wait(tmp_path):
    import threading

    lock = tmp_path / "cache" / ".lock"  # its directory is created
    events: list[str] = []

    def second() -> None:
        with file_lock(lock):
            events.append("second holds")

    with file_lock(lock):
        thread = threading.Thread(target=second)
        thread.start()
        thread.join(0.5)  # the second call opens the file anew: it must wait
        events.append("first releases")
    thread.join(10)
    assert not thread.is_alive()
    assert events == ["first releases", "second holds"]


def test_file_lock_of_a_killed_holder_is_released(tmp_path):
    import signal

    lock = tmp_path / ".lock"
    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from tfrs_recsys.atomic import file_lock\n"
        "with file_lock(Path(sys.argv[1])):\n"
        "    print('held', flush=True)\n"
        "    time.sleep(600)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(lock)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(60)
        with file_lock(lock):  # would block for 600 s if the lock outlived its holder
            pass
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(60)
