"""How a model's inputs are bound: role, per-document shape, cell type, constant value.

Resolves symbolic and -1 dimensions from the bound shapes. A leading batch axis that is
symbolic or -1 is per-document size 1: the document axis of the program fills it, so a
model written for a batch is evaluated one document per batch row, as Vespa does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from tensor_ir.dtypes import CellType
from tensor_ir.ir import Node, Role
from tensor_ir.onnx_import.errors import ModelImportError

Dim = int | str | None  # static size, symbolic name, or unknown (-1 / absent)


@dataclass(frozen=True)
class InputBinding:
    role: Role = Role.ATTRIBUTE
    shape: tuple[int, ...] | None = None  # per document; may leave out a batch axis
    dtype: CellType | None = None
    value: npt.NDArray[Any] | None = None  # the value of a CONSTANT-role input, when known
    node: Node | None = None  # an IR value computed elsewhere (a rank profile): inlines the model

    @property
    def bound_shape(self) -> tuple[int, ...] | None:
        if self.node is not None:
            return self.node.shape
        if self.value is not None:
            return tuple(self.value.shape)
        return self.shape

    @staticmethod
    def constant(value: npt.ArrayLike) -> InputBinding:
        arr = np.asarray(value)
        return InputBinding(Role.CONSTANT, tuple(arr.shape), CellType.from_numpy(arr.dtype), arr)


def is_static(d: Dim) -> bool:
    return isinstance(d, int) and d >= 0


def resolve_shapes(
    dims_by_input: dict[str, list[Dim]],
    bound: dict[str, tuple[int, ...] | None],
    model: str,
) -> dict[str, tuple[int, ...]]:
    """Per-document shapes of every input; symbolic names must agree across inputs."""
    sizes: dict[str, tuple[int, str]] = {}  # symbolic name -> (size, input that fixed it)
    out: dict[str, tuple[int, ...]] = {}
    # bound inputs first: a symbol's size must not depend on the order of the model's inputs
    order = sorted(dims_by_input, key=lambda k: bound.get(k) is None)
    for name in order:
        dims = dims_by_input[name]
        shape = bound.get(name)
        rank = len(dims)
        if shape is not None and len(shape) == rank - 1 and rank > 0 and (not is_static(dims[0]) or dims[0] == 1):
            shape = (1, *shape)
        if shape is not None and len(shape) != rank:
            raise ModelImportError(
                f"input '{name}' has rank {rank} ({_fmt(dims)}) but is bound to a tensor of shape {list(shape)}",
                model=model,
            )
        resolved: list[int] = []
        for axis, d in enumerate(dims):
            given = shape[axis] if shape is not None else None
            if is_static(d):
                assert isinstance(d, int)
                if given is not None and given != d:
                    raise ModelImportError(
                        f"input '{name}' axis {axis} has size {d} in the model but the binding gives {given}",
                        model=model,
                    )
                resolved.append(d)
                continue
            if given is None:
                if isinstance(d, str) and d in sizes:
                    given = sizes[d][0]
                elif axis == 0:
                    given = 1  # the batch axis: one document per row
                else:
                    raise ModelImportError(
                        f"dimension {_dim_name(d, axis)} of input '{name}' has no size: bind the input "
                        f"to a tensor whose type gives it",
                        model=model,
                    )
            if isinstance(d, str):
                if d in sizes and sizes[d][0] != given:
                    raise ModelImportError(
                        f"dimension '{d}' is {sizes[d][0]} in input '{sizes[d][1]}' but {given} in input '{name}'",
                        model=model,
                    )
                sizes.setdefault(d, (given, name))
            resolved.append(given)
        out[name] = tuple(resolved)
    return {name: out[name] for name in dims_by_input}


def _dim_name(d: Dim, axis: int) -> str:
    return f"'{d}'" if isinstance(d, str) else f"{axis} (size -1)"


def _fmt(dims: list[Dim]) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in dims) + "]"
