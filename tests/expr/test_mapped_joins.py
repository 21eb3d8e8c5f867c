"""Joins of a query's mapped tensor with every document's: the lookup that replaces the
cartesian product (tensor_ir.expr.sparse.looked_up) and the LOOKUP op under it, checked
against dict-based joins written in tests/expr/mapped_helpers.py and sums worked out here."""

from __future__ import annotations

import numpy as np
import pytest

from cpu_fallback import NumpyBackend
from tensor_ir import build
from tensor_ir.dtypes import CellType
from tensor_ir.expr.errors import Location
from tensor_ir.expr.parser import parse_expression
from tensor_ir.expr.profile import FieldDef, ProfileDef, QueryInput, compile_profile
from tensor_ir.expr.types import parse_type
from tensor_ir.ir import Op, Role
from tensor_ir.program import Program

from .mapped_helpers import BACKEND_NAMES, backend_named, join, no_models, rank

CATS = "tensor<float>(cat{})"
# numpy, the GPU backend's plan run on the host (fused kernels, the lookup with numpy for CuPy), CuPy
BACKENDS = pytest.mark.parametrize("backend_name", BACKEND_NAMES)
DOCS = [
    {("pop",): 0.5, ("rock",): -2.0, ("7",): 4.0},
    {},
    {("jazz",): 1.5},
    {("pop",): 3.0, ("jazz",): -1.0, ("électro",): 0.25},
]
QUERY = {("pop",): 2.0, ("jazz",): 10.0, ("7",): -1.0, ("nowhere",): 100.0}


@BACKENDS
def test_user_profile_dot_product_is_the_inner_join_summed(backend_name: str) -> None:
    backend = backend_named(backend_name)
    got = rank("sum(query(u) * attribute(c))", {"c": (CATS, DOCS)}, {"u": (CATS, QUERY)}, backend=backend)
    # worked out by hand: doc 0 pop 0.5*2 + 7 4*-1; doc 1 nothing; doc 2 jazz 1.5*10; doc 3 pop 6 + jazz -10
    assert got == pytest.approx([1.0 - 4.0, 0.0, 15.0, 6.0 - 10.0])


@BACKENDS
def test_the_joined_tensor_keeps_only_shared_labels(backend_name: str) -> None:
    backend = backend_named(backend_name)
    got = rank("query(u) * attribute(c)", {"c": (CATS, DOCS)}, {"u": (CATS, QUERY)}, backend=backend)
    want = [join(QUERY, ["cat"], d, ["cat"], lambda a, b: a * b) for d in DOCS]
    assert got == [pytest.approx(w) for w in want]


def test_an_empty_query_tensor_matches_nothing() -> None:
    got = rank("sum(query(u) * attribute(c))", {"c": (CATS, DOCS)}, {"u": (CATS, {})})
    assert got == [0.0, 0.0, 0.0, 0.0]


@BACKENDS
def test_documents_with_two_mapped_dimensions_look_up_by_the_shared_one(backend_name: str) -> None:
    backend = backend_named(backend_name)
    t = "tensor<float>(cat{},shop{})"
    docs = [{("pop", "a"): 1.0, ("pop", "b"): 2.0, ("rock", "a"): 3.0}, {("jazz", "c"): -1.0}]
    got = rank("query(u) * attribute(c)", {"c": (t, docs)}, {"u": (CATS, QUERY)}, backend=backend)
    want = [join(QUERY, ["cat"], d, ["cat", "shop"], lambda a, b: a * b) for d in docs]
    assert got == [pytest.approx(w) for w in want]
    summed = rank("reduce(query(u) * attribute(c), sum, cat)", {"c": (t, docs)}, {"u": (CATS, QUERY)},
                  backend=backend)
    # by hand: doc 0 shop a: pop 2*1 (rock is not in the query), shop b: pop 2*2; doc 1: jazz 10*-1 at shop c
    assert summed == [pytest.approx({("a",): 2.0, ("b",): 4.0}), pytest.approx({("c",): -10.0})]


def test_a_mixed_query_tensor_brings_its_dense_cells() -> None:
    q = {("pop",): [1.0, 2.0], ("jazz",): [-1.0, 0.5]}
    total = rank("sum(query(u) * attribute(c))", {"c": (CATS, DOCS)}, {"u": ("tensor<float>(cat{},x[2])", q)})
    # by hand: doc 0 pop 0.5*(1+2); doc 2 jazz 1.5*(-1+0.5); doc 3 pop 3*(1+2) + jazz -1*(-1+0.5)
    assert total == pytest.approx([1.5, 0.0, -0.75, 9.5])
    per_cat = rank("query(u) * attribute(c)", {"c": (CATS, DOCS)}, {"u": ("tensor<float>(cat{},x[2])", q)})
    assert per_cat[3] == {("pop",): pytest.approx([3.0, 6.0]), ("jazz",): pytest.approx([1.0, -0.5])}


def test_the_lookup_replaces_the_cartesian_product() -> None:
    p = ProfileDef("p", Location("t.sd", 1, 1))
    p.inputs["u"] = QueryInput("u", parse_type(CATS, allow_mapped=True), None, Location())
    p.first_phase = parse_expression("sum(query(u) * attribute(c))")
    fields = {"c": FieldDef("c", parse_type(CATS, allow_mapped=True), True, Location())}
    compiled = compile_profile(p, fields, no_models,
                               capacities={"attribute(c)": 50, "query(u)": 64})
    ops = {n.op for n in compiled.first_phase.nodes()}
    assert Op.LOOKUP in ops
    # nothing per document is as large as documents' slots times the query's
    assert all(int(np.prod(n.shape)) <= 50 for n in compiled.first_phase.nodes() if n.per_document)


@pytest.mark.parametrize("span", ["narrow", "wide"])
def test_lookup_finds_each_value_among_the_keys(span: str) -> None:
    rng = np.random.default_rng(3)
    base = 10 if span == "narrow" else 1 << 29  # wide: the binary search instead of a table
    keys = np.array([base + 5, -1, base + 2, base + 9, -1, -7], dtype=np.int32)
    values = rng.choice(np.array([base + 5, base + 2, base + 9, -7, -1, base + 3, base + 100, -9], np.int32),
                        size=(6, 4))
    k = build.input_("keys", Role.QUERY, (6,), CellType.INT32)
    v = build.input_("values", Role.ATTRIBUTE, (4,), CellType.INT32)
    out = NumpyBackend().run(Program({"pos": build.lookup(k, v)}), {"keys": keys, "values": values}, 6)["pos"]
    first = {}
    for i, key in enumerate(keys.tolist()):
        first.setdefault(key, i)
    want = np.vectorize(lambda x: first.get(int(x), len(keys)))(values)
    np.testing.assert_array_equal(out, want)
