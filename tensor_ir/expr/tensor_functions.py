"""Vespa's tensor functions, by the name an expression calls them: map, join, reduce and
the aggregators, rename, concat, cell_cast, the normalisations and distances, softmax,
argmax, expand, range, diag, and if; merge, median, cell_order, the subspace functions and
unpack_bits come from their own modules (merge_functions, order_functions,
subspace_functions, bit_functions).

Each takes the `Compiler` and the call, and builds its value from the compiler's
primitives (join, map, reduce, fill, ...). A new tensor function goes here, into
TENSOR_FUNCTIONS; scalar math goes into math_functions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from tensor_ir import build
from tensor_ir.dtypes import CellType
from tensor_ir.expr import bit_functions, merge_functions, order_functions, sparse, sparse_functions, subspace_functions
from tensor_ir.expr.ast import Call, Expr, Name, NameList
from tensor_ir.expr.types import TensorType
from tensor_ir.expr.values import (
    TValue,
    as_double,
    compute_cell,
    convert,
    expand_to,
    storage_cells,
    unify_cells,
    with_cell,
)
from tensor_ir.ir import Node, Op

if TYPE_CHECKING:
    from tensor_ir.expr.compiler import Compiler

AGGREGATORS = ("sum", "avg", "count", "max", "min", "prod")


def _aggregate(agg: str) -> Callable[[Compiler, Call], TValue]:
    """sum(t), sum(t, x, ...): reduce over all dimensions, or over those named."""

    def convert(c: Compiler, e: Call) -> TValue:
        if not e.args:
            raise c.error(f"{agg}() needs a tensor argument", e.loc)
        return c.reduce(c.compile(e.args[0]), agg, [c.dim_name(a) for a in e.args[1:]], e.loc)

    return convert


def _is_reduction(c: Compiler, e: Call) -> bool:
    """max(t) and max(t, x) reduce when x names a dimension of t; max(a, b) of two
    values is the elementwise maximum. Vespa resolves the overload the same way."""
    if len(e.args) == 1:
        return True
    dims = e.args[1:]
    if not all(isinstance(d, Name) and d.name not in c.locals and not c.context.has_function(d.name)
               for d in dims):
        return False
    if len(dims) > 1:
        return True
    first = c.compile(e.args[0])
    return isinstance(dims[0], Name) and dims[0].name in first.type.names


def _max_min(fn: str) -> Callable[[Compiler, Call], TValue]:
    def convert(c: Compiler, e: Call) -> TValue:
        if _is_reduction(c, e):
            return c.reduce(c.compile(e.args[0]), fn, [c.dim_name(a) for a in e.args[1:]], e.loc)
        c.arity(e, 2)
        return c.join(c.compile(e.args[0]), c.compile(e.args[1]), lambda x, y: first_nan_kept(fn, x, y), e.loc)

    return convert


def first_nan_kept(fn: str, x: Node, y: Node) -> Node:
    """Vespa's max and min (std::max, std::min): y only where it compares greater (less),
    so x is kept where either is NaN."""
    return build.select(build.join("gt" if fn == "max" else "lt", y, x), y, x)


def _if(c: Compiler, e: Call) -> TValue:
    """if(cond, a, b) and if(cond, a, b, p): p, the chance that cond holds, only tells
    Vespa's optimiser which branch to expect. The branches' cell types unify without
    decay (int8 stays int8)."""
    if len(e.args) == 4:
        p = c.compile(e.args[3])
        if not (p.type.rank == 0 and p.node.op is Op.CONSTANT and 0.0 <= float(p.node.value) <= 1.0):
            raise c.error("if()'s fourth argument, the probability that the condition holds, must be a "
                          "number between 0 and 1", e.args[3].loc)
    else:
        c.arity(e, 3)
    cond, a, b = (c.compile(x) for x in e.args[:3])
    if a.sparse is not None or b.sparse is not None or cond.sparse is not None:
        return sparse_functions.if_mapped(c, cond, a, b, e.loc)
    cell = storage_cells(a, b)
    dims = c.joint_dims([cond, a, b], e.loc)
    shape = [s for _, s in dims]
    test = c.nonzero(expand_to(cond, dims))
    node = build.select(test, expand_to(with_cell(a, cell), dims), expand_to(with_cell(b, cell), dims))
    return TValue(build.broadcast(node, shape), TensorType(cell, dims))


def _map(c: Compiler, e: Call) -> TValue:
    c.arity(e, 2)
    v = c.compile(e.args[0])
    lam = c.lambda_of(e.args[1], 1, "map")
    out = c.apply_per_cell(lam, [v])
    if v.is_scalar:
        return as_double(c.fill(out, TensorType(CellType.FLOAT64, ()), lam.body.loc))
    return c.fill(out, TensorType(compute_cell(v.type.cell), v.type.dims), lam.body.loc)


def _join(c: Compiler, e: Call) -> TValue:
    c.arity(e, 3)
    a, b = c.compile(e.args[0]), c.compile(e.args[1])
    lam = c.lambda_of(e.args[2], 2, "join")
    mapped = c.joint_mapped([a, b], e.loc)
    if mapped:
        a, b = sparse.aligned(a, b)
    dims = c.joint_dims([a, b], e.loc)
    cell = CellType.FLOAT64 if not dims and not mapped else unify_cells(a, b)
    joint = TensorType(cell, dims, mapped)
    both = sparse.joint_sparse(a, b) if mapped else None
    na = TValue(build.broadcast(expand_to(with_cell(a, cell), dims), joint.shape), joint, both)
    nb = TValue(build.broadcast(expand_to(with_cell(b, cell), dims), joint.shape), joint, both)
    return c.fill(c.apply_per_cell(lam, [na, nb]), joint, lam.body.loc)


def _reduce(c: Compiler, e: Call) -> TValue:
    if len(e.args) < 2:
        raise c.error("reduce() takes a tensor, an aggregator and optional dimensions", e.loc)
    agg = c.dim_name(e.args[1])
    if agg == "median":
        return order_functions.median_reduce(c, c.compile(e.args[0]), [c.dim_name(a) for a in e.args[2:]], e.loc)
    if agg not in AGGREGATORS:
        raise c.error(f"unknown aggregator '{agg}' (expected one of {', '.join(AGGREGATORS)}, median)",
                      e.args[1].loc)
    return c.reduce(c.compile(e.args[0]), agg, [c.dim_name(a) for a in e.args[2:]], e.loc)


def _rename(c: Compiler, e: Call) -> TValue:
    c.arity(e, 3)
    v = c.compile(e.args[0])

    def names(x: Expr) -> tuple[str, ...]:
        if isinstance(x, NameList):
            return x.names
        return (c.dim_name(x),)

    src, dst = names(e.args[1]), names(e.args[2])
    if len(src) != len(dst):
        raise c.error("rename() needs as many new names as old ones", e.loc)
    if len(set(src)) != len(src):
        raise c.error("rename() names a dimension twice", e.loc)
    mapping = dict(zip(src, dst, strict=True))
    if v.sparse is not None:
        return sparse_functions.rename(c, v, mapping, e.loc)
    for s in src:
        if s not in v.type.names:
            raise c.error(f"cannot rename dimension '{s}': the value has type {v.type}", e.loc)
    renamed = [(mapping.get(n, n), i) for i, n in enumerate(v.type.names)]
    if len({n for n, _ in renamed}) != len(renamed):
        raise c.error("rename() would give two dimensions the same name", e.loc)
    order = sorted(renamed)
    node = build.transpose(v.node, [i for _, i in order])
    dims = tuple((n, v.type.dims[i][1]) for n, i in order)
    return TValue(node, TensorType(v.type.cell, dims))


def _concat(c: Compiler, e: Call) -> TValue:
    c.arity(e, 3)
    a, b = c.compile(e.args[0]), c.compile(e.args[1])
    dim = c.dim_name(e.args[2])
    others: dict[str, int] = {}
    for v in (a, b):
        for n, sz in v.type.dims:
            if n != dim and others.setdefault(n, sz) != sz:
                raise c.error(f"concat: dimension '{n}' has size {others[n]} in one operand and {sz} in the other",
                              e.loc)
    sa = a.type.size_of(dim) if dim in a.type.names else 1
    sb = b.type.size_of(dim) if dim in b.type.names else 1
    cell = storage_cells(a, b)  # without decay: int8 with int8 stays int8
    parts = []
    dims_out = tuple(sorted({**others, dim: sa + sb}.items()))
    for v, s in ((a, sa), (b, sb)):
        dims_v = tuple(sorted({**others, dim: s}.items()))
        parts.append(build.broadcast(expand_to(with_cell(v, cell), dims_v), [z for _, z in dims_v]))
    axis = [n for n, _ in dims_out].index(dim)
    mapped = c.joint_mapped([a, b], e.loc)
    if dim in mapped:
        raise c.error(f"concat along mapped dimension '{dim}' is not supported (Vespa concatenates along "
                      "an indexed dimension)", e.loc)
    both = sparse.joint_sparse(a, b) if mapped else None
    return sparse.with_sparse(build.concat(parts, axis), cell, dims_out, mapped, both)


def _cell_cast(c: Compiler, e: Call) -> TValue:
    c.arity(e, 2)
    v = c.compile(e.args[0])
    try:
        cell = CellType.from_vespa(c.dim_name(e.args[1]))
    except ValueError as err:
        raise c.error(str(err), e.args[1].loc) from None
    # a number keeps the rounding of the cast but stays a double
    return as_double(TValue(convert(v.node, cell), TensorType(cell, v.type.dims, v.type.mapped), v.sparse))


def _l2_normalize(c: Compiler, e: Call) -> TValue:
    c.arity(e, 2)
    v = c.compile(e.args[0])
    dim = c.dim_name(e.args[1])
    sq = c.join(v, v, lambda x, y: build.join("mul", x, y), e.loc)
    norm = c.map(c.reduce(sq, "sum", [dim], e.loc), lambda n: build.map_("sqrt", n))
    return c.join(v, with_cell(norm, compute_cell(v.type.cell)) if not norm.is_scalar else norm,
                  lambda x, y: build.join("div", x, y), e.loc)


def _l1_normalize(c: Compiler, e: Call) -> TValue:
    c.arity(e, 2)
    v = c.compile(e.args[0])
    total = c.reduce(v, "sum", [c.dim_name(e.args[1])], e.loc)
    return c.join(v, with_cell(total, compute_cell(v.type.cell)) if not total.is_scalar else total,
                  lambda x, y: build.join("div", x, y), e.loc)


def _matmul(c: Compiler, e: Call) -> TValue:
    c.arity(e, 3)
    a, b = c.compile(e.args[0]), c.compile(e.args[1])
    dim = c.dim_name(e.args[2])
    prod = c.join(a, b, lambda x, y: build.join("mul", x, y), e.loc)
    return c.reduce(prod, "sum", [dim], e.loc)


def _euclidean(c: Compiler, e: Call) -> TValue:
    c.arity(e, 3)
    a, b = c.compile(e.args[0]), c.compile(e.args[1])
    diff = c.join(a, b, lambda x, y: build.join("sub", x, y), e.loc)
    sq = c.join(diff, diff, lambda x, y: build.join("mul", x, y), e.loc)
    return c.map(c.reduce(sq, "sum", [c.dim_name(e.args[2])], e.loc), lambda n: build.map_("sqrt", n))


def _softmax(c: Compiler, e: Call) -> TValue:
    if len(e.args) not in (1, 2):
        raise c.error("softmax() takes a tensor and a dimension", e.loc)
    v = c.compile(e.args[0])
    dims = [c.dim_name(e.args[1])] if len(e.args) == 2 else list(v.type.names)
    # shifted by the maximum: the same value as Vespa's exp(x)/sum(exp(x)) without overflow
    mx = c.reduce(v, "max", dims, e.loc)
    shifted = c.join(v, with_cell(mx, compute_cell(v.type.cell)), lambda x, y: build.join("sub", x, y), e.loc)
    ex = c.map(shifted, lambda n: build.map_("exp", n))
    total = c.reduce(ex, "sum", dims, e.loc)
    return c.join(ex, with_cell(total, ex.type.cell), lambda x, y: build.join("div", x, y), e.loc)


def _xw_plus_b(c: Compiler, e: Call) -> TValue:
    c.arity(e, 4)
    x, w, b = (c.compile(a) for a in e.args[:3])
    dim = c.dim_name(e.args[3])
    xw = c.reduce(c.join(x, w, lambda p, q: build.join("mul", p, q), e.loc), "sum", [dim], e.loc)
    return c.join(xw, b, lambda p, q: build.join("add", p, q), e.loc)


def _arg(agg: str) -> Callable[[Compiler, Call], TValue]:
    def convert(c: Compiler, e: Call) -> TValue:
        if not e.args:
            raise c.error(f"arg{agg}() needs a tensor", e.loc)
        v = c.compile(e.args[0])
        dims = [c.dim_name(a) for a in e.args[1:]] or list(v.type.names)
        best = c.reduce(v, agg, dims, e.loc)
        best = with_cell(best, compute_cell(v.type.cell)) if not best.is_scalar else best
        return c.truth(c.join(v, best, lambda x, y: build.join("eq", x, y), e.loc), v)

    return convert


def _cosine(c: Compiler, e: Call) -> TValue:
    c.arity(e, 3)
    a, b = c.compile(e.args[0]), c.compile(e.args[1])
    dim = c.dim_name(e.args[2])
    ab = c.reduce(c.join(a, b, lambda x, y: build.join("mul", x, y), e.loc), "sum", [dim], e.loc)
    aa = c.reduce(c.join(a, a, lambda x, y: build.join("mul", x, y), e.loc), "sum", [dim], e.loc)
    bb = c.reduce(c.join(b, b, lambda x, y: build.join("mul", x, y), e.loc), "sum", [dim], e.loc)
    denom = c.map(c.join(aa, bb, lambda x, y: build.join("mul", x, y), e.loc), lambda n: build.map_("sqrt", n))
    return c.join(ab, denom, lambda x, y: build.join("div", x, y), e.loc)


def _expand(c: Compiler, e: Call) -> TValue:
    c.arity(e, 2)
    v = c.compile(e.args[0])
    dim = c.dim_name(e.args[1])
    if dim in v.type.names:
        raise c.error(f"expand(): the value already has dimension '{dim}' ({v.type})", e.loc)
    dims = tuple(sorted((*v.type.dims, (dim, 1))))
    cell = compute_cell(v.type.cell) if not v.is_scalar else CellType.FLOAT64
    return TValue(build.reshape(with_cell(v, cell).node, [s for _, s in dims]), TensorType(cell, dims))


def _const_size(c: Compiler, e: Expr, what: str) -> int:
    v = c.compile(e)
    raw = float(v.node.value) if v.is_scalar and v.node.op is Op.CONSTANT else -1.0
    if raw != int(raw) or raw < 1:
        raise c.error(f"{what} must be a constant whole number of at least 1", e.loc)
    return int(raw)


def _range(c: Compiler, e: Call) -> TValue:
    c.arity(e, 1)
    n = _const_size(c, e.args[0], "range()'s size")
    t = TensorType(CellType.FLOAT64, (("i", n),))
    return TValue(build.constant(np.arange(n, dtype=np.float64)), t)


def _diag(c: Compiler, e: Call) -> TValue:
    c.arity(e, 2)
    n1 = _const_size(c, e.args[0], "diag()'s first size")
    n2 = _const_size(c, e.args[1], "diag()'s second size")
    t = TensorType(CellType.FLOAT64, (("i", n1), ("j", n2)))
    return TValue(build.constant(np.eye(n1, n2, dtype=np.float64)), t)


TENSOR_FUNCTIONS: dict[str, Callable[[Compiler, Call], TValue]] = {
    "if": _if,
    "map": _map,
    "join": _join,
    "reduce": _reduce,
    "sum": _aggregate("sum"),
    "avg": _aggregate("avg"),
    "count": _aggregate("count"),
    "prod": _aggregate("prod"),
    "max": _max_min("max"),
    "min": _max_min("min"),
    "rename": _rename,
    "concat": _concat,
    "cell_cast": _cell_cast,
    "l1_normalize": _l1_normalize,
    "l2_normalize": _l2_normalize,
    "matmul": _matmul,
    "euclidean_distance": _euclidean,
    "cosine_similarity": _cosine,
    "softmax": _softmax,
    "xw_plus_b": _xw_plus_b,
    "argmax": _arg("max"),
    "argmin": _arg("min"),
    "expand": _expand,
    "range": _range,
    "diag": _diag,
    "merge": merge_functions.merge,
    "median": order_functions.median,
    "cell_order": order_functions.cell_order,
    "map_subspaces": subspace_functions.map_subspaces,
    "filter_subspaces": subspace_functions.filter_subspaces,
    "top": subspace_functions.top,
    "unpack_bits": bit_functions.unpack_bits,
}
