"""Tensors an expression spells out: literals (`tensor(x[2]):[1,2]`, cell by cell or as
nested lists) and generators (`tensor(x[3])(x + 1)`), compiled for the `Compiler`.

A literal whose cells are all numbers becomes one constant; cells computed from features
(Vespa allows them) are stacked at run time. A literal of a mapped or mixed type
(`tensor(x{}):{a:1}`, `tensor(x{},y[2]):{{x:a,y:0}:1}`) is the same, by subspace: a
constant mapped value (tensor_ir.expr.sparse), or computed cells stacked over one slot
axis with one slot per subspace, whose labels are constants and whose mask is all true.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from tensor_ir import build
from tensor_ir.casts import cast_cells, truncate_to_bfloat16
from tensor_ir.dtypes import CellType
from tensor_ir.expr import sparse as sp
from tensor_ir.expr.ast import Expr, Generate, Label, Literal, TypeSpec
from tensor_ir.expr.errors import Location
from tensor_ir.expr.types import TensorType, TypeSyntaxError, parse_type
from tensor_ir.expr.values import (
    Sparse,
    TValue,
    as_double,
    convert,
    expand_to,
    hidden_names,
    rename_dims,
    scalar,
)
from tensor_ir.ir import Op
from tensor_ir.mapped import LABELS, MappedTensor

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


def _tensor_type(c: Compiler, spec: TypeSpec, allow_mapped: bool = False) -> TensorType:
    try:
        return parse_type(spec.text, allow_mapped)
    except TypeSyntaxError as err:
        raise c.error(str(err), spec.loc) from None


def _cell_value(c: Compiler, e: Expr) -> TValue:
    v = c.compile(e)
    if not v.is_scalar:
        raise c.error(f"a tensor literal's cell value must be a number, got {v.type}", e.loc)
    return as_double(v)


def literal(c: Compiler, e: Literal) -> TValue:
    t = _tensor_type(c, e.type, allow_mapped=True)
    if t.is_mapped:
        return _mapped_literal(c, e, t)
    size = int(np.prod(t.shape, dtype=np.int64))
    cells: list[TValue | None] = [None] * size
    if e.blocks is not None:
        raise c.error(f"{t} has no mapped dimension: give its values as [...] or {{{{dim:index, ...}}:value, ...}}",
                      e.loc)
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
            flat_index = _flat_index(c, t, given, value.loc)
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


def _flat_index(c: Compiler, t: TensorType, given: dict[str, Label], loc: Location) -> int:
    """The position in t's dense cells of the indexed part of a cell address."""
    flat_index = 0
    for n, s in t.dims:
        index = given[n]
        if not isinstance(index, int):
            raise c.error(f"cell label {n}:{index} is not an index: '{n}' is an indexed dimension of {t}", loc)
        if not 0 <= index < s:
            raise c.error(f"cell index {n}:{index} is outside 0..{s - 1}", loc)
        flat_index = flat_index * s + index
    return flat_index


def _address_text(t: TensorType, addr: tuple[str, ...]) -> str:
    return ", ".join(f"{d}:{x}" for d, x in zip(t.mapped, addr, strict=True))


def _mapped_literal(c: Compiler, e: Literal, t: TensorType) -> TValue:
    if e.dense is not None:
        raise c.error(f"{t} has mapped dimensions: give its values as {{label:value, ...}} or "
                      f"{{{{dim:label, ...}}:value, ...}}, not as a list", e.loc)
    size = int(np.prod(t.shape, dtype=np.int64))
    given: dict[tuple[str, ...], list[Expr | None]] = {}
    if e.blocks is not None:
        if len(t.mapped) != 1:
            raise c.error(f"{t} has {len(t.mapped)} mapped dimensions: give each cell with its full address, "
                          f"as in {{{{{', '.join(f'{d}:label' for d in t.mapped)}}}:value}}", e.loc)
        for label, item in e.blocks:
            addr: tuple[str, ...] = (str(label),)
            if addr in given:
                raise c.error(f"the label {t.mapped[0]}:{label} is given twice", _loc_of(item, e.loc))
            if t.dims and not isinstance(item, tuple):
                raise c.error(f"{t} is mixed: label {label} takes a list of its {size} cells, as in "
                              f"{label}:[...]", _loc_of(item, e.loc))
            if not t.dims and isinstance(item, tuple):
                raise c.error(f"{t} has no indexed dimension: label {label} takes one number, not a list", e.loc)
            if isinstance(item, tuple):
                flat = _dense_cells(c, item, t, e.loc)
            else:
                assert isinstance(item, Expr)
                flat = [item]
            if len(flat) != size:
                raise c.error(f"label {label} of {t} has {size} cells but {len(flat)} values are given", e.loc)
            given[addr] = list(flat)
    else:
        assert e.cells is not None
        for address, value in e.cells:
            labels = dict(address)
            if len(labels) != len(address) or set(labels) != set(t.all_names):
                raise c.error(f"cell address {{{', '.join(f'{n}:{i}' for n, i in address)}}} does not name "
                              f"each dimension of {t} once", value.loc)
            addr = tuple(str(labels[d]) for d in t.mapped)
            block = given.setdefault(addr, [None] * size)
            flat_index = _flat_index(c, t, labels, value.loc)
            if block[flat_index] is not None:
                raise c.error(f"cell {{{', '.join(f'{n}:{i}' for n, i in address)}}} is given twice", value.loc)
            block[flat_index] = value
    subspaces = [(addr, [None if x is None else _cell_value(c, x) for x in block]) for addr, block in given.items()]
    cells = [cell for _, block in subspaces for cell in block]
    if all(cell is None or (cell.node.op is Op.CONSTANT and cell.type.rank == 0) for cell in cells):
        blocks = [(addr, _cells_of(np.asarray([0.0 if x is None else float(x.node.value) for x in block],
                                              dtype=np.float64).reshape(t.shape), t.cell))
                  for addr, block in subspaces]
        return sp.constant(MappedTensor.build(t, blocks, f"{t}: "))
    return _computed_subspaces(t, [addr for addr, _ in subspaces], cells)


def _loc_of(item: object, default: Location) -> Location:
    return item.loc if isinstance(item, Expr) else default


def _computed_subspaces(t: TensorType, addresses: list[tuple[str, ...]], cells: list[TValue | None]) -> TValue:
    """Cells computed from features, in subspace order, stacked over one fresh slot axis
    (module doc); inside a generator a cell may have hidden dimensions, which lead."""
    zero = scalar(0.0)
    hidden = tuple(sorted({d for cell in cells if cell is not None for d in cell.type.hidden}))
    outer = [s for _, s in hidden]
    parts = [build.reshape(build.broadcast(expand_to(zero if cell is None else cell, hidden), outer), [*outer, 1])
             for cell in cells]
    n = len(addresses)
    node = build.reshape(convert(build.concat(parts, len(outer)), t.cell), [*outer, n, *t.shape])
    slot = sp.fresh_slot()
    slot_type = TensorType(sp.LABEL_CELL, ((slot, n),))
    labels = tuple((d, TValue(build.constant(LABELS.encode_all(a[i] for a in addresses), sp.LABEL_CELL), slot_type))
                   for i, d in enumerate(t.mapped))
    mask = TValue(build.constant(np.ones(n, dtype=bool), CellType.BOOL), TensorType(CellType.BOOL, ((slot, n),)))
    value = TValue(node, TensorType(t.cell, (*hidden, (slot, n), *t.dims), t.mapped), Sparse(labels, mask))
    return rename_dims(value, {})  # the slot axis sorts first


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
