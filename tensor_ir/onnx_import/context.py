"""What a converter sees of one ONNX node: its operands as IR nodes, its attributes with
schema defaults, and ways to fail with the node's location."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx

from tensor_ir.dtypes import CellType
from tensor_ir.errors import TensorRankError
from tensor_ir.ir import Node, Op
from tensor_ir.onnx_import.attributes import NodeAttributes
from tensor_ir.onnx_import.errors import ModelImportError

# Imports a subgraph given the values of its formal inputs; returns its outputs.
SubgraphImporter = Callable[[onnx.GraphProto, Sequence[Node]], list[Node]]


class UndeclaredAttributeError(TensorRankError, AssertionError):
    """A converter asked for an attribute its op's schema does not declare at the model's
    opset. That is a bug in the converter, not in the model, so it is deliberately not a
    ModelImportError: the importer lets it through instead of blaming the model, and the
    status table answers INTERNAL for it, as for any other bug of ours."""


class NodeContext:
    def __init__(
        self,
        node: onnx.NodeProto,
        inputs: list[Node | None],
        attrs: NodeAttributes,
        opset: int,
        model: str,
        subgraph: SubgraphImporter,
    ) -> None:
        self.node = node
        self.inputs = inputs
        self.attrs = attrs.values
        self._declared = attrs.declared
        self.opset = opset
        self.model = model
        self._subgraph = subgraph

    @property
    def op_type(self) -> str:
        return self.node.op_type

    @property
    def name(self) -> str:
        return self.node.name

    @property
    def n_outputs(self) -> int:
        return len(self.node.output)

    def output_used(self, i: int) -> bool:
        return i < len(self.node.output) and self.node.output[i] != ""

    def error(self, message: str, needs_constant: bool = False) -> ModelImportError:
        return ModelImportError(
            message,
            model=self.model,
            node=self.node.name,
            op_type=self.node.op_type,
            domain=self.node.domain,
            opset=self.opset,
            needs_constant=needs_constant,
        )

    def input(self, i: int) -> Node:
        node = self.optional(i)
        if node is None:
            raise self.error(f"required input {i} is missing")
        return node

    def optional(self, i: int) -> Node | None:
        return self.inputs[i] if i < len(self.inputs) else None

    def attr(self, name: str) -> Any:
        """The node's value of attribute `name`, else the default of the op's onnx.defs schema
        at the model's opset, else None (the schema declares it optional without a default:
        what absence means is the caller's to decide). There is no default parameter on
        purpose: defaults come from the schema only, never copied by hand."""
        if not self.declares(name):
            raise UndeclaredAttributeError(
                f"converter bug: op {self.node.op_type} (domain {self.node.domain or 'ai.onnx'}, "
                f"opset {self.opset}) declares no attribute '{name}' (its schema declares "
                f"{sorted(self._declared or ())}); check ctx.declares('{name}') first"
            )
        return self.attrs.get(name)

    def declares(self, name: str) -> bool:
        """Whether the op's schema at the model's opset has attribute `name`: attributes come
        and go between versions (Cast's saturate from opset 19, round_mode from 24). Without a
        schema (an op onnx.defs does not know) any name may be asked for."""
        return self._declared is None or name in self._declared

    def has_attr(self, name: str) -> bool:
        """Whether the node itself sets `name` (rather than leaving it to the schema)."""
        return any(a.name == name for a in self.node.attribute)

    def const(self, i: int, what: str = "") -> npt.NDArray[Any]:
        """The value of input `i`, which must be known when the model is deployed."""
        node = self.input(i)
        if node.op is not Op.CONSTANT:
            label = what or f"input {i} ('{self.node.input[i]}')"
            raise self.error(
                f"{label} must be a constant known at deploy time, but it depends on "
                f"{node.variance.label} data",
                needs_constant=True,
            )
        return node.value

    def const_ints(self, i: int, what: str = "") -> list[int]:
        return [int(v) for v in np.asarray(self.const(i, what)).reshape(-1)]

    def optional_const_ints(self, i: int, what: str = "") -> list[int] | None:
        return None if self.optional(i) is None else self.const_ints(i, what)

    def float_types_only(self, *nodes: Node) -> None:
        for n in nodes:
            if not n.dtype.is_float:
                raise self.error(f"needs float cells, got {n.dtype.np_name}")

    def subgraph(self, graph: onnx.GraphProto, inputs: Sequence[Node] = ()) -> list[Node]:
        return self._subgraph(graph, inputs)

    def dtype_attr(self, name: str) -> CellType:
        code = self.attr(name)
        if code is None:
            raise self.error(f"attribute '{name}' is missing")
        try:
            return CellType.from_onnx(int(code))
        except ValueError as e:
            raise self.error(f"attribute '{name}': {e}") from None
