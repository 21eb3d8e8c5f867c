"""score = f(g(doc)) with f non-decreasing  ->  a head program for g and a tail program for f.

Top-k selection needs f only where it can matter: the best g of a block of documents bounds
the best f of that block, so f can run on a few block maxima and then on the few blocks
that can hold a winner (see tensor_ir.topk). The tail is peeled from the score downwards
while every node is non-decreasing in its one per-document operand and holds one cell per
document; whatever it reads besides that operand is per query or constant.
"""

from __future__ import annotations

import numpy as np

from tensor_ir import build
from tensor_ir.dtypes import CellType
from tensor_ir.ir import Node, Op, Role
from tensor_ir.program import Program

# The tail program's per-document input: the head's value for each document.
HEAD_INPUT = "__head__"

# Non-decreasing everywhere and defined everywhere: log, sqrt and friends return NaN below
# their domain, which ranks lowest and would break the order.
_MONOTONE_MAPS = frozenset({"sigmoid", "exp", "tanh", "relu"})
# Joins with an invariant operand that keep the order: a shift, a clamp (max, min), or a
# scaling by a positive constant (mul, div; see _positive_constant).
_COMMUTATIVE = frozenset({"add", "max", "min", "mul"})
# Integer arithmetic wraps around, and the narrow floats are storage types: floats only.
_FLOATS = frozenset({CellType.FLOAT16, CellType.BFLOAT16, CellType.FLOAT32, CellType.FLOAT64})
_WIDENING = frozenset({
    (CellType.FLOAT16, CellType.FLOAT32), (CellType.FLOAT16, CellType.FLOAT64),
    (CellType.BFLOAT16, CellType.FLOAT32), (CellType.BFLOAT16, CellType.FLOAT64),
    (CellType.FLOAT32, CellType.FLOAT64),
})


def _scalar(node: Node) -> bool:
    return node.per_document and node.size == 1 and node.dtype in _FLOATS


def _positive_constant(node: Node) -> bool:
    # finite too: inf * 0 and inf / inf are NaN
    return node.is_constant and bool(np.all(np.isfinite(node.value)) and np.all(node.value > 0))


def _chain_operand(node: Node) -> Node | None:
    """The operand `node` is non-decreasing in, when it is its one per-document operand."""
    if not _scalar(node):
        return None
    if node.op is Op.MAP:
        chain = node.inputs[0] if node.attrs["fn"] in _MONOTONE_MAPS else None
    elif node.op is Op.CAST:
        chain = node.inputs[0] if (node.inputs[0].dtype, node.dtype) in _WIDENING else None
    elif node.op in (Op.RESHAPE, Op.REDUCE):
        chain = node.inputs[0]  # one cell in: the same cell out, whatever the aggregation
    elif node.op is Op.JOIN:
        fn = node.attrs["fn"]
        a, b = node.inputs
        if fn in _COMMUTATIVE:
            chain, other = (b, a) if b.per_document else (a, b)
        elif fn in ("sub", "div"):  # non-decreasing in the left operand only
            chain, other = a, b
        else:
            return None
        if other.per_document or (fn in ("mul", "div") and not _positive_constant(other)):
            return None
    else:
        return None
    return chain if chain is not None and _scalar(chain) else None


def _rebuild(node: Node, chain: Node, operand: Node) -> Node:
    """`node` with `operand` in place of its operand `chain`."""
    args = [operand if x is chain else x for x in node.inputs]
    a = node.attrs
    if node.op is Op.MAP:
        return build.map_(a["fn"], args[0], node.label)
    if node.op is Op.CAST:
        return build.cast(args[0], node.dtype, a["saturate"], node.label)
    if node.op is Op.RESHAPE:
        return build.reshape(args[0], a["shape"], node.label)
    if node.op is Op.REDUCE:
        return build.reduce(args[0], a["agg"], a["axes"], a["keepdims"], node.label)
    return build.join(a["fn"], args[0], args[1], node.label)


def split_monotone_tail(program: Program, output: str) -> tuple[Program, Program] | None:
    """(head, tail): head computes the document's g under the name `output`; tail reads g
    as the per-document input HEAD_INPUT and computes `output` from it. None when the
    score's last node is not a monotone step of a one-cell per-document value."""
    chain: list[Node] = []
    node = program.outputs[output]
    while (operand := _chain_operand(node)) is not None:
        chain.append(node)
        node = operand
    if not chain:
        return None
    head = node
    value = build.input_(HEAD_INPUT, Role.ATTRIBUTE, head.shape, head.dtype)
    below = head
    for step in reversed(chain):
        value = _rebuild(step, below, value)
        below = step
    return Program({output: head}), Program({output: value})
