"""Tensor functions over values with mapped dimensions that are not a plain join, map or
reduce (tensor_ir.expr.sparse): merge, if, rename, cell_order.

merge and if can give a result whose subspaces come from either operand, so they lay both
operands' slots side by side on one new slot axis: first every slot of one, then every
slot of the other, each half with its own mask.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from tensor_ir import build
from tensor_ir.dtypes import CellType
from tensor_ir.expr import sparse as sp
from tensor_ir.expr.ast import Lambda
from tensor_ir.expr.errors import Location
from tensor_ir.expr.types import TensorType, is_slot
from tensor_ir.expr.values import (
    Sparse,
    TValue,
    compute_cell,
    expand_to,
    move_axes,
    storage_cells,
    unify_cells,
    with_cell,
)
from tensor_ir.ir import Node

if TYPE_CHECKING:
    from tensor_ir.expr.compiler import Compiler


def flatten(v: TValue) -> TValue:
    """v over one fresh slot axis: its slot axes (which lead) merged into one."""
    assert v.sparse is not None
    slots = v.type.slots
    size = int(np.prod([s for _, s in slots], dtype=np.int64))
    rest = tuple(d for d in v.type.dims if not is_slot(d[0]))
    slot = sp.fresh_slot()

    def flat(x: TValue) -> Node:
        return build.reshape(build.broadcast(expand_to(x, slots), [s for _, s in slots]), [size])

    def over_slot(node: Node) -> TValue:
        return TValue(node, TensorType(node.dtype, ((slot, size),)))

    cells = build.reshape(v.node, [size, *[s for _, s in rest]])
    labels = tuple((d, over_slot(flat(x))) for d, x in v.sparse.labels)
    node, dims = move_axes(cells, ((slot, size), *rest), {})
    return TValue(node, TensorType(v.type.cell, dims, v.type.mapped), Sparse(labels, over_slot(flat(v.sparse.mask))))


def side_by_side(a: TValue, mask_a: Node, b: TValue, mask_b: Node, cell: CellType) -> TValue:
    """The slots of flattened a and b on one axis, with the masks given (over each one's slot)."""
    assert a.sparse is not None and b.sparse is not None
    sa, sb = a.type.slots[0], b.type.slots[0]
    size = sa[1] + sb[1]
    slot = sp.fresh_slot()
    ca, cb = with_cell(a, cell).node, with_cell(b, cell).node
    cells = build.concat([ca, cb], 0)
    la, lb = dict(a.sparse.labels), dict(b.sparse.labels)

    def over_slot(node: Node) -> TValue:
        return TValue(node, TensorType(node.dtype, ((slot, size),)))

    labels = tuple((d, over_slot(build.concat([la[d].node, lb[d].node], 0))) for d in a.type.mapped)
    mask = over_slot(build.concat([mask_a, mask_b], 0))
    dims = ((slot, size), *[d for d in a.type.dims if not is_slot(d[0])])
    return TValue(cells, TensorType(cell, dims, a.type.mapped), Sparse(labels, mask))


def if_mapped(c: Compiler, cond: TValue, a: TValue, b: TValue, loc: Location) -> TValue:
    """if(cond, a, b) where the branches have mapped dimensions: the result has a's
    subspaces where cond holds and b's where it does not."""
    if cond.sparse is not None or not cond.is_scalar:
        raise c.error(f"if() with a tensor condition ({cond.type}) and mapped branches is not supported", loc)
    if a.type.value_type.all_names != b.type.value_type.all_names or a.sparse is None or b.sparse is None:
        raise c.error(f"if(): the branches must have the same dimensions, got {a.type.value_type} and "
                      f"{b.type.value_type}", loc)
    if a.type.visible != b.type.visible:
        raise c.error(f"if(): the branches' indexed dimensions differ: {a.type.value_type} and "
                      f"{b.type.value_type}", loc)
    fa, fb = flatten(a), flatten(b)
    test = c.nonzero(cond.node)
    assert fa.sparse is not None and fb.sparse is not None
    ma = build.join("and", fa.sparse.mask.node, test)
    mb = build.join("and", fb.sparse.mask.node, build.map_("not", test))
    return side_by_side(fa, ma, fb, mb, storage_cells(a, b))


def rename(c: Compiler, v: TValue, mapping: Mapping[str, str], loc: Location) -> TValue:
    """rename() of a value with mapped dimensions: indexed ones move axes, mapped ones
    move their labels (onto fresh slots: sparse module doc)."""
    names = set(v.type.all_names)
    for s in mapping:
        if s not in names:
            raise c.error(f"cannot rename dimension '{s}': the value has type {v.type.value_type}", loc)
    new = [mapping.get(n, n) for n in v.type.all_names]
    if len(set(new)) != len(new):
        raise c.error("rename() would give two dimensions the same name", loc)
    indexed = {k: x for k, x in mapping.items() if k in v.type.visible_names}
    node, dims = move_axes(v.node, v.type.dims, indexed)
    moved = TValue(node, TensorType(v.type.cell, dims, v.type.mapped), v.sparse)
    return sp.rename_mapped(moved, {k: x for k, x in mapping.items() if k in v.type.mapped})


def merge_mapped(c: Compiler, a: TValue, b: TValue, lam: Lambda, loc: Location) -> TValue:
    """merge(a, b, f): f where both have an address, the other's cell where one has it.
    Each slot of a finds its match in b by comparing labels with every slot of b; the
    matched cell of b is picked by a masked sum (at most one slot matches, and adding
    negative zeros keeps every value exact, -0.0 included)."""
    if a.type.value_type.all_names != b.type.value_type.all_names or a.type.visible != b.type.visible:
        raise c.error(f"merge() needs two values of the same dimensions, got {a.type.value_type} and "
                      f"{b.type.value_type}", loc)
    if a.sparse is None or b.sparse is None:
        raise c.error("merge() of a mapped and a dense value", loc)
    fa, fb = flatten(a), flatten(b)
    assert fa.sparse is not None and fb.sparse is not None
    cell = unify_cells(a, b)
    fa, fb = with_cell(fa, cell), with_cell(fb, cell)
    assert fa.sparse is not None and fb.sparse is not None
    na, nb = fa.type.slots[0][1], fb.type.slots[0][1]
    rest = tuple(d for d in fa.type.dims if not is_slot(d[0]))
    # match[i, j]: slot i of a and slot j of b hold the same address
    match = build.join("and", build.reshape(fa.sparse.mask.node, [na, 1]), build.reshape(fb.sparse.mask.node, [1, nb]))
    la, lb = dict(fa.sparse.labels), dict(fb.sparse.labels)
    for d in fa.type.mapped:
        match = build.join("and", match, build.join("eq", build.reshape(la[d].node, [na, 1]),
                                                    build.reshape(lb[d].node, [1, nb])))
    match = build.broadcast(match, [na, nb])
    in_b = build.reduce(match, "max", [0], False)  # slot j of b has a partner in a
    in_a = build.reduce(match, "max", [1], False)
    rest_shape = [s for _, s in rest]
    cell_b = fb.node
    picked = build.select(build.reshape(match, [na, nb, *[1] * len(rest)]),
                          build.reshape(cell_b, [1, nb, *rest_shape]), build.scalar(-0.0, cell_b.dtype))
    b_at_a = build.reduce(build.broadcast(picked, [na, nb, *rest_shape]), "sum", [1], False)
    partner = TValue(b_at_a, TensorType(cell, fa.type.dims, fa.type.mapped), fa.sparse)
    both = c.apply_per_cell(lam, [fa, partner])
    out = c.fill(both, TensorType(cell, fa.type.dims, fa.type.mapped), lam.body.loc)
    a_cells = build.select(build.reshape(in_a, [na, *[1] * len(rest)]), out.node, with_cell(fa, cell).node)
    a_side = TValue(a_cells, TensorType(cell, fa.type.dims, fa.type.mapped), fa.sparse)
    b_only = build.join("and", fb.sparse.mask.node, build.map_("not", in_b))
    return side_by_side(a_side, fa.sparse.mask.node, fb, b_only, cell)


def cell_order_mapped(c: Compiler, v: TValue, order: str) -> TValue:
    """cell_order(v, max|min) with mapped dimensions: each present cell's rank among the
    present cells, by comparing every cell with every other (NaN after every number; equal
    cells, and NaNs, in the order of their slots)."""
    assert v.sparse is not None
    cell = compute_cell(v.type.cell)
    f = flatten(with_cell(v, cell))
    assert f.sparse is not None
    n = int(np.prod(f.type.shape, dtype=np.int64))
    x = build.reshape(f.node, [n])
    key = build.map_("neg", x) if order == "max" else x
    present = build.reshape(build.broadcast(sp.full_mask(f), list(f.type.shape)), [n])
    kj, ki = build.reshape(key, [n, 1]), build.reshape(key, [1, n])  # [j, i]: does j come before i
    nj, ni = build.map_("isnan", kj), build.map_("isnan", ki)
    earlier = build.constant(np.triu(np.ones((n, n), dtype=bool), 1), CellType.BOOL)  # j < i
    less = build.join("or", build.join("lt", kj, ki), build.join("and", build.join("eq", kj, ki), earlier))
    numbers = build.join("and", build.map_("not", nj), build.map_("not", ni))
    before = build.join("or", build.join("and", numbers, less),
                        build.join("or", build.join("and", build.map_("not", nj), ni),
                                   build.join("and", build.join("and", nj, ni), earlier)))
    counted = build.join("and", before, build.reshape(present, [n, 1]))
    ranks = build.reduce(build.cast(counted, cell), "sum", [0], False)
    return TValue(build.reshape(ranks, list(f.type.shape)), TensorType(cell, f.type.dims, f.type.mapped), f.sparse)
