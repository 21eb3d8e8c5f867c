"""distance(field, f) and closeness(field, f) for every distance metric of Vespa, compiled
from a profile and run on the numpy backend and on the GPU backend's host emulation,
against the definitions of Vespa's documentation written out here in numpy."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from cpu_fallback import NumpyBackend
from gpu_engine.backend import CupyBackend
from tensor_ir.backend import Backend
from tensor_ir.expr.errors import Location, RankingError
from tensor_ir.expr.features.nearest_neighbor import NearestNeighborInput
from tensor_ir.expr.parser import parse_expression
from tensor_ir.expr.profile import CompiledProfile, FieldDef, ProfileDef, QueryInput, compile_profile
from tensor_ir.expr.types import parse_type

N = 64
SD = "test.sd"

# field -> (type, distance-metric)
FIELDS = {
    "euc": ("tensor<float>(x[8])", "euclidean"),
    "ang": ("tensor<float>(x[8])", "angular"),
    "pre": ("tensor<float>(x[8])", "prenormalized-angular"),
    "dot": ("tensor<float>(x[8])", "dotproduct"),
    "inner": ("tensor<float>(x[8])", "innerproduct"),  # Vespa's older name for dotproduct
    "eucd": ("tensor(x[8])", "euclidean"),
    "bits": ("tensor<int8>(x[4])", "hamming"),
    "hamf": ("tensor<float>(x[8])", "hamming"),
    "geo": ("tensor(x[2])", "geodegrees"),
    "bf": ("tensor<bfloat16>(x[8])", "angular"),
}


def _field_defs(extra: dict[str, FieldDef] | None = None) -> dict[str, FieldDef]:
    defs = {name: FieldDef(name, parse_type(t), True, Location(SD, 3, 5), distance_metric=m)
            for name, (t, m) in FIELDS.items()}
    return {**defs, **(extra or {})}


def _compile(features: list[str], inputs: dict[str, str] | None = None,
             fields: dict[str, FieldDef] | None = None) -> CompiledProfile:
    p = ProfileDef("nn", Location(SD, 10, 3))
    for name, t in (inputs or {}).items():
        p.inputs[name] = QueryInput(name, parse_type(t), None, Location())
    p.first_phase = parse_expression(features[0], SD, 12, 20)
    p.match_features = [(f, parse_expression(f, SD, 14, 7)) for f in features]
    return compile_profile(p, fields if fields is not None else _field_defs(), _no_models)


def _no_models(ref: str, loc: Location) -> Any:
    raise RankingError(f"no model '{ref}' here", loc)


@pytest.fixture(params=["numpy", "gpu-emulated"])
def backend(request: pytest.FixtureRequest) -> Backend:
    return NumpyBackend() if request.param == "numpy" else CupyBackend.emulated()


def _data(field: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    t = parse_type(FIELDS[field][0])
    n = t.shape[0]
    if field == "bits":
        docs = rng.integers(-128, 128, (N, n)).astype(np.int8)
        return docs, rng.integers(-128, 128, n).astype(np.int8)
    if field == "geo":
        docs = np.stack([rng.uniform(-89, 89, N), rng.uniform(-179, 179, N)], axis=1)
        return docs, np.array([63.4305, 10.3951])  # Trondheim
    if field == "hamf":
        docs = rng.integers(0, 3, (N, n)).astype(np.float32)  # many equal cells
        return docs, rng.integers(0, 3, n).astype(np.float32)
    docs = rng.standard_normal((N, n)).astype(t.cell.np_dtype)
    query = rng.standard_normal(n).astype(t.cell.np_dtype)
    if field == "pre":
        docs = (docs / np.linalg.norm(docs.astype(np.float64), axis=1, keepdims=True)).astype(np.float32)
        query = (query / np.linalg.norm(query)).astype(np.float32)
    docs[0] = query  # one document is the query itself
    if field in ("ang", "euc"):
        docs[1] = 0  # and one is zero
    return docs, query


def _run(compiled: CompiledProfile, field: str, docs: np.ndarray, query: np.ndarray,
         backend: Backend) -> dict[str, np.ndarray]:
    program = compiled.features
    assert program is not None
    feeds: dict[str, Any] = {}
    for name, spec in program.inputs.items():
        if name == f"attribute({field})":
            feeds[name] = docs
        elif name == f"nearestNeighbor({field})":
            feeds[name] = query.astype(spec.dtype.np_dtype)
        elif name in (f"squaredNorm({field})", f"inverseNorm({field})"):
            # the norms the ranker keeps beside the column: |d|^2, or 1/|d| (0 for d = 0)
            sq = (docs.astype(np.float64) ** 2).sum(axis=1)
            norm = sq if name.startswith("squared") else np.divide(1.0, np.sqrt(sq), out=np.zeros_like(sq),
                                                                     where=sq > 0)
            feeds[name] = norm.astype(spec.dtype.np_dtype)
        else:
            raise AssertionError(f"unexpected input {name}")
    out = backend.run(program, feeds, len(docs))
    return {f.name: out[f.program_output].reshape(len(docs)) for f in compiled.match_features}


def _vespa_distance(field: str, docs: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Vespa's documented distance of each document, one at a time in float64."""
    metric = FIELDS[field][1]
    out = []
    for d in docs:
        if metric == "hamming" and d.dtype == np.int8:
            out.append(sum(bin(int(a) ^ int(b)).count("1") for a, b in zip(d.view(np.uint8), query.view(np.uint8),
                                                                           strict=True)))
            continue
        if metric == "hamming":
            out.append(float(np.sum(d != query)))
            continue
        if metric == "geodegrees":
            lat1, lon1, lat2, lon2 = (math.radians(v) for v in (query[0], query[1], d[0], d[1]))
            h = math.sin((lat1 - lat2) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon1 - lon2) / 2) ** 2
            out.append(2 * 6371.0088 * math.asin(math.sqrt(h)))
            continue
        a, b = d.astype(np.float64), query.astype(np.float64)
        dot = float(a @ b)
        if metric == "euclidean":
            out.append(math.sqrt(float(((a - b) ** 2).sum())))
        elif metric == "angular":
            norms = math.sqrt(float(a @ a) * float(b @ b))
            out.append(math.acos(max(-1.0, min(1.0, dot / norms if norms > 0 else 0.0))))
        elif metric == "prenormalized-angular":
            out.append(1.0 - max(-1.0, min(1.0, dot / float(b @ b))))
        else:  # dotproduct and innerproduct
            out.append(-dot)
    return np.asarray(out, dtype=np.float64)


@pytest.mark.parametrize("field", sorted(FIELDS))
def test_distance_and_closeness_match_vespas_definitions(field: str, backend: Backend) -> None:
    rng = np.random.default_rng(sum(map(ord, field)))
    docs, query = _data(field, rng)
    compiled = _compile([f"closeness(field, {field})", f"distance(field, {field})", f"closeness({field})"])
    got = _run(compiled, field, docs, query, backend)
    want = _vespa_distance(field, docs, query)
    closeness = -want if FIELDS[field][1] in ("dotproduct", "innerproduct") else 1.0 / (1.0 + want)
    # the vectors are float32 and their products run in float32 (BLAS)
    tol = {"rtol": 1e-5, "atol": 1e-5} if FIELDS[field][0].startswith("tensor<float>") else {"rtol": 1e-9, "atol": 1e-9}
    if field == "bf":
        tol = {"rtol": 1e-5, "atol": 1e-5}
    if FIELDS[field][1] in ("euclidean", "angular"):
        # d = q: |d|^2 - 2 d.q + |q|^2 cancels to a float32 rounding, and the angle of
        # a vector with itself is the acos of a cosine rounded near 1: both only nearly 0
        assert got[f"distance(field, {field})"][0] == pytest.approx(0.0, abs=3e-3)
        assert got[f"closeness(field, {field})"][0] == pytest.approx(1.0, abs=3e-3)
        got = {k: v[1:] for k, v in got.items()}
        want, closeness = want[1:], closeness[1:]
    np.testing.assert_allclose(got[f"distance(field, {field})"], want, **tol)
    np.testing.assert_allclose(got[f"closeness(field, {field})"], closeness, **tol)
    np.testing.assert_array_equal(got[f"closeness({field})"], got[f"closeness(field, {field})"])


def test_angular_with_a_zero_vector_is_a_right_angle(backend: Backend) -> None:
    # Vespa divides by 1 where a norm is 0: cosine 0, the angle pi/2
    compiled = _compile(["distance(field, ang)"])
    docs = np.zeros((2, 8), np.float32)
    docs[1, 0] = 2.0
    query = np.zeros(8, np.float32)
    query[0] = 1.0
    got = _run(compiled, "ang", docs, query, backend)["distance(field, ang)"]
    np.testing.assert_allclose(got, [math.pi / 2, 0.0], atol=1e-7)


def test_geodegrees_between_two_cities() -> None:
    # Oslo to Trondheim along the great circle, the haversine formula worked out by hand:
    # dlat = 3.5205 deg, dlon = -0.3549 deg, h = 9.4347e-4, 2 R asin(sqrt(h)) = 391.5 km
    compiled = _compile(["distance(field, geo)"])
    got = _run(compiled, "geo", np.array([[59.9139, 10.7522]]), np.array([63.4305, 10.3951]), NumpyBackend())
    assert got["distance(field, geo)"][0] == pytest.approx(391.5, abs=0.5)


def test_hamming_counts_bits_of_int8_cells() -> None:
    # 0b0000_1111 against 0b0000_0000: 4 bits; -1 (all ones) against 0: 8 bits; 1 vs 1: none
    compiled = _compile(["distance(field, bits)"])
    docs = np.array([[15, -1, 1, -128]], np.int8)
    query = np.array([0, 0, 1, 0], np.int8)
    got = _run(compiled, "bits", docs, query, NumpyBackend())["distance(field, bits)"]
    assert got.tolist() == [4 + 8 + 0 + 1]


def test_the_program_reads_a_query_input_for_the_vector_and_norms_only_where_needed() -> None:
    compiled = _compile(["closeness(field, euc)", "closeness(field, dot)"])
    assert compiled.first_phase.inputs["nearestNeighbor(euc)"].role.name == "QUERY"
    assert set(compiled.features.inputs) == {  # type: ignore[union-attr]
        "attribute(euc)", "nearestNeighbor(euc)", "squaredNorm(euc)", "attribute(dot)", "nearestNeighbor(dot)"}
    assert set(compiled.nearest_neighbor) == {"nearestNeighbor(euc)", "nearestNeighbor(dot)"}
    assert compiled.attributes.keys() == {"euc", "dot"}


def test_the_default_query_input_is_the_one_named_like_the_field_else_the_only_one_that_fits() -> None:
    one = _compile(["closeness(field, euc)"], {"qv": "tensor<float>(x[8])", "other": "tensor<float>(y[8])"})
    assert one.nearest_neighbor["nearestNeighbor(euc)"].default == "qv"
    named = _compile(["closeness(field, euc)"], {"qv": "tensor<float>(x[8])", "euc": "tensor(x[8])"})
    assert named.nearest_neighbor["nearestNeighbor(euc)"].default == "euc"
    two = _compile(["closeness(field, euc)"], {"a": "tensor<float>(x[8])", "b": "tensor<float>(x[8])"})
    assert two.nearest_neighbor["nearestNeighbor(euc)"].default is None
    none = _compile(["closeness(field, euc)"], {"a": "tensor<float>(x[7])"})
    assert none.nearest_neighbor["nearestNeighbor(euc)"].default is None


def test_a_label_searches_the_only_vector_field() -> None:
    vector = parse_type("tensor<float>(x[3])")
    fields = {"e": FieldDef("e", vector, True, Location(SD, 2, 1), distance_metric="dotproduct"),
              "n": FieldDef("n", parse_type("float"), True, Location(SD, 3, 1))}
    compiled = _compile(["closeness(label, nns)", "distance(label, nns)"], {"q": "tensor<float>(x[3])"}, fields)
    spec = compiled.nearest_neighbor["nearestNeighbor(label:nns)"]
    assert spec == NearestNeighborInput("nns", "e", parse_type("tensor<float>(x[3])"), "q", spec.loc)
    docs = np.array([[1, 2, 3], [0, 1, 0]], np.float32)
    out = NumpyBackend().run(compiled.features, {"attribute(e)": docs,  # type: ignore[arg-type]
                                                 "nearestNeighbor(label:nns)": np.array([1, 1, 1], np.float32)}, 2)
    assert out["mf:closeness(label, nns)"].tolist() == [6.0, 1.0]
    assert out["mf:distance(label, nns)"].tolist() == [-6.0, -1.0]


def _error(features: list[str], fields: dict[str, FieldDef] | None = None) -> RankingError:
    with pytest.raises(RankingError) as e:
        _compile(features, fields=fields)
    return e.value


def test_refusals_are_located_and_named() -> None:
    # one vector per (p, q) address: not a multi-vector field of Vespa's (one mapped dimension)
    two = FieldDef("para", parse_type("tensor<float>(p{},q{},x[8])", allow_mapped=True), True, Location(SD, 4, 5))
    e = _error(["closeness(field, para)"], _field_defs({"para": two}))
    assert "at most one mapped one" in str(e) and f"{SD}:12:20" in str(e)
    e = _error(["closest(para)"], _field_defs({"para": two}))
    assert "one mapped and one indexed dimension" in str(e)
    assert "one mapped and one indexed dimension" in str(_error(["closest(euc)"]))
    assert "no field 'nope'" in str(_error(["distance(field, nope)"]))
    assert "'field' or 'label'" in str(_error(["distance(attribute, euc)"]))
    summary = FieldDef("s", parse_type("tensor<float>(x[8])"), False, Location(SD, 5, 5))
    assert "must be an attribute" in str(_error(["closeness(field, s)"], _field_defs({"s": summary})))
    matrix = FieldDef("m", parse_type("tensor<float>(x[2],y[2])"), True, Location(SD, 6, 5))
    assert "one indexed dimension" in str(_error(["closeness(field, m)"], _field_defs({"m": matrix})))
    odd = FieldDef("o", parse_type("tensor<float>(x[2])"), True, Location(SD, 7, 5), distance_metric="manhattan")
    e = _error(["closeness(field, o)"], _field_defs({"o": odd}))
    assert "distance-metric 'manhattan'" in str(e) and f"{SD}:7:5" in str(e)
    geo3 = FieldDef("g3", parse_type("tensor(x[3])"), True, Location(SD, 8, 5), distance_metric="geodegrees")
    assert "latitude, longitude" in str(_error(["closeness(field, g3)"], _field_defs({"g3": geo3})))
    e = _error(["closeness(label, l)"])
    assert "name the field" in str(e) and "vector attribute fields" in str(e)
