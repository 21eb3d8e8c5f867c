"""The ONNX importer: ModelProto -> Program."""

from tensor_ir.onnx_import.bindings import InputBinding
from tensor_ir.onnx_import.errors import ModelImportError
from tensor_ir.onnx_import.importer import ImportedModel, ModelInput, ModelOutput, import_model, load_model

__all__ = [
    "ImportedModel",
    "InputBinding",
    "ModelImportError",
    "ModelInput",
    "ModelOutput",
    "import_model",
    "load_model",
]
