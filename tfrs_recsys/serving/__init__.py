"""Serving: recommendations in process, SavedModel exports for TF Serving, and loading them.

One module per job:

- :mod:`~tfrs_recsys.serving.recommend`: top-N with item metadata from any scorer, in process;
- :mod:`~tfrs_recsys.models.serving_parts`: :class:`ServingParts`, what a model hands the exporter
  (``model.serving_parts(dataset)``);
- :mod:`~tfrs_recsys.serving.tables`: :class:`ServingTables`, the ids, vectors, mask and
  popularity an export bakes in;
- :mod:`~tfrs_recsys.serving.index`: the top-k index, :class:`TopKIndex` with
  :class:`BruteForceIndex` and :class:`ScannIndex`;
- :mod:`~tfrs_recsys.serving.module`: :class:`RecommenderModule`, the exported ``tf.Module``
  and its signatures;
- :mod:`~tfrs_recsys.serving.text`: text lookups and the cold-start text encoder at export;
- :mod:`~tfrs_recsys.serving.ops`: the ops a SavedModel needs to load;
- :mod:`~tfrs_recsys.serving.verify`: the export answers as the model does;
- :mod:`~tfrs_recsys.serving.export`: :func:`export`, the steps above in order;
- :mod:`~tfrs_recsys.serving.two_stage`: the two-stage export (retrieval then ranking);
- :mod:`~tfrs_recsys.serving.tf_serving`: version directories, ``models.config``, warm-up;
- :mod:`~tfrs_recsys.serving.exported`: :func:`load_exported`, an export as a Python object.
"""
