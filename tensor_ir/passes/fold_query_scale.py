"""(doc * q) @ W  ->  doc @ (q[:, None] * W), when the number of documents pays for it.

A query vector that scales the contraction axis of a product with a weight matrix can be
folded into the weights once per query: that costs K x M multiplications per query and
saves K multiplications (and a pass over the data) for every row of every document. The
rewrite is applied at a site only when n_docs x rows-per-document exceeds M, the
break-even point of that cost model; `thresholds` tells a backend where the plans differ.
"""

from __future__ import annotations

from tensor_ir import build
from tensor_ir.ir import Node, Op
from tensor_ir.passes.rebuild import rewrite, same_with_inputs
from tensor_ir.program import Program


def _site(node: Node) -> tuple[Node, Node, Node] | None:
    """(per-document factor, query scale, weights) if `node` matches the pattern."""
    if node.op is not Op.MATMUL:
        return None
    lhs, w = node.inputs
    if w.per_document or w.rank != 2 or lhs.op is not Op.JOIN or lhs.attrs["fn"] != "mul":
        return None
    k = lhs.shape[-1]
    for doc, scale in (lhs.inputs, lhs.inputs[::-1]):
        if doc.per_document and not scale.per_document and scale.size == k and scale.shape[-1:] == (k,) \
                and doc.shape == lhs.shape:
            return doc, scale, w
    return None


def break_even(node: Node) -> int | None:
    """Documents above which folding the scale at this matmul saves work."""
    site = _site(node)
    if site is None:
        return None
    doc, _, w = site
    rows = max(doc.size // doc.shape[-1], 1)
    return max(w.shape[1] // rows, 1)


def thresholds(program: Program) -> list[int]:
    return sorted({t for n in program.nodes() if (t := break_even(n)) is not None})


def fold_query_scale(program: Program, n_docs: int) -> Program:
    def fold(node: Node, inputs: tuple[Node, ...]) -> Node:
        node = same_with_inputs(node, inputs)
        limit = break_even(node)
        site = _site(node)
        if site is None or limit is None or n_docs < limit:
            return node
        doc, scale, w = site
        column = build.reshape(scale, (scale.size, 1))
        return build.matmul(doc, build.join("mul", column, w))

    return rewrite(program, fold)
