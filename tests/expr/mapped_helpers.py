"""Ranking expressions over mapped and mixed tensors for a few documents, through the
profile compiler and the numpy backend, with values given as dicts; and a dict-based
reference for what Vespa's join, reduce and distances give, written independently."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from cpu_fallback import NumpyBackend
from tensor_ir.expr.errors import Location, RankingError
from tensor_ir.expr.parser import parse_expression
from tensor_ir.expr.profile import FieldDef, ProfileDef, QueryInput, compile_profile
from tensor_ir.expr.types import TensorType, parse_type
from tensor_ir.mapped import MappedTensor, capacity_for, pad, pad_many, unpad

# a value: {address tuple: cells}, cells a number (sparse types) or a list (mixed types)
Value = Mapping[tuple[str, ...], Any]


def mapped(t: TensorType, value: Value) -> MappedTensor:
    return MappedTensor.build(t, [(a, np.asarray(c, dtype=np.float64).reshape(t.shape)) for a, c in value.items()])


def no_models(ref: str, loc: Location) -> Any:
    raise RankingError("no models here", loc)


def compiled_features(expr: str, field_types: Mapping[str, str], query_types: Mapping[str, str],
                      capacities: Mapping[str, int]) -> Any:
    """The features program of a profile whose one match feature is `expr`."""
    p = ProfileDef("p", Location("test.sd", 1, 1))
    for name, t in query_types.items():
        p.inputs[name] = QueryInput(name, parse_type(t, allow_mapped=True), None, Location())
    p.first_phase = parse_expression("0")
    p.match_features = [("f", parse_expression(expr))]
    defs = {n: FieldDef(n, parse_type(t, allow_mapped=True), True, Location()) for n, t in field_types.items()}
    return compile_profile(p, defs, no_models, capacities=capacities).features


def rank(expr: str, fields: Mapping[str, tuple[str, Sequence[Any]]], queries: Mapping[str, tuple[str, Any]],
         first_phase: str | None = None, distance_metric: str = "euclidean", backend: Any = None) -> list[Any]:
    """The value of `expr` for each document: a float, or a dict {address: cells} for a
    mapped result. `fields`: name -> (type, one value per document); `queries`: name ->
    (type, value). A mapped value is a dict (Value), a dense one an array."""
    p = ProfileDef("p", Location("test.sd", 1, 1))
    for name, (t, _) in queries.items():
        p.inputs[name] = QueryInput(name, parse_type(t, allow_mapped=True), None, Location())
    p.first_phase = parse_expression(first_phase or "0")
    p.match_features = [("f", parse_expression(expr))]
    defs = {n: FieldDef(n, parse_type(t, allow_mapped=True), True, Location(), distance_metric=distance_metric)
            for n, (t, _) in fields.items()}
    n_docs = len(next(iter(fields.values()))[1])
    values: dict[str, Any] = {}
    caps: dict[str, int] = {}
    for name, (t, docs) in fields.items():
        tt = parse_type(t, allow_mapped=True)
        values[f"attribute({name})"] = ([mapped(tt, d) for d in docs] if tt.is_mapped
                                        else np.asarray(docs, tt.cell.np_dtype))
        if tt.is_mapped:
            caps[f"attribute({name})"] = capacity_for(values[f"attribute({name})"]) + 1  # a padded slot too
    for name, (t, v) in queries.items():
        tt = parse_type(t, allow_mapped=True)
        values[f"query({name})"] = mapped(tt, v) if tt.is_mapped else np.asarray(v, tt.cell.np_dtype)
        if tt.is_mapped:
            caps[f"query({name})"] = capacity_for([values[f"query({name})"]]) + 2
    compiled = compile_profile(p, defs, no_models, capacities=caps)
    feeds: dict[str, Any] = {}
    for name, (_, cap) in compiled.mapped_inputs.items():
        v = values[name]
        padded = pad_many(v, cap) if name.startswith("attribute(") else pad(v, cap)
        feeds[name], feeds[f"{name}#mask"] = padded.cells, padded.mask
        feeds.update({f"{name}#label:{d}": x for d, x in padded.labels.items()})
    program = compiled.features
    assert program is not None
    for name in program.inputs:
        if name not in feeds:
            feeds[name] = _dense_feed(name, values, compiled.nearest_neighbor, queries)
    runner = backend or NumpyBackend()
    out = {k: np.asarray(runner.to_host(v)) for k, v in runner.run(program, feeds, n_docs).items()}
    feature = compiled.match_features[0]
    result: list[Any] = []
    for d in range(n_docs):
        if feature.sparse is None:
            result.append(float(np.asarray(out[feature.program_output][d]).reshape(())))
            continue
        got = unpad(feature.type, out[feature.program_output][d],
                    {dim: out[o][d] for dim, o in feature.sparse.labels}, out[feature.sparse.mask][d])
        result.append({a: c.astype(np.float64).tolist() if c.ndim else float(c) for a, c in got.as_dict().items()})
    return result


def _dense_feed(name: str, values: Mapping[str, Any], nn: Mapping[str, Any], queries: Mapping[str, Any]) -> Any:
    if name in values:
        return values[name]
    if name in nn:  # a nearest-neighbour query vector: the profile's query input of that name
        return values[f"query({nn[name].default})"]
    raise AssertionError(f"no value for program input {name}")


def backend_named(name: str) -> Any:
    """numpy, the GPU backend's host emulation, or CuPy where a GPU is present (else a skip)."""
    import pytest

    from gpu_engine.backend import CupyBackend
    from tests.backends.conftest import cupy_unavailable

    if name == "numpy":
        return NumpyBackend()
    if name == "gpu-emulated":
        return CupyBackend.emulated()
    reason = cupy_unavailable()
    if reason is not None:
        pytest.skip(reason)
    return CupyBackend()


BACKEND_NAMES = ["numpy", "gpu-emulated", "cupy"]


# ---------------------------------------------------------------- the reference, with dicts


def join(a: Value, a_dims: Sequence[str], b: Value, b_dims: Sequence[str], fn: Any) -> dict[tuple[str, ...], Any]:
    """Vespa's join of two sparse values (cells numbers): addresses agreeing on common dims."""
    dims = sorted(set(a_dims) | set(b_dims))
    out: dict[tuple[str, ...], Any] = {}
    for aa, av in a.items():
        for ba, bv in b.items():
            ad, bd = dict(zip(a_dims, aa, strict=True)), dict(zip(b_dims, ba, strict=True))
            if all(ad[k] == bd[k] for k in ad.keys() & bd.keys()):
                both = {**ad, **bd}
                out[tuple(both[k] for k in dims)] = fn(av, bv)
    return out
