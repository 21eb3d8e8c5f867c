"""concat(a, b) @ W  ->  a @ W[:ka] + b @ W[ka:]

When a model concatenates a query vector with a document vector and multiplies the
result by a weight matrix, the query half of the product depends only on the query: after
the split it is computed once per query instead of once per document, and the tiled
query is never built. Applied only where the parts differ in variance, since only then
is work saved.
"""

from __future__ import annotations

from functools import reduce

from tensor_ir import build
from tensor_ir.ir import Node, Op
from tensor_ir.passes.rebuild import rewrite, same_with_inputs
from tensor_ir.program import Program


def split_concat_matmul(program: Program) -> Program:
    def split(node: Node, inputs: tuple[Node, ...]) -> Node:
        node = same_with_inputs(node, inputs)
        if node.op is not Op.MATMUL:
            return node
        lhs, rhs = node.inputs
        if lhs.op is not Op.CONCAT or lhs.attrs["axis"] != lhs.rank - 1 or rhs.per_document:
            return node
        parts = lhs.inputs
        if len({p.variance for p in parts}) < 2:
            return node
        products = []
        offset = 0
        for part in parts:
            width = part.shape[-1]
            starts = [0] * rhs.rank
            stops = list(rhs.shape)
            starts[-2], stops[-2] = offset, offset + width
            rows = build.slice_(rhs, starts, stops, [1] * rhs.rank)
            products.append(build.matmul(part, rows))
            offset += width
        total = reduce(lambda acc, p: build.join("add", acc, p), products)
        if total.shape != node.shape:
            total = build.broadcast(total, node.shape)
        return total

    return rewrite(program, split)
