"""(x + a) + b  ->  x + (a + b)  when x varies per document and a, b do not.

After the concat-matmul split a model's first layer reads doc @ W_d + q @ W_q + bias: two
per-document additions where one suffices, since q @ W_q + bias is one query-level
vector. Regrouping the operands of an associative chain moves the invariant part out of
the per-document work. Applied to add and mul only, and only where the inner node has no
other reader (otherwise it would be computed twice).
"""

from __future__ import annotations

from collections import Counter

from tensor_ir import build
from tensor_ir.ir import Node, Op
from tensor_ir.passes.rebuild import rewrite, same_with_inputs
from tensor_ir.program import Program

_ASSOCIATIVE = frozenset({"add", "mul"})


def reassociate_invariants(program: Program) -> Program:
    readers: Counter[int] = Counter()
    for node in program.nodes():
        for x in node.inputs:
            readers[id(x)] += 1
    outputs = {id(n) for n in program.outputs.values()}

    def regroup(node: Node, inputs: tuple[Node, ...]) -> Node:
        new = same_with_inputs(node, inputs)
        if new.op is not Op.JOIN or new.attrs["fn"] not in _ASSOCIATIVE or not new.per_document:
            return new
        fn = new.attrs["fn"]
        for side in (0, 1):
            inner, outer_b = inputs[side], inputs[1 - side]
            original_inner = node.inputs[side]
            if (inner.op is not Op.JOIN or inner.attrs["fn"] != fn or outer_b.per_document
                    or readers[id(original_inner)] != 1 or id(original_inner) in outputs):
                continue
            x, a = inner.inputs
            if a.per_document:
                x, a = a, x
            if not x.per_document or a.per_document:
                continue
            grouped = build.join(fn, x, build.join(fn, a, outer_b))
            return grouped if grouped.shape == new.shape else build.broadcast(grouped, new.shape)
        return new

    return rewrite(program, regroup)
