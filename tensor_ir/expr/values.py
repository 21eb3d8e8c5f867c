"""Typed values of the expression compiler: an IR node plus its named dimensions.

Dimensions are sorted by name (Vespa's cell order), so joining two values only inserts
size-1 axes; it never transposes. A value without visible dimensions is a number, even
when it has hidden ones (one number per cell of a generator: tensor_ir.expr.types).

Cell types follow Vespa's CellMeta: `unify_cells` is a join's (the wider type, int8 and
bfloat16 computed as float), `storage_cells` what concat, if and merge keep (int8 with
int8 stays int8). Converting to bfloat16 truncates, as vespalib's BFloat16 does.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from tensor_ir import build
from tensor_ir.dtypes import CellType
from tensor_ir.errors import IRError
from tensor_ir.expr.types import HIDDEN_MARK, TensorType, is_slot
from tensor_ir.ir import Node

# the cell types of labels and masks, which are TValues over slot axes only
_MARKS = (CellType.INT32, CellType.BOOL)

# Vespa's cell types in order of precision; bfloat16 and int8 are storage types that
# compute as float.
_RANK = {CellType.INT8: 0, CellType.BFLOAT16: 1, CellType.FLOAT32: 2, CellType.FLOAT64: 3}


class MappedUnsupported(IRError):
    """An operation that does not handle mapped dimensions met a value that has them."""


@dataclass(frozen=True)
class Sparse:
    """The labels and mask of a value with mapped dimensions (tensor_ir.expr.sparse):
    int32 label ids per mapped dimension and a bool mask, each a TValue over some of the
    value's slot axes."""

    labels: tuple[tuple[str, TValue], ...]  # sorted by dimension
    mask: TValue


@dataclass(frozen=True)
class TValue:
    node: Node
    type: TensorType
    sparse: Sparse | None = None

    def __post_init__(self) -> None:
        if self.node.shape != self.type.shape:
            raise AssertionError(f"node shape {self.node.shape} does not match type {self.type}")
        has_slots = any(is_slot(n) for n, _ in self.type.dims)
        if self.type.mapped and (self.sparse is None or not has_slots):
            raise MappedUnsupported(f"this operation does not support mapped dimensions yet ({self.type})")
        if has_slots and not self.type.mapped and self.type.rank and self.type.cell not in _MARKS:
            raise MappedUnsupported(f"this operation does not support mapped dimensions yet "
                                    f"(it drops them from {self.type})")

    @property
    def is_scalar(self) -> bool:
        """A number in Vespa's sense: no dimension an expression can see."""
        return not self.type.visible and not self.type.mapped


def compute_cell(ct: CellType) -> CellType:
    return CellType.FLOAT32 if ct in (CellType.INT8, CellType.BFLOAT16) else ct


def unify_cells(a: TValue, b: TValue) -> CellType:
    """Vespa: a scalar keeps the tensor's cell type; two tensors take the wider one."""
    if a.is_scalar and not b.is_scalar:
        return compute_cell(b.type.cell)
    if b.is_scalar and not a.is_scalar:
        return compute_cell(a.type.cell)
    if a.is_scalar and b.is_scalar:
        return CellType.FLOAT64
    wide = max(compute_cell(a.type.cell), compute_cell(b.type.cell), key=lambda c: _RANK.get(c, 3))
    return wide


def storage_cells(a: TValue, b: TValue) -> CellType:
    """Vespa's CellMeta::unify without decay: a number takes the other's cell type, equal
    types stay, double wins, anything else is float."""
    if a.is_scalar and b.is_scalar:
        return CellType.FLOAT64
    if a.is_scalar:
        return b.type.cell
    if b.is_scalar or a.type.cell is b.type.cell:
        return a.type.cell
    if CellType.FLOAT64 in (a.type.cell, b.type.cell):
        return CellType.FLOAT64
    return CellType.FLOAT32


def convert(node: Node, cell: CellType) -> Node:
    """`node` in cells of `cell`, converted as Vespa converts (bfloat16 truncates)."""
    if node.dtype is cell:
        return node
    if cell is CellType.BFLOAT16 and node.dtype.is_float:
        return _truncate_to_bfloat16(node)
    return build.cast(node, cell)


_BF16_MAX = float.fromhex("0x1.fep127")


def _truncate_to_bfloat16(node: Node) -> Node:
    """tensor_ir.casts.truncate_to_bfloat16 from IR nodes. The IR's cast rounds to nearest;
    where that went away from zero, the bfloat16 next toward zero is the one nearest to
    |r| * (1 - 2^-8): that product is exact in float and lies between half a step and
    one step below |r| (exactly one step where |r| is a power of two)."""
    f32 = CellType.FLOAT32
    f = build.cast(node, f32)  # a double becomes the nearest float first, as in Vespa

    def k(value: float) -> Node:
        return build.scalar(value, f32)

    def bf16(x: Node) -> Node:
        return build.cast(build.cast(x, CellType.BFLOAT16), f32)

    af = build.map_("abs", f)
    ar = build.map_("abs", bf16(f))
    below = bf16(build.join("mul", ar, k(1.0 - 2.0**-8)))
    below = build.select(build.map_("isinf", ar), k(_BF16_MAX), below)  # a finite float past the largest
    mag = build.select(build.join("gt", ar, af), below, ar)
    signed = build.select(build.join("lt", f, k(0.0)), build.map_("neg", mag), mag)
    return build.cast(signed, CellType.BFLOAT16)


def with_cell(v: TValue, cell: CellType) -> TValue:
    if v.type.cell is cell and v.node.dtype is cell:
        return v
    return TValue(convert(v.node, cell), TensorType(cell, v.type.dims, v.type.mapped), v.sparse)


def as_double(v: TValue) -> TValue:
    """Vespa has no rank-0 tensor of another cell type: every number is a double."""
    return with_cell(v, CellType.FLOAT64) if v.is_scalar else v


_SCALARS: dict[str, TValue] = {}  # by float.hex(): keeps 0.0 and -0.0 apart


def scalar(value: float) -> TValue:
    """A number. Shared: generated expressions repeat the same few numbers thousands of
    times, and nodes are immutable."""
    key = float(value).hex()
    v = _SCALARS.get(key)
    if v is None:
        v = TValue(build.scalar(value, CellType.FLOAT64), TensorType(CellType.FLOAT64, ()))
        if len(_SCALARS) < 4096:
            _SCALARS[key] = v
    return v


_TAGS = itertools.count(1)


def hidden_names(names: tuple[str, ...] | list[str]) -> dict[str, str]:
    """Hidden names for the variables of one generator or lambda (tensor_ir.expr.types):
    unique to it, so nested ones shadow and mix correctly."""
    tag = next(_TAGS)
    return {n: f"{n}{HIDDEN_MARK}{tag}" for n in names}


def move_axes(node: Node, dims: tuple[tuple[str, int], ...], mapping: dict[str, str]
              ) -> tuple[Node, tuple[tuple[str, int], ...]]:
    """`node` over `dims` with dimensions renamed (old -> new), its axes reordered to keep
    the names sorted."""
    renamed = [(mapping.get(n, n), i) for i, (n, _) in enumerate(dims)]
    order = sorted(renamed)
    node = build.transpose(node, [i for _, i in order])
    return node, tuple((n, dims[i][1]) for n, i in order)


def rename_dims(v: TValue, mapping: dict[str, str]) -> TValue:
    """v with dimensions renamed (old -> new), axes reordered to keep names sorted."""
    node, dims = move_axes(v.node, v.type.dims, mapping)
    sparse = v.sparse
    if sparse is not None and any(n in mapping for n, _ in v.type.slots):
        # slot axes renamed: their labels and mask follow
        def moved(x: TValue) -> TValue:
            return rename_dims(x, {k: m for k, m in mapping.items() if k in x.type.names})
        sparse = Sparse(tuple((d, moved(x)) for d, x in sparse.labels), moved(sparse.mask))
    return TValue(node, TensorType(v.type.cell, dims, v.type.mapped), sparse)


def expand_to(v: TValue, dims: tuple[tuple[str, int], ...]) -> Node:
    """v's node with size-1 axes for the dimensions of `dims` it lacks, ready for an
    elementwise op with numpy broadcasting. A number needs none: shape () broadcasts."""
    if v.type.rank == 0:
        return v.node
    mine = dict(v.type.dims)
    shape = [mine.get(n, 1) for n, _ in dims]
    return build.reshape(v.node, shape)
