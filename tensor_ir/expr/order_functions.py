"""Vespa's functions that order cells: `cell_order(t, max|min)` and the `median`
aggregator (`reduce(t, median, dims...)`, `median(t, dims...)`).

cell_order gives each cell its rank among all the tensor's cells: 0 for the largest with
`max`, for the smallest with `min`. NaN ranks after every number in both orders
(vespalib's CellOrderMAX/MIN). Vespa sorts with std::sort, which leaves the order of equal
cells open; here equal cells keep their cell order. The ranks are in the tensor's
computation cell type (float for int8 and bfloat16), a number's rank is 0.

The median of an even count is the mean of the two middle values, and any NaN makes it
NaN (vespalib's aggr::Median); the result's cell type is a reduce's.

Both sort with the IR's TOPK: ascending, stable, NaN last. A rank is where a cell lands,
so the ranks are the sort of the sorting permutation. Dimensions a generator's variables
carry (hidden ones, tensor_ir.expr.types) are kept apart: each of their cells is ordered
or reduced on its own.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from tensor_ir import build
from tensor_ir.dtypes import CellType
from tensor_ir.expr.ast import Call
from tensor_ir.expr.errors import Location
from tensor_ir.expr.types import TensorType
from tensor_ir.expr.values import TValue, as_double, compute_cell, with_cell
from tensor_ir.ir import Node

if TYPE_CHECKING:
    from tensor_ir.expr.compiler import Compiler

ORDERS = ("max", "min")


def _last_axis(x: Node, dims: tuple[tuple[str, int], ...], work: Sequence[str]) -> tuple[Node, list[int]]:
    """x with the `work` dimensions moved last and flattened into one axis, and the
    permutation that moved them (the other dimensions keep their order in front)."""
    names = [n for n, _ in dims]
    perm = [i for i, n in enumerate(names) if n not in work] + [names.index(n) for n in work]
    moved = build.transpose(x, perm)
    front = [dims[i][1] for i in perm[: len(perm) - len(work)]]
    return build.reshape(moved, [*front, math.prod(dims[names.index(n)][1] for n in work)]), perm


def _ascending_order(x: Node) -> Node:
    """Where each cell of the last axis goes when that axis is sorted ascending, stably,
    NaN last: int64 indices."""
    n = x.shape[-1]
    by_value = build.topk(x, n, -1, largest=False)
    return build.topk(by_value, n, -1, largest=False)  # the inverse permutation


def cell_order(c: Compiler, e: Call) -> TValue:
    c.arity(e, 2)
    v = c.compile(e.args[0])
    order = c.dim_name(e.args[1])
    if order not in ORDERS:
        raise c.error(f"cell_order(): the order must be 'max' or 'min', got '{order}'", e.args[1].loc)
    if v.sparse is not None:
        from tensor_ir.expr.sparse_functions import cell_order_mapped

        return cell_order_mapped(c, v, order)
    if v.is_scalar:
        zero = build.broadcast(build.scalar(0.0, CellType.FLOAT64), list(v.type.shape))
        return TValue(zero, TensorType(CellType.FLOAT64, v.type.dims))
    cell = compute_cell(v.type.cell)
    x = with_cell(v, cell).node
    work = list(v.type.visible_names)
    flat, perm = _last_axis(x, v.type.dims, work)
    key = build.map_("neg", flat) if order == "max" else flat  # NaN stays NaN, so still last
    ranks = build.cast(_ascending_order(key), cell)
    moved_shape = [v.type.dims[i][1] for i in perm]
    back = [perm.index(i) for i in range(len(perm))]
    node = build.transpose(build.reshape(ranks, moved_shape), back)
    return TValue(node, TensorType(cell, v.type.dims))


def median_reduce(c: Compiler, v: TValue, dims: list[str], loc: Location) -> TValue:
    """reduce(v, median, dims...): over the named dimensions, or all when none is named."""
    if v.sparse is not None:
        from tensor_ir.expr.sparse_reduce import median_mapped

        return median_mapped(c, v, dims, loc)
    visible = v.type.visible_names
    for d in dims:
        if d not in visible:
            raise c.error(f"cannot reduce over dimension '{d}': the value has type {v.type}", loc)
    if len(set(dims)) != len(dims):
        raise c.error(f"reduce() names a dimension twice: {', '.join(dims)}", loc)
    work = dims or list(visible)
    kept = tuple((n, s) for n, s in v.type.dims if n not in work)
    cell = compute_cell(v.type.cell) if any(n in visible for n, _ in kept) else CellType.FLOAT64
    x = with_cell(v, cell).node
    if not work:
        return as_double(TValue(x, TensorType(cell, v.type.dims)))
    flat, _ = _last_axis(x, v.type.dims, work)
    n = flat.shape[-1]
    out_shape = [s for _, s in kept]
    if n == 1:
        return TValue(build.reshape(flat, out_shape), TensorType(cell, kept))
    k = n // 2 + 1
    smallest = build.gather_elements(flat, build.topk(flat, k, -1, largest=False), -1)

    def at(i: int) -> Node:
        return build.reshape(build.slice_(smallest, [0] * (flat.rank - 1) + [i], [*flat.shape[:-1], i + 1],
                                          [1] * flat.rank), out_shape)

    middle = at(k - 1)
    if n % 2 == 0:
        middle = build.join("div", build.join("add", middle, at(k - 2)), build.scalar(2, cell))
    has_nan = build.reduce(build.map_("isnan", flat), "max", [flat.rank - 1], False)
    node = build.select(has_nan, build.broadcast(build.scalar(math.nan, cell), out_shape), middle)
    return TValue(node, TensorType(cell, kept))


def median(c: Compiler, e: Call) -> TValue:
    """median(t, dims...): reduce(t, median, dims...)."""
    if not e.args:
        raise c.error("median() needs a tensor argument", e.loc)
    return median_reduce(c, c.compile(e.args[0]), [c.dim_name(a) for a in e.args[1:]], e.loc)
