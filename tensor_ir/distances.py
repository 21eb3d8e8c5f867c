"""Vespa's nearest-neighbour distance metrics as tensor-program nodes.

`metric_nodes` gives a document's distance and closeness to the query vector, as Vespa's
`distance` and `closeness` rank features define them (searchlib's distance functions):

| metric | distance | closeness |
| --- | --- | --- |
| euclidean | sqrt(sum((d - q)^2)) | 1 / (1 + distance) |
| angular | the angle, acos(d.q / (|d| |q|)), in [0, pi] | 1 / (1 + distance) |
| prenormalized-angular | 1 - d.q / |q|^2 | 1 / (1 + distance) |
| dotproduct | -d.q | d.q |
| hamming | differing bits of int8 cells, else differing cells | 1 / (1 + distance) |
| geodegrees | great-circle km between [lat, lon] in degrees | 1 / (1 + distance) |

The document side is laid out for the hardware. Every d.q is one MATMUL over all documents
of a block (a GEMV), so a query reads the column once; what depends on the query alone (its
norm, its scaling) is folded into the query vector before the product. Euclidean reads |d|^2
and angular 1/|d|, per document, as inputs (`KEPT_NORMS`) that the ranker keeps beside the
column instead of reading the column again per query: then |d - q|^2 = |d|^2 + d.(-2q) + |q|^2
(clamped at 0 against cancellation) and cos = d.(q/|q|) * (1/|d|). The few per-document
steps after the product run in the vectors' compute type (float for float cells, as the
product itself), and the results are doubles.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tensor_ir import build
from tensor_ir.dtypes import CellType
from tensor_ir.errors import IRError
from tensor_ir.ir import Node

METRICS = ("euclidean", "angular", "prenormalized-angular", "dotproduct", "hamming", "geodegrees")
# Vespa's older name for dotproduct, still found in applications
ALIASES = {"innerproduct": "dotproduct"}
# the per-document norm each metric reads: |d|^2 ("squared") or 1/|d| ("inverse"; 0 for d = 0)
KEPT_NORMS = {"euclidean": "squared", "angular": "inverse"}
# km, the IUGG mean radius Vespa's geodegrees metric uses
EARTH_MEAN_RADIUS_KM = 6371.0088

F64 = CellType.FLOAT64


@dataclass(frozen=True)
class MetricNodes:
    distance: Node
    closeness: Node


def metric_name(text: str) -> str | None:
    """A distance-metric as a schema writes it, in Vespa's spelling; None when unknown."""
    name = text.strip().lower()
    name = ALIASES.get(name, name)
    return name if name in METRICS else None


def compute_type(cell: CellType) -> CellType:
    """Vectors of int8 and bfloat16 cells compute as float, as in Vespa; double stays double."""
    return F64 if cell is F64 else CellType.FLOAT32


def metric_nodes(metric: str, doc: Node, query: Node, norm: Node | None = None) -> MetricNodes:
    """Distance and closeness (float64, one per document) of `doc` (per document, shape [n])
    to `query` (shape [n]); `norm`: the per-document norm KEPT_NORMS names for the metric,
    of the vectors' compute type. A `doc` of shape [m, n] holds m vectors (a multi-vector
    field's subspaces): then one distance per vector, and `norm` has shape [m]."""
    if doc.rank not in (1, 2) or query.rank != 1 or query.shape != doc.shape[-1:]:
        raise IRError(f"a nearest-neighbour distance needs two vectors of one size, got {list(doc.shape)} "
                      f"and {list(query.shape)}")
    if metric in KEPT_NORMS and (norm is None or norm.dtype is not compute_type(doc.dtype)):
        raise IRError(f"the {metric} distance needs the documents' {KEPT_NORMS[metric]} norms "
                      f"({compute_type(doc.dtype).np_name})")
    ct = compute_type(doc.dtype)
    q = _as(query, ct)
    qq = build.reduce(build.join("mul", q, q), "sum", None, False)  # |q|^2, once per query

    def num(value: float) -> Node:
        return build.scalar(value, ct)

    if metric == "euclidean":
        assert norm is not None
        sq = build.join("add", build.join("add", _dot(doc, build.join("mul", q, num(-2.0))), norm), qq)
        distance = build.map_("sqrt", build.join("max", sq, num(0.0)))
        return _doubles(distance, _inverse_one_plus(distance, num))
    if metric == "angular":
        assert norm is not None
        # q / |q|, and 0 for a zero vector: Vespa divides by 1 there, a cosine of 0 (pi/2)
        inv_q = build.select(build.join("gt", qq, num(0.0)), build.join("div", num(1.0), build.map_("sqrt", qq)),
                             num(0.0))
        cos = build.join("mul", _dot(doc, build.join("mul", q, inv_q)), norm)
        distance = build.map_("acos", _clamp_unit(cos, num))
        return _doubles(distance, _inverse_one_plus(distance, num))
    if metric == "prenormalized-angular":
        qq = build.select(build.join("gt", qq, num(0.0)), qq, num(1.0))
        cos = _dot(doc, build.join("div", q, qq))  # d.q / |q|^2
        distance = build.join("sub", num(1.0), _clamp_unit(cos, num))
        return _doubles(distance, _inverse_one_plus(distance, num))
    if metric == "dotproduct":
        dot = _dot(doc, q)
        return _doubles(build.map_("neg", dot), dot)
    if metric == "hamming":
        distance = hamming(doc, query)
        return MetricNodes(distance, _inverse_one_plus(distance, lambda v: build.scalar(v, F64)))
    if metric == "geodegrees":
        distance = great_circle_km(doc, query)
        return MetricNodes(distance, _inverse_one_plus(distance, lambda v: build.scalar(v, F64)))
    raise IRError(f"unknown distance metric '{metric}' (metrics: {', '.join(METRICS)})")


def hamming(doc: Node, query: Node) -> Node:
    """Differing bits of int8 vectors (Vespa's binary hamming distance); for other cell
    types, as in Vespa, the number of differing cells. float64, one per document."""
    last = [doc.rank - 1]
    if doc.dtype is CellType.INT8 and query.dtype is CellType.INT8:
        bits = popcount_bytes(build.join("bitwise_xor", doc, query))
        return build.cast(build.reduce(bits, "sum", last, False), F64)
    ct = compute_type(doc.dtype)
    differ = build.join("ne", _as(doc, ct), _as(query, ct))
    return build.reduce(build.cast(differ, F64), "sum", last, False)


def popcount_bytes(x: Node) -> Node:
    """Set bits of each int8 or uint8 cell, as int32: the bit-parallel count, all
    elementwise, so the GPU fuses it into one kernel."""
    v = build.cast(build.cast(x, CellType.UINT8), CellType.INT32)  # the byte's bits, no sign

    def k(value: int) -> Node:
        return build.scalar(value, CellType.INT32)

    v = build.join("sub", v, build.join("bitwise_and", build.join("shift_right", v, k(1)), k(0x55)))
    v = build.join("add", build.join("bitwise_and", v, k(0x33)),
                   build.join("bitwise_and", build.join("shift_right", v, k(2)), k(0x33)))
    return build.join("bitwise_and", build.join("add", v, build.join("shift_right", v, k(4))), k(0x0F))


def great_circle_km(doc: Node, query: Node) -> Node:
    """Haversine distance in km between [latitude, longitude] pairs in degrees."""
    if doc.shape[-1:] != (2,):
        raise IRError(f"the geodegrees distance needs vectors of 2 cells (latitude, longitude), got {list(doc.shape)}")
    to_rad = _num(math.pi / 180.0)

    def cell(v: Node, i: int) -> Node:
        # a masked sum, not a slice: elementwise and a reduce, which the GPU fuses into one kernel
        mask = build.constant(np.eye(2, dtype=np.float64)[i], F64)
        return _mul(build.reduce(build.join("mul", _as(v, F64), mask), "sum", [v.rank - 1], False), to_rad)

    lat_q, lon_q, lat_d, lon_d = cell(query, 0), cell(query, 1), cell(doc, 0), cell(doc, 1)

    def hav(angle: Node) -> Node:
        s = build.map_("sin", _mul(angle, _num(0.5)))
        return _mul(s, s)

    h = _add(hav(build.join("sub", lat_q, lat_d)),
             _mul(_mul(build.map_("cos", lat_q), build.map_("cos", lat_d)), hav(build.join("sub", lon_q, lon_d))))
    # rounding may take the haversine a hair past 1 for antipodal points: asin would be NaN
    root = build.map_("sqrt", build.join("min", h, _num(1.0)))
    return _mul(build.map_("asin", root), _num(2.0 * EARTH_MEAN_RADIUS_KM))


def kept_norm_of(kind: str, column: Node) -> Node:
    """The per-document norm KEPT_NORMS names, from the vectors themselves: its definition,
    which the ranker's kept copy follows (computed in float64, stored in the compute type)."""
    d = _as(column, F64)
    squared = build.reduce(build.join("mul", d, d), "sum", [d.rank - 1], False)
    if kind == "inverse":
        zero = build.scalar(0.0, F64)
        squared = build.select(build.join("gt", squared, zero),
                               build.join("div", build.scalar(1.0, F64), build.map_("sqrt", squared)), zero)
    return _as(squared, compute_type(column.dtype))


# ---------------------------------------------------------------- helpers


def _num(value: float) -> Node:
    return build.scalar(value, F64)


def _as(x: Node, ct: CellType) -> Node:
    return x if x.dtype is ct else build.cast(x, ct)


def _add(a: Node, b: Node) -> Node:
    return build.join("add", a, b)


def _mul(a: Node, b: Node) -> Node:
    return build.join("mul", a, b)


def _dot(doc: Node, query: Node) -> Node:
    """d.q per document as one MATMUL over the block: [rows, 1, n] @ [n, 1], in the query's
    type (the compute type)."""
    n = doc.shape[-1]
    rows = doc.shape[:-1]
    product = build.matmul(build.reshape(_as(doc, query.dtype), (int(np.prod(rows, dtype=np.int64)), n)),
                           build.reshape(query, (n, 1)))
    return build.reshape(product, rows)


def _clamp_unit(x: Node, num: Callable[[float], Node]) -> Node:
    # a cosine is in [-1, 1], but rounding may take it past: acos would be NaN
    return build.join("max", build.join("min", x, num(1.0)), num(-1.0))


def _inverse_one_plus(distance: Node, num: Callable[[float], Node]) -> Node:
    return build.join("div", num(1.0), build.join("add", num(1.0), distance))


def _doubles(distance: Node, closeness: Node) -> MetricNodes:
    return MetricNodes(_as(distance, F64), _as(closeness, F64))
