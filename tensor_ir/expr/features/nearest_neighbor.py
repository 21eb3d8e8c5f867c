"""Nearest-neighbour rank features: `distance(field, f)`, `closeness(field, f)`, their
`label` forms and `closest(f)`, exact over every ranked document.

The distance is the field's `distance-metric` (tensor_ir.distances has Vespa's definition
of each). In Vespa the query vector comes from the query's nearestNeighbor(field, q) item;
here each feature compiles into a query-role program input, `nearestNeighbor(f)` (or
`nearestNeighbor(label:l)`), of the field's type, which the ranker fills from the query
input the request names for it (RankRequest.nearest_neighbor). A request that names none
takes the profile's query input named like the field or label, else its only query input
with the field's dimensions (`NearestNeighborInput.default`); with neither the request is
refused, naming the field. Euclidean and angular read a per-document norm, `squaredNorm(f)`
(|d|^2) or `inverseNorm(f)` (1/|d|), that the ranker keeps beside the column.

A label names a query item, which names its field; until queries carry items (YQL, a later
issue) a label's field is the schema's only vector attribute, and is refused as ambiguous
where there are several. A field with one mapped dimension holds one vector per subspace
(Vespa's multi-vector fields, `tensor<float>(p{},x[384])`): its distance is the least over
the document's vectors (Vespa's largest double where it has none), its closeness the
largest (0 where none), their norms computed per query; `closest(f)` is the tensor over
the mapped dimension that holds 1 at the label of the closest vector (empty where none).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tensor_ir import build
from tensor_ir.distances import KEPT_NORMS, compute_type, kept_norm_of, metric_name, metric_nodes
from tensor_ir.dtypes import CellType
from tensor_ir.expr.ast import Call, Name, Str
from tensor_ir.expr.errors import Location, RankingError
from tensor_ir.expr.features import rank_feature
from tensor_ir.expr.types import TensorType
from tensor_ir.expr.values import Sparse, TValue
from tensor_ir.ir import Node, Role

NEAREST_NEIGHBOR_PREFIX = "nearestNeighbor("
# the per-document norms the ranker keeps beside a vector column, by KEPT_NORMS kind
NORM_PREFIXES = {"squared": "squaredNorm(", "inverse": "inverseNorm("}


@dataclass(frozen=True)
class NearestNeighborInput:
    """A program input holding the query vector of a nearest-neighbour feature."""

    key: str  # the field or label, as RankRequest.nearest_neighbor names it
    field: str
    type: TensorType  # the field's type: the query vector is converted to it
    default: str | None  # the query input used when the request names none
    loc: Location  # the first feature that reads it


def nearest_neighbor_input(key: str, label: bool) -> str:
    return f"{NEAREST_NEIGHBOR_PREFIX}{'label:' if label else ''}{key})"


def norm_input(kind: str, field: str) -> str:
    return f"{NORM_PREFIXES[kind]}{field})"


def kept_norm(input_name: str) -> tuple[str, str] | None:
    """(kind, field) of a `squaredNorm(f)` or `inverseNorm(f)` program input; None for any other."""
    for kind, prefix in NORM_PREFIXES.items():
        if input_name.startswith(prefix) and input_name.endswith(")"):
            return kind, input_name[len(prefix):-1]
    return None


@rank_feature("distance", "closeness")
def _distance(ctx: Any, compiler: Any, call: Call) -> TValue:
    kind, key = _target(call)
    if kind == "label":
        field = _label_field(ctx, call, key)
    else:
        field = key
    ftype = _vector_field(ctx, call, field)
    if ftype.is_mapped:
        per, doc = _per_subspace(ctx, call, key, kind == "label", field, ftype)
        assert doc.sparse is not None
        present = doc.sparse.mask.node  # over the field's one slot axis
        if call.name == "distance":
            node = build.reduce(build.select(present, per.distance, build.scalar(_FARTHEST, CellType.FLOAT64)),
                                "min", [0], False)
        else:
            best = build.reduce(build.select(present, per.closeness, build.scalar(-np.inf, CellType.FLOAT64)),
                                "max", [0], False)
            node = build.select(build.reduce(present, "max", [0], False), best, build.scalar(0.0, CellType.FLOAT64))
        return TValue(node, TensorType(CellType.FLOAT64, ()))
    metric = _metric(ctx, call, field)
    doc = ctx.attribute(field, call.loc).node  # registers the attribute the program reads
    query = build.input_(_register(ctx, key, kind == "label", field, ftype, call.loc), Role.QUERY,
                         ftype.shape, ftype.cell)
    norm = None
    if metric in KEPT_NORMS:
        kind = KEPT_NORMS[metric]
        norm = build.input_(norm_input(kind, field), Role.ATTRIBUTE, (), compute_type(ftype.cell))
    nodes = metric_nodes(metric, doc, query, norm)
    node = nodes.distance if call.name == "distance" else nodes.closeness
    return TValue(node, TensorType(CellType.FLOAT64, ()))


_FARTHEST = float(np.finfo(np.float64).max)  # Vespa's distance to a document without a vector


def _per_subspace(ctx: Any, call: Call, key: str, label: bool, field: str, ftype: TensorType) -> tuple[Any, TValue]:
    """The metric's distance and closeness to each vector of a multi-vector field (one per
    slot), and the field's value."""
    metric = _metric(ctx, call, field)
    doc = ctx.attribute(field, call.loc)
    vectors = TensorType(ftype.cell, ftype.dims)
    query = build.input_(_register(ctx, key, label, field, vectors, call.loc), Role.QUERY, vectors.shape, vectors.cell)
    norm: Node | None = None
    if metric in KEPT_NORMS:
        norm = kept_norm_of(KEPT_NORMS[metric], doc.node)  # per vector, per query: none is kept for subspaces
    return metric_nodes(metric, doc.node, query, norm), doc


@rank_feature("closest")
def _closest(ctx: Any, compiler: Any, call: Call) -> TValue:
    if not 1 <= len(call.args) <= 2 or not all(isinstance(a, Name | Str) for a in call.args):
        raise RankingError("closest() takes a field and optionally a label: closest(f) or closest(f, label)",
                           call.loc)
    field = _arg_text(call.args[0])
    f = _field(ctx, call, field)
    if f.type is not None and f.type.is_mapped and len(f.type.mapped) == 1 and f.type.rank == 1:
        key, label = (field, False) if len(call.args) == 1 else (_arg_text(call.args[1]), True)
        per, doc = _per_subspace(ctx, call, key, label, field, f.type)
        assert doc.sparse is not None
        present = doc.sparse.mask.node
        far = build.select(present, per.distance, build.scalar(_FARTHEST, CellType.FLOAT64))
        best = build.arg_reduce(far, "argmin", 0, True, False)  # the first of equal distances
        slot, size = doc.type.slots[0]
        iota = build.constant(np.arange(size, dtype=np.int64), CellType.INT64)
        chosen = build.join("and", present, build.join("eq", iota, best))
        ones = build.broadcast(build.scalar(1.0, CellType.FLOAT64), [size])
        mask = TValue(chosen, TensorType(CellType.BOOL, ((slot, size),)))
        return TValue(ones, TensorType(CellType.FLOAT64, ((slot, size),), f.type.mapped),
                      Sparse(doc.sparse.labels, mask))
    shown = f.declared or (str(f.type) if f.type is not None else "not a tensor")
    # Vespa's closest names the subspace (a mapped label) nearest the query: a dense field has none
    raise RankingError(f"closest({field}) needs a tensor field with one mapped and one indexed dimension "
                       f"(one vector per subspace), but '{field}' is {shown}", call.loc)


# ---------------------------------------------------------------- arguments and fields


def _arg_text(arg: Any) -> str:
    return str(arg.name if isinstance(arg, Name) else arg.value)


def _target(call: Call) -> tuple[str, str]:
    """('field', f) or ('label', l) from distance(field, f), distance(label, l) or distance(f)."""
    form = f"{call.name}(field, f), {call.name}(label, l) or {call.name}(f)"
    if not 1 <= len(call.args) <= 2 or not all(isinstance(a, Name | Str) for a in call.args):
        raise RankingError(f"{call.name}() takes a field or a label: {form}", call.loc)
    if len(call.args) == 1:
        return "field", _arg_text(call.args[0])
    kind, key = _arg_text(call.args[0]), _arg_text(call.args[1])
    if kind not in ("field", "label"):
        raise RankingError(f"{call.name}({kind}, {key}): the first argument must be 'field' or 'label' ({form})",
                           call.loc)
    return kind, key


def _field(ctx: Any, call: Call, name: str) -> Any:
    f = ctx.fields.get(name)
    if f is None:
        known = ", ".join(sorted(n for n, fd in ctx.fields.items() if fd.type is not None and fd.type.rank == 1))
        raise RankingError(f"{call.name}(field, {name}): the schema has no field '{name}' "
                           f"(vector fields: {known or 'none'})", call.loc)
    return f


def _vector_field(ctx: Any, call: Call, name: str) -> TensorType:
    f = _field(ctx, call, name)
    if f.type is None:
        if "{" in f.declared:
            raise RankingError(f"{call.name}(field, {name}): field '{name}' ({f.declared}) has a mapped dimension; "
                               "nearest-neighbour features over a mapped dimension are not supported yet", call.loc)
        if getattr(f, "kind", "") == "position" or f.declared.startswith("position"):
            raise RankingError(f"{call.name}({name}): distance to the query's geo position (a position field) "
                               "is not supported yet; a tensor(x[2]) field with distance-metric: geodegrees is",
                               call.loc)
        if getattr(f, "refusal", ""):
            raise RankingError(f"{call.name}(field, {name}): {f.refusal}", call.loc)
        raise RankingError(f"{call.name}(field, {name}): field '{name}' is {f.declared or 'not a tensor'}; "
                           "a nearest-neighbour field is a tensor with one indexed dimension", call.loc)
    if not f.attribute:
        raise RankingError(f"{call.name}(field, {name}): field '{name}' must be an attribute "
                           "(indexing: attribute)", call.loc)
    if f.type.rank != 1 or len(f.type.mapped) > 1:
        raise RankingError(f"{call.name}(field, {name}): field '{name}' is {f.type}; a nearest-neighbour field is "
                           "a tensor with one indexed dimension (and at most one mapped one)", call.loc)
    t: TensorType = f.type
    return t


def _metric(ctx: Any, call: Call, field: str) -> str:
    f = ctx.fields[field]
    text = getattr(f, "distance_metric", "") or "euclidean"
    metric = metric_name(text)
    if metric is None:
        raise RankingError(f"field '{field}' has distance-metric '{text}', which Vespa does not have (metrics: "
                           "euclidean, angular, prenormalized-angular, dotproduct, hamming, geodegrees)", f.loc)
    if metric == "geodegrees" and f.type is not None and f.type.shape != (2,):
        raise RankingError(f"field '{field}' has distance-metric geodegrees, which needs 2 cells "
                           f"(latitude, longitude), but is {f.type}", f.loc)
    return metric


def _label_field(ctx: Any, call: Call, label: str) -> str:
    vectors: list[str] = sorted(n for n, f in ctx.fields.items()
                                if f.attribute and f.type is not None and f.type.rank == 1)
    if len(vectors) == 1:
        return vectors[0]
    raise RankingError(
        f"{call.name}(label, {label}): the field a label searches is set by the query's nearestNeighbor item, "
        f"which queries do not carry yet; with {len(vectors)} vector attribute fields "
        f"({', '.join(vectors) or 'none'}) name the field: {call.name}(field, f)", call.loc)


def _register(ctx: Any, key: str, label: bool, field: str, ftype: TensorType, loc: Location) -> str:
    name = nearest_neighbor_input(key, label)
    known: dict[str, NearestNeighborInput] = ctx.nearest_neighbor
    if name not in known:
        known[name] = NearestNeighborInput(key, field, ftype, _default_query(ctx.profile.inputs, key, ftype), loc)
    return name


def _default_query(inputs: dict[str, Any], key: str, ftype: TensorType) -> str | None:
    """The declared query input named like the field or label, else the only one with the
    field's dimensions (cell types may differ: the query vector is converted)."""
    fitting = [name for name, q in inputs.items() if q.type.dims == ftype.dims]
    if key in fitting:
        return key
    return fitting[0] if len(fitting) == 1 else None
