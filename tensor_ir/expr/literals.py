"""Tensors an expression spells out: literals (`tensor(x[2]):[1,2]`, cell by cell or as
nested lists) and generators (`tensor(x[3])(x + 1)`), compiled for the `Compiler`.

A literal whose cells are all numbers becomes one constant; cells computed from features
(Vespa allows them) are stacked at run time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from tensor_ir import build
from tensor_ir.casts import cast_cells, truncate_to_bfloat16
from tensor_ir.dtypes import CellType
from tensor_ir.expr.ast import Expr, Generate, Literal, TypeSpec
from tensor_ir.expr.errors import Location
from tensor_ir.expr.types import TensorType, TypeSyntaxError, parse_type
from tensor_ir.expr.values import TValue, as_double, convert, expand_to, hidden_names, rename_dims, scalar
from tensor_ir.ir import Op

if TYPE_CHECKING:
    from tensor_ir.expr.compiler import Compiler


def generate(c: Compiler, e: Generate) -> TValue:
    """Each dimension name is, in the body, one number: its cell's index (Vespa evaluates
    the body per cell). All cells are computed at once, so that number has a hidden
    dimension along the generator's cells (tensor_ir.expr.types), distinct for every
    generator so nested ones shadow and mix correctly; the body's result must be a number,
    and its hidden dimensions from this generator become the generator's dimensions."""
    t = _tensor_type(c, e.type)
    hidden = hidden_names(t.names)
    body = c.with_locals({n: _iota(hidden[n], t.size_of(n)) for n in t.names}).compile(e.body)
    if not body.is_scalar:
        raise c.error(f"a generator's body must give a number for each cell of {t}, but gives {body.type}",
                      e.body.loc)
    visible = rename_dims(body, {h: n for n, h in hidden.items()})
    return c.fill(visible, t, e.body.loc)


def _iota(name: str, size: int) -> TValue:
    return TValue(build.constant(np.arange(size, dtype=np.float64), CellType.FLOAT64),
                  TensorType(CellType.FLOAT64, ((name, size),)))


def _tensor_type(c: Compiler, spec: TypeSpec) -> TensorType:
    try:
        return parse_type(spec.text)
    except TypeSyntaxError as err:
        raise c.error(str(err), spec.loc) from None


def _cell_value(c: Compiler, e: Expr) -> TValue:
    v = c.compile(e)
    if not v.is_scalar:
        raise c.error(f"a tensor literal's cell value must be a number, got {v.type}", e.loc)
    return as_double(v)


def literal(c: Compiler, e: Literal) -> TValue:
    t = _tensor_type(c, e.type)
    size = int(np.prod(t.shape, dtype=np.int64))
    cells: list[TValue | None] = [None] * size
    if e.dense is not None:
        flat = _dense_cells(c, e.dense, t, e.loc)
        if len(flat) != size:
            raise c.error(f"{t} has {size} cells but {len(flat)} values are given", e.loc)
        cells = [_cell_value(c, x) for x in flat]
    else:
        assert e.cells is not None
        for addr, value in e.cells:
            given = dict(addr)
            if len(given) != len(addr) or set(given) != set(t.names):
                raise c.error(f"cell address {{{', '.join(f'{n}:{i}' for n, i in addr)}}} does not name "
                              f"each dimension of {t} once", value.loc)
            flat_index = 0
            for n, s in t.dims:
                if not 0 <= given[n] < s:
                    raise c.error(f"cell index {n}:{given[n]} is outside 0..{s - 1}", value.loc)
                flat_index = flat_index * s + given[n]
            if cells[flat_index] is not None:
                raise c.error(f"cell {{{', '.join(f'{n}:{i}' for n, i in addr)}}} is given twice", value.loc)
            cells[flat_index] = _cell_value(c, value)
    if all(cell is None or (cell.node.op is Op.CONSTANT and cell.type.rank == 0) for cell in cells):
        arr = np.asarray([0.0 if cell is None else float(cell.node.value) for cell in cells], dtype=np.float64)
        return TValue(build.constant(_cells_of(arr.reshape(t.shape), t.cell), t.cell), t)
    # cells computed from features (Vespa allows it in literals): stack them
    # (inside a generator a cell may be one number per generator cell: hidden dimensions)
    zero = scalar(0.0)
    hidden = tuple(sorted({d for cell in cells if cell is not None for d in cell.type.hidden}))
    outer = [s for _, s in hidden]
    parts = [build.reshape(build.broadcast(expand_to(zero if cell is None else cell, hidden), outer), [*outer, 1])
             for cell in cells]
    node = build.reshape(convert(build.concat(parts, len(outer)), t.cell), [*outer, *t.shape])
    return rename_dims(TValue(node, TensorType(t.cell, (*hidden, *t.dims))), {})


def _cells_of(values: npt.NDArray[np.float64], cell: CellType) -> npt.NDArray[Any]:
    """Doubles as cells of `cell`, converted as Vespa converts (values.convert)."""
    if cell is CellType.BFLOAT16:
        return truncate_to_bfloat16(values)
    return cast_cells(values, CellType.FLOAT64, cell)


def _dense_cells(c: Compiler, items: tuple[object, ...], t: TensorType, loc: Location) -> list[Expr]:
    """The values of a dense literal in cell order: either flat, or nested exactly as the
    type's dimensions ([[1,2],[3,4]] for x[2],y[2])."""
    if all(isinstance(it, Expr) for it in items):
        return [it for it in items if isinstance(it, Expr)]

    out: list[Expr] = []

    def walk(level: tuple[object, ...], depth: int) -> None:
        if depth >= t.rank:
            raise c.error(f"the values of {t} nest deeper than its {t.rank} dimensions", loc)
        want = t.dims[depth][1]
        if len(level) != want:
            raise c.error(f"dimension '{t.dims[depth][0]}' of {t} has size {want} but a list of "
                          f"{len(level)} values is given for it", loc)
        for it in level:
            if depth == t.rank - 1:
                if not isinstance(it, Expr):
                    raise c.error(f"the values of {t} nest deeper than its {t.rank} dimensions", loc)
                out.append(it)
            elif isinstance(it, tuple):
                walk(it, depth + 1)
            else:
                raise c.error(f"expected a nested list for dimension '{t.dims[depth + 1][0]}' of {t}", loc)

    walk(items, 0)
    return out
