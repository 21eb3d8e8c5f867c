"""Rank profiles compiled to tensor programs.

A profile's first phase, second phase and match features each become one Program over
the schema's attribute fields and the profile's query inputs, with every ONNX model
graph inlined at the place the expression calls it. Model inputs are bound as Vespa
binds them: by the onnx-model block's mapping, else by the profile function named like
the input.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx

from tensor_ir import build
from tensor_ir.dtypes import CellType
from tensor_ir.expr import sparse as sp
from tensor_ir.expr.ast import Call, Expr
from tensor_ir.expr.compiler import Compiler, as_double
from tensor_ir.expr.errors import Location, RankingError
from tensor_ir.expr.features import load_features
from tensor_ir.expr.features.phase_features import CHECKING, GLOBAL_PHASE
from tensor_ir.expr.onnx_binding import model_output
from tensor_ir.expr.onnx_binding import vespa_identifier as vespa_identifier  # importers use it from here
from tensor_ir.expr.types import TensorType
from tensor_ir.expr.values import TValue
from tensor_ir.ir import Node, Role
from tensor_ir.onnx_import import ImportedModel
from tensor_ir.passes import eliminate_common_subexpressions
from tensor_ir.program import Program
from tensor_ir.verify import verify

FIRST_PHASE = "first_phase"
SECOND_PHASE = "second_phase"
GLOBAL_PHASE_OUTPUT = "global_phase"
FIRST_PHASE_FEATURE = "firstPhase"  # Vespa's rank feature: the first-phase score, usable in later phases

# Profile functions calling each other deeper than this are refused (a located error
# instead of Python's stack running out): no real profile comes close.
MAX_FUNCTION_DEPTH = 40


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
    type: TensorType | None  # None: not a number or tensor (string, array<...>, struct, ...)
    attribute: bool
    loc: Location
    declared: str = ""  # the type as the schema wrote it, where `type` cannot say it ("array<string>")
    distance_metric: str = "euclidean"  # attribute { distance-metric: ... }, read by distance features
    # what the field holds: number, bool, tensor, string, uri, raw, position, predicate, array,
    # weightedset, map, struct, reference, imported ("" where made without a schema: from type)
    kind: str = ""
    indexed: bool = False  # `index` in its indexing: tokenised text (string), an HNSW index (tensor)
    synthetic: bool = False  # declared outside the document block: Vespa derives it, here it is fed
    refusal: str = ""  # why ranking may not read it ("mapped dimension 'x{}'", "imported field ..."), if so
    struct_fields: tuple[tuple[str, str], ...] = ()  # (name, declared type) of a struct (or array of it)


@dataclass
class ProfileDef:
    name: str
    loc: Location
    inherits: list[str] = field(default_factory=list)
    functions: dict[str, FunctionDef] = field(default_factory=dict)
    inputs: dict[str, QueryInput] = field(default_factory=dict)
    # name -> (type, value): an array, or a MappedTensor (tensor_ir.mapped) for a mapped type
    constants: dict[str, tuple[TensorType, Any]] = field(default_factory=dict)
    first_phase: Expr | None = None
    second_phase: Expr | None = None
    rerank_count: int = 100
    match_features: list[tuple[str, Expr]] = field(default_factory=list)
    summary_features: list[tuple[str, Expr]] = field(default_factory=list)
    onnx_models: dict[str, OnnxModelDef] = field(default_factory=dict)
    global_phase: Expr | None = None
    global_rerank_count: int = 100  # Vespa's default when global-phase sets no rerank-count
    # rank-properties { name: value }: read by features (freshness(f).maxAge, random.seed, ...)
    rank_properties: dict[str, str] = field(default_factory=dict)


# Finds a model by onnx-model name or file reference; returns (label, proto).
ModelLoader = Callable[[str, Location], tuple[str, onnx.ModelProto]]
# Finds any other model file (xgboost(), lightgbm()) by reference; returns (label, bytes).
FileReader = Callable[[str, Location], tuple[str, bytes]]


@dataclass
class Feature:
    name: str
    type: TensorType
    program_output: str
    sparse: sp.SparseOutputs | None = None  # a feature with mapped dimensions: its labels and mask


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
    # program input name -> NearestNeighborInput (tensor_ir.expr.features.nearest_neighbor)
    nearest_neighbor: dict[str, Any] = field(default_factory=dict)
    # per-document inputs the ranker makes (random): name -> features.per_query.MadeInput
    generated: dict[str, Any] = field(default_factory=dict)
    global_phase: Program | None = None  # output GLOBAL_PHASE, over the best global_rerank_count hits
    global_rerank_count: int = 100
    normalizer_inputs: Program | None = None  # what the global phase's cross-hit normalizers normalize
    normalizers: list[Any] = field(default_factory=list)  # features.phase_features.Normalizer
    # program input name ("attribute(f)", "query(q)") of each mapped value -> (its type, the slots
    # it was compiled for); the ranker binds NAME, NAME#label:DIM and NAME#mask (tensor_ir.expr.sparse)
    mapped_inputs: dict[str, tuple[TensorType, int]] = field(default_factory=dict)
    # the same profile compiled for other capacities (set where it has mapped inputs)
    recompile: Callable[[Mapping[str, int]], CompiledProfile] | None = None

    def program_size(self) -> int:
        programs = (self.first_phase, self.second_phase, self.features, self.global_phase, self.normalizer_inputs)
        return sum(p.size() for p in programs if p is not None)


class _ProfileContext:
    def __init__(
        self,
        profile: ProfileDef,
        fields: dict[str, FieldDef],
        schema_constants: dict[str, tuple[TensorType, Any]],
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
        self.imported: dict[tuple[str, str], tuple[ImportedModel, OnnxModelDef | None]] = {}  # by onnx_binding
        self.nearest_neighbor: dict[str, Any] = {}  # filled by the nearest-neighbour features
        self.phase = ""  # what is being compiled (first, second, global, features, check): features ask
        self.generated: dict[str, Any] = {}  # per-document inputs the ranker makes (random)
        self.normalizers: list[tuple[Any, Node]] = []  # the global phase's, with the values they normalize
        self.read_file: FileReader | None = None  # model files other than ONNX, for features
        self.capacities: Mapping[str, int] = {}  # slots per mapped input (compile_profile)
        self.mapped_inputs: dict[str, tuple[TensorType, int]] = {}

    def _mapped_leaf(self, name: str, role: Role, t: TensorType) -> TValue:
        cap = max(1, int(self.capacities.get(name, 1)))
        self.mapped_inputs[name] = (t, cap)
        return sp.leaf(name, role, t, cap)

    # ------------------------------------------------------------ references

    def attribute(self, name: str, loc: Location) -> TValue:
        f = self.fields.get(name)
        if f is None:
            raise RankingError(f"attribute({name}): the schema has no field '{name}'", loc)
        if f.refusal:
            raise RankingError(f"attribute({name}): {f.refusal}", loc)
        if not f.attribute or f.type is None:
            kind = f" (it is {f.declared})" if f.type is None and f.declared else ""
            raise RankingError(f"attribute({name}): field '{name}' is not a numeric or tensor attribute{kind} "
                               "(indexing: attribute)", loc)
        self.attributes_used[name] = f.type
        if f.type.is_mapped:
            return self._mapped_leaf(f"attribute({name})", Role.ATTRIBUTE, f.type)
        node = build.input_(f"attribute({name})", Role.ATTRIBUTE, f.type.shape, f.type.cell)
        # Vespa reads numeric attributes as double in ranking
        return as_double(TValue(node, f.type))

    def query(self, name: str, loc: Location) -> TValue:
        q = self.profile.inputs.get(name)
        if q is None:
            # Vespa lets an undeclared query feature be a number, 0 unless the query sets it
            q = QueryInput(name, TensorType(CellType.FLOAT64, ()), np.zeros((), np.float64), loc)
        self.queries_used[name] = q
        if q.type.is_mapped:
            return self._mapped_leaf(f"query({name})", Role.QUERY, q.type)
        node = build.input_(f"query({name})", Role.QUERY, q.type.shape, q.type.cell)
        return as_double(TValue(node, q.type))

    def constant(self, name: str, loc: Location) -> TValue:
        c = self.constants.get(name)
        if c is None:
            known = ", ".join(sorted(self.constants)) or "none"
            raise RankingError(f"constant({name}) is not defined (constants: {known})", loc)
        t, value = c
        if t.is_mapped:
            return sp.constant(value)
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
        return model_output(self, model, output, loc, compiler)


def _program(outputs: dict[str, Node], ctx: _ProfileContext) -> Program:
    # the inputs are the input nodes the outputs reach, each with its own role and type
    prog = eliminate_common_subexpressions(Program(outputs))
    verify(prog)
    return prog


def compile_profile(
    profile: ProfileDef,
    fields: dict[str, FieldDef],
    load_model: ModelLoader,
    schema_constants: dict[str, tuple[TensorType, Any]] | None = None,
    schema_models: dict[str, OnnxModelDef] | None = None,
    read_file: FileReader | None = None,
    capacities: Mapping[str, int] | None = None,
) -> CompiledProfile:
    """Compile every phase and feature of a profile; RankingError names what is wrong and where.
    `capacities` gives the slots of each mapped input by program input name (1 where not given:
    a deploy-time check compiles with those)."""
    try:
        compiled = _compile_profile(profile, fields, load_model, schema_constants or {}, schema_models or {},
                                    read_file, capacities or {})
        if compiled.mapped_inputs:
            def recompile(caps: Mapping[str, int]) -> CompiledProfile:
                return compile_profile(profile, fields, load_model, schema_constants, schema_models, read_file, caps)
            compiled.recompile = recompile
        return compiled
    except RecursionError:
        # the parser and the function-depth limit keep real profiles far from this; a
        # located error is still better than a crash for whatever slips past them
        raise RankingError(f"rank profile '{profile.name}' nests expressions too deeply to compile",
                           profile.loc) from None


def _compile_profile(
    profile: ProfileDef,
    fields: dict[str, FieldDef],
    load_model: ModelLoader,
    schema_constants: dict[str, tuple[TensorType, Any]],
    schema_models: dict[str, OnnxModelDef],
    read_file: FileReader | None = None,
    capacities: Mapping[str, int] | None = None,
) -> CompiledProfile:
    ctx = _ProfileContext(profile, fields, schema_constants, schema_models, load_model)
    ctx.read_file = read_file
    ctx.capacities = capacities or {}
    compiler = Compiler(ctx)
    if profile.first_phase is None:
        raise RankingError("no first-phase expression, so Vespa's default first phase is nativeRank: text-match "
                           "feature nativeRank is not supported yet (it needs text matching of query terms)",
                           profile.loc)
    ctx.phase = "first"
    first = compiler.compile(profile.first_phase)
    _need_number(first, "first-phase", profile.first_phase.loc)
    first_prog = _program({FIRST_PHASE: build.cast(first.node, CellType.FLOAT64)}, ctx)
    second_prog = None
    if profile.second_phase is not None:
        ctx.phase = "second"
        second = compiler.compile(profile.second_phase)
        _need_number(second, "second-phase", profile.second_phase.loc)
        second_prog = _program({SECOND_PHASE: build.cast(second.node, CellType.FLOAT64)}, ctx)
    global_prog = normalizer_prog = None
    if profile.global_phase is not None:
        ctx.phase = GLOBAL_PHASE
        glob = compiler.compile(profile.global_phase)
        _need_number(glob, "global-phase", profile.global_phase.loc)
        global_prog = _program({GLOBAL_PHASE_OUTPUT: build.cast(glob.node, CellType.FLOAT64)}, ctx)
        if ctx.normalizers:
            normalizer_prog = _program({n.source: node for n, node in ctx.normalizers}, ctx)
    ctx.phase = "features"
    match: list[Feature] = []
    summary: list[Feature] = []
    outs: dict[str, Node] = {}
    for kind, items, dest in (("mf", profile.match_features, match), ("sf", profile.summary_features, summary)):
        for text, expr in items:
            v = compiler.compile(expr)
            key = f"{kind}:{text}"
            outs[key] = v.node
            if v.sparse is not None:
                extra, sparse = sp.outputs_of(v, key)
                outs.update(extra)
                dest.append(Feature(text, v.type.value_type, key, sparse))
            else:
                dest.append(Feature(text, v.type, key))
    features_prog = _program(outs, ctx) if outs else None
    used_attributes, used_queries = dict(ctx.attributes_used), dict(ctx.queries_used)
    # a function no phase uses must still be valid, as Vespa checks it at deploy; one with
    # parameters can only be checked where it is called
    ctx.phase = CHECKING
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
        nearest_neighbor=dict(ctx.nearest_neighbor),
        generated=dict(ctx.generated),
        global_phase=global_prog,
        global_rerank_count=profile.global_rerank_count,
        normalizer_inputs=normalizer_prog,
        normalizers=[n for n, _ in ctx.normalizers],
        mapped_inputs=dict(ctx.mapped_inputs),
    )


def _need_number(v: TValue, phase: str, loc: Location) -> None:
    if not v.is_scalar:
        raise RankingError(
            f"the {phase} expression must produce one number per document, but produces {v.type}; "
            f"reduce it, e.g. sum(...)",
            loc,
        )
