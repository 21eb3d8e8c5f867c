"""The IR verifier: replays every node through its constructor and checks that shape,
cell type and variance agree, so a pass that builds nodes by hand cannot slip in a
malformed one."""

from __future__ import annotations

from collections.abc import Callable

from tensor_ir import build
from tensor_ir.dtypes import CellType
from tensor_ir.errors import IRError
from tensor_ir.ir import Node, Op, Variance
from tensor_ir.program import Program

_REPLAY: dict[Op, Callable[[Node], Node]] = {
    Op.MAP: lambda n: build.map_(n.attrs["fn"], n.inputs[0]),
    Op.JOIN: lambda n: build.join(n.attrs["fn"], *n.inputs),
    Op.SELECT: lambda n: build.select(*n.inputs),
    Op.CAST: lambda n: build.cast(n.inputs[0], CellType[n.attrs["to"]], n.attrs["saturate"]),
    Op.REDUCE: lambda n: build.reduce(n.inputs[0], n.attrs["agg"], n.attrs["axes"], n.attrs["keepdims"]),
    Op.ARG_REDUCE: lambda n: build.arg_reduce(
        n.inputs[0], n.attrs["agg"], n.attrs["axis"], n.attrs["keepdims"], n.attrs["last"]
    ),
    Op.SCAN: lambda n: build.scan(
        n.inputs[0], n.attrs["agg"], n.attrs["axis"], n.attrs["exclusive"], n.attrs["reverse"]
    ),
    Op.MATMUL: lambda n: build.matmul(*n.inputs),
    Op.RESHAPE: lambda n: build.reshape(n.inputs[0], n.attrs["shape"]),
    Op.TRANSPOSE: lambda n: build.transpose(n.inputs[0], n.attrs["perm"]),
    Op.BROADCAST: lambda n: build.broadcast(n.inputs[0], n.attrs["shape"]),
    Op.CONCAT: lambda n: build.concat(n.inputs, n.attrs["axis"]),
    Op.SLICE: lambda n: build.slice_(n.inputs[0], n.attrs["starts"], n.attrs["stops"], n.attrs["steps"]),
    Op.PAD: lambda n: build.pad(n.inputs[0], n.attrs["pads"], n.attrs["mode"], n.attrs["value"]),
    Op.GATHER: lambda n: build.gather(n.inputs[0], n.inputs[1], n.attrs["axis"]),
    Op.GATHER_ELEMENTS: lambda n: build.gather_elements(n.inputs[0], n.inputs[1], n.attrs["axis"]),
    Op.GATHER_ND: lambda n: build.gather_nd(n.inputs[0], n.inputs[1], n.attrs["batch_dims"]),
    Op.SCATTER_ELEMENTS: lambda n: build.scatter_elements(
        *n.inputs, axis=n.attrs["axis"], reduction=n.attrs["reduction"]
    ),
    Op.SCATTER_ND: lambda n: build.scatter_nd(*n.inputs, reduction=n.attrs["reduction"]),
    Op.TOPK: lambda n: build.topk(n.inputs[0], n.attrs["k"], n.attrs["axis"], n.attrs["largest"],
                                  n.attrs["sorted"]),
}


def verify(program: Program) -> None:
    """Raise IRError naming the first node whose recorded type differs from its operands'."""
    for name, out in program.outputs.items():
        if not isinstance(out, Node):
            raise IRError(f"output '{name}' is not a node")
    for node in program.nodes():
        if node.op is Op.INPUT:
            spec = program.inputs.get(node.attrs["name"])
            if spec is None or spec.shape != node.shape or spec.dtype is not node.dtype:
                raise IRError(f"input node {node!r} does not match the program's declared inputs")
            if node.variance is not spec.role.variance:
                raise IRError(f"input node {node!r} has the wrong variance for role {spec.role.value}")
            continue
        if node.op is Op.CONSTANT:
            if tuple(node.value.shape) != node.shape or node.value.dtype != node.dtype.np_dtype:
                raise IRError(f"constant {node!r} holds a {node.value.dtype}{list(node.value.shape)} value")
            if node.variance is not Variance.CONSTANT:
                raise IRError(f"constant {node!r} is not of constant variance")
            continue
        try:
            again = _REPLAY[node.op](node)
        except IRError as e:
            raise IRError(f"{node!r}: {e}") from e
        if again.shape != node.shape or again.dtype is not node.dtype:
            raise IRError(
                f"{node!r} records {node.dtype.np_name}{list(node.shape)} but its operands give "
                f"{again.dtype.np_name}{list(again.shape)}"
            )
        if again.variance is not node.variance:
            raise IRError(f"{node!r} records variance {node.variance.name}, operands give {again.variance.name}")
