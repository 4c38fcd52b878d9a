"""Routes ``tf.keras`` to Keras 2 (``tf_keras``) before TensorFlow is imported.

TensorFlow Recommenders and ``hub.KerasLayer`` only work with Keras 2. TensorFlow
decides which Keras ``tf.keras`` means when it is first imported, from the
``TF_USE_LEGACY_KERAS`` environment variable, so the variable must be set before
that import. This module is imported first by ``tfrs_recsys/__init__.py``; it does
not import TensorFlow itself.
"""

from __future__ import annotations

import os
import sys

from tfrs_recsys.errors import KerasVersionError

LEGACY_KERAS_VARIABLE = "TF_USE_LEGACY_KERAS"


def use_legacy_keras() -> None:
    """Sets ``TF_USE_LEGACY_KERAS=1``; fails if TensorFlow already chose Keras 3.

    Raises:
        KerasVersionError: TensorFlow was imported before this package without
            ``TF_USE_LEGACY_KERAS=1``, so ``tf.keras`` is (or will be) Keras 3.
    """
    tf_module = sys.modules.get("tensorflow")
    if tf_module is not None and not _tensorflow_uses_legacy_keras(tf_module):
        raise KerasVersionError(
            "TensorFlow was imported with Keras 3 before tfrs_recsys. TensorFlow "
            "Recommenders needs Keras 2 (tf_keras): import tfrs_recsys before "
            "tensorflow, or set the environment variable TF_USE_LEGACY_KERAS=1 "
            "before Python starts."
        )
    os.environ[LEGACY_KERAS_VARIABLE] = "1"


def _tensorflow_uses_legacy_keras(tf_module: object) -> bool:
    # TensorFlow >= 2.16 records the choice at import time in this attribute.
    flag = getattr(tf_module, "_tf_uses_legacy_keras", None)
    if flag is not None:
        return bool(flag)
    # Older TensorFlow (< 2.16) ships Keras 2 as tf.keras.
    version = getattr(tf_module, "__version__", "0")
    major_minor = tuple(int(part) for part in version.split(".")[:2] if part.isdigit())
    return major_minor < (2, 16)
