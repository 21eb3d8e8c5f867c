"""What a parsed schema (.sd) holds: its document's fields, rank profiles, ONNX models, the
constants to load from files of the application package, and what was accepted without
effect (notes) or refused without stopping the parse (problems)."""

from __future__ import annotations

from dataclasses import dataclass, field

from server.application.errors import SchemaError
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


@dataclass(frozen=True)
class Note:
    """A setting that is accepted but changes nothing here: `check` lists every one."""

    loc: Location
    setting: str
    reason: str

    def __str__(self) -> str:
        return f"{self.loc}: {self.setting}: {self.reason}"


@dataclass
class StructDef:
    name: str
    loc: Location
    fields: dict[str, FieldDef] = field(default_factory=dict)


@dataclass
class SummaryDef:
    """A document-summary: the fields it shows (summary name -> source field)."""

    name: str
    loc: Location
    fields: dict[str, str] = field(default_factory=dict)
    inherits: list[str] = field(default_factory=list)
    from_disk: bool = False


@dataclass(frozen=True)
class ImportedField:
    """`import field ref.target as name {}`: a parent document's attribute seen through a reference."""

    name: str
    reference: str
    target: str
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
    inherits: str = ""  # schema a inherits b
    document_inherits: list[str] = field(default_factory=list)
    structs: dict[str, StructDef] = field(default_factory=dict)
    fieldsets: dict[str, list[str]] = field(default_factory=dict)
    summaries: dict[str, SummaryDef] = field(default_factory=dict)
    imported: dict[str, ImportedField] = field(default_factory=dict)
    notes: list[Note] = field(default_factory=list)
    # located refusals that did not stop the parse (a mapped dimension, a construct not
    # supported yet): `check` reports them all, Application.load raises the first
    problems: list[SchemaError] = field(default_factory=list)
    # rank profiles with a problem of their own, with the first: not compiled (the problem says why)
    broken_profiles: dict[str, SchemaError] = field(default_factory=dict)

    def note(self, loc: Location, setting: str, reason: str) -> None:
        self.notes.append(Note(loc, setting, reason))

    def refuse(self, error: SchemaError, profile: str | None = None) -> None:
        self.problems.append(error)
        if profile is not None:
            self.broken_profiles.setdefault(profile, error)
