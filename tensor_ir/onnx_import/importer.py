"""ModelProto -> Program.

Walks the graph in order, hands each node to the converter registered for its op at the
model's opset, inlines model-local functions and ops that onnx defines as functions of
other ops, and fails at load time, with the node's location, on anything it cannot
convert exactly.
"""

from __future__ import annotations

import logging
import os
from collections import ChainMap, Counter
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
import onnx.defs
from onnx import numpy_helper

from tensor_ir import build
from tensor_ir.dtypes import CellType
from tensor_ir.errors import EvaluationError, IRError
from tensor_ir.ir import Node
from tensor_ir.onnx_import import converters
from tensor_ir.onnx_import.attributes import node_attributes
from tensor_ir.onnx_import.bindings import Dim, InputBinding, resolve_shapes
from tensor_ir.onnx_import.context import NodeContext
from tensor_ir.onnx_import.errors import ModelImportError
from tensor_ir.onnx_import.loading import load_model, parse_model
from tensor_ir.onnx_import.registry import canonical_domain, lookup
from tensor_ir.program import Program, ProgramInput

log = logging.getLogger(__name__)

converters.register_all()

__all__ = ["ImportedModel", "ModelInput", "ModelOutput", "import_model", "load_model"]


@dataclass(frozen=True)
class ModelInput:
    name: str
    dtype: CellType
    dims: list[Dim]

    def describe(self) -> str:
        return f"{self.name}: {self.dtype.np_name}[{', '.join('?' if d is None else str(d) for d in self.dims)}]"


@dataclass(frozen=True)
class ModelOutput:
    name: str
    dtype: CellType | None
    dims: list[Dim]


@dataclass
class ImportedModel:
    program: Program
    path: str
    inputs: list[ModelInput]
    outputs: list[ModelOutput]
    opsets: dict[str, int]
    op_histogram: Counter[str] = field(default_factory=Counter)


def _dims(vi: onnx.ValueInfoProto) -> list[Dim]:
    t = vi.type.tensor_type
    if not t.HasField("shape"):
        return []
    dims: list[Dim] = []
    for d in t.shape.dim:
        if d.HasField("dim_value") and d.dim_value >= 0:
            dims.append(int(d.dim_value))
        elif d.HasField("dim_param") and d.dim_param:
            dims.append(d.dim_param)
        else:
            dims.append(None)
    return dims


def _elem_type(vi: onnx.ValueInfoProto, model: str) -> CellType:
    if not vi.type.HasField("tensor_type"):
        raise ModelImportError(f"value '{vi.name}' is not a tensor (sequence, map and optional types are "
                               "not supported)", model=model)
    try:
        return CellType.from_onnx(vi.type.tensor_type.elem_type)
    except ValueError as e:
        raise ModelImportError(f"value '{vi.name}': {e}", model=model) from None


def import_model(
    model: onnx.ModelProto | str | os.PathLike[str] | bytes,
    bindings: Mapping[str, InputBinding] | None = None,
    *,
    name: str | None = None,
) -> ImportedModel:
    """Convert a model. Unbound inputs become attribute (per-document) inputs."""
    if isinstance(model, onnx.ModelProto):
        proto, label = model, name or (model.graph.name or "<model>")
    elif isinstance(model, bytes):
        label = name or "<bytes>"
        proto = parse_model(model, label)
    else:
        label = name or str(model)
        proto = load_model(model)
    return _ModelImporter(proto, label).run(dict(bindings or {}))


class _ModelImporter:
    def __init__(self, proto: onnx.ModelProto, label: str) -> None:
        self.proto = proto
        self.label = label
        self.opsets: dict[str, int] = {}
        for imp in proto.opset_import:
            self.opsets[canonical_domain(imp.domain)] = int(imp.version)
        if "" not in self.opsets:
            # IR version 3 models may omit the default domain; onnx treats it as opset 1
            self.opsets[""] = 1
        self.functions = {(canonical_domain(f.domain), f.name): f for f in proto.functions}
        self.histogram: Counter[str] = Counter()

    def error(self, message: str) -> ModelImportError:
        return ModelImportError(message, model=self.label)

    # ------------------------------------------------------------ model level

    def run(self, bindings: dict[str, InputBinding]) -> ImportedModel:
        graph = self.proto.graph
        inits = {t.name: t for t in graph.initializer}
        real_inputs = [vi for vi in graph.input if vi.name not in inits or vi.name in bindings]
        unknown = set(bindings) - {vi.name for vi in graph.input}
        if unknown:
            names = ", ".join(vi.name for vi in real_inputs) or "none"
            raise self.error(f"bindings name unknown inputs {sorted(unknown)}; the model's inputs are {names}")
        model_inputs = [ModelInput(vi.name, _elem_type(vi, self.label), _dims(vi)) for vi in real_inputs]
        for mi in model_inputs:
            b = bindings.get(mi.name)
            if b is not None and b.dtype is not None and b.dtype is not mi.dtype:
                raise self.error(
                    f"type mismatch: input '{mi.name}' is {mi.dtype.np_name} in the model but is bound "
                    f"to {b.dtype.np_name}"
                )
        shapes = resolve_shapes(
            {mi.name: mi.dims for mi in model_inputs},
            {k: b.bound_shape for k, b in bindings.items()},
            self.label,
        )
        env: dict[str, Node] = {}
        for tname, t in inits.items():
            env[tname] = self._initializer(t)
        specs: dict[str, ProgramInput] = {}
        for mi in model_inputs:
            b = bindings.get(mi.name, InputBinding())
            shape = shapes[mi.name]
            if b.node is not None:
                if b.node.dtype is not mi.dtype:
                    raise self.error(
                        f"type mismatch: input '{mi.name}' is {mi.dtype.np_name} in the model but is bound "
                        f"to a {b.node.dtype.np_name} value"
                    )
                env[mi.name] = build.reshape(b.node, shape)
                continue
            if b.value is not None:
                env[mi.name] = build.constant(np.asarray(b.value).reshape(shape), mi.dtype, mi.name)
                continue
            env[mi.name] = build.input_(mi.name, b.role, shape, mi.dtype)
            specs[mi.name] = ProgramInput(mi.name, b.role, shape, mi.dtype)
        self._graph_nodes(graph.node, env, self.opsets)
        outputs: dict[str, Node] = {}
        model_outputs = []
        for vi in graph.output:
            if vi.name not in env:
                raise self.error(f"graph output '{vi.name}' is produced by no node")
            node = env[vi.name]
            declared = vi.type.tensor_type.elem_type if vi.type.HasField("tensor_type") else 0
            if declared and declared != node.dtype.onnx_type:
                raise self.error(
                    f"type mismatch: output '{vi.name}' is declared {onnx.TensorProto.DataType.Name(declared)} "
                    f"but computes {node.dtype.np_name}"
                )
            outputs[vi.name] = node
            model_outputs.append(ModelOutput(vi.name, node.dtype, _dims(vi)))
        return ImportedModel(
            Program(outputs, specs), self.label, model_inputs, model_outputs, dict(self.opsets), self.histogram
        )

    def _initializer(self, t: onnx.TensorProto) -> Node:
        try:
            arr = numpy_helper.to_array(t)
            ct = CellType.from_onnx(t.data_type)
        except (ValueError, TypeError) as e:
            raise self.error(f"initializer '{t.name}' cannot be read: {e}") from None
        return build.constant(arr, ct, t.name)

    # ------------------------------------------------------------ graphs and nodes

    def _graph_nodes(
        self, nodes: Sequence[onnx.NodeProto], env: MutableMapping[str, Node], opsets: Mapping[str, int]
    ) -> None:
        for node in nodes:
            self._node(node, env, opsets)

    def _node(self, node: onnx.NodeProto, env: MutableMapping[str, Node], opsets: Mapping[str, int]) -> None:
        if not node.name:
            # errors must point somewhere: an unnamed node is known by the values it produces
            named = onnx.NodeProto()
            named.CopyFrom(node)
            named.name = f"<{node.op_type} -> {', '.join(o for o in node.output if o)}>"
            node = named
        domain = canonical_domain(node.domain)
        opset = opsets.get(domain)
        self.histogram[node.op_type if not domain else f"{domain}.{node.op_type}"] += 1

        def located(e: ModelImportError) -> ModelImportError:
            return e.located(model=self.label, node=node.name, op_type=node.op_type, domain=node.domain,
                             opset=opset)

        inputs: list[Node | None] = []
        for name in node.input:
            if not name:
                inputs.append(None)
            elif name in env:
                inputs.append(env[name])
            else:
                raise located(ModelImportError(f"uses value '{name}' that no earlier node or input produces"))
        if (domain, node.op_type) in self.functions:
            outs = self._inline_function(self.functions[(domain, node.op_type)], node, inputs, env)
        else:
            if opset is None:
                raise located(ModelImportError(f"the model does not import the op's domain '{node.domain}'"))
            attrs = node_attributes(node, opset)
            ctx = NodeContext(node, inputs, attrs, opset, self.label,
                              lambda g, ins: self._subgraph(g, ins, env, opsets))
            found = lookup(domain, node.op_type, opset)
            try:
                if found.fn is not None:
                    outs = list(found.fn(ctx))
                else:
                    body = _schema_function(node, inputs, opset, domain)
                    if body is None:
                        raise ModelImportError(f"unsupported op: {found.reason}")
                    outs = self._inline_function(body, node, inputs, env, attrs.values)
            except ModelImportError as e:
                raise located(e) from None
            except (IRError, EvaluationError) as e:
                raise located(ModelImportError(str(e))) from None
        for out_name, value in zip(node.output, outs):
            if out_name and value is not None:
                env[out_name] = value
        missing = [n for i, n in enumerate(node.output) if n and (i >= len(outs) or outs[i] is None)]
        if missing:
            raise located(ModelImportError(f"outputs {missing} are not supported"))

    def _subgraph(
        self,
        graph: onnx.GraphProto,
        inputs: Sequence[Node],
        outer: MutableMapping[str, Node],
        opsets: Mapping[str, int],
    ) -> list[Node]:
        local: dict[str, Node] = {t.name: self._initializer(t) for t in graph.initializer}
        if len(inputs) != len(graph.input):
            raise self.error(f"subgraph '{graph.name}' takes {len(graph.input)} inputs, given {len(inputs)}")
        for vi, value in zip(graph.input, inputs, strict=True):
            local[vi.name] = value
        env: ChainMap[str, Node] = ChainMap(local, outer)
        self._graph_nodes(graph.node, env, opsets)
        try:
            return [env[vi.name] for vi in graph.output]
        except KeyError as e:
            raise self.error(f"subgraph '{graph.name}' output {e} is produced by no node") from None

    def _inline_function(
        self,
        fn: onnx.FunctionProto,
        call: onnx.NodeProto,
        inputs: list[Node | None],
        outer: MutableMapping[str, Node],
        attrs: dict[str, Any] | None = None,
    ) -> list[Node | None]:
        """Expand a function body in place: formal inputs bound to the call's operands,
        attribute references resolved against the call's attributes (and schema defaults)."""
        call_attrs = {a.name: a for a in call.attribute}
        defaults = {a.name: a for a in fn.attribute_proto}
        scope: dict[str, Node] = {}
        for formal, actual in zip(fn.input, inputs):
            if actual is not None:
                scope[formal] = actual
        opsets = dict(self.opsets)
        for imp in fn.opset_import:
            opsets[canonical_domain(imp.domain)] = int(imp.version)
        for body_node in fn.node:
            resolved = onnx.NodeProto()
            resolved.CopyFrom(body_node)
            del resolved.attribute[:]
            for a in body_node.attribute:
                if a.ref_attr_name:
                    src = call_attrs.get(a.ref_attr_name) or defaults.get(a.ref_attr_name)
                    if src is None and attrs is not None and a.ref_attr_name in attrs:
                        src = onnx.helper.make_attribute(a.ref_attr_name, attrs[a.ref_attr_name])
                    if src is None:
                        continue
                    copy = onnx.AttributeProto()
                    copy.CopyFrom(src)
                    copy.name = a.name
                    resolved.attribute.append(copy)
                else:
                    resolved.attribute.append(a)
            if not resolved.name:
                resolved.name = f"{call.name or call.op_type}/{body_node.op_type}"
            self._node(resolved, scope, opsets)
        return [scope.get(o) for o in fn.output]


def _schema_function(
    node: onnx.NodeProto, inputs: list[Node | None], opset: int, domain: str
) -> onnx.FunctionProto | None:
    """The function body onnx defines for this op at this opset, if any."""
    try:
        schema = onnx.defs.get_schema(node.op_type, opset, domain)
    except onnx.defs.SchemaError:
        return None
    if schema.has_function:  # type: ignore[attr-defined]
        body = schema.get_function_with_opset_version(opset)  # type: ignore[attr-defined]
        if body is not None:
            return _as_function(body)
    if schema.has_context_dependent_function:  # type: ignore[attr-defined]
        types = []
        for value in inputs:
            if value is None:
                types.append(onnx.TypeProto().SerializeToString())
            else:
                types.append(
                    onnx.helper.make_tensor_type_proto(value.dtype.onnx_type, list(value.shape)).SerializeToString()
                )
        try:
            body = schema.get_context_dependent_function_with_opset_version(  # type: ignore[attr-defined]
                opset, node.SerializeToString(), types
            )
        except (RuntimeError, onnx.defs.SchemaError):
            return None
        if body is not None:
            return _as_function(body)
    return None


def _as_function(body: Any) -> onnx.FunctionProto:
    if isinstance(body, onnx.FunctionProto):
        return body
    fn = onnx.FunctionProto()
    fn.ParseFromString(body)
    return fn
