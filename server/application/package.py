"""Application packages: `schemas/*.sd`, `models/**/*.onnx`, optional constant files.

`Application.load` parses and validates everything, imports every referenced model and
compiles every rank profile, so a broken package fails at deploy and never at query time.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy.typing as npt
import onnx

from server.application.errors import SchemaError
from server.application.sd_parser import ConstantRef, SchemaDef, parse_schema
from tensor_ir.expr.ast import Expr
from tensor_ir.expr.errors import Location, RankingError
from tensor_ir.expr.profile import CompiledProfile, ProfileDef, compile_profile, vespa_identifier
from tensor_ir.expr.tensor_json import TensorValueError, tensor_from_json
from tensor_ir.expr.types import TensorType
from tensor_ir.onnx_import import ModelImportError, load_model

log = logging.getLogger(__name__)


def safe_path(root: Path, ref: str, what: str, loc: Location | None) -> Path:
    """A path inside the package: no absolute paths, no '..', no symlinks leading out."""
    if os.path.isabs(ref) or ref.startswith("~"):
        raise SchemaError(f"{what} '{ref}' must be a path inside the application package, not absolute", loc)
    if ".." in Path(ref).parts:
        raise SchemaError(f"{what} '{ref}' may not leave the application package ('..')", loc)
    target = (root / ref).resolve()
    if not target.is_relative_to(root.resolve()):
        raise SchemaError(f"{what} '{ref}' resolves outside the application package (symbolic link?)", loc)
    return target


@dataclass
class Schema:
    definition: SchemaDef
    profiles: dict[str, CompiledProfile] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.definition.name


class Application:
    def __init__(self, path: Path, schemas: dict[str, Schema]) -> None:
        self.path = path
        self.schemas = schemas

    @staticmethod
    def load(path: str | os.PathLike[str]) -> Application:
        return _Loader(Path(path)).load()

    def profile(self, schema: str, profile: str) -> CompiledProfile:
        s = self.schemas.get(schema)
        if s is None:
            raise SchemaError(f"unknown schema '{schema}' (schemas: {', '.join(sorted(self.schemas))})")
        p = s.profiles.get(profile)
        if p is None:
            raise SchemaError(f"schema '{schema}' has no rank profile '{profile}' "
                              f"(profiles: {', '.join(sorted(s.profiles)) or 'none'})")
        return p


class _Loader:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.models: dict[Path, tuple[str, onnx.ModelProto]] = {}

    def load(self) -> Application:
        if not self.root.is_dir():
            raise SchemaError(f"application package '{self.root}' is not a directory")
        sd_dir = self.root / "schemas"
        files = sorted(sd_dir.glob("*.sd")) if sd_dir.is_dir() else []
        if not files:
            raise SchemaError(f"application package '{self.root}' has no schemas/*.sd files")
        schemas: dict[str, Schema] = {}
        for f in files:
            rel = str(f.relative_to(self.root))
            try:
                text = f.read_text(encoding="utf-8")
            except UnicodeDecodeError as e:
                raise SchemaError(f"{rel} is not UTF-8 text: {e}") from None
            sd = parse_schema(text, rel)
            if f.stem != sd.name:
                raise SchemaError(f"schema '{sd.name}' must be in a file named {sd.name}.sd", sd.loc)
            if sd.name in schemas:
                raise SchemaError(f"schema '{sd.name}' is defined twice", sd.loc)
            schemas[sd.name] = Schema(sd)
        for schema in schemas.values():
            self._compile(schema)
        return Application(self.root, schemas)

    def _constant(self, ref: ConstantRef) -> tuple[TensorType, npt.NDArray[Any]]:
        path = safe_path(self.root, ref.file, f"constant '{ref.name}' file", ref.loc)
        if not path.is_file():
            raise SchemaError(f"constant '{ref.name}': file '{ref.file}' not found", ref.loc)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise SchemaError(f"constant '{ref.name}': {ref.file} is not valid JSON: {e}", ref.loc) from None
        try:
            value = tensor_from_json(data, ref.type)
        except TensorValueError as e:
            raise SchemaError(f"constant '{ref.name}' in {ref.file}: {e}", ref.loc) from None
        return ref.type, value

    def _load_model(self, ref: str, loc: Location) -> tuple[str, onnx.ModelProto]:
        names = [ref] if ref.endswith(".onnx") else [ref, f"{ref}.onnx"]  # onnx(name) finds name.onnx
        candidates = [n for name in names for n in ([name] if "/" in name else [f"models/{name}", name])]
        for c in candidates:
            path = safe_path(self.root, c, "model file", loc)
            if path.is_file():
                break
        else:
            found = self._model_by_vespa_name(ref, loc)
            if found is None:
                raise SchemaError(f"model file '{ref}' not found in the package (looked in "
                                  f"{', '.join(candidates)})", loc)
            path = found
        if path not in self.models:
            label = str(path.relative_to(self.root.resolve()))
            try:
                self.models[path] = (label, load_model(path))
            except ModelImportError as e:
                raise SchemaError(str(e), loc) from None
        return self.models[path]

    def _model_by_vespa_name(self, ref: str, loc: Location) -> Path | None:
        """Vespa names models/sub/my-model.onnx `sub_my_model`: the path under models/,
        without .onnx, made an identifier."""
        models = self.root / "models"
        if "/" in ref or not models.is_dir():
            return None
        for f in sorted(models.rglob("*.onnx")):
            rel = f.relative_to(models).with_suffix("").as_posix()
            if vespa_identifier(rel) == ref:
                return safe_path(self.root, f.relative_to(self.root).as_posix(), "model file", loc)
        return None

    def _merged(self, sd: SchemaDef, name: str, seen: tuple[str, ...] = ()) -> ProfileDef:
        p = sd.profiles[name]
        if name in seen:
            raise SchemaError(f"rank profile inheritance cycle: {' -> '.join((*seen, name))}", p.loc)
        merged = ProfileDef(name, p.loc)
        # with several parents, a later one adds to and overrides what earlier ones give
        for parent in p.inherits:
            if parent == "default" and parent not in sd.profiles:
                continue
            base = self._merged(sd, parent, (*seen, name))
            merged.functions.update(base.functions)
            merged.inputs.update(base.inputs)
            merged.constants.update(base.constants)
            merged.onnx_models.update(base.onnx_models)
            if base.first_phase is not None:
                merged.first_phase = base.first_phase
            if base.second_phase is not None:
                merged.second_phase = base.second_phase
                merged.rerank_count = base.rerank_count
            merged.match_features = _union(merged.match_features, base.match_features)
            merged.summary_features = _union(merged.summary_features, base.summary_features)
        merged.functions.update(p.functions)
        merged.inputs.update(p.inputs)
        merged.constants.update(p.constants)
        merged.onnx_models.update(p.onnx_models)
        for ref in sd.profile_constant_files.get(name, {}).values():
            merged.constants[ref.name] = self._constant(ref)
        if p.first_phase is not None:
            merged.first_phase = p.first_phase
        if p.second_phase is not None:
            merged.second_phase = p.second_phase
            merged.rerank_count = p.rerank_count
        merged.match_features = _union(merged.match_features, p.match_features)
        merged.summary_features = _union(merged.summary_features, p.summary_features)
        return replace(merged)

    def _compile(self, schema: Schema) -> None:
        sd = schema.definition
        constants = {name: self._constant(ref) for name, ref in sd.constant_files.items()}
        for name in sd.profiles:
            merged = self._merged(sd, name)
            if merged.first_phase is None:
                log.info("rank profile %s.%s has no first-phase: only for inheritance", sd.name, name)
                continue
            try:
                schema.profiles[name] = compile_profile(
                    merged, sd.fields, self._load_model, constants, sd.onnx_models
                )
            except SchemaError:
                raise
            except RankingError as e:
                raise SchemaError(f"rank profile '{name}': {e.message}", e.location) from None


def _union(first: list[tuple[str, Expr]], more: list[tuple[str, Expr]]) -> list[tuple[str, Expr]]:
    """Features of a profile and its parents: each once, in order of appearance."""
    seen = {text for text, _ in first}
    return [*first, *((t, e) for t, e in more if t not in seen)]
