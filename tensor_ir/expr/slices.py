"""Slices of a tensor: `t{x:1}`, `t{x:(d + 1)}`, `t{x:1-d}` and `t[i]`, compiled for the
`Compiler`. A label is any expression (tensor_ir.expr.parser).

An index known when compiling picks one cell along its dimension; an index computed at run
time (or one per cell of a generator) gathers. As in Vespa's peek, an index is truncated
toward zero, and one outside the dimension gives 0.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tensor_ir import build
from tensor_ir.dtypes import CellType
from tensor_ir.expr.ast import SliceExpr
from tensor_ir.expr.errors import Location
from tensor_ir.expr.types import TensorType
from tensor_ir.expr.values import TValue, as_double, expand_to
from tensor_ir.ir import Op

if TYPE_CHECKING:
    from tensor_ir.expr.compiler import Compiler


def slice_value(c: Compiler, e: SliceExpr) -> TValue:
    v = c.compile(e.target)
    if e.index is not None:
        if len(v.type.visible) != 1:
            raise c.error(f"t[i] needs a one-dimensional tensor, got {v.type}", e.loc)
        picks = [(v.type.visible_names[0], e.index)]
    else:
        assert e.by_dim is not None
        if not e.by_dim:
            raise c.error("a slice needs at least one dimension and label, as in t{x:1}", e.loc)
        picks = list(e.by_dim)
        seen = [d for d, _ in picks]
        if len(set(seen)) != len(seen):
            raise c.error("a slice names a dimension twice", e.loc)
    indices = []
    for dim, idx_expr in picks:
        if dim not in v.type.visible_names:
            raise c.error(f"cannot slice dimension '{dim}': the value has type {v.type}", e.loc)
        indices.append((dim, c.compile(idx_expr), idx_expr.loc))
    # fixed indices first: t{x:y, y:1} peeks y:1 before x follows the generator's y
    fixed = [p for p in indices if p[1].type.rank == 0 and p[1].node.op is Op.CONSTANT]
    for dim, idx, loc in fixed:
        v = _slice_constant(c, v, dim, idx, loc)
    for dim, idx, loc in indices:
        if not any(dim == f[0] for f in fixed):
            v = _slice_computed(c, v, dim, idx, loc)
    return as_double(v)


def _slice_constant(c: Compiler, v: TValue, dim: str, idx: TValue, loc: Location) -> TValue:
    axis = v.type.names.index(dim)
    size = v.type.size_of(dim)
    raw = float(idx.node.value)
    rest = tuple(d for d in v.type.dims if d[0] != dim)
    if not -1 < raw < size:  # NaN too
        zeros = build.broadcast(build.scalar(0, v.type.cell), [s for _, s in rest])
        return TValue(zeros, TensorType(v.type.cell, rest))
    node = build.gather(v.node, build.scalar(int(raw), CellType.INT64), axis)
    return TValue(node, TensorType(v.type.cell, rest))


def _slice_computed(c: Compiler, v: TValue, dim: str, idx: TValue, loc: Location) -> TValue:
    """An index known only at run time, or one per cell of a generator: t{x:(d1+1)}.

    An index outside the dimension gives 0, as Vespa's peek does; indices are whole
    numbers, truncated toward zero."""
    axis = v.type.names.index(dim)
    size = v.type.size_of(dim)
    rest = [d for d in v.type.dims if d[0] != dim]
    if set(idx.type.names) & {n for n, _ in rest}:
        return _slice_by_mask(c, v, dim, idx, loc)
    i = build.cast(idx.node, CellType.INT64)
    ok = build.join("and", build.join("ge", i, build.scalar(0, CellType.INT64)),
                    build.join("lt", i, build.scalar(size, CellType.INT64)))
    safe = build.select(ok, i, build.broadcast(build.scalar(0, CellType.INT64), i.shape))
    g = build.gather(v.node, safe, axis)
    names = [*v.type.names[:axis], *idx.type.names, *v.type.names[axis + 1:]]
    mask_shape = [1] * axis + list(idx.type.shape) + [1] * (v.type.rank - axis - 1)
    mask = build.reshape(ok, mask_shape)
    zero = build.scalar(0, g.dtype)
    out = build.select(mask, g, zero)
    if out.shape != g.shape:
        out = build.broadcast(out, g.shape)
    order = sorted(range(len(names)), key=lambda k: names[k])
    node = build.transpose(out, order)
    sizes = dict([*rest, *idx.type.dims])
    dims = tuple((names[k], sizes[names[k]]) for k in order)
    return TValue(node, TensorType(v.type.cell, dims))


def _slice_by_mask(c: Compiler, v: TValue, dim: str, idx: TValue, loc: Location) -> TValue:
    """A computed index that varies along a dimension the sliced value also has (nested
    generators: t{x:(z)} where both t and the index depend on z): the cell where the
    truncated index equals the position along `dim`, the others 0, summed over `dim`.
    Adding zeros is exact, so the picked cell comes back unchanged."""
    size = v.type.size_of(dim)
    position = TValue(build.constant(np.arange(size, dtype=np.float64), CellType.FLOAT64),
                      TensorType(CellType.FLOAT64, ((dim, size),)))
    whole = build.cast(build.cast(as_double(idx).node, CellType.INT64), CellType.FLOAT64)
    hit = c.join(TValue(whole, TensorType(CellType.FLOAT64, idx.type.dims)), position,
                 lambda a, b: build.join("eq", a, b), loc)
    dims = c.joint_dims([hit, v], loc)
    shape = [s for _, s in dims]
    cells = build.broadcast(expand_to(v, dims), shape)
    picked = build.select(build.broadcast(expand_to(hit, dims), shape), cells, build.scalar(0, v.type.cell))
    summed = build.reduce(picked, "sum", [[n for n, _ in dims].index(dim)], False)
    return TValue(summed, TensorType(v.type.cell, tuple(d for d in dims if d[0] != dim)))
