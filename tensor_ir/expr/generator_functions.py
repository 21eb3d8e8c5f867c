"""Vespa's tensor-generating functions, which take a list of dimensions instead of values:
`random(x[2],y[3])`, `range(x[10])` and `diag(x[10],y[10],z[3])`.

As in Vespa (com.yahoo.tensor.functions Random, Range, Diag), each is a generator over a
tensor of doubles with those dimensions: `range` fills a cell with the sum of its indices,
`diag` with 1 where all its indices are equal (0 elsewhere), `random` with a number in
[0, 1). Vespa's parser reads `random(x[2])` as this generator whatever else is called
random, so this form is recognised before profile functions and rank features; `random`
and `random(name)` stay the rank feature, and `range(n)` and `diag(n1, n2)` the
number forms of tensor_functions.

Vespa draws `random`'s cells anew at each evaluation. Here they are drawn once, when the
expression compiles, from a generator seeded by the type, so every shard that compiles
the profile gets the same tensor: a profile may rely only on their range and count, as it
may in Vespa.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from tensor_ir import build
from tensor_ir.dtypes import CellType
from tensor_ir.expr.ast import Call, Expr, Name, Num, SliceExpr
from tensor_ir.expr.types import TensorType, TypeSyntaxError, parse_type
from tensor_ir.expr.values import TValue

if TYPE_CHECKING:
    from tensor_ir.expr.compiler import Compiler


def _is_dimension_spec(e: Expr) -> bool:
    """`x[10]` (parsed as a position slice of the name x) or `x{}` (an empty slice)."""
    if not isinstance(e, SliceExpr) or not isinstance(e.target, Name):
        return False
    return (e.index is not None and isinstance(e.index, Num)) or e.by_dim == ()


def takes_dimensions(e: Call) -> bool:
    """Whether `e` is one of these generators: random, range or diag with at least one
    argument shaped like a dimension."""
    return e.name in GENERATOR_FUNCTIONS and any(_is_dimension_spec(a) for a in e.args)


def _type_of(c: Compiler, e: Call) -> TensorType:
    specs: list[str] = []
    for a in e.args:
        if not _is_dimension_spec(a):
            raise c.error(f"{e.name}(x[N], ...): each argument must be a dimension such as x[10]", a.loc)
        assert isinstance(a, SliceExpr) and isinstance(a.target, Name)
        if a.index is None:
            specs.append(f"{a.target.name}{{}}")
            continue
        assert isinstance(a.index, Num)
        size = a.index.value
        if size != int(size):
            raise c.error(f"dimension '{a.target.name}' must have a whole number as its size, not {size:g}",
                          a.index.loc)
        specs.append(f"{a.target.name}[{int(size)}]")
    try:
        return parse_type(f"tensor({','.join(specs)})")
    except TypeSyntaxError as err:
        raise c.error(str(err), e.loc) from None


def _indices(t: TensorType) -> npt.NDArray[np.int64]:
    """[rank, *shape]: each cell's index along each dimension."""
    return np.indices(t.shape, dtype=np.int64)


def _range_cells(t: TensorType) -> npt.NDArray[Any]:
    sums: npt.NDArray[np.float64] = _indices(t).sum(axis=0).astype(np.float64)
    return sums


def _diag_cells(t: TensorType) -> npt.NDArray[Any]:
    idx = _indices(t)
    ones: npt.NDArray[np.float64] = np.all(idx == idx[:1], axis=0).astype(np.float64)
    return ones


def _random_cells(t: TensorType) -> npt.NDArray[Any]:
    seed = zlib.crc32(str(t).encode())
    return np.random.default_rng(seed).random(t.shape, dtype=np.float64)


_CELLS: dict[str, Callable[[TensorType], npt.NDArray[Any]]] = {
    "random": _random_cells,
    "range": _range_cells,
    "diag": _diag_cells,
}


def generated(c: Compiler, e: Call) -> TValue:
    """The value of `random(...)`, `range(...)` or `diag(...)` over dimensions."""
    if e.output is not None:
        raise c.error(f"{e.name}(dimensions) has no named outputs (.{e.output})", e.loc)
    t = _type_of(c, e)
    cells = _CELLS[e.name](t)
    return TValue(build.constant(cells, CellType.FLOAT64), t)


GENERATOR_FUNCTIONS = tuple(_CELLS)
