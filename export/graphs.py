"""UINT8 only at a graph's edges: the form TensorRT can build.

TensorRT takes a UINT8 network input only where it feeds a Cast directly, and a UINT8 output only
from a Cast. Our models take raw uint8 frames (normalisation lives in the graph), so every exported
graph must cast at the input edge, compute in float, and cast back only at the output.
:func:`uint8_violations` lists what breaks that rule; :func:`cast_inputs_first` repairs the one
form the TorchScript exporter produces from ``x.permute(...).float()`` (input → Transpose → Cast),
so a graph already committed can be fixed without its weights:
``python -m export.graphs [--fix] FILE...``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import onnx
from onnx import TensorProto, helper

_LAYOUT_OPS = {"Transpose", "Reshape", "Identity", "Squeeze", "Unsqueeze"}


def _types(model: onnx.ModelProto) -> dict[str, int]:
    """Element type of every tensor name the graph knows (inputs, outputs, inferred values)."""
    inferred = onnx.shape_inference.infer_shapes(model)
    graph = inferred.graph
    types = {v.name: v.type.tensor_type.elem_type
             for v in (*graph.input, *graph.output, *graph.value_info)}
    types.update({t.name: t.data_type for t in graph.initializer})
    for node in graph.node:  # Cast outputs are known from the attribute even if inference skipped them
        if node.op_type == "Cast":
            to = next(a.i for a in node.attribute if a.name == "to")
            types.setdefault(node.output[0], to)
    return types


def uint8_violations(model: onnx.ModelProto) -> list[str]:
    """Each UINT8 tensor that feeds anything but a Cast, or comes from anything but a Cast, or is
    neither a graph input nor a graph output; empty when TensorRT can build the graph."""
    graph = model.graph
    types = _types(model)
    inputs = {v.name for v in graph.input}
    outputs = {v.name for v in graph.output}
    problems = []
    for node in graph.node:
        label = f"{node.op_type} {node.name or node.output[0]!r}"
        for name in node.input:
            if name and types.get(name) == TensorProto.UINT8:
                if node.op_type != "Cast":
                    problems.append(f"UINT8 {name!r} feeds {label} (only a Cast may take UINT8)")
                elif name not in inputs:
                    problems.append(f"UINT8 {name!r} inside the graph is cast again by {label}")
        for name in node.output:
            if name and types.get(name) == TensorProto.UINT8:
                if node.op_type != "Cast":
                    problems.append(f"UINT8 {name!r} comes from {label} (only a Cast may make UINT8)")
                elif name not in outputs:
                    problems.append(f"UINT8 {name!r} made by {label} is used inside the graph")
    return problems


def cast_inputs_first(model: onnx.ModelProto) -> int:
    """Rewrite ``uint8 input → layout ops → Cast(to=T)`` as ``input → Cast(to=T) → layout ops``.

    Layout ops (Transpose, Reshape, ...) do not depend on the element type, so the result is the
    same; returns how many chains were rewritten. Only single-consumer chains are touched.
    """
    graph = model.graph
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    fixed = 0
    for value in graph.input:
        if value.type.tensor_type.elem_type != TensorProto.UINT8:
            continue
        chain, name = [], value.name
        while len(consumers.get(name, [])) == 1 and consumers[name][0].op_type in _LAYOUT_OPS:
            chain.append(consumers[name][0])
            name = chain[-1].output[0]
        users = consumers.get(name, [])
        if not chain or len(users) != 1 or users[0].op_type != "Cast":
            continue
        cast = users[0]
        cast_out = cast.output[0]
        early = helper.make_node("Cast", [value.name], [f"{value.name}_as_float"], name=f"{value.name}_cast",
                                 to=next(a.i for a in cast.attribute if a.name == "to"))
        for node in graph.node:  # the first layout op now reads the cast input
            node.input[:] = [early.output[0] if (n == value.name and node is chain[0]) else n for n in node.input]
        chain[-1].output[0] = cast_out  # the last layout op now writes what the Cast wrote
        graph.node.remove(cast)
        graph.node.insert(0, early)
        stale = {o for n in chain for o in n.output}
        kept = [v for v in graph.value_info if v.name not in stale]
        del graph.value_info[:]
        graph.value_info.extend(kept)
        fixed += 1
    return fixed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--fix", action="store_true", help="rewrite input → Transpose → Cast in place")
    args = parser.parse_args(argv)
    bad = 0
    for path in args.files:
        model = onnx.load(str(path))
        if args.fix and cast_inputs_first(model):
            onnx.checker.check_model(model)
            onnx.save(model, str(path))
            print(f"{path}: Cast moved to the input edge")
        problems = uint8_violations(model)
        bad += bool(problems)
        print(f"{path}: " + ("ok" if not problems else "\n  ".join(["TensorRT cannot build it:", *problems])))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
