"""Matrix products: MatMul, Gemm, Einsum, the integer and quantized matmuls, and the
linear (de)quantization ops they are built around.

Every contraction becomes one MATMUL primitive (rank >= 2 operands, batch dims broadcast)
surrounded by the structural ops that bring its operands into [..., M, K] @ [..., K, N] form,
so backends always see the product whole and can hand it to BLAS / cuBLAS.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import ml_dtypes
import numpy as np

from tensor_ir import build
from tensor_ir.dtypes import CellType
from tensor_ir.ir import Node
from tensor_ir.onnx_import.context import NodeContext
from tensor_ir.onnx_import.converters.common import scalar_like, unsqueeze
from tensor_ir.onnx_import.registry import converter

# ---------------------------------------------------------------- MatMul


def numpy_matmul(a: Node, b: Node) -> Node:
    """np.matmul semantics: a 1-D left operand is a row, a 1-D right operand a column,
    and the axis each contributed is removed again from the result."""
    a2 = unsqueeze(a, [0]) if a.rank == 1 else a
    b2 = unsqueeze(b, [1]) if b.rank == 1 else b
    out = build.matmul(a2, b2)
    shape = list(out.shape)
    if b.rank == 1:
        del shape[-1]
    if a.rank == 1:
        del shape[-2 if b.rank > 1 else -1]
    return build.reshape(out, shape)


@converter("MatMul", 1, 9, 13)
def matmul(ctx: NodeContext) -> Sequence[Node | None]:
    a, b = ctx.input(0), ctx.input(1)
    if a.rank == 0 or b.rank == 0:
        raise ctx.error("operands must have rank >= 1")
    if a.dtype is not b.dtype:
        raise ctx.error(f"operands differ in cell type: {a.dtype.np_name} and {b.dtype.np_name}")
    return [numpy_matmul(a, b)]


# ---------------------------------------------------------------- Gemm


def _scaled(ctx: NodeContext, x: Node, factor: float, what: str) -> Node:
    if factor == 1.0:
        return x
    if not x.dtype.is_float:
        if float(factor).is_integer():
            return build.join("mul", x, scalar_like(x, int(factor)))
        raise ctx.error(f"unsupported {what}={factor} for integer cells (onnx leaves the rounding undefined)")
    return build.join("mul", x, scalar_like(x, factor))


@converter("Gemm", 1, 6, 7, 9, 11, 13)
def gemm(ctx: NodeContext) -> Sequence[Node | None]:
    a, b, c = ctx.input(0), ctx.input(1), ctx.optional(2)
    if a.rank != 2 or b.rank != 2:
        raise ctx.error(f"A and B must be matrices, got shapes {list(a.shape)} and {list(b.shape)}")
    if a.dtype is not b.dtype:
        raise ctx.error(f"A and B differ in cell type: {a.dtype.np_name} and {b.dtype.np_name}")
    alpha, beta = float(ctx.attr("alpha")), float(ctx.attr("beta"))
    if ctx.attr("transA"):
        a = build.transpose(a, (1, 0))
    if ctx.attr("transB"):
        b = build.transpose(b, (1, 0))
    if a.shape[1] != b.shape[0]:
        raise ctx.error(f"inner dimensions differ: A' is {list(a.shape)}, B' is {list(b.shape)}")
    # fold alpha into a constant operand (once, at deploy) rather than scale every product
    if alpha != 1.0 and b.is_constant and b.dtype.is_float:
        y = build.matmul(a, _scaled(ctx, b, alpha, "alpha"))
    elif alpha != 1.0 and a.is_constant and a.dtype.is_float:
        y = build.matmul(_scaled(ctx, a, alpha, "alpha"), b)
    else:
        y = _scaled(ctx, build.matmul(a, b), alpha, "alpha")
    if c is not None and beta != 0.0:
        if c.dtype is not y.dtype:
            raise ctx.error(f"C is {c.dtype.np_name} but A and B are {y.dtype.np_name}")
        # opset < 7 'broadcast' attribute: with broadcast=0 C must already be [M, N]; either way
        # the numpy-style (unidirectional) broadcast below gives the same answer for valid models
        if ctx.opset < 7 and not ctx.attr("broadcast") and c.shape != y.shape:
            raise ctx.error(f"C has shape {list(c.shape)} but broadcast=0 requires {list(y.shape)}")
        try:
            fits = build.broadcast_shapes(c.shape, y.shape) == y.shape
        except build.IRError:
            fits = False
        if not fits:
            raise ctx.error(f"C of shape {list(c.shape)} does not broadcast to {list(y.shape)}")
        y = build.join("add", y, _scaled(ctx, c, beta, "beta"))
    return [y]


# ---------------------------------------------------------------- Einsum


class _Term:
    """An operand with one label per axis."""

    def __init__(self, node: Node, labels: list[str]) -> None:
        self.node = node
        self.labels = labels

    def size(self, label: str) -> int:
        return self.node.shape[self.labels.index(label)]


def _parse_term(ctx: NodeContext, text: str, rank: int | None, ell_rank: int) -> list[str]:
    """Labels of one term; '...' expands to ellipsis labels right-aligned to `ell_rank` dims."""
    if text.count("...") > 1:
        raise ctx.error(f"term '{text}' has more than one ellipsis")
    head, dots, tail = text.partition("...")
    for ch in head + tail:
        if not ch.isalpha():
            raise ctx.error(f"invalid character {ch!r} in einsum term '{text}'")
    if not dots:
        if rank is not None and len(head) != rank:
            raise ctx.error(f"term '{text}' names {len(head)} axes but its operand has rank {rank}")
        return list(head)
    n = ell_rank if rank is None else rank - len(head) - len(tail)
    if n < 0:
        raise ctx.error(f"term '{text}' names more axes than its operand's rank {rank}")
    return [*head, *(f"...{ell_rank - n + i}" for i in range(n)), *tail]


def _diagonal(t: _Term) -> _Term:
    """Collapse labels repeated within one operand (traces, diagonals) by one GATHER each."""
    counts = Counter(t.labels)
    for label, k in counts.items():
        if k < 2:
            continue
        pos = [i for i, lab in enumerate(t.labels) if lab == label]
        keep = [i for i in range(len(t.labels)) if i not in pos]
        n = t.node.shape[pos[0]]
        if any(t.node.shape[p] != n for p in pos):
            raise build.IRError(f"einsum label '{label}' has different sizes on one operand")
        x = build.transpose(t.node, [*keep, *pos])
        x = build.reshape(x, (*x.shape[: len(keep)], n**k))
        stride = sum(n**j for j in range(k))
        x = build.gather(x, build.as_array(np.arange(n) * stride, CellType.INT64), axis=len(keep))
        t = _Term(x, [*(t.labels[i] for i in keep), label])
    return t


def _sum_out(t: _Term, labels: set[str]) -> _Term:
    axes = [i for i, lab in enumerate(t.labels) if lab in labels]
    if not axes:
        return t
    return _Term(build.reduce(t.node, "sum", axes, keepdims=False),
                 [lab for lab in t.labels if lab not in labels])


def _contract(a: _Term, b: _Term, needed: set[str]) -> _Term:
    """The pairwise product of two terms, summed over shared labels not `needed` later."""
    shared = [lab for lab in a.labels if lab in b.labels]
    batch = [lab for lab in shared if lab in needed]
    inner = [lab for lab in shared if lab not in needed]
    # a size-1 inner axis facing a larger one: summing the larger side first is exact
    for lab in inner:
        sa, sb = a.size(lab), b.size(lab)
        if sa != sb:
            if sa == 1:
                b = _Term(build.reduce(b.node, "sum", [b.labels.index(lab)], keepdims=True), b.labels)
            elif sb == 1:
                a = _Term(build.reduce(a.node, "sum", [a.labels.index(lab)], keepdims=True), a.labels)
            else:
                raise build.IRError(f"einsum label '{lab}' has sizes {sa} and {sb}")
    a_only = [lab for lab in a.labels if lab not in shared]
    b_only = [lab for lab in b.labels if lab not in shared]
    a_batch = [a.size(lab) for lab in batch]
    b_batch = [b.size(lab) for lab in batch]
    for lab, sa, sb in zip(batch, a_batch, b_batch, strict=True):
        if sa != sb and sa != 1 and sb != 1:
            raise build.IRError(f"einsum label '{lab}' has sizes {sa} and {sb}")
    a_sizes = [a.size(lab) for lab in a_only]
    b_sizes = [b.size(lab) for lab in b_only]
    if not inner:
        # no summation: a broadcast product, no matmul needed
        xa = build.transpose(a.node, [a.labels.index(lab) for lab in [*batch, *a_only]])
        xa = build.reshape(xa, (*a_batch, *a_sizes, *([1] * len(b_only))))
        xb = build.transpose(b.node, [b.labels.index(lab) for lab in [*batch, *b_only]])
        xb = build.reshape(xb, (*b_batch, *([1] * len(a_only)), *b_sizes))
        return _Term(build.join("mul", xa, xb), [*batch, *a_only, *b_only])
    k = int(np.prod([a.size(lab) for lab in inner], dtype=np.int64))
    m = int(np.prod(a_sizes, dtype=np.int64))
    n = int(np.prod(b_sizes, dtype=np.int64))
    xa = build.transpose(a.node, [a.labels.index(lab) for lab in [*batch, *a_only, *inner]])
    xa = build.reshape(xa, (*a_batch, m, k))
    xb = build.transpose(b.node, [b.labels.index(lab) for lab in [*batch, *inner, *b_only]])
    xb = build.reshape(xb, (*b_batch, k, n))
    y = build.matmul(xa, xb)
    y = build.reshape(y, (*y.shape[:-2], *a_sizes, *b_sizes))
    return _Term(y, [*batch, *a_only, *b_only])


def einsum_nodes(ctx: NodeContext, equation: str, operands: Sequence[Node]) -> Node:
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    texts = lhs.split(",")
    if len(texts) != len(operands):
        raise ctx.error(f"equation '{equation}' has {len(texts)} terms for {len(operands)} inputs")
    ell_rank = 0
    for text, x in zip(texts, operands, strict=True):
        if "..." in text:
            ell_rank = max(ell_rank, x.rank - len(text.replace("...", "")))
    terms = [_Term(x, _parse_term(ctx, text, x.rank, ell_rank)) for text, x in zip(texts, operands, strict=True)]
    if arrow:
        out = _parse_term(ctx, rhs, None, ell_rank)
        if len(set(out)) != len(out):
            raise ctx.error(f"output term '{rhs}' repeats a label")
    else:
        counts = Counter(lab for t in terms for lab in t.labels)
        ells = sorted({lab for lab in counts if lab.startswith("...")}, key=lambda s: int(s[3:]))
        out = ells + sorted(lab for lab, c in counts.items() if c == 1 and not lab.startswith("..."))
    known = {lab for t in terms for lab in t.labels}
    for lab in out:
        if lab not in known:
            raise ctx.error(f"output label '{lab}' appears in no input term")
    dtypes = {x.dtype for x in operands}
    if len(dtypes) != 1:
        raise ctx.error("operands differ in cell type: " + ", ".join(x.dtype.np_name for x in operands))

    terms = [_diagonal(t) for t in terms]
    want = set(out)
    # each operand first sums away the labels no one else needs
    for i, t in enumerate(terms):
        others = {lab for j, u in enumerate(terms) if j != i for lab in u.labels}
        terms[i] = _sum_out(t, {lab for lab in t.labels if lab not in others and lab not in want})
    acc = terms[0]
    for i in range(1, len(terms)):
        later = {lab for u in terms[i + 1:] for lab in u.labels} | want
        acc = _sum_out(acc, {lab for lab in acc.labels if lab not in terms[i].labels and lab not in later})
        b = _sum_out(terms[i], {lab for lab in terms[i].labels if lab not in acc.labels and lab not in later})
        acc = _contract(acc, b, later)
    acc = _sum_out(acc, {lab for lab in acc.labels if lab not in want})
    return build.transpose(acc.node, [acc.labels.index(lab) for lab in out])


@converter("Einsum", 12, 28)
def einsum(ctx: NodeContext) -> Sequence[Node | None]:
    operands = [x for x in ctx.inputs if x is not None]
    if not operands:
        raise ctx.error("needs at least one input")
    equation = ctx.attr("equation")
    if not isinstance(equation, str) or not equation:
        raise ctx.error("attribute 'equation' is missing")
    return [einsum_nodes(ctx, equation, operands)]


# ---------------------------------------------------------------- integer and quantized matmul


def _int32(x: Node) -> Node:
    return build.cast(x, CellType.INT32)


def _per_row(x: Node) -> Node:
    """A 1-D per-row parameter of the left matmul operand: make it a column."""
    return build.reshape(x, (x.shape[0], 1)) if x.rank == 1 and x.shape[0] != 1 else x


def _minus_zero_point(x: Node, zp: Node | None, per_row: bool) -> Node:
    x32 = _int32(x)
    if zp is None:
        return x32
    z = _int32(zp)
    return build.join("sub", x32, _per_row(z) if per_row else z)


@converter("MatMulInteger", 10)
def matmul_integer(ctx: NodeContext) -> Sequence[Node | None]:
    a = _minus_zero_point(ctx.input(0), ctx.optional(2), per_row=True)
    b = _minus_zero_point(ctx.input(1), ctx.optional(3), per_row=False)
    return [numpy_matmul(a, b)]


def integer_range(ct: CellType) -> tuple[int, int]:
    """The smallest and largest value of an integer cell type (int4 and friends included)."""
    info = ml_dtypes.iinfo(ct.np_dtype)  # type: ignore[no-untyped-call]
    return int(info.min), int(info.max)


def round_saturate(x: Node, to: CellType) -> Node:
    """Round half to even, clip to `to`'s range, convert (x is float)."""
    lo, hi = integer_range(to)
    r = build.map_("round", x)
    r = build.join("max", r, scalar_like(r, lo))
    r = build.join("min", r, scalar_like(r, hi))
    return build.cast(r, to)


@converter("QLinearMatMul", 10, 21)
def qlinear_matmul(ctx: NodeContext) -> Sequence[Node | None]:
    a, a_scale, a_zp = ctx.input(0), ctx.input(1), ctx.optional(2)
    b, b_scale, b_zp = ctx.input(3), ctx.input(4), ctx.optional(5)
    y_scale, y_zp = ctx.input(6), ctx.optional(7)
    out_type = y_zp.dtype if y_zp is not None else a.dtype
    if not out_type.is_int:
        raise ctx.error(f"unsupported output type {out_type.np_name} (only integer quantization)")
    if not a.dtype.is_int or not b.dtype.is_int:
        raise ctx.error(f"unsupported operand types {a.dtype.np_name}, {b.dtype.np_name} (integers only)")
    acc = numpy_matmul(_minus_zero_point(a, a_zp, per_row=True), _minus_zero_point(b, b_zp, per_row=False))
    if not (a_scale.dtype is b_scale.dtype is y_scale.dtype):
        raise ctx.error("scales differ in cell type")
    # the requantisation factor is formed in the scales' own precision, then applied in float64
    # (as onnx's reference does) so that rounding to the output grid is not perturbed
    factor = build.join("div", build.join("mul", _per_row(a_scale), b_scale), _per_row(y_scale))
    y = build.join("mul", build.cast(acc, CellType.FLOAT64), build.cast(factor, CellType.FLOAT64))
    if y_zp is not None:
        y = build.join("add", y, build.cast(_per_row(y_zp), CellType.FLOAT64))
    return [round_saturate(y, out_type)]


def _block_size(ctx: NodeContext) -> int:
    # block_size arrives with (De)QuantizeLinear-21; before it there are no blocks, as the
    # opset-21 default block_size=0 says
    return int(ctx.attr("block_size")) if ctx.declares("block_size") else 0


def _quant_axis(ctx: NodeContext) -> int:
    # axis arrives with (De)QuantizeLinear-13; version 10 allows only a per-tensor scale and
    # zero point, which no axis affects, so the opset-13 default axis=1 stands in for it
    return int(ctx.attr("axis")) if ctx.declares("axis") else 1


def _quant_param(ctx: NodeContext, p: Node, x: Node, axis: int, block: int, what: str) -> Node:
    """A scale or zero point made broadcastable to x: per tensor, per axis or blocked."""
    if p.size == 1:
        return build.reshape(p, ())
    if not -x.rank <= axis < x.rank:
        raise ctx.error(f"axis {axis} is out of range for an input of rank {x.rank}")
    ax = axis % x.rank
    if block <= 0:
        if p.rank != 1 or p.shape[0] != x.shape[ax]:
            raise ctx.error(f"{what} of shape {list(p.shape)} does not match axis {ax} of {list(x.shape)}")
        return build.reshape(p, [x.shape[ax] if i == ax else 1 for i in range(x.rank)])
    if p.rank != x.rank:
        raise ctx.error(f"blocked {what} must have the input's rank {x.rank}, got {list(p.shape)}")
    n_blocks = -(-x.shape[ax] // block)
    if p.shape[ax] != n_blocks or any(p.shape[i] != x.shape[i] for i in range(x.rank) if i != ax):
        raise ctx.error(f"blocked {what} of shape {list(p.shape)} does not fit input {list(x.shape)} "
                        f"with block_size {block} on axis {ax}")
    idx = build.as_array(np.arange(x.shape[ax]) // block, CellType.INT64)
    return build.gather(p, idx, axis=ax)


@converter("DequantizeLinear", 10, 13, 19, 21, 23, 24, 25, 28)
def dequantize_linear(ctx: NodeContext) -> Sequence[Node | None]:
    x, scale, zp = ctx.input(0), ctx.input(1), ctx.optional(2)
    block = _block_size(ctx)
    # output_dtype arrives with DequantizeLinear-23; its default 0 (and every earlier version)
    # means the scale's type
    out = ctx.dtype_attr("output_dtype") if ctx.declares("output_dtype") and ctx.attr("output_dtype") else scale.dtype
    if scale.dtype is CellType.FLOAT8E8M0 or not scale.dtype.is_float:
        raise ctx.error(f"unsupported scale type {scale.dtype.np_name}")
    if x.dtype.is_bool or not (x.dtype.is_int or x.dtype.is_narrow):
        raise ctx.error(f"unsupported quantized type {x.dtype.np_name}")
    axis = _quant_axis(ctx)
    dx = build.cast(x, CellType.FLOAT32)
    if zp is not None:
        if zp.dtype is not x.dtype:
            raise ctx.error(f"zero point is {zp.dtype.np_name} but x is {x.dtype.np_name}")
        z = _quant_param(ctx, build.cast(zp, CellType.FLOAT32), x, axis, block, "zero point")
        dx = build.join("sub", dx, z)
    s = _quant_param(ctx, build.cast(scale, CellType.FLOAT32), x, axis, block, "scale")
    return [build.cast(build.join("mul", dx, s), out)]


@converter("QuantizeLinear", 10, 13, 19, 21, 23, 24, 25, 28)
def quantize_linear(ctx: NodeContext) -> Sequence[Node | None]:
    x, scale, zp = ctx.input(0), ctx.input(1), ctx.optional(2)
    block = _block_size(ctx)
    # output_dtype arrives with QuantizeLinear-21; its default 0 (and every earlier version)
    # leaves the type to the zero point, else uint8
    given = ctx.declares("output_dtype") and bool(ctx.attr("output_dtype"))
    if zp is not None:
        out = zp.dtype
        if given and ctx.dtype_attr("output_dtype") is not out:
            raise ctx.error("output_dtype differs from the zero point's type")
    elif given:
        out = ctx.dtype_attr("output_dtype")
    else:
        out = CellType.UINT8
    if not scale.dtype.is_float or not x.dtype.is_float:
        raise ctx.error(f"unsupported input/scale types {x.dtype.np_name}/{scale.dtype.np_name} "
                        "(float only)")
    # precision arrives with QuantizeLinear-23; its default 0 (and every earlier version) means
    # the scale's type
    precision = ctx.dtype_attr("precision") if ctx.declares("precision") and ctx.attr("precision") else None
    # onnx: the scale's type (or 'precision') sets the precision of the division; the backends
    # compute float16/bfloat16 in float32, which is at least as precise
    work = precision if precision is not None else scale.dtype
    axis = _quant_axis(ctx)
    q = build.join("div", build.cast(x, work),
                   _quant_param(ctx, build.cast(scale, work), x, axis, block, "scale"))
    if out.is_int:
        q = build.cast(build.map_("round", q), CellType.FLOAT64)
        if zp is not None:
            z = _quant_param(ctx, build.cast(zp, CellType.FLOAT64), x, axis, block, "zero point")
            q = build.join("add", q, z)
        return [round_saturate(q, out)]
    if out in (CellType.FLOAT8E4M3FN, CellType.FLOAT8E4M3FNUZ, CellType.FLOAT8E5M2, CellType.FLOAT8E5M2FNUZ,
               CellType.FLOAT4E2M1):
        if zp is not None:
            z = _quant_param(ctx, build.cast(zp, q.dtype), x, axis, block, "zero point")
            q = build.join("add", q, z)
        # saturate arrives with QuantizeLinear-19 together with the float8 outputs it governs;
        # earlier versions have no such output, and the opset-19 default saturate=1 stands in
        saturate = bool(ctx.attr("saturate")) if ctx.declares("saturate") else True
        saturate = saturate or out is CellType.FLOAT4E2M1
        return [build.cast(q, out, saturate=saturate)]
    raise ctx.error(f"unsupported quantized type {out.np_name}")
