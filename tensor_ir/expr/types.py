"""Vespa tensor types: `tensor<float>(x[64],y[3])`, `tensor(d0[1])`, `float`, `double`.

Dimensions are kept sorted by name, which is Vespa's cell order, so two values with the
same dimensions always agree on axis order. Only indexed (dense) dimensions exist here.

A generator's or lambda's variable is one number per cell in Vespa. The compiler computes
all cells at once, so it gives such a number *hidden* dimensions, one per variable it
depends on, named with a '#' that no Vespa identifier has: they join by name like any
other, but no function sees them (a reduction leaves them alone, `count` does not count
them, the type string omits them), and the generator that made them turns them into its
own dimensions at the end.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tensor_ir.dtypes import CellType
from tensor_ir.errors import TensorRankError

_SCALARS = {
    "double": CellType.FLOAT64,
    "float": CellType.FLOAT32,
    "int": CellType.INT32,
    "long": CellType.INT64,
    "byte": CellType.INT8,
    "bool": CellType.BOOL,
}
_TENSOR = re.compile(r"^\s*tensor\s*(?:<\s*(\w+)\s*>)?\s*\((.*)\)\s*$", re.S)
_DIM = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(\[\s*(\d*)\s*\]|\{\s*\})\s*$")


HIDDEN_MARK = "#"


def is_hidden(name: str) -> bool:
    return HIDDEN_MARK in name


class TypeSyntaxError(TensorRankError, ValueError):
    pass


@dataclass(frozen=True)
class TensorType:
    cell: CellType
    dims: tuple[tuple[str, int], ...]  # sorted by name

    @staticmethod
    def of(cell: CellType, dims: dict[str, int] | list[tuple[str, int]] | tuple[tuple[str, int], ...]) -> TensorType:
        items = list(dims.items()) if isinstance(dims, dict) else list(dims)
        names = [n for n, _ in items]
        if len(set(names)) != len(names):
            raise TypeSyntaxError(f"dimension names repeat: {names}")
        return TensorType(cell, tuple(sorted(items)))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(n for n, _ in self.dims)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(s for _, s in self.dims)

    @property
    def rank(self) -> int:
        return len(self.dims)

    def size_of(self, name: str) -> int:
        return dict(self.dims)[name]

    @property
    def visible(self) -> tuple[tuple[str, int], ...]:
        """The dimensions an expression can see and name (module doc: hidden ones)."""
        return tuple(d for d in self.dims if not is_hidden(d[0]))

    @property
    def hidden(self) -> tuple[tuple[str, int], ...]:
        return tuple(d for d in self.dims if is_hidden(d[0]))

    @property
    def visible_names(self) -> tuple[str, ...]:
        return tuple(n for n, _ in self.visible)

    def __str__(self) -> str:
        dims = self.visible
        if not dims:
            return "double" if self.cell is CellType.FLOAT64 else (self.cell.vespa_name or self.cell.np_name)
        cell = "" if self.cell is CellType.FLOAT64 else f"<{self.cell.vespa_name or self.cell.np_name}>"
        return f"tensor{cell}(" + ",".join(f"{n}[{s}]" for n, s in dims) + ")"


def parse_type(text: str) -> TensorType:
    """Parse a Vespa type string. Raises TypeSyntaxError saying what is wrong."""
    t = text.strip()
    if t in _SCALARS:
        return TensorType(_SCALARS[t], ())
    m = _TENSOR.match(t)
    if not m:
        raise TypeSyntaxError(f"'{text}' is not a tensor type (expected e.g. tensor<float>(x[64]) or double)")
    cell_name = m.group(1) or "double"
    try:
        cell = CellType.from_vespa(cell_name)
    except ValueError as e:
        raise TypeSyntaxError(str(e)) from None
    body = m.group(2).strip()
    dims: list[tuple[str, int]] = []
    if body:
        for part in body.split(","):
            dm = _DIM.match(part)
            if not dm:
                raise TypeSyntaxError(f"'{part.strip()}' is not a dimension (expected name[size])")
            if dm.group(2).startswith("{"):
                raise TypeSyntaxError(
                    f"mapped dimension '{dm.group(1)}{{}}' is not supported; use an indexed dimension "
                    f"such as {dm.group(1)}[N]"
                )
            if not dm.group(3):
                raise TypeSyntaxError(f"indexed dimension '{dm.group(1)}[]' needs a size")
            size = int(dm.group(3))
            if size <= 0:
                raise TypeSyntaxError(f"dimension '{dm.group(1)}' must have a positive size")
            dims.append((dm.group(1), size))
    return TensorType.of(cell, dims)
