"""Reductions over values with mapped dimensions (tensor_ir.expr.sparse).

Reducing every mapped dimension a slot axis carries is a masked reduction over that
axis. Reducing some of the dimensions a slot axis carries and keeping others groups the
slots by the labels kept: two slots with equal kept labels become one cell. That is a
comparison of every slot with every other (fine for the small tensors it happens to: a
profile reduces a document's mapped dimension whole), after the masked part is done.

A reduction that leaves no mapped dimension and finds no cell gives 0, Vespa's value of
an empty tensor of the result's type.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tensor_ir import build
from tensor_ir.dtypes import CellType
from tensor_ir.expr import sparse as sp
from tensor_ir.expr.contraction import as_matmul
from tensor_ir.expr.errors import Location
from tensor_ir.expr.types import TensorType, is_hidden, is_slot
from tensor_ir.expr.values import Sparse, TValue, compute_cell, expand_to, with_cell
from tensor_ir.ir import Node, Op

if TYPE_CHECKING:
    from tensor_ir.expr.compiler import Compiler

_FILL = {"sum": 0.0, "count": 0.0, "avg": 0.0, "prod": 1.0, "max": -np.inf, "min": np.inf}


def _masked(x: Node, m: Node, agg: str, axes: list[int], cell: CellType | None = None) -> Node:
    """agg of x over `axes`, where m (broadcastable to x) holds; sum for count and avg
    (their parts are summed). The cells are picked before they are widened to `cell`."""
    op = "sum" if agg in ("count", "avg") else agg
    fill = build.scalar(_FILL[agg], x.dtype)
    picked = build.select(m, x, fill)
    if cell is not None and cell is not picked.dtype:
        picked = build.cast(picked, cell)
    return build.reduce(picked, op, axes, False) if axes else picked


def _factors(m: Node) -> list[Node]:
    """The conjuncts of a mask (sparse.and_masks builds them of one rank)."""
    if m.op is Op.JOIN and m.attrs["fn"] == "and" and all(i.rank == m.rank for i in m.inputs):
        return [f for i in m.inputs for f in _factors(i)]
    return [m]


def _split_mask(mask: TValue, axes: list[int]) -> tuple[TValue, Node | None]:
    """The part of a mask that varies along `axes`, and the rest (None: nothing), which a
    reduction over `axes` only carries to its result: a query's mask never meets the
    document's tokens that a max over them reads."""
    parts = _factors(mask.node)
    along = [f for f in parts if any(f.shape[i] > 1 for i in axes)]
    rest = [f for f in parts if not any(f.shape[i] > 1 for i in axes)]
    if not along or not rest:
        return mask, None

    def conj(fs: list[Node]) -> Node:
        out = fs[0]
        for f in fs[1:]:
            out = build.join("and", out, f)
        return out

    shape = list(mask.type.shape)
    needed = build.broadcast(conj(along), [s if any(f.shape[i] > 1 for f in along) else 1
                                           for i, s in enumerate(shape)])
    keep = [i for i in range(len(shape)) if i not in axes]
    other = conj(rest)
    other = build.broadcast(build.reshape(other, [other.shape[i] for i in keep]), [shape[i] for i in keep])
    dims = tuple((n, needed.shape[i]) for i, (n, _) in enumerate(mask.type.dims))
    return TValue(needed, TensorType(CellType.BOOL, dims)), other


def _any(m: Node, axes: list[int]) -> Node:
    return build.reduce(m, "max", axes, False) if axes else m


def reduce_mapped(c: Compiler, v: TValue, agg: str, dims: list[str], loc: Location) -> TValue:
    assert v.sparse is not None
    names = v.type.all_names
    for d in dims:
        if d not in names:
            raise c.error(f"cannot reduce over dimension '{d}': the value has type {v.type.value_type}", loc)
    if agg not in _FILL:
        raise c.error(f"reduce with '{agg}' over a tensor with mapped dimensions is not supported", loc)
    gone = set(dims or names)
    labels = dict(v.sparse.labels)
    kept_mapped = tuple(d for d in v.type.mapped if d not in gone)
    gone_mapped = [d for d in v.type.mapped if d in gone]
    kept_axes = {n for d in kept_mapped for n in labels[d].type.names}
    slots = [n for n, _ in v.type.slots]
    reduced_slots = [s for s in slots if s not in kept_axes]
    rest = [s for s in slots if s in kept_axes]
    group = any(set(labels[d].type.names) & set(rest) for d in gone_mapped)
    kept_dims = tuple(d for d in v.type.dims if d[0] not in gone and d[0] not in reduced_slots)
    number = not kept_mapped and not any(not is_hidden(n) and not is_slot(n) for n, _ in kept_dims)
    ct = CellType.FLOAT64 if number else compute_cell(v.type.cell)

    x = with_cell(v, ct).node
    axes = [i for i, (n, _) in enumerate(v.type.dims) if n in gone or n in reduced_slots]
    mask_axes = [i for i, (n, _) in enumerate(v.sparse.mask.type.dims) if n in reduced_slots]
    needed, carried = _split_mask(v.sparse.mask, mask_axes)
    mask = sp.full_mask(TValue(v.node, v.type, Sparse(v.sparse.labels, needed)))
    count: Node | None = None
    if agg in ("count", "avg"):
        n_cells = int(np.prod([s for n, s in v.type.dims if n in gone and not is_slot(n)], dtype=np.int64))
        ones = build.broadcast(build.scalar(n_cells, ct), list(mask.shape))
        count = _masked(ones, mask, "count", axes)
    if not reduced_slots and agg == "sum":
        # only indexed dimensions summed: a padded slot's cells mean nothing either way, so no
        # mask is needed, and a product of two operands stays one (contraction)
        part = as_matmul(x, axes) or build.reduce(x, "sum", axes, False) if axes else x
    elif count is None or agg != "count":
        part = _masked(with_cell(v, compute_cell(v.type.cell)).node, mask, agg, axes, ct)
    else:
        part = count
    shape = [s for _, s in kept_dims]
    part = build.broadcast(part, shape) if part.shape != tuple(shape) else part
    if count is not None and count.shape != tuple(shape):
        count = build.broadcast(count, shape)
    kept_mask_dims = tuple(d for d in v.sparse.mask.type.dims if d[0] not in reduced_slots)
    found = _any(needed.node, mask_axes)
    if carried is not None:
        found = build.join("and", build.broadcast(found, [s for _, s in kept_mask_dims]), carried)
    present = TValue(found, TensorType(CellType.BOOL, kept_mask_dims))

    if group:
        part, count, present, kept_dims, labels = _group(c, part, count, present, kept_dims, kept_mapped,
                                                        labels, agg)
    if agg == "avg":
        assert count is not None
        part = build.join("div", part, count)
    if not kept_mapped:
        # no mapped dimension left: where no cell was found the value is an empty tensor's, 0,
        # which a sum or a count of no cell already is (their fill is 0), unless part of the mask
        # was left out of the fill (_split_mask)
        if agg not in ("sum", "count") or carried is not None:
            found = expand_to(present, kept_dims) if present.type.rank else present.node
            part = build.select(found, part, build.scalar(0.0, ct))
        if part.shape != tuple(s for _, s in kept_dims):
            part = build.broadcast(part, [s for _, s in kept_dims])
        return TValue(part, TensorType(ct, kept_dims))
    sparse = Sparse(tuple((d, labels[d]) for d in kept_mapped), present)
    return TValue(part, TensorType(ct, kept_dims, kept_mapped), sparse)


def _group(c: Compiler, part: Node, count: Node | None, present: TValue,
           dims: tuple[tuple[str, int], ...], kept_mapped: tuple[str, ...], labels: dict[str, TValue],
           agg: str) -> tuple[Node, Node | None, TValue, tuple[tuple[str, int], ...], dict[str, TValue]]:
    """Slots with equal kept labels become one (module doc). `part` is over `dims`, whose
    slot axes lead; they are flattened into one axis f and compared with a copy g of it."""
    slot_dims = [d for d in dims if is_slot(d[0])]
    other = [d for d in dims if not is_slot(d[0])]
    size = int(np.prod([s for _, s in slot_dims], dtype=np.int64))
    other_shape = [s for _, s in other]

    def flat(t: TValue) -> Node:
        return build.reshape(build.broadcast(expand_to(t, tuple(slot_dims)), [s for _, s in slot_dims]), [size])

    same = flat(present)  # [F]: slot g holds a subspace
    eq = build.reshape(same, [1, size])
    for d in kept_mapped:
        lab = flat(labels[d])
        eq = build.join("and", eq, build.join("eq", build.reshape(lab, [size, 1]), build.reshape(lab, [1, size])))
    eq = build.broadcast(eq, [size, size])  # [f, g]: g is in f's group
    m = build.reshape(eq, [size, size, *[1] * len(other)])
    cells = build.reshape(part, [1, size, *other_shape])
    grouped = _masked(cells, m, agg, [1])
    grouped_count = None if count is None else _masked(build.reshape(count, [1, size, *other_shape]), m, "sum", [1])
    earlier = build.constant(np.tril(np.ones((size, size), dtype=bool), -1), CellType.BOOL)
    dup = build.reduce(build.join("and", eq, earlier), "max", [1], False)
    first = build.join("and", build.reshape(same, [size]), build.map_("not", dup))
    slot = sp.fresh_slot()
    new_dims = tuple(sorted([(slot, size), *other]))
    new_labels = {d: TValue(flat(labels[d]), TensorType(sp.LABEL_CELL, ((slot, size),))) for d in kept_mapped}
    mask = TValue(first, TensorType(CellType.BOOL, ((slot, size),)))
    return grouped, grouped_count, mask, new_dims, new_labels


def median_mapped(c: Compiler, v: TValue, dims: list[str], loc: Location) -> TValue:
    """reduce(v, median, dims...) with mapped dimensions: the cells present sorted
    (absent ones as +inf, after them), the middle one or two picked by the count present;
    NaN where a present cell is NaN, 0 where none is."""
    from tensor_ir.expr.order_functions import _last_axis

    assert v.sparse is not None
    names = v.type.all_names
    for d in dims:
        if d not in names:
            raise c.error(f"cannot reduce over dimension '{d}': the value has type {v.type.value_type}", loc)
    gone = set(dims or names)
    labels = dict(v.sparse.labels)
    kept_mapped = tuple(d for d in v.type.mapped if d not in gone)
    kept_axes = {n for d in kept_mapped for n in labels[d].type.names}
    slots = [n for n, _ in v.type.slots]
    reduced_slots = [s for s in slots if s not in kept_axes]
    rest = [s for s in slots if s in kept_axes]
    if any(set(labels[d].type.names) & set(rest) for d in v.type.mapped if d in gone):
        return _grouped_median(c, v, [d for d in names if d in gone], kept_mapped, loc)
    kept_dims = tuple(d for d in v.type.dims if d[0] not in gone and d[0] not in reduced_slots)
    number = not kept_mapped and not any(not is_hidden(n) and not is_slot(n) for n, _ in kept_dims)
    ct = CellType.FLOAT64 if number else compute_cell(v.type.cell)
    work = [n for n, _ in v.type.dims if n in gone or n in reduced_slots]
    x = with_cell(v, ct).node
    mask = build.broadcast(sp.full_mask(v), list(x.shape))
    picked = build.select(mask, x, build.scalar(np.inf, ct))
    flat, _ = _last_axis(picked, v.type.dims, work)
    flat_mask, _ = _last_axis(mask, v.type.dims, work)
    n = flat.shape[-1]
    ordered = build.gather_elements(flat, build.topk(flat, n, -1, largest=False), -1)
    count = build.reduce(build.cast(flat_mask, CellType.INT64), "sum", [flat.rank - 1], True)
    one, two = build.scalar(1, CellType.INT64), build.scalar(2, CellType.INT64)
    zero = build.scalar(0, CellType.INT64)
    lo = build.join("max", build.join("div", build.join("sub", count, one), two), zero)
    hi = build.join("min", build.join("div", count, two), build.scalar(n - 1, CellType.INT64))
    shape = [s for _, s in kept_dims]
    at_lo = build.reshape(build.gather_elements(ordered, lo, -1), shape)
    at_hi = build.reshape(build.gather_elements(ordered, hi, -1), shape)
    odd = build.reshape(build.join("eq", lo, hi), shape)  # an odd count has one middle cell
    mean = build.join("div", build.join("add", at_lo, at_hi), build.scalar(2, ct))
    middle = build.select(odd, at_lo, mean)
    nan = build.reduce(build.join("and", flat_mask, build.map_("isnan", flat)), "max", [flat.rank - 1], False)
    middle = build.select(build.reshape(nan, shape), build.broadcast(build.scalar(np.nan, ct), shape), middle)
    empty = build.reshape(build.join("eq", count, zero), shape)
    middle = build.select(empty, build.broadcast(build.scalar(0.0, ct), shape), middle)
    mask_axes = [i for i, (nm, _) in enumerate(v.sparse.mask.type.dims) if nm in reduced_slots]
    kept_mask_dims = tuple(d for d in v.sparse.mask.type.dims if d[0] not in reduced_slots)
    present = TValue(_any(v.sparse.mask.node, mask_axes), TensorType(CellType.BOOL, kept_mask_dims))
    if not kept_mapped:
        return TValue(middle, TensorType(ct, kept_dims))
    return TValue(middle, TensorType(ct, kept_dims, kept_mapped), Sparse(tuple((d, labels[d]) for d in kept_mapped),
                                                                        present))



def _grouped_median(c: Compiler, v: TValue, gone: list[str], kept_mapped: tuple[str, ...], loc: Location) -> TValue:
    """A median that groups slots (module doc): v's slots flattened into f, paired with a
    copy g holding the same cells, the pair valid where g is in f's group; the median over g
    is then a plain masked one, kept at the first slot of each group."""
    from tensor_ir.expr.sparse_functions import flatten

    fv = flatten(v)
    assert fv.sparse is not None
    size, rest = fv.type.slots[0][1], tuple(d for d in fv.type.dims if not is_slot(d[0]))
    f = sp.fresh_slot()
    g = f + "~"  # sorts right after f
    labels = dict(fv.sparse.labels)
    mask = fv.sparse.mask.node
    group = build.broadcast(build.reshape(mask, [1, size]), [size, size])  # [f, g]: g is in f's group
    for d in kept_mapped:
        lab = labels[d].node
        same = build.join("eq", build.reshape(lab, [size, 1]), build.reshape(lab, [1, size]))
        group = build.join("and", group, same)
    rest_shape = [s for _, s in rest]
    cells = build.broadcast(build.reshape(fv.node, [1, size, *rest_shape]), [size, size, *rest_shape])

    def over(node: Node, axis: str) -> TValue:
        return TValue(node, TensorType(node.dtype, ((axis, size),)))

    pair_labels = tuple(sorted((d, over(labels[d].node, f if d in kept_mapped else g)) for d in fv.type.mapped))
    pairs = TValue(cells, TensorType(fv.type.cell, ((f, size), (g, size), *rest), fv.type.mapped),
                   Sparse(pair_labels, TValue(group, TensorType(CellType.BOOL, ((f, size), (g, size))))))
    out = median_mapped(c, pairs, gone, loc)
    assert out.sparse is not None
    earlier = build.constant(np.tril(np.ones((size, size), dtype=bool), -1), CellType.BOOL)
    dup = build.reduce(build.join("and", group, earlier), "max", [1], False)
    first = build.join("and", mask, build.map_("not", dup))
    return TValue(out.node, out.type, Sparse(out.sparse.labels, over(first, f)))
