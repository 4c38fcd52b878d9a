"""tfrs_recsys: two-tower recommenders with TensorFlow Recommenders and tf.data.

Importing the package routes ``tf.keras`` to Keras 2 (``tf_keras``), which
TensorFlow Recommenders and TF Hub need; import it before ``tensorflow``.
TensorFlow itself is imported lazily by the modules that need it, so the data
layer and the command-line interface start quickly.
"""

from tfrs_recsys._backend import use_legacy_keras

use_legacy_keras()

__version__ = "0.1.0"

__all__ = ["__version__"]
