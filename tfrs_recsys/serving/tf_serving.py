"""TF Serving plumbing: version directories, ``models.config``, warm-up requests.

TF Serving watches ``<base_path>/<version>/`` directories whose names are
integers and serves the highest one. Everything here only uses the standard
library and (for warm-up requests) the optional ``tensorflow-serving-api``
protos, so it is shared by the exporter and the ``recommend`` command.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from tfrs_recsys import atomic
from tfrs_recsys.atomic import file_lock, write_text_atomic

MODELS_CONFIG = "models.config"
ASSETS_EXTRA = "assets.extra"
WARMUP_FILE = "tf_serving_warmup_requests"
DEFAULT_SERVING_ROOT = "/models"
# Staged versions are staging paths of MODEL_DIR/export: ``.export.tmp-<pid>-<random>``,
# hidden and not an integer (TF Serving ignores them).
_STAGING_TARGET = "export"
_VERSION = re.compile(r"^[0-9]+$")


def versions(model_dir: Path) -> list[int]:
    """Integer version directories of ``model_dir`` that hold a SavedModel, ascending."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        return []
    found = []
    for child in model_dir.iterdir():
        if _VERSION.match(child.name) and (child / "saved_model.pb").is_file():
            found.append(int(child.name))
    return sorted(found)


def next_version(model_dir: Path) -> int:
    """One more than the highest integer-named entry (a SavedModel or not)."""
    model_dir = Path(model_dir)
    taken = (
        [int(c.name) for c in model_dir.iterdir() if _VERSION.match(c.name)]
        if model_dir.is_dir()
        else []
    )
    return max(taken, default=0) + 1


def staging_name() -> str:
    """A hidden, non-integer directory name (TF Serving ignores it) tagged with our pid."""
    return atomic.staging_path(Path(_STAGING_TARGET)).name


def remove_stale_staging(model_dir: Path) -> list[Path]:
    """Removes staging directories left by exports whose process is gone (killed).

    The one clean-up of :func:`tfrs_recsys.atomic.remove_stale_staging`.
    """
    return atomic.remove_stale_staging(Path(model_dir) / _STAGING_TARGET)


def model_directories(root: Path) -> list[Path]:
    """Subdirectories of ``root`` with at least one SavedModel version, sorted by name."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(
        p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and versions(p)
    )


def _text_proto_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def models_config_text(root: Path, serving_root: str = DEFAULT_SERVING_ROOT) -> str:
    """The TF Serving ``--model_config_file`` text proto for every model under ``root``.

    ``base_path`` is ``<serving_root>/<model name>``: with the default
    ``/models`` that is where ``docker run -v $PWD/exported_models:/models``
    mounts them; pass the absolute host path of ``root`` for a server that runs
    outside docker (TF Serving needs absolute base paths).
    """
    lines = ["model_config_list {"]
    for model_dir in model_directories(root):
        base = serving_root.rstrip("/") + "/" + model_dir.name
        lines += [
            "  config {",
            f"    name: {_text_proto_string(model_dir.name)}",
            f"    base_path: {_text_proto_string(base)}",
            '    model_platform: "tensorflow"',
            "  }",
        ]
    lines.append("}")
    return "\n".join(lines) + "\n"


def write_models_config(root: Path, serving_root: str = DEFAULT_SERVING_ROOT) -> Path:
    """Rewrites ``root/models.config`` atomically (under a lock) and returns its path."""
    root = Path(root)
    path = root / MODELS_CONFIG
    with file_lock(root / f".{MODELS_CONFIG}.lock"):
        write_text_atomic(path, models_config_text(root, serving_root))
    return path


def serving_api_available() -> bool:
    try:
        import tensorflow_serving.apis.prediction_log_pb2  # noqa: F401
    except ImportError:
        return False
    return True


def write_warmup_requests(
    path: Path,
    model_name: str,
    requests: Sequence[tuple[str, Mapping[str, np.ndarray]]],
) -> int:
    """Writes ``(signature, inputs)`` pairs as a TFRecord of ``PredictionLog`` protos.

    Needs ``tensorflow-serving-api`` (the ``serving`` extra). Returns the count.
    """
    import tensorflow as tf
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for signature, inputs in requests:
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature)
            )
            for key, value in inputs.items():
                request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)
            )
            writer.write(log.SerializeToString())
    return len(requests)


def read_warmup_requests(path: Path) -> list[tuple[str, dict[str, np.ndarray]]]:
    """The ``(signature, inputs)`` pairs of a warm-up file (needs tensorflow-serving-api)."""
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    result = []
    for record in tf.data.TFRecordDataset(str(path)):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        request = log.predict_log.request
        inputs = {key: tf.make_ndarray(value) for key, value in request.inputs.items()}
        result.append((request.model_spec.signature_name or "serving_default", inputs))
    return result
