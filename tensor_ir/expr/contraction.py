"""`sum(a * b, x)` where a and b also have dimensions of their own: one MATMUL.

Vespa's language has no matrix product; a profile writes it as a join and a reduce, which
built as written materialise every product before summing: for ColBERT's MaxSim, query
tokens times document tokens times 128 cells per document. Seen whole, the reduce of the
product is a batched GEMM over the dimensions both operands have and are not summed (the
batch), those only one has (the GEMM's rows and columns) and those summed (its inner
dimension), so it reaches BLAS or cuBLAS and nothing larger than its result is made.

Only a true GEMM is rewritten (each operand has a dimension of its own, and the inner one
has a few cells): a dot product stays the reduce it is, which the backends already stream.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tensor_ir import build
from tensor_ir.ir import Node, Op

_MIN_INNER = 4


def as_matmul(x: Node, axes: Sequence[int]) -> Node | None:
    """reduce(x, sum, axes) as a MATMUL where x is such a product; None where it is not."""
    if x.op is not Op.JOIN or x.attrs["fn"] != "mul":
        return None
    a, b = x.inputs
    if a.dtype is not b.dtype or not a.dtype.is_float or a.rank != x.rank or b.rank != x.rank:
        return None
    summed = set(axes)
    batch: list[int] = []
    rows: list[int] = []  # a's own
    cols: list[int] = []  # b's own
    inner: list[int] = []
    for i, (sa, sb) in enumerate(zip(a.shape, b.shape, strict=True)):
        if i in summed:
            if sa != sb:
                return None  # summing an axis only one operand has: not a product's inner dimension
            inner.append(i)
        elif sa == sb:
            batch.append(i)
        elif sb == 1:
            rows.append(i)
        elif sa == 1:
            cols.append(i)
        else:
            return None
    k = int(np.prod([x.shape[i] for i in inner], dtype=np.int64))
    if not rows or not cols or k < _MIN_INNER:
        return None

    def size(idx: list[int]) -> int:
        return int(np.prod([x.shape[i] for i in idx], dtype=np.int64))

    if b.per_document and not a.per_document:
        # the document's operand on the left, the query's on the right: one GEMM over every
        # document's rows (tensor_ir.reference's matmul)
        a, b, rows, cols = b, a, cols, rows
    batch_shape = [x.shape[i] for i in batch]
    left = build.reshape(build.transpose(a, batch + rows + inner + cols), [*batch_shape, size(rows), k])
    right = build.reshape(build.transpose(b, batch + inner + cols + rows), [*batch_shape, k, size(cols)])
    product = build.matmul(left, right)
    out = build.reshape(product, [*batch_shape, *[x.shape[i] for i in rows], *[x.shape[i] for i in cols]])
    kept = [i for i in range(x.rank) if i not in summed]
    order = batch + rows + cols  # the axes of `out`, as axes of x
    return build.transpose(out, [order.index(i) for i in kept])
