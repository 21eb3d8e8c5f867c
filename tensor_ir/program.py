"""A tensor program: named inputs with roles, named outputs, and the nodes between."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from tensor_ir.dtypes import CellType
from tensor_ir.errors import EvaluationError
from tensor_ir.ir import Node, Op, Role, topological_order


@dataclass(frozen=True)
class ProgramInput:
    name: str
    role: Role
    shape: tuple[int, ...]  # per document
    dtype: CellType

    def describe(self) -> str:
        name = self.name if self.name.endswith(")") else f"{self.role.value}({self.name})"
        return f"{name} {self.dtype.np_name}{list(self.shape)}"


class Program:
    """Immutable: passes return new programs."""

    def __init__(self, outputs: Mapping[str, Node], inputs: Mapping[str, ProgramInput] | None = None) -> None:
        self.outputs: dict[str, Node] = dict(outputs)
        self._order: tuple[Node, ...] | None = None
        self._input_nodes: dict[str, Node] | None = None
        found = {n.attrs["name"]: n for n in self.nodes() if n.op is Op.INPUT}
        if inputs is None:
            inputs = {
                name: ProgramInput(name, Role(n.attrs["role"]), n.shape, n.dtype) for name, n in found.items()
            }
        self.inputs: dict[str, ProgramInput] = dict(inputs)

    def nodes(self) -> list[Node]:
        # cached: programs are immutable, and evaluators check inputs on every query
        if self._order is None:
            self._order = tuple(topological_order(list(self.outputs.values())))
        return list(self._order)

    def input_nodes(self) -> dict[str, Node]:
        if self._input_nodes is None:
            self._input_nodes = {n.attrs["name"]: n for n in self.nodes() if n.op is Op.INPUT}
        return dict(self._input_nodes)

    def op_histogram(self) -> Counter[str]:
        return Counter(n.op.label for n in self.nodes() if n.op not in (Op.INPUT, Op.CONSTANT))

    def size(self) -> int:
        """Number of computing nodes (leaves not counted)."""
        return sum(1 for n in self.nodes() if n.op not in (Op.INPUT, Op.CONSTANT))

    def constant_bytes(self) -> int:
        return sum(n.value.nbytes for n in self.nodes() if n.op is Op.CONSTANT)

    def with_outputs(self, outputs: Mapping[str, Node]) -> Program:
        return Program(outputs, self.inputs)

    def describe(self) -> str:
        lines = [f"program: {self.size()} nodes, {self.constant_bytes()} constant bytes"]
        lines += [f"  input  {i.describe()}" for i in self.inputs.values()]
        lines += [
            f"  output {name}: {n.dtype.np_name}{list(n.shape)} {n.variance.label}"
            for name, n in self.outputs.items()
        ]
        return "\n".join(lines)


def check_inputs(program: Program, values: Mapping[str, Any], n_docs: int) -> dict[str, npt.NDArray[Any]]:
    """Validate and convert input values: per-document inputs get shape [n_docs, *shape]."""
    out: dict[str, npt.NDArray[Any]] = {}
    used = program.input_nodes()
    for name, spec in program.inputs.items():
        if name not in values:
            if name in used:
                raise EvaluationError(f"missing value for {spec.describe()}")
            continue
        arr = np.asarray(values[name])
        if arr.dtype != spec.dtype.np_dtype:
            arr = arr.astype(spec.dtype.np_dtype)
        want = (n_docs, *spec.shape) if spec.role is Role.ATTRIBUTE else spec.shape
        if arr.shape != want:
            raise EvaluationError(f"{spec.describe()}: got a value of shape {list(arr.shape)}, want {list(want)}")
        out[name] = arr
    return out
