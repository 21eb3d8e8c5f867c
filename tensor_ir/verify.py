"""The IR verifier: replays every node through its constructor and checks that shape,
cell type and variance agree, so a pass that builds nodes by hand cannot slip in a
malformed one."""

from __future__ import annotations

from collections.abc import Callable

from tensor_ir import build
from tensor_ir.dtypes import CellType
from tensor_ir.errors import EvaluationError, IRError
from tensor_ir.ir import Node, Op, Variance
from tensor_ir.program import Program

_REPLAY: dict[Op, Callable[[Node], Node]] = {
    Op.MAP: lambda n: build.map_(n.attrs["fn"], n.inputs[0]),
    Op.JOIN: lambda n: build.join(n.attrs["fn"], n.inputs[0], n.inputs[1]),
    Op.SELECT: lambda n: build.select(n.inputs[0], n.inputs[1], n.inputs[2]),
    Op.CAST: lambda n: build.cast(n.inputs[0], CellType[n.attrs["to"]], n.attrs["saturate"],
                                  round_mode=n.attrs.get("round_mode", "up")),
    Op.REDUCE: lambda n: build.reduce(n.inputs[0], n.attrs["agg"], n.attrs["axes"], n.attrs["keepdims"]),
    Op.ARG_REDUCE: lambda n: build.arg_reduce(
        n.inputs[0], n.attrs["agg"], n.attrs["axis"], n.attrs["keepdims"], n.attrs["last"]
    ),
    Op.SCAN: lambda n: build.scan(
        n.inputs[0], n.attrs["agg"], n.attrs["axis"], n.attrs["exclusive"], n.attrs["reverse"]
    ),
    Op.MATMUL: lambda n: build.matmul(n.inputs[0], n.inputs[1]),
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
        n.inputs[0], n.inputs[1], n.inputs[2], n.attrs["axis"], n.attrs["reduction"]
    ),
    Op.SCATTER_ND: lambda n: build.scatter_nd(n.inputs[0], n.inputs[1], n.inputs[2], n.attrs["reduction"]),
    Op.TOPK: lambda n: build.topk(n.inputs[0], n.attrs["k"], n.attrs["axis"], n.attrs["largest"],
                                  n.attrs["sorted"]),
    Op.TREE_ENSEMBLE: lambda n: build.tree_ensemble(n.inputs[0], n.attrs["forest"]),
    Op.LOOKUP: lambda n: build.lookup(n.inputs[0], n.inputs[1]),
}


_ARITY: dict[Op, int] = {
    Op.INPUT: 0, Op.CONSTANT: 0, Op.MAP: 1, Op.JOIN: 2, Op.SELECT: 3, Op.CAST: 1, Op.REDUCE: 1,
    Op.ARG_REDUCE: 1, Op.SCAN: 1, Op.MATMUL: 2, Op.RESHAPE: 1, Op.TRANSPOSE: 1, Op.BROADCAST: 1,
    Op.SLICE: 1, Op.PAD: 1, Op.GATHER: 2, Op.GATHER_ELEMENTS: 2, Op.GATHER_ND: 2,
    Op.SCATTER_ELEMENTS: 3, Op.SCATTER_ND: 3, Op.TOPK: 1, Op.TREE_ENSEMBLE: 1, Op.LOOKUP: 2,
}  # fmt: skip  (CONCAT takes one or more)


def verify(program: Program) -> None:
    """Raise IRError naming the first node whose recorded type differs from its operands'."""
    for name, out in program.outputs.items():
        if not isinstance(out, Node):
            raise IRError(f"output '{name}' is not a node")
    for node in program.nodes():
        want = _ARITY.get(node.op)
        if (len(node.inputs) != want) if want is not None else not node.inputs:
            arity = "1 or more" if want is None else str(want)
            raise IRError(f"{node!r} has {len(node.inputs)} operands, want {arity}")
        try:
            _verify_node(program, node)
        except (KeyError, TypeError, ValueError, EvaluationError) as e:
            # a hand-made node with a missing or ill-typed attribute: reject it, do not crash
            if isinstance(e, IRError):
                raise
            raise IRError(f"{node!r} is malformed: {type(e).__name__}: {e}") from e


def _verify_node(program: Program, node: Node) -> None:
    if node.op is Op.INPUT:
        spec = program.inputs.get(node.attrs["name"])
        if spec is None or spec.shape != node.shape or spec.dtype is not node.dtype:
            raise IRError(f"input node {node!r} does not match the program's declared inputs")
        if node.attrs["role"] != spec.role.value or node.variance is not spec.role.variance:
            raise IRError(f"input node {node!r} has the wrong role or variance for role {spec.role.value}")
        return
    if node.op is Op.CONSTANT:
        if tuple(node.value.shape) != node.shape or node.value.dtype != node.dtype.np_dtype:
            raise IRError(f"constant {node!r} holds a {node.value.dtype}{list(node.value.shape)} value")
        if node.variance is not Variance.CONSTANT:
            raise IRError(f"constant {node!r} is not of constant variance")
        return
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
    if again.op is node.op and again.attrs != node.attrs:
        # kernels trust normalised attributes (axes in range and sorted, clamped slices): a
        # negative axis would silently address the document axis of a per-document value
        raise IRError(f"{node!r} has attributes not in normal form; its constructor gives {again.attrs!r}")
