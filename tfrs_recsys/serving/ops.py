"""What a SavedModel needs to load: op types outside stock TensorFlow, signature summaries.

A default export holds stock TensorFlow ops only (any TF Serving loads it);
``--index scann`` adds the ScaNN ops and ``--cold-start-text`` TF Text's. All
signatures of a SavedModel share one function library, so an op anywhere in it
is needed to load it, whichever signature is used.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import tensorflow as tf


@functools.cache
def core_ops() -> frozenset[str]:
    """Op types stock TensorFlow defines (``tf.raw_ops``)."""
    return frozenset(name for name in dir(tf.raw_ops) if not name.startswith("__"))


def op_types(concrete) -> set[str]:
    """Every op type in a concrete function's graph and the functions it calls."""
    graph_def = concrete.graph.as_graph_def()
    ops = {node.op for node in graph_def.node}
    for function in graph_def.library.function:
        ops |= {node.op for node in function.node_def}
    return ops


def non_core_ops(concrete) -> list[str]:
    """Op types of a concrete function that stock TensorFlow does not define (TF Text, ScaNN, ...)."""
    return sorted(op for op in op_types(concrete) if op not in core_ops())


def saved_model_non_core_ops(path: Path) -> list[str]:
    """Op types outside stock TensorFlow anywhere in a SavedModel (what loading it needs).

    Wider than the signatures' :func:`non_core_ops`: it also counts functions
    of saved objects no signature calls (e.g. a tracked TF Hub preprocessor's
    two-segment packing).
    """
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString((Path(path) / "saved_model.pb").read_bytes())
    ops: set[str] = set()
    for meta_graph in saved.meta_graphs:
        ops |= {node.op for node in meta_graph.graph_def.node}
        for function in meta_graph.graph_def.library.function:
            ops |= {node.op for node in function.node_def}
    return sorted(op for op in ops if op not in core_ops())


def input_names(concrete) -> list[str]:
    """A concrete function's input names, in call order."""
    return [spec.name for spec in tf.nest.flatten(concrete.structured_input_signature)]


def signature_summary(concrete) -> dict[str, Any]:
    """``{"inputs": {name: {dtype, shape}}, "outputs": {...}}`` of a concrete function."""

    def spec(value) -> dict[str, Any]:
        shape = value.shape.as_list() if value.shape.rank is not None else None
        return {"dtype": value.dtype.name, "shape": shape}

    inputs = {s.name: spec(s) for s in tf.nest.flatten(concrete.structured_input_signature)}
    outputs = {name: spec(t) for name, t in concrete.structured_outputs.items()}
    return {"inputs": inputs, "outputs": outputs}
