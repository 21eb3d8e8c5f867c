"""The schema (.sd) blocks that name files of the application package: onnx-model, in a
schema or a rank profile, and constant."""

from __future__ import annotations

from server.application.errors import SchemaError
from server.application.scanner import Scanner
from server.application.schema_defs import ConstantRef
from tensor_ir.expr.errors import Location
from tensor_ir.expr.profile import OnnxModelDef
from tensor_ir.expr.types import TypeSyntaxError, parse_type


def parse_onnx_model(s: Scanner) -> OnnxModelDef:
    loc = s.here()
    name = s.word("the onnx-model name")
    s.expect("{", "to open the onnx-model")
    file = ""
    inputs: dict[str, tuple[str, Location]] = {}
    outputs: dict[str, str] = {}
    while not s.accept("}"):
        if s.at_end():
            raise s.error(f"missing '}}' at the end of onnx-model '{name}'")
        kw_loc = s.here()
        kw = s.word("file, input or output")
        if kw == "file":
            s.expect(":")
            file, _ = s.raw(stop_at_newline=True)
            file = file.strip().strip('"')
        elif kw == "uri":
            raise s.error("onnx-model 'uri' is not supported: put the model in the package and use 'file'", kw_loc)
        elif kw in ("input", "output"):
            key = s.word(f"the {kw} name")
            s.expect(":", f"after the {kw} name")
            value, vloc = s.raw(stop_at_newline=True)
            value = value.strip()
            if not value:
                raise SchemaError(f"onnx-model '{name}': {kw} '{key}' has no source", vloc)
            if kw == "input":
                inputs[key] = (value, vloc)
            else:
                outputs[key] = value.strip('"')
        elif kw in ("intraop-threads", "interop-threads", "execution-mode", "gpu-device"):
            s.expect(":")
            s.raw(stop_at_newline=True)
        else:
            raise s.error(f"unknown onnx-model property '{kw}' (expected file, input or output)", kw_loc)
    if not file:
        raise SchemaError(f"onnx-model '{name}' has no file", loc)
    return OnnxModelDef(name, file, inputs, outputs, loc)


def parse_constant_file(s: Scanner) -> ConstantRef:
    loc = s.here()
    name = s.word("the constant name")
    s.expect("{", "to open the constant")
    file, type_ = "", None
    while not s.accept("}"):
        if s.at_end():
            raise s.error(f"missing '}}' at the end of constant '{name}'")
        kw_loc = s.here()
        kw = s.word("file or type")
        s.expect(":")
        value, vloc = s.raw(stop_at_newline=True)
        if kw == "file":
            file = value.strip().strip('"')
        elif kw == "type":
            try:
                type_ = parse_type(value, allow_mapped=True)
            except TypeSyntaxError as e:
                raise SchemaError(f"constant '{name}': {e}", vloc) from None
        else:
            raise s.error(f"unknown constant property '{kw}' (expected file or type)", kw_loc)
    if not file or type_ is None:
        raise SchemaError(f"constant '{name}' needs both file and type", loc)
    return ConstantRef(name, file, type_, loc)
