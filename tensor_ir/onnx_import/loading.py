"""Reading a model file safely: malformed and truncated files and external data that
leaves the model's folder are refused before anything is converted."""

from __future__ import annotations

import os
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError
from onnx import external_data_helper

from tensor_ir.onnx_import.errors import ModelImportError


def load_model(path: str | os.PathLike[str]) -> onnx.ModelProto:
    p = Path(path)
    name = str(p)
    if not p.is_file():
        raise ModelImportError("file not found", model=name)
    data = p.read_bytes()
    if not data:
        raise ModelImportError("file is empty", model=name)
    model = parse_model(data, name)
    check_external_data(model, p.parent, name)
    return model


def parse_model(data: bytes, name: str) -> onnx.ModelProto:
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except DecodeError as e:
        raise ModelImportError(f"not a valid ONNX protobuf (malformed or truncated): {e}", model=name) from None
    if not model.HasField("graph") or not model.graph.output:
        raise ModelImportError("not a valid ONNX model: it has no graph outputs (malformed or truncated?)",
                               model=name)
    # A cut inside a field fails to parse; a cut between top-level fields parses. The graph
    # (field 7) is written before opset_import (8), so a file cut right after its graph
    # reads as an opset-1 model. (Comparing the re-encoded length with the file's catches
    # none of these cuts, and refuses valid files that protobuf encodes differently.)
    if model.ir_version >= 3 and not model.opset_import:
        raise ModelImportError(f"not a valid ONNX model: IR version {model.ir_version} requires "
                               "opset_import, which is missing (truncated?)", model=name)
    return model


def check_external_data(model: onnx.ModelProto, base: Path, name: str) -> None:
    tensors = list(external_data_helper._get_all_tensors(model))
    external = [t for t in tensors if external_data_helper.uses_external_data(t)]
    if not external:
        return
    root = base.resolve()
    for t in external:
        info = external_data_helper.ExternalDataInfo(t)
        loc = info.location
        target = (root / loc).resolve()
        if os.path.isabs(loc) or ".." in Path(loc).parts or not target.is_relative_to(root):
            raise ModelImportError(
                f"initializer '{t.name}' points at external data '{loc}' outside the model's folder",
                model=name,
            )
        if not target.is_file():
            raise ModelImportError(f"initializer '{t.name}': external data file '{loc}' not found", model=name)
    try:
        external_data_helper.load_external_data_for_model(model, str(root))
    except (OSError, ValueError) as e:
        raise ModelImportError(f"cannot read external data: {e}", model=name) from None
