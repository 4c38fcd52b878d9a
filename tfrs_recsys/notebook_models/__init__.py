"""Faithful reproductions of the two seed notebooks' models, for comparisons.

- :mod:`~tfrs_recsys.notebook_models.seed_subset`: :class:`SeedSubsetModel`, the
  first notebook's two-tower network on ids, age and price (``seed_subset``).
- :mod:`~tfrs_recsys.notebook_models.seed_all`: :class:`SeedAllModel`, the second
  notebook's network on sentence embeddings of every attribute (``seed_all``).
- :mod:`~tfrs_recsys.notebook_models.negatives`: :func:`notebook_negatives`, the
  notebooks' (leaky) negative sampling.
- :mod:`~tfrs_recsys.notebook_models.encoders`: the notebooks' sklearn
  preprocessing (LabelEncoder, MinMaxScaler), in numpy.

They are kept as written, flaws included, so comparisons measure the notebooks
and not an improved version of them. Importing these modules imports TensorFlow.
"""

from tfrs_recsys.notebook_models.negatives import notebook_negatives
from tfrs_recsys.notebook_models.seed_all import SeedAllModel
from tfrs_recsys.notebook_models.seed_subset import SeedSubsetModel

__all__ = ["SeedAllModel", "SeedSubsetModel", "notebook_negatives"]
