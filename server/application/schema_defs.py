"""What a parsed schema (.sd) holds: its document's fields, rank profiles, ONNX models and
the constants to load from files of the application package."""

from __future__ import annotations

from dataclasses import dataclass, field

from tensor_ir.expr.errors import Location
from tensor_ir.expr.profile import FieldDef, OnnxModelDef, ProfileDef
from tensor_ir.expr.types import TensorType


@dataclass
class ConstantRef:
    """A constant defined in a file of the package, loaded by the package loader."""

    name: str
    file: str
    type: TensorType
    loc: Location


@dataclass
class SchemaDef:
    name: str
    file: str
    loc: Location
    document: str = ""
    fields: dict[str, FieldDef] = field(default_factory=dict)
    profiles: dict[str, ProfileDef] = field(default_factory=dict)
    onnx_models: dict[str, OnnxModelDef] = field(default_factory=dict)
    constant_files: dict[str, ConstantRef] = field(default_factory=dict)
    profile_constant_files: dict[str, dict[str, ConstantRef]] = field(default_factory=dict)
