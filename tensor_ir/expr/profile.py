"""Rank profiles compiled to tensor programs.

A profile's first phase, second phase and match features each become one Program over
the schema's attribute fields and the profile's query inputs, with every ONNX model
graph inlined at the place the expression calls it. Model inputs are bound as Vespa
binds them: by the onnx-model block's mapping, else by the profile function named like
the input.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import ValueInfoProto

from tensor_ir import build
from tensor_ir.dtypes import CellType
from tensor_ir.expr.ast import Call, Expr
from tensor_ir.expr.compiler import Compiler, as_double
from tensor_ir.expr.errors import Location, RankingError
from tensor_ir.expr.features import load_features
from tensor_ir.expr.parser import parse_expression
from tensor_ir.expr.types import TensorType
from tensor_ir.expr.values import TValue
from tensor_ir.ir import Node, Role
from tensor_ir.onnx_import import ImportedModel, InputBinding, ModelImportError, import_model
from tensor_ir.onnx_import.bindings import is_static
from tensor_ir.passes import eliminate_common_subexpressions
from tensor_ir.program import Program
from tensor_ir.verify import verify

FIRST_PHASE = "first_phase"
SECOND_PHASE = "second_phase"
FIRST_PHASE_FEATURE = "firstPhase"  # Vespa's rank feature: the first-phase score, usable in later phases

# Profile functions calling each other deeper than this are refused (a located error
# instead of Python's stack running out): no real profile comes close.
MAX_FUNCTION_DEPTH = 40


def vespa_identifier(name: str) -> str:
    """Vespa's way of making an ONNX name usable in expressions."""
    return re.sub(r"[^A-Za-z0-9_$@]", "_", name)


@dataclass(frozen=True)
class FunctionDef:
    name: str
    params: tuple[str, ...]
    body: Expr
    loc: Location


@dataclass(frozen=True)
class OnnxModelDef:
    name: str
    file: str
    inputs: dict[str, tuple[str, Location]]  # ONNX input name -> source expression text
    outputs: dict[str, str]  # ONNX output name -> alias
    loc: Location


@dataclass(frozen=True)
class QueryInput:
    name: str
    type: TensorType
    default: npt.NDArray[Any] | None
    loc: Location


@dataclass(frozen=True)
class FieldDef:
    name: str
    type: TensorType | None  # None: a string field (summary only)
    attribute: bool
    loc: Location


@dataclass
class ProfileDef:
    name: str
    loc: Location
    inherits: list[str] = field(default_factory=list)
    functions: dict[str, FunctionDef] = field(default_factory=dict)
    inputs: dict[str, QueryInput] = field(default_factory=dict)
    constants: dict[str, tuple[TensorType, npt.NDArray[Any]]] = field(default_factory=dict)
    first_phase: Expr | None = None
    second_phase: Expr | None = None
    rerank_count: int = 100
    match_features: list[tuple[str, Expr]] = field(default_factory=list)
    summary_features: list[tuple[str, Expr]] = field(default_factory=list)
    onnx_models: dict[str, OnnxModelDef] = field(default_factory=dict)


# Finds a model by onnx-model name or file reference; returns (label, proto).
ModelLoader = Callable[[str, Location], tuple[str, onnx.ModelProto]]


@dataclass
class Feature:
    name: str
    type: TensorType
    program_output: str


@dataclass
class CompiledProfile:
    name: str
    first_phase: Program
    second_phase: Program | None
    rerank_count: int
    features: Program | None
    match_features: list[Feature]
    summary_features: list[Feature]
    query_inputs: dict[str, QueryInput]
    attributes: dict[str, TensorType]
    models: list[str]

    def program_size(self) -> int:
        return sum(p.size() for p in (self.first_phase, self.second_phase, self.features) if p is not None)


class _ProfileContext:
    def __init__(
        self,
        profile: ProfileDef,
        fields: dict[str, FieldDef],
        schema_constants: dict[str, tuple[TensorType, npt.NDArray[Any]]],
        schema_models: dict[str, OnnxModelDef],
        load_model: ModelLoader,
    ) -> None:
        self.profile = profile
        self.fields = fields
        self.constants = {**schema_constants, **profile.constants}
        self.models = {**schema_models, **profile.onnx_models}
        self.load_model = load_model
        self.stack: list[str] = []
        self.memo: dict[str, TValue] = {}
        self.attributes_used: dict[str, TensorType] = {}
        self.queries_used: dict[str, QueryInput] = {}
        self.models_used: list[str] = []
        self._imported: dict[tuple[str, str], tuple[ImportedModel, OnnxModelDef | None]] = {}

    # ------------------------------------------------------------ references

    def attribute(self, name: str, loc: Location) -> TValue:
        f = self.fields.get(name)
        if f is None:
            raise RankingError(f"attribute({name}): the schema has no field '{name}'", loc)
        if not f.attribute or f.type is None:
            raise RankingError(f"attribute({name}): field '{name}' is not a numeric or tensor attribute "
                               "(indexing: attribute)", loc)
        self.attributes_used[name] = f.type
        node = build.input_(f"attribute({name})", Role.ATTRIBUTE, f.type.shape, f.type.cell)
        # Vespa reads numeric attributes as double in ranking
        return as_double(TValue(node, f.type))

    def query(self, name: str, loc: Location) -> TValue:
        q = self.profile.inputs.get(name)
        if q is None:
            # Vespa lets an undeclared query feature be a number, 0 unless the query sets it
            q = QueryInput(name, TensorType(CellType.FLOAT64, ()), np.zeros((), np.float64), loc)
        self.queries_used[name] = q
        node = build.input_(f"query({name})", Role.QUERY, q.type.shape, q.type.cell)
        return as_double(TValue(node, q.type))

    def constant(self, name: str, loc: Location) -> TValue:
        c = self.constants.get(name)
        if c is None:
            known = ", ".join(sorted(self.constants)) or "none"
            raise RankingError(f"constant({name}) is not defined (constants: {known})", loc)
        t, value = c
        return as_double(TValue(build.constant(value.reshape(t.shape), t.cell), t))

    def has_function(self, name: str) -> bool:
        if name == FIRST_PHASE_FEATURE:
            return self.profile.first_phase is not None
        return name in self.profile.functions

    def function(self, name: str, args: list[TValue], loc: Location, compiler: Compiler) -> TValue:
        fn = self.profile.functions.get(name)
        if fn is None:
            # firstPhase, unless a profile function takes the name
            assert name == FIRST_PHASE_FEATURE and self.profile.first_phase is not None
            fn = FunctionDef(name, (), self.profile.first_phase, self.profile.first_phase.loc)
        if len(args) != len(fn.params):
            want = f"{len(fn.params)} argument{'s' if len(fn.params) != 1 else ''}"
            params = f" ({', '.join(fn.params)})" if fn.params else ""
            raise RankingError(f"function '{name}' takes {want}{params}, got {len(args)}", loc)
        if name in self.stack:
            cycle = " -> ".join([*self.stack[self.stack.index(name):], name])
            raise RankingError(f"function '{name}' calls itself: {cycle}", loc)
        if len(self.stack) >= MAX_FUNCTION_DEPTH:
            raise RankingError(f"functions call each other more than {MAX_FUNCTION_DEPTH} deep: "
                               f"{' -> '.join(self.stack[:3])} -> ... -> {name}", loc)
        if not args and name in self.memo:
            return self.memo[name]
        self.stack.append(name)
        try:
            # a function body sees only its own parameters, not the caller's lambda variables
            value = Compiler(compiler.context, dict(zip(fn.params, args, strict=True))).compile(fn.body)
        finally:
            self.stack.pop()
        if not args:
            self.memo[name] = value
        return value

    def feature(self, call: Call, compiler: Compiler) -> TValue | None:
        fn = load_features().get(call.name)
        return None if fn is None else fn(self, compiler, call)

    # ------------------------------------------------------------ ONNX models

    def onnx(self, model: str, output: str | None, loc: Location, compiler: Compiler) -> TValue:
        imported, block = self._import(model, loc, compiler)
        outputs = imported.program.outputs
        aliases: dict[str, str] = {}
        for onnx_name in outputs:
            aliases[onnx_name] = onnx_name
            aliases[vespa_identifier(onnx_name)] = onnx_name
        if block is not None:
            for onnx_name, alias in block.outputs.items():
                aliases[alias] = onnx_name
        if output is None:
            if len(outputs) != 1:
                names = ", ".join(sorted({vespa_identifier(o) for o in outputs}))
                raise RankingError(f"onnx({model}) has several outputs; name one of: {names}", loc)
            chosen = next(iter(outputs))
        else:
            if output not in aliases:
                names = ", ".join(sorted({vespa_identifier(o) for o in outputs}))
                raise RankingError(f"onnx({model}) has no output '{output}' (outputs: {names})", loc)
            chosen = aliases[output]
        return _output_value(outputs[chosen])

    def _import(self, model: str, loc: Location, compiler: Compiler) -> tuple[ImportedModel, OnnxModelDef | None]:
        block = self.models.get(model)
        ref = block.file if block is not None else model
        label, proto = self.load_model(ref, block.loc if block is not None else loc)
        key = (label, block.name if block is not None else "")
        if key in self._imported:
            return self._imported[key]
        inits = {t.name for t in proto.graph.initializer}
        if block is not None:
            _check_block(block, proto, inits, label)
        bindings: dict[str, InputBinding] = {}
        for vi in proto.graph.input:
            # an initializer listed as an input has a default value: bound only when a block maps it
            if vi.name in inits and (block is None or vi.name not in block.inputs):
                continue
            bindings[vi.name] = InputBinding(node=self._bind_input(vi, block, label, loc, compiler))
        try:
            imported = import_model(proto, bindings, name=label)
        except ModelImportError as e:
            raise RankingError(str(e), loc) from None
        self.models_used.append(label)
        self._imported[key] = (imported, block)
        return imported, block

    def _bind_input(self, vi: ValueInfoProto, block: OnnxModelDef | None, label: str, loc: Location,
                    compiler: Compiler) -> Node:
        dims = _onnx_dims(vi)
        needed = _onnx_type_string(vi, dims)
        source_text: str | None = None
        if block is not None and vi.name in block.inputs:
            source_text, src_loc = block.inputs[vi.name]
            expr = parse_expression(source_text, src_loc.file, src_loc.line, src_loc.column)
            value = Compiler(compiler.context).compile(expr)
            # a mistyped source is the block's mistake: point at it
            return _to_model_input(value, vi, dims, needed, source_text, label, src_loc)
        else:
            fname = vespa_identifier(vi.name)
            if not self.has_function(fname):
                raise RankingError(
                    f"Model refers input '{vi.name}' of type {needed} but this function is not present in "
                    f"rank profile '{self.profile.name}'" + (f" (define function {fname}())" if fname != vi.name
                                                               else ""),
                    loc,
                )
            source_text = f"function {fname}"
            value = self.function(fname, [], loc, compiler)
        return _to_model_input(value, vi, dims, needed, source_text, label, loc)


def _check_block(block: OnnxModelDef, proto: onnx.ModelProto, inits: set[str], label: str) -> None:
    """An onnx-model block may only name inputs and outputs the model has."""
    inputs = [vi.name for vi in proto.graph.input if vi.name not in inits]
    for name, (_, src_loc) in block.inputs.items():
        if name not in inputs and name not in inits:
            raise RankingError(f"onnx-model '{block.name}' maps input '{name}', which {label} does not have "
                               f"(inputs: {', '.join(inputs) or 'none'})", src_loc)
    outputs = [o.name for o in proto.graph.output]
    for name in block.outputs:
        if name not in outputs:
            raise RankingError(f"onnx-model '{block.name}' names output '{name}', which {label} does not have "
                               f"(outputs: {', '.join(outputs)})", block.loc)


def _onnx_dims(vi: ValueInfoProto) -> list[int | str | None]:
    out: list[int | str | None] = []
    for d in vi.type.tensor_type.shape.dim:
        if d.HasField("dim_value") and d.dim_value >= 0:
            out.append(int(d.dim_value))
        elif d.dim_param:
            out.append(d.dim_param)
        else:
            out.append(None)
    return out


def _onnx_type_string(vi: ValueInfoProto, dims: list[int | str | None]) -> str:
    try:
        cell = CellType.from_onnx(vi.type.tensor_type.elem_type)
        cname = cell.vespa_name or cell.np_name
    except ValueError:
        cname = "?"
    body = ",".join(f"d{i}[{d if is_static(d) else ''}]" for i, d in enumerate(dims))
    return f"tensor<{cname}>({body})"


def _to_model_input(value: TValue, vi: ValueInfoProto, dims: list[int | str | None], needed: str,
                    source: str, label: str, loc: Location) -> Node:
    rank = len(dims)
    names = set(value.type.names)
    full = {f"d{i}" for i in range(rank)}
    batchless = {f"d{i}" for i in range(1, rank)}
    batch_ok = rank > 0 and (not is_static(dims[0]) or dims[0] == 1)
    if names != full and not (batch_ok and names == batchless):
        raise RankingError(
            f"model {label} input '{vi.name}' needs {needed} (dimensions d0..d{rank - 1}"
            f"{', d0 may be left out' if batch_ok else ''}), but {source} gives {value.type}",
            loc,
        )
    order = sorted(range(value.type.rank), key=lambda i: int(value.type.names[i][1:]))
    node = build.transpose(value.node, order)
    try:
        want = CellType.from_onnx(vi.type.tensor_type.elem_type)
    except ValueError as e:
        raise RankingError(f"model {label} input '{vi.name}': {e}", loc) from None
    if want.is_int and node.dtype.is_float:
        # token ids fed as float tensors, as Vespa users do: round, do not truncate 2.9999 to 2
        node = build.map_("round", node)
    return build.cast(node, want)


def _output_value(node: Node) -> TValue:
    names = [f"d{i}" for i in range(node.rank)]
    order = sorted(range(node.rank), key=lambda i: names[i])
    node = build.transpose(node, order)
    if node.dtype.vespa_name is None:
        node = build.cast(node, CellType.FLOAT32)
    dims = tuple((names[i], node.shape[k]) for k, i in enumerate(order))
    return as_double(TValue(node, TensorType(node.dtype, dims)))


def _program(outputs: dict[str, Node], ctx: _ProfileContext) -> Program:
    # the inputs are the input nodes the outputs reach, each with its own role and type
    prog = eliminate_common_subexpressions(Program(outputs))
    verify(prog)
    return prog


def compile_profile(
    profile: ProfileDef,
    fields: dict[str, FieldDef],
    load_model: ModelLoader,
    schema_constants: dict[str, tuple[TensorType, npt.NDArray[Any]]] | None = None,
    schema_models: dict[str, OnnxModelDef] | None = None,
) -> CompiledProfile:
    """Compile every phase and feature of a profile; RankingError names what is wrong and where."""
    try:
        return _compile_profile(profile, fields, load_model, schema_constants or {}, schema_models or {})
    except RecursionError:
        # the parser and the function-depth limit keep real profiles far from this; a
        # located error is still better than a crash for whatever slips past them
        raise RankingError(f"rank profile '{profile.name}' nests expressions too deeply to compile",
                           profile.loc) from None


def _compile_profile(
    profile: ProfileDef,
    fields: dict[str, FieldDef],
    load_model: ModelLoader,
    schema_constants: dict[str, tuple[TensorType, npt.NDArray[Any]]],
    schema_models: dict[str, OnnxModelDef],
) -> CompiledProfile:
    ctx = _ProfileContext(profile, fields, schema_constants, schema_models, load_model)
    compiler = Compiler(ctx)
    if profile.first_phase is None:
        raise RankingError(f"rank profile '{profile.name}' has no first-phase expression", profile.loc)
    first = compiler.compile(profile.first_phase)
    _need_number(first, "first-phase", profile.first_phase.loc)
    first_prog = _program({FIRST_PHASE: build.cast(first.node, CellType.FLOAT64)}, ctx)
    second_prog = None
    if profile.second_phase is not None:
        second = compiler.compile(profile.second_phase)
        _need_number(second, "second-phase", profile.second_phase.loc)
        second_prog = _program({SECOND_PHASE: build.cast(second.node, CellType.FLOAT64)}, ctx)
    match: list[Feature] = []
    summary: list[Feature] = []
    outs: dict[str, Node] = {}
    for kind, items, dest in (("mf", profile.match_features, match), ("sf", profile.summary_features, summary)):
        for text, expr in items:
            v = compiler.compile(expr)
            key = f"{kind}:{text}"
            outs[key] = v.node
            dest.append(Feature(text, v.type, key))
    features_prog = _program(outs, ctx) if outs else None
    used_attributes, used_queries = dict(ctx.attributes_used), dict(ctx.queries_used)
    # a function no phase uses must still be valid, as Vespa checks it at deploy; one with
    # parameters can only be checked where it is called
    for fn in profile.functions.values():
        if not fn.params and fn.name not in ctx.memo:
            ctx.function(fn.name, [], fn.loc, compiler)
    declared = {name: q for name, q in profile.inputs.items() if name not in used_queries}
    return CompiledProfile(
        name=profile.name,
        first_phase=first_prog,
        second_phase=second_prog,
        rerank_count=profile.rerank_count,
        features=features_prog,
        match_features=match,
        summary_features=summary,
        query_inputs={**used_queries, **declared},
        attributes=used_attributes,
        models=list(dict.fromkeys(ctx.models_used)),
    )


def _need_number(v: TValue, phase: str, loc: Location) -> None:
    if not v.is_scalar:
        raise RankingError(
            f"the {phase} expression must produce one number per document, but produces {v.type}; "
            f"reduce it, e.g. sum(...)",
            loc,
        )
