"""Keras 2 routing: ``import tfrs_recsys`` must come before TensorFlow picks Keras.

The import-order checks need a fresh interpreter each, with
``TF_USE_LEGACY_KERAS`` unset (this test process already has it set by the
package import). The two TensorFlow-importing subprocesses take ~5 s each, so
the module starts all of them at once and each test collects its own result.
The remedy "TF_USE_LEGACY_KERAS=1 set before TensorFlow is imported" is checked
in-process with a fake ``tensorflow`` module (a third TF import costs too much).
"""

from __future__ import annotations

import os
import subprocess
import sys
import types

import pytest

from tfrs_recsys import _backend
from tfrs_recsys._backend import LEGACY_KERAS_VARIABLE, use_legacy_keras
from tfrs_recsys.errors import KerasVersionError, RecsysError

SCRIPTS = {
    # Only the package: no TensorFlow import at all.
    "package_only": (
        "import os, sys\n"
        "import tfrs_recsys\n"
        "print(repr(os.environ.get('TF_USE_LEGACY_KERAS')))\n"
        "print('tensorflow' in sys.modules)\n"
    ),
    # The wrong order: TensorFlow (choosing Keras 3) first.
    "tf_first": (
        "import tensorflow\n"
        "try:\n"
        "    import tfrs_recsys\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__)\n"
        "    print(type(exc).__module__)\n"
        "    print(str(exc))\n"
        "else:\n"
        "    print('NO ERROR')\n"
    ),
    # The right order: the package first, then TensorFlow.
    "package_first": (
        "import tfrs_recsys\n"
        "import tensorflow as tf\n"
        "print(tf.keras.__name__)\n"
        "print(tf.keras.layers.Dense.__module__)\n"
    ),
}


def _clean_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop(LEGACY_KERAS_VARIABLE, None)
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    return env


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Starts every script concurrently; ``runs(name)`` -> (returncode, stdout, stderr)."""
    cwd = tmp_path_factory.mktemp("backend")
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-c", code],
            env=_clean_env(),
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, code in SCRIPTS.items()
    }
    results: dict[str, tuple[int, str, str]] = {}

    def result(name: str) -> tuple[int, str, str]:
        if name not in results:
            out, err = procs[name].communicate(timeout=180)
            results[name] = (procs[name].returncode, out, err)
        return results[name]

    yield result
    for proc in procs.values():
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_import_sets_legacy_keras_variable(runs):
    """With the variable unset, importing the package sets it to "1"."""
    code, out, err = runs("package_only")
    assert code == 0, err
    assert out.splitlines()[0] == "'1'"


def test_import_does_not_import_tensorflow(runs):
    """The package import stays light: TensorFlow is imported lazily."""
    code, out, err = runs("package_only")
    assert code == 0, err
    assert out.splitlines()[1] == "False"


def test_tensorflow_first_raises_keras_version_error(runs):
    code, out, err = runs("tf_first")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "KerasVersionError"
    assert lines[1] == "tfrs_recsys.errors"
    assert "TF_USE_LEGACY_KERAS" in "\n".join(lines[2:])


def test_package_first_gives_tf_keras(runs):
    code, out, err = runs("package_first")
    assert code == 0, err
    keras_name, dense_module = out.splitlines()[:2]
    assert keras_name.startswith("tf_keras"), keras_name
    assert dense_module.startswith("tf_keras"), dense_module


# --- In-process unit tests with fake "tensorflow" modules ----------------------------


def test_keras_version_error_is_an_import_error_and_recsys_error():
    assert issubclass(KerasVersionError, ImportError)
    assert issubclass(KerasVersionError, RecsysError)


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        ({"_tf_uses_legacy_keras": True, "__version__": "2.20.0"}, True),
        ({"_tf_uses_legacy_keras": False, "__version__": "2.20.0"}, False),
        # No flag: TensorFlow < 2.16 shipped Keras 2 as tf.keras, >= 2.16 Keras 3.
        ({"__version__": "2.15.1"}, True),
        ({"__version__": "2.16.0"}, False),
        ({"__version__": "2.20.0rc1"}, False),
    ],
)
def test_legacy_keras_detection(attributes, expected):
    fake = types.SimpleNamespace(**attributes)
    assert _backend._tensorflow_uses_legacy_keras(fake) is expected


def test_use_legacy_keras_raises_when_fake_tensorflow_chose_keras3(monkeypatch):
    monkeypatch.setitem(
        sys.modules, "tensorflow", types.SimpleNamespace(_tf_uses_legacy_keras=False)
    )
    monkeypatch.delenv(LEGACY_KERAS_VARIABLE, raising=False)
    with pytest.raises(KerasVersionError, match="TF_USE_LEGACY_KERAS"):
        use_legacy_keras()
    # It fails before touching the environment.
    assert LEGACY_KERAS_VARIABLE not in os.environ


def test_use_legacy_keras_sets_variable_when_tensorflow_uses_keras2(monkeypatch):
    monkeypatch.setitem(
        sys.modules, "tensorflow", types.SimpleNamespace(_tf_uses_legacy_keras=True)
    )
    monkeypatch.delenv(LEGACY_KERAS_VARIABLE, raising=False)
    use_legacy_keras()
    assert os.environ[LEGACY_KERAS_VARIABLE] == "1"
