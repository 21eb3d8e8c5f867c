"""Typed values of the expression compiler: an IR node plus its named dimensions.

Dimensions are sorted by name (Vespa's cell order), so joining two values only inserts
size-1 axes; it never transposes.
"""

from __future__ import annotations

from dataclasses import dataclass

from tensor_ir import build
from tensor_ir.dtypes import CellType
from tensor_ir.expr.types import TensorType
from tensor_ir.ir import Node

# Vespa's cell types in order of precision; bfloat16 and int8 are storage types that
# compute as float.
_RANK = {CellType.INT8: 0, CellType.BFLOAT16: 1, CellType.FLOAT32: 2, CellType.FLOAT64: 3}


@dataclass(frozen=True)
class TValue:
    node: Node
    type: TensorType

    def __post_init__(self) -> None:
        if self.node.shape != self.type.shape:
            raise AssertionError(f"node shape {self.node.shape} does not match type {self.type}")

    @property
    def is_scalar(self) -> bool:
        return self.type.rank == 0


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


def with_cell(v: TValue, cell: CellType) -> TValue:
    if v.type.cell is cell and v.node.dtype is cell:
        return v
    return TValue(build.cast(v.node, cell), TensorType(cell, v.type.dims))


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


def expand_to(v: TValue, dims: tuple[tuple[str, int], ...]) -> Node:
    """v's node with size-1 axes for the dimensions of `dims` it lacks, ready for an
    elementwise op with numpy broadcasting. A number needs none: shape () broadcasts."""
    if v.type.rank == 0:
        return v.node
    mine = dict(v.type.dims)
    shape = [mine.get(n, 1) for n, _ in dims]
    return build.reshape(v.node, shape)
