"""Vespa tensor types: `tensor<float>(x[64],y[3])`, `tensor(d0[1])`, `float`, `double`.

Dimensions are kept sorted by name, which is Vespa's cell order, so two values with the
same dimensions always agree on axis order. `dims` holds the indexed dimensions (and the
hidden and slot axes below); `mapped` the names of the mapped ones (`x{}`), also sorted.

A value with mapped dimensions is computed as a dense block over *slot axes*: each mapped
value (a document field, a query input, a constant) brings one axis of padded subspaces,
named with a '$' (tensor_ir.expr.sparse has the labels and the mask that go with them).
Slot axes are dimensions like any other to the dense machinery (they join by name, so two
values from different sources form their cartesian product), but no expression sees them.

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
SLOT_MARK = "$"


def is_hidden(name: str) -> bool:
    return HIDDEN_MARK in name


def is_slot(name: str) -> bool:
    return name.startswith(SLOT_MARK)


class TypeSyntaxError(TensorRankError, ValueError):
    pass


@dataclass(frozen=True)
class TensorType:
    cell: CellType
    dims: tuple[tuple[str, int], ...]  # sorted by name
    mapped: tuple[str, ...] = ()  # mapped dimensions, sorted by name

    @staticmethod
    def of(cell: CellType, dims: dict[str, int] | list[tuple[str, int]] | tuple[tuple[str, int], ...],
           mapped: tuple[str, ...] | list[str] = ()) -> TensorType:
        items = list(dims.items()) if isinstance(dims, dict) else list(dims)
        names = [n for n, _ in items] + list(mapped)
        if len(set(names)) != len(names):
            raise TypeSyntaxError(f"dimension names repeat: {names}")
        return TensorType(cell, tuple(sorted(items)), tuple(sorted(mapped)))

    @property
    def is_mapped(self) -> bool:
        """Has a mapped dimension (Vespa: a sparse or mixed tensor)."""
        return bool(self.mapped)

    @property
    def slots(self) -> tuple[tuple[str, int], ...]:
        return tuple(d for d in self.dims if is_slot(d[0]))

    @property
    def value_type(self) -> TensorType:
        """The type without its slot axes: what Vespa calls this value's type."""
        return TensorType(self.cell, tuple(d for d in self.dims if not is_slot(d[0])), self.mapped)

    @property
    def subspace_shape(self) -> tuple[int, ...]:
        """The shape of one dense subspace: the indexed dimensions, without slot axes."""
        return tuple(s for n, s in self.dims if not is_slot(n))

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
        """The indexed dimensions an expression can see and name (module doc: hidden ones
        and slot axes are not)."""
        return tuple(d for d in self.dims if not is_hidden(d[0]) and not is_slot(d[0]))

    @property
    def hidden(self) -> tuple[tuple[str, int], ...]:
        return tuple(d for d in self.dims if is_hidden(d[0]))

    @property
    def visible_names(self) -> tuple[str, ...]:
        return tuple(n for n, _ in self.visible)

    @property
    def all_names(self) -> tuple[str, ...]:
        """Every dimension an expression can name, indexed and mapped, sorted."""
        return tuple(sorted(self.visible_names + self.mapped))

    def __str__(self) -> str:
        parts = sorted([(n, f"{n}[{s}]") for n, s in self.visible] + [(n, f"{n}{{}}") for n in self.mapped])
        if not parts:
            return "double" if self.cell is CellType.FLOAT64 else (self.cell.vespa_name or self.cell.np_name)
        cell = "" if self.cell is CellType.FLOAT64 else f"<{self.cell.vespa_name or self.cell.np_name}>"
        return f"tensor{cell}(" + ",".join(p for _, p in parts) + ")"


def parse_type(text: str, allow_mapped: bool = False) -> TensorType:
    """Parse a Vespa type string. Raises TypeSyntaxError saying what is wrong. Mapped
    dimensions (`x{}`) only where the caller says it handles them."""
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
    mapped: list[str] = []
    if body:
        for part in body.split(","):
            dm = _DIM.match(part)
            if not dm:
                raise TypeSyntaxError(f"'{part.strip()}' is not a dimension (expected name[size])")
            if dm.group(2).startswith("{") and allow_mapped:
                mapped.append(dm.group(1))
                continue
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
    return TensorType.of(cell, dims, mapped)
