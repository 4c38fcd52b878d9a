"""Failures of the machine (read-only or full file systems, no memory) are one line naming
the path and what to do, exit status 2, with nothing half-written left behind: the error
boundary of the command line (tfrs_recsys.cli.main) and tfrs_recsys.os_errors."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tfrs_recsys import atomic, cli, os_errors
from tfrs_recsys.data import fetch, techproducts

REPO = Path(__file__).resolve().parents[1]
IS_ROOT = os.geteuid() == 0


@pytest.fixture(autouse=True)
def _quiet_tensorflow(monkeypatch):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")


def _one_error_line(capsys) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("tfrs-recsys: error: ")
    return lines[0]


def _generate(out: Path, *extra: str) -> int:
    return cli.main(["generate-data", "--out", str(out), "--users", "50", "--items", "20", *extra])


# --- describe(): one line for each kind of failure --------------------------------------------


@pytest.mark.parametrize(
    ("exc", "words"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), ("no space left", "ENOSPC")),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), ("quota", "EDQUOT")),
        (OSError(errno.EFBIG, "File too large"), ("too large", "EFBIG")),
        (OSError(errno.EROFS, "Read-only file system"), ("read-only", "EROFS")),
        (PermissionError(errno.EACCES, "Permission denied"), ("permission denied", "EACCES")),
        (PermissionError(errno.EPERM, "Operation not permitted"), ("not permitted", "EPERM")),
        (NotADirectoryError(errno.ENOTDIR, "Not a directory"), ("not a directory", "ENOTDIR")),
        (IsADirectoryError(errno.EISDIR, "Is a directory"), ("is a directory", "EISDIR")),
        (FileExistsError(errno.EEXIST, "File exists"), ("already exists", "EEXIST")),
        (OSError(errno.ENAMETOOLONG, "File name too long"), ("too long", "ENAMETOOLONG")),
    ],
)
def test_each_os_error_is_one_line_naming_the_output_and_what_to_do(exc, words):
    line = os_errors.describe(exc, "runs/r1")
    assert line.startswith("runs/r1: ")
    assert all(word in line for word in words)
    assert "run the command again" in line and "\n" not in line


def test_a_path_inside_a_staging_directory_is_named_as_the_output(tmp_path):
    staging = atomic.staging_path(tmp_path / "ds")
    exc = OSError(errno.ENOSPC, "No space left on device", str(staging / "users.csv"))
    assert os_errors.describe(exc, tmp_path / "ds").startswith(f"{tmp_path / 'ds'}: no space")
    # Outside the command's output the failing path itself is named (staging resolved).
    assert os_errors.describe(exc, tmp_path / "elsewhere").startswith(
        f"{tmp_path / 'ds' / 'users.csv'}: no space"
    )


def test_memory_error_says_it_was_too_large_for_memory():
    line = os_errors.describe(MemoryError("Unable to allocate 7.45 TiB"), None)
    assert "not enough memory" in line and "7.45 TiB" in line and "smaller" in line


def test_other_exceptions_are_not_described():
    assert os_errors.describe(ValueError("a bug"), "out") is None
    assert os_errors.describe(KeyError("x"), "out") is None


@pytest.fixture(scope="module")
def tf():
    import tensorflow as tf

    return tf


@pytest.mark.parametrize(
    ("error", "message", "words"),
    [
        (
            "ResourceExhaustedError",
            "{{function_node __wrapped__SaveV2}} runs/r1/best/weights_temp/part-00000.tempstate5; "
            "No space left on device [Op:SaveV2]",
            ("runs/r1: no space left", "ENOSPC"),
        ),
        (
            "PermissionDeniedError",
            "elsewhere/x/saved_model.pb.tmp9; Permission denied",
            ("elsewhere/x/saved_model.pb.tmp9: permission denied", "EACCES"),
        ),
        (
            "FailedPreconditionError",
            "runs/r1/checkpoints; Read-only file system",
            ("runs/r1: read-only", "EROFS"),
        ),
        (
            "ResourceExhaustedError",
            "OOM when allocating tensor with shape[100000000,1000]",
            ("not enough memory",),
        ),
    ],
)
def test_tensorflow_errors_carrying_an_os_error_are_one_line(tf, error, message, words):
    exc = getattr(tf.errors, error)(None, None, message)
    line = os_errors.describe(exc, "runs/r1")
    assert all(word in line for word in words), line


def test_a_tensorflow_error_without_an_os_error_is_not_described(tf):
    exc = tf.errors.InvalidArgumentError(None, None, "indices[3] = 7 is not in [0, 5)")
    assert os_errors.describe(exc, "runs/r1") is None


def test_a_real_checkpoint_write_over_the_file_size_limit_is_described(tmp_path):
    """TensorFlow's own message for a write beyond RLIMIT_FSIZE (EFBIG), as it comes."""
    code = (
        "import resource, sys\n"
        "import tfrs_recsys, tensorflow as tf\n"
        "from tfrs_recsys.os_errors import describe\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, resource.RLIM_INFINITY))\n"
        "checkpoint = tf.train.Checkpoint(v=tf.Variable(tf.zeros([100_000])))\n"
        "try:\n"
        "    checkpoint.write(sys.argv[1] + '/ckpt')\n"
        "except Exception as exc:\n"
        "    print(describe(exc, sys.argv[1]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "run")],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().startswith(f"{tmp_path / 'run'}: file too large"), result.stdout
    assert "EFBIG" in result.stdout


# --- The command line: generate-data ------------------------------------------------------------


def test_generate_onto_a_full_disk_is_one_line_and_leaves_nothing(tmp_path, capsys, monkeypatch):
    def full(path, data, chunk):
        with open(path, "wb") as handle:
            handle.write(b"user_id,item_0001\n")
        raise OSError(errno.ENOSPC, "No space left on device")  # as a write() fails

    monkeypatch.setattr(techproducts, "_write_wide_matrix", full)
    out = tmp_path / "ds"
    assert _generate(out) == 2
    line = _one_error_line(capsys)
    assert line.startswith(f"tfrs-recsys: error: {out}: no space left on the device (ENOSPC)")
    assert list(tmp_path.iterdir()) == []  # no .ds.tmp-* either


def test_generate_into_a_read_only_directory_is_one_line(tmp_path, capsys, monkeypatch):
    parent = tmp_path / "ro"
    parent.mkdir()
    if IS_ROOT:
        # chmod does not stop root: fail the first write of the command as a read-only
        # directory does (the staging directory is made with os.mkdir).
        def read_only(path, *args, **kwargs):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))

        monkeypatch.setattr(atomic.os, "mkdir", read_only)
    else:
        parent.chmod(0o555)
    try:
        assert _generate(parent / "ds") == 2
    finally:
        parent.chmod(0o755)
    line = _one_error_line(capsys)
    assert line.startswith(f"tfrs-recsys: error: {parent / 'ds'}: permission denied (EACCES)")
    assert "write to" in line
    assert list(parent.iterdir()) == []


def test_generate_beyond_the_file_size_limit_is_one_line_and_leaves_nothing(tmp_path):
    """A real size-limited write (RLIMIT_FSIZE gives EFBIG), in a subprocess."""
    code = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (16 * 1024, resource.RLIM_INFINITY))\n"
        "from tfrs_recsys.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    out = tmp_path / "ds"
    result = subprocess.run(
        [sys.executable, "-c", code, "generate-data", "--out", str(out), "--users", "400"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        cwd=REPO,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [
        f"tfrs-recsys: error: {out}: file too large for the file system or the file size limit "
        "(ulimit -f) (EFBIG); free some space there (or raise the limit) or write somewhere "
        "else, then run the command again"
    ]
    assert list(tmp_path.iterdir()) == []


def test_verbose_keeps_the_traceback(tmp_path, capsys, monkeypatch):
    def full(path, data, chunk):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(techproducts, "_write_wide_matrix", full)
    code = cli.main(["-v", "generate-data", "--out", str(tmp_path / "ds"), "--users", "50"])
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback (most recent call last)" in err and "OSError: [Errno 28]" in err
    assert err.rstrip().splitlines()[-1].startswith("tfrs-recsys: error: ")


def test_memory_error_of_a_command_is_one_line(tmp_path, capsys, monkeypatch):
    def too_big(path, data, chunk):
        raise MemoryError("Unable to allocate 9.1 GiB for an array")

    monkeypatch.setattr(techproducts, "_write_wide_matrix", too_big)
    assert _generate(tmp_path / "ds") == 2
    assert "not enough memory" in _one_error_line(capsys)
    assert list(tmp_path.iterdir()) == []


def test_an_unexpected_exception_still_raises(tmp_path, monkeypatch):
    def bug(path, data, chunk):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(techproducts, "_write_wide_matrix", bug)
    with pytest.raises(ZeroDivisionError):
        _generate(tmp_path / "ds")


# --- train, export, fetch-data: the same boundary names their output -------------------------


def test_train_on_a_full_disk_names_the_run_directory(tmp_path, capsys, monkeypatch, tf):
    from tfrs_recsys.training import run

    run_dir = tmp_path / "r1"

    def full(config, run_dir, resume=False):
        raise tf.errors.ResourceExhaustedError(
            None, None, f"{run_dir}/checkpoints/ckpt-1.tempstate1; No space left on device"
        )

    monkeypatch.setattr(run, "train", full)
    assert cli.main(["train", "--run-dir", str(run_dir)]) == 2
    line = _one_error_line(capsys)
    assert line.startswith(f"tfrs-recsys: error: {run_dir}: no space left on the device (ENOSPC)")


def test_export_onto_a_read_only_model_directory_is_one_line(tmp_path, capsys, monkeypatch):
    from tfrs_recsys.serving import export

    out = tmp_path / "exported" / "tech"

    def read_only(run_dir, out, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(out / ".export.tmp-1-ab"))

    monkeypatch.setattr(export, "export_run", read_only)
    assert cli.main(["export", "--run-dir", str(tmp_path), "--out", str(out)]) == 2
    line = _one_error_line(capsys)
    assert line.startswith(f"tfrs-recsys: error: {out}: read-only file system (EROFS)")


def test_fetch_onto_a_full_cache_is_one_line_and_leaves_nothing(tmp_path, capsys, monkeypatch):
    def full(requirement, destination):
        (destination / "recbole.whl").write_bytes(b"PK")
        raise OSError(errno.ENOSPC, "No space left on device", str(destination / "recbole.whl"))

    monkeypatch.setattr(fetch, "download_wheel", full)
    cache = tmp_path / "cache"
    assert cli.main(["fetch-data", "movielens-100k", "--cache", str(cache)]) == 2
    line = _one_error_line(capsys)
    assert line.startswith(f"tfrs-recsys: error: {cache}: no space left on the device (ENOSPC)")
    assert list((cache / "datasets").iterdir()) == []


def test_notes_added_on_the_way_up_are_on_the_same_line(tmp_path, capsys, monkeypatch):
    from tfrs_recsys.training import run

    def failing(config, run_dir, resume=False):
        exc = OSError(errno.ENOSPC, "No space left on device", str(run_dir / "config.toml"))
        exc.add_note(f"{run_dir} was removed: the run stopped before its first checkpoint")
        raise exc

    monkeypatch.setattr(run, "train", failing)
    run_dir = tmp_path / "r1"
    assert cli.main(["train", "--run-dir", str(run_dir)]) == 2
    line = _one_error_line(capsys)
    assert line.startswith(f"tfrs-recsys: error: {run_dir}: no space left")
    assert line.endswith(f"; {run_dir} was removed: the run stopped before its first checkpoint")


def test_a_closed_output_pipe_is_quiet(tmp_path):
    """``tfrs-recsys generate-data ... | head -0``: exit 141 and nothing on stderr."""
    stderr = tmp_path / "stderr.txt"
    with open(stderr, "wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "tfrs_recsys", "generate-data", "--out", str(tmp_path / "ds"),
             "--users", "50", "--items", "20"],
            stdout=subprocess.PIPE, stderr=err, cwd=REPO,
        )  # fmt: skip
        process.stdout.close()
        assert process.wait(timeout=300) == 141
    assert stderr.read_text() == ""


@pytest.mark.parametrize("out", ["/", ".", "x/.."])
def test_an_output_that_names_no_new_directory_is_refused(tmp_path, capsys, monkeypatch, out):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["generate-data", "--out", out, "--users", "50", "--force"]) == 2
    assert "names no new directory" in _one_error_line(capsys)
    assert list(tmp_path.iterdir()) == []


def test_a_path_with_control_characters_stays_on_one_line(tmp_path):
    exc = PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "a\nb"))
    line = os_errors.describe(exc, None)
    assert "\n" not in line and line.startswith(repr(str(tmp_path / "a\nb")))
