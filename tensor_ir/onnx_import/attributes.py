"""Node attributes with defaults taken from onnx.defs schemas, never copied by hand."""

from __future__ import annotations

from typing import Any, NamedTuple

import onnx
import onnx.defs
from onnx import helper

from tensor_ir.onnx_import.registry import canonical_domain


class NodeAttributes(NamedTuple):
    # the node's attributes, and for those it leaves out, the schema's defaults
    values: dict[str, Any]
    # names the op's schema declares at the model's opset; None when onnx.defs has no schema
    # for the op (a custom domain, say), so there is nothing to check a name against
    declared: frozenset[str] | None


def node_attributes(node: onnx.NodeProto, opset: int) -> NodeAttributes:
    attrs: dict[str, Any] = {}
    try:
        schema = onnx.defs.get_schema(node.op_type, opset, canonical_domain(node.domain))
    except onnx.defs.SchemaError:
        schema = None
    if schema is not None:
        for name, spec in schema.attributes.items():
            default = spec.default_value
            if default is not None and default.type != onnx.AttributeProto.UNDEFINED:
                attrs[name] = helper.get_attribute_value(default)
    for a in node.attribute:
        attrs[a.name] = helper.get_attribute_value(a)
    declared = None if schema is None else frozenset(schema.attributes)
    return NodeAttributes({k: _decode(v) for k, v in attrs.items()}, declared)


def _decode(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, list) and value and isinstance(value[0], bytes):
        return [v.decode("utf-8", errors="replace") for v in value]
    return value
