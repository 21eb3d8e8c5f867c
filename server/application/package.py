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
from server.application.inheritance import resolve_inheritance
from server.application.schema_defs import Note
from server.application.sd_parser import ConstantRef, SchemaDef, parse_profile_file, parse_schema
from tensor_ir.expr.ast import Expr
from tensor_ir.expr.errors import Location, RankingError
from tensor_ir.expr.mapped_json import mapped_from_json
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
        # every located problem of the package (check reports them all; load raises the first)
        self.problems: list[SchemaError] = []

    @property
    def notes(self) -> list[Note]:
        """Settings accepted without effect, each with its location and reason."""
        notes = [n for s in self.schemas.values() for n in s.definition.notes]
        return sorted(notes, key=lambda n: (n.loc.file, n.loc.line, n.loc.column))

    @staticmethod
    def load(path: str | os.PathLike[str]) -> Application:
        """The package, every profile compiled; raises the first problem (for serving)."""
        app = _Loader(Path(path)).load()
        if app.problems:
            raise app.problems[0]
        return app

    @staticmethod
    def check(path: str | os.PathLike[str]) -> Application:
        """The package with every problem found in `problems`: each schema file and each rank
        profile is checked on its own, so one problem does not hide the others. Raises only
        where the package itself cannot be read (no directory, no schemas)."""
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
        self.problems: list[SchemaError] = []

    def load(self) -> Application:
        if not self.root.is_dir():
            raise SchemaError(f"application package '{self.root}' is not a directory")
        sd_dir = self.root / "schemas"
        files = sorted(sd_dir.glob("*.sd")) if sd_dir.is_dir() else []
        if not files:
            raise SchemaError(f"application package '{self.root}' has no schemas/*.sd files")
        definitions: dict[str, SchemaDef] = {}
        for f in files:
            found: list[SchemaError] = []
            try:
                sd = self._parse(f, found)
            except SchemaError as e:
                self.problems += found or [e]
                continue
            if sd.name in definitions:
                self.problems.append(SchemaError(f"schema '{sd.name}' is defined twice", sd.loc))
                continue
            definitions[sd.name] = sd
        try:
            resolve_inheritance(definitions)
        except SchemaError as e:
            self.problems.append(e)
            definitions = {}
        schemas = {name: Schema(sd) for name, sd in definitions.items()}
        for schema in schemas.values():
            self.problems += schema.definition.problems
            self._check_inherits(schema.definition)
            self._compile(schema)
        app = Application(self.root, schemas)
        app.problems = self.problems
        return app

    def _parse(self, f: Path, found: list[SchemaError]) -> SchemaDef:
        rel = str(f.relative_to(self.root))
        sd = parse_schema(_read(f, rel), rel, found)
        if f.stem != sd.name:
            raise SchemaError(f"schema '{sd.name}' must be in a file named {sd.name}.sd", sd.loc)
        # rank profiles may also live in schemas/<schema>/*.profile, one file each
        for pf in sorted((f.parent / sd.name).glob("*.profile")):
            prel = str(pf.relative_to(self.root))
            try:
                parse_profile_file(_read(pf, prel), prel, sd)
            except SchemaError as e:
                sd.problems.append(e)
        return sd

    def _check_inherits(self, sd: SchemaDef) -> None:
        for p in sd.profiles.values():
            for parent in p.inherits:
                if parent not in sd.profiles and parent != "default":
                    problem = SchemaError(f"rank profile '{p.name}' inherits unknown profile '{parent}'", p.loc)
                    self.problems.append(problem)
                    sd.broken_profiles.setdefault(p.name, problem)

    def _constant(self, ref: ConstantRef) -> tuple[TensorType, Any]:
        path = safe_path(self.root, ref.file, f"constant '{ref.name}' file", ref.loc)
        if not path.is_file():
            raise SchemaError(f"constant '{ref.name}': file '{ref.file}' not found", ref.loc)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise SchemaError(f"constant '{ref.name}': {ref.file} is not valid JSON: {e}", ref.loc) from None
        try:
            value = mapped_from_json(data, ref.type) if ref.type.is_mapped else tensor_from_json(data, ref.type)
        except TensorValueError as e:
            raise SchemaError(f"constant '{ref.name}' in {ref.file}: {e}", ref.loc) from None
        return ref.type, value

    def _load_model(self, ref: str, loc: Location) -> tuple[str, onnx.ModelProto]:
        path = self._model_path(ref, ".onnx", loc)  # onnx(name) finds name.onnx
        if path not in self.models:
            label = str(path.relative_to(self.root.resolve()))
            try:
                self.models[path] = (label, load_model(path))
            except ModelImportError as e:
                raise SchemaError(str(e), loc) from None
        return self.models[path]

    def _read_model_file(self, ref: str, loc: Location) -> tuple[str, bytes]:
        """A model file other than ONNX (xgboost("f.json"), lightgbm(name))."""
        path = self._model_path(ref, ".json", loc)
        return str(path.relative_to(self.root.resolve())), path.read_bytes()

    def _model_path(self, ref: str, suffix: str, loc: Location) -> Path:
        """models/REF, then REF, each also with `suffix` added where missing; else the file
        whose path under models/, without the suffix, Vespa's identifier makes REF."""
        names = [ref] if ref.endswith(suffix) else [ref, f"{ref}{suffix}"]
        candidates = [n for name in names for n in ([name] if "/" in name else [f"models/{name}", name])]
        for c in candidates:
            path = safe_path(self.root, c, "model file", loc)
            if path.is_file():
                return path
        models = self.root / "models"
        if "/" not in ref and models.is_dir():
            # Vespa names models/sub/my-model.onnx `sub_my_model`
            for f in sorted(models.rglob(f"*{suffix}")):
                if vespa_identifier(f.relative_to(models).with_suffix("").as_posix()) == ref:
                    return safe_path(self.root, f.relative_to(self.root).as_posix(), "model file", loc)
        raise SchemaError(f"model file '{ref}' not found in the package (looked in {', '.join(candidates)})", loc)

    def _merged(self, sd: SchemaDef, name: str, seen: tuple[str, ...] = ()) -> ProfileDef:
        p = sd.profiles[name]
        if name in seen:
            raise SchemaError(f"rank profile inheritance cycle: {' -> '.join((*seen, name))}", p.loc)
        merged = ProfileDef(name, p.loc)
        # with several parents, a later one adds to and overrides what earlier ones give
        for parent in p.inherits:
            if parent == "default" and (parent not in sd.profiles or name == "default"):
                continue  # Vespa's built-in default profile, which adds nothing here
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
            if base.global_phase is not None:
                merged.global_phase = base.global_phase
                merged.global_rerank_count = base.global_rerank_count
            merged.rank_properties.update(base.rank_properties)
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
        if p.global_phase is not None:
            merged.global_phase = p.global_phase
            merged.global_rerank_count = p.global_rerank_count
        merged.rank_properties.update(p.rank_properties)
        merged.match_features = _union(merged.match_features, p.match_features)
        merged.summary_features = _union(merged.summary_features, p.summary_features)
        return replace(merged)

    def _compile(self, schema: Schema) -> None:
        sd = schema.definition
        constants: dict[str, tuple[TensorType, npt.NDArray[Any]]] = {}
        for name, ref in sd.constant_files.items():
            try:
                constants[name] = self._constant(ref)
            except SchemaError as e:
                self.problems.append(e)
        for name in sd.profiles:
            broken = self._broken_ancestor(sd, name)
            if broken is not None:
                if broken != name:
                    self.problems.append(SchemaError(
                        f"rank profile '{name}' is not compiled: it inherits rank profile '{broken}', which has "
                        f"a problem: {sd.broken_profiles[broken].message}", sd.profiles[name].loc))
                continue
            try:
                merged = self._merged(sd, name)
                if merged.first_phase is None and merged.second_phase is None and merged.global_phase is None:
                    log.info("rank profile %s.%s has no first-phase: only for inheritance", sd.name, name)
                    continue
                schema.profiles[name] = compile_profile(
                    merged, sd.fields, self._load_model, constants, sd.onnx_models, read_file=self._read_model_file
                )
            except SchemaError as e:
                self.problems.append(e)
            except RankingError as e:
                self.problems.append(SchemaError(f"rank profile '{name}': {e.message}", e.location))

    def _broken_ancestor(self, sd: SchemaDef, name: str, seen: tuple[str, ...] = ()) -> str | None:
        """The profile itself or the first profile it inherits from that has a problem of its own."""
        if name in sd.broken_profiles:
            return name
        p = sd.profiles.get(name)
        if p is None or name in seen:
            return None
        for parent in p.inherits:
            found = self._broken_ancestor(sd, parent, (*seen, name))
            if found is not None:
                return found
        return None


def _read(f: Path, rel: str) -> str:
    try:
        return f.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise SchemaError(f"{rel} is not UTF-8 text: {e}") from None


def _union(first: list[tuple[str, Expr]], more: list[tuple[str, Expr]]) -> list[tuple[str, Expr]]:
    """Features of a profile and its parents: each once, in order of appearance."""
    seen = {text for text, _ in first}
    return [*first, *((t, e) for t, e in more if t not in seen)]
