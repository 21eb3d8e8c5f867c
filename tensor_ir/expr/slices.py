"""Slices of a tensor: `t{x:1}`, `t{x:(d + 1)}`, `t{x:1-d}` and `t[i]`, compiled for the
`Compiler`. A label is any expression (tensor_ir.expr.parser).

An index known when compiling picks one cell along its dimension; an index computed at run
time (or one per cell of a generator) gathers. As in Vespa's peek, an index is truncated
toward zero, and one outside the dimension gives 0.

On a mapped dimension (tensor_ir.expr.sparse) a label written as a bare name or a quoted
string is that label verbatim (`t{x:a}` is label "a", whatever `a` means elsewhere); any
other label is computed, a number truncated toward zero to a whole-number label
(`t{x:(i+1)}`). Peeking keeps the slots whose label matches (mask and label == id): with
mapped dimensions left, on fresh slot axes; with none left, the one matching cell block,
or 0 where the address is absent. A label computed at run time is matched by its id,
which for 0 <= n < 2^30 is n itself (tensor_ir.mapped); others match no label.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tensor_ir import build
from tensor_ir.dtypes import CellType
from tensor_ir.expr import sparse as sp
from tensor_ir.expr.ast import Expr, SliceExpr, Str
from tensor_ir.expr.errors import Location
from tensor_ir.expr.types import TensorType, is_hidden, is_slot
from tensor_ir.expr.values import Sparse, TValue, as_double, compute_cell, convert, expand_to, with_cell
from tensor_ir.ir import Node, Op
from tensor_ir.mapped import LABELS, NUMBER_LABELS

# the id a computed label gets when no label can have it (NaN, negative, too large)
_NO_MATCH = -2

if TYPE_CHECKING:
    from tensor_ir.expr.compiler import Compiler


def slice_value(c: Compiler, e: SliceExpr) -> TValue:
    v = c.compile(e.target)
    if e.index is not None:
        if len(v.type.visible) != 1 or v.type.mapped:
            raise c.error(f"t[i] needs a one-dimensional tensor, got {v.type.value_type}", e.loc)
        picks = [(v.type.visible_names[0], e.index)]
    else:
        assert e.by_dim is not None
        if not e.by_dim:
            raise c.error("a slice needs at least one dimension and label, as in t{x:1}", e.loc)
        picks = list(e.by_dim)
        seen = [d for d, _ in picks]
        if len(set(seen)) != len(seen):
            raise c.error("a slice names a dimension twice", e.loc)
    verbatim = dict(e.verbatim)
    indices = []
    labels: list[tuple[str, TValue]] = []
    for dim, idx_expr in picks:
        if dim in v.type.mapped:
            labels.append((dim, _label_id(c, idx_expr, verbatim.get(dim))))
            continue
        if dim not in v.type.visible_names:
            raise c.error(f"cannot slice dimension '{dim}': the value has type {v.type.value_type}", e.loc)
        indices.append((dim, c.compile(idx_expr), idx_expr.loc))
    # fixed indices first: t{x:y, y:1} peeks y:1 before x follows the generator's y
    fixed = [p for p in indices if p[1].type.rank == 0 and p[1].node.op is Op.CONSTANT]
    for dim, idx, loc in fixed:
        v = _slice_constant(c, v, dim, idx, loc)
    for dim, idx, loc in indices:
        if not any(dim == f[0] for f in fixed):
            v = _slice_computed(c, v, dim, idx, loc)
    if labels:
        v = _peek_mapped(c, v, labels, e.loc)
    return as_double(v)


def _label_id(c: Compiler, e: Expr, verbatim: str | None) -> TValue:
    """The label id (int32) a peek on a mapped dimension asks for (module doc)."""
    if verbatim is not None:
        return _constant_id(verbatim)
    if isinstance(e, Str):
        return _constant_id(e.value)
    idx = c.compile(e)
    if not idx.is_scalar:
        raise c.error(f"a label must be a number or a name, got {idx.type.value_type}", e.loc)
    if idx.type.rank == 0 and idx.node.op is Op.CONSTANT:
        n = float(idx.node.value)
        if not np.isfinite(n):
            return _constant_id(None)
        return _constant_id(str(int(n)))  # int() truncates toward zero, as Vespa's peek does
    n_node = as_double(idx).node
    f64 = CellType.FLOAT64
    ok = build.join("and", build.join("ge", n_node, build.scalar(0.0, f64)),
                    build.join("lt", n_node, build.scalar(float(NUMBER_LABELS), f64)))
    safe = build.select(ok, n_node, build.scalar(0.0, f64))  # no cast of NaN or of huge numbers
    ids = build.select(ok, build.cast(safe, sp.LABEL_CELL), build.scalar(_NO_MATCH, sp.LABEL_CELL))
    return TValue(ids, TensorType(sp.LABEL_CELL, idx.type.dims))


def _constant_id(label: str | None) -> TValue:
    i = _NO_MATCH if label is None else LABELS.encode(label)
    return TValue(build.scalar(i, sp.LABEL_CELL), TensorType(sp.LABEL_CELL, ()))


def _peek_mapped(c: Compiler, v: TValue, labels: list[tuple[str, TValue]], loc: Location) -> TValue:
    assert v.sparse is not None
    own = dict(v.sparse.labels)
    mask: TValue | None = v.sparse.mask
    for dim, wanted in labels:
        mask = sp.and_masks(mask, sp.labels_equal(own[dim], wanted))
    assert mask is not None
    # a computed label may vary along a generator's hidden dimensions: the cells follow
    dims = c.joint_dims([v, mask], loc)
    cells = build.broadcast(expand_to(v, dims), [s for _, s in dims]) if dims != v.type.dims else v.node
    picked = {d for d, _ in labels}
    mapped = tuple(d for d in v.type.mapped if d not in picked)
    if mapped:
        kept = Sparse(tuple((d, x) for d, x in v.sparse.labels if d not in picked), mask)
        return sp.refresh(TValue(cells, TensorType(v.type.cell, dims, mapped), kept))
    return _only_cell(cells, v.type.cell, dims, mask)


def _only_cell(cells: Node, cell: CellType, dims: tuple[tuple[str, int], ...], mask: TValue) -> TValue:
    """The cells of the one slot the mask holds (module doc: a full address matches at
    most one), summed over the slot axes with -0.0 elsewhere, which adds exactly; 0 where
    no slot holds."""
    ct = compute_cell(cell)
    x = convert(cells, ct)
    slot_axes = [i for i, (n, _) in enumerate(dims) if is_slot(n)]
    picked = build.select(expand_to(mask, dims), x, build.scalar(-0.0, ct))
    if picked.shape != x.shape:
        picked = build.broadcast(picked, list(x.shape))
    summed = build.reduce(picked, "sum", slot_axes, False)
    rest = tuple(d for d in dims if not is_slot(d[0]))
    mask_slots = [i for i, (n, _) in enumerate(mask.type.dims) if is_slot(n)]
    found = TValue(build.reduce(mask.node, "max", mask_slots, False),
                   TensorType(CellType.BOOL, tuple(d for d in mask.type.dims if not is_slot(d[0]))))
    out = build.select(expand_to(found, rest), summed, build.scalar(0.0, ct))
    if out.shape != tuple(s for _, s in rest):
        out = build.broadcast(out, [s for _, s in rest])
    number = not any(not is_hidden(n) for n, _ in rest)
    result = TValue(out, TensorType(ct, rest))
    return with_cell(result, CellType.FLOAT64 if number else cell)


def _slice_constant(c: Compiler, v: TValue, dim: str, idx: TValue, loc: Location) -> TValue:
    axis = v.type.names.index(dim)
    size = v.type.size_of(dim)
    raw = float(idx.node.value)
    rest = tuple(d for d in v.type.dims if d[0] != dim)
    if not -1 < raw < size:  # NaN too
        zeros = build.broadcast(build.scalar(0, v.type.cell), [s for _, s in rest])
        nowhere = TValue(build.scalar(False, CellType.BOOL), TensorType(CellType.BOOL, ()))
        return _sliced(v, zeros, rest, nowhere)
    node = build.gather(v.node, build.scalar(int(raw), CellType.INT64), axis)
    return _sliced(v, node, rest, None)


def _sliced(v: TValue, node: Node, dims: tuple[tuple[str, int], ...], in_range: TValue | None) -> TValue:
    """v with an indexed dimension sliced away: `node` over `dims`. Its mapped dimensions
    stay; an index outside the dimension (where `in_range` is false) leaves no subspace,
    as in Vespa's peek (a dense result is 0 there instead)."""
    if v.sparse is None:
        return TValue(node, TensorType(v.type.cell, dims))
    mask = v.sparse.mask if in_range is None else sp.and_masks(v.sparse.mask, in_range)
    assert mask is not None
    return TValue(node, TensorType(v.type.cell, dims, v.type.mapped), Sparse(v.sparse.labels, mask))


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
    return _sliced(v, node, dims, TValue(ok, TensorType(CellType.BOOL, idx.type.dims)))


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
    f64 = CellType.FLOAT64
    ok = build.join("and", build.join("ge", whole, build.scalar(0.0, f64)),
                    build.join("lt", whole, build.scalar(float(size), f64)))
    in_range = TValue(ok, TensorType(CellType.BOOL, idx.type.dims))
    return _sliced(v, summed, tuple(d for d in dims if d[0] != dim), in_range)
