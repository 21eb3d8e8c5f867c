"""score = f(g(doc)) with f monotone  ->  a head program for g and a tail program for f.

Top-k selection needs f only where it can matter: the best g of a block of documents bounds
the best f of that block, so f can run on a few block maxima and then on the few blocks
that can hold a winner (see tensor_ir.topk). The tail is peeled from the score downwards
while every node is monotone in its one per-document operand and holds one cell per
document; whatever it reads besides that operand is per query or constant. Steps may be
non-increasing too (a closeness is 1 / (1 + distance), an angle acos of a cosine): when an
odd number of them is peeled, the head computes -g, negation being exact, and the tail
negates it back before its first step, so f of the head is always non-decreasing.
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


def _negative_constant(node: Node) -> bool:
    return node.is_constant and bool(np.all(np.isfinite(node.value)) and np.all(node.value < 0))


def _bounds(node: Node) -> tuple[float, float]:
    """Bounds of a one-cell value (NaN aside), where its last steps fix them: what makes
    sqrt, acos and a reciprocal monotone on their operand's range."""
    if node.is_constant and node.size == 1:
        v = float(np.asarray(node.value).reshape(()))
        return (v, v) if np.isfinite(v) else (-np.inf, np.inf)
    if node.op in (Op.CAST, Op.RESHAPE) or (node.op is Op.REDUCE and node.inputs[0].size == 1):
        return _bounds(node.inputs[0])
    if node.op is Op.MAP:
        fn = node.attrs["fn"]
        if fn in ("sqrt", "exp", "relu", "abs"):
            return 0.0, np.inf
        if fn == "acos":
            return 0.0, float(np.pi)
        if fn == "sigmoid":
            return 0.0, 1.0
        return -np.inf, np.inf
    if node.op is Op.JOIN and node.attrs["fn"] in ("add", "max", "min"):
        (alo, ahi), (blo, bhi) = _bounds(node.inputs[0]), _bounds(node.inputs[1])
        fn = node.attrs["fn"]
        if fn == "add":
            return alo + blo, ahi + bhi
        if fn == "max":
            return max(alo, blo), max(ahi, bhi)
        return min(alo, blo), min(ahi, bhi)
    return -np.inf, np.inf


def _chain_operand(node: Node) -> tuple[Node, int] | None:
    """The operand `node` is monotone in, when it is its one per-document operand, and the
    direction: 1 non-decreasing, -1 non-increasing."""
    if not _scalar(node):
        return None
    direction = 1
    if node.op is Op.MAP:
        fn = node.attrs["fn"]
        operand = node.inputs[0]
        lo, hi = _bounds(operand)
        if fn in _MONOTONE_MAPS or (fn == "sqrt" and lo >= 0):
            chain = operand
        elif fn == "neg" or (fn == "acos" and lo >= -1 and hi <= 1):
            chain, direction = operand, -1
        else:
            return None
    elif node.op is Op.CAST:
        chain = node.inputs[0]
        if (chain.dtype, node.dtype) not in _WIDENING:
            return None
    elif node.op in (Op.RESHAPE, Op.REDUCE):
        chain = node.inputs[0]  # one cell in: the same cell out, whatever the aggregation
    elif node.op is Op.JOIN:
        fn = node.attrs["fn"]
        a, b = node.inputs
        if fn in _COMMUTATIVE:
            chain, other = (b, a) if b.per_document else (a, b)
            if fn == "mul" and _negative_constant(other):
                direction = -1
            elif fn == "mul" and not _positive_constant(other):
                return None
        elif fn in ("sub", "div") and not b.per_document:  # c - x, x / c
            chain, other = a, b
            if fn == "div" and not _positive_constant(other):
                return None
        elif fn == "sub":  # c - x
            chain, other, direction = b, a, -1
        elif fn == "div" and _positive_constant(a) and _bounds(b)[0] > 0:  # c / x, x > 0
            chain, other, direction = b, a, -1
        else:
            return None
        if other.per_document:
            return None
    else:
        return None
    return (chain, direction) if _scalar(chain) else None


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
    """(head, tail): head computes the document's g (or -g, see the module's docstring)
    under the name `output`; tail reads it as the per-document input HEAD_INPUT and
    computes `output` from it. None when the score's last node is not a monotone step of
    a one-cell per-document value."""
    chain: list[Node] = []
    node = program.outputs[output]
    direction = 1
    while (found := _chain_operand(node)) is not None:
        chain.append(node)
        node, step_direction = found
        direction *= step_direction
    if not chain:
        return None
    head = node
    value = build.input_(HEAD_INPUT, Role.ATTRIBUTE, head.shape, head.dtype)
    if direction < 0:
        head = build.map_("neg", head)
        value = build.map_("neg", value)
    below = node
    for step in reversed(chain):
        value = _rebuild(step, below, value)
        below = step
    return Program({output: head}), Program({output: value})
