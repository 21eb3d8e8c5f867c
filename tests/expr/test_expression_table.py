"""A table of ranking expressions with values worked out by hand, one row per construct.

The documents, query inputs, constants and functions they use are in helpers.py:
  v   tensor<float>(x[3])      doc0 [1,2,3]            doc1 [4,5,6]
  dv  tensor(x[3])             doc0 [1,2,3]            doc1 [-1,0,2]
  m   tensor<float>(x[2],y[3]) doc0 [[0,1,2],[3,4,5]]  doc1 [[6,7,8],[9,10,11]]
  b16 tensor<bfloat16>(x[3])   as v;  i8 tensor<int8>(x[3]) doc0 [1,-2,3] doc1 [4,5,-6]
  ids tensor<float>(x[4])      doc0 [3,1,4,1]          doc1 [5,9,2,6]
  pop float 0.5 / 2.0;  n long 3 / -7
  query(q) x[3] [1,0,-1];  query(qy) y[3] [1,2,3];  query(qd) tensor(y[2]) [10,20];  query(s) 3
  constant(w) tensor<float>(x[3],y[2]) [[0,1],[2,3],[4,5]];  constant(c) 0.25
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from tensor_ir.expr.errors import Location, RankingError

from .helpers import evaluate

SAME = object()  # doc1 has doc0's value
E = math.e
S5, S50 = math.sqrt(5), math.sqrt(50)
SOFT = [math.exp(-2), math.exp(-1), 1.0]

# (expression, type, value of doc0, value of doc1)
TABLE: list[tuple[str, str, Any, Any]] = [
    # numbers and arithmetic: C-like precedence as in Vespa's evaluator, unary minus binds tightest
    ("1 + 2 * 3", "double", 7, SAME),
    ("(1 + 2) * 3", "double", 9, SAME),
    ("7 - 2 - 1", "double", 4, SAME),
    ("8 / 4 / 2", "double", 1, SAME),
    ("2 ^ 3 ^ 2", "double", 512, SAME),
    ("-2 ^ 2", "double", 4, SAME),
    ("10 - 2 * 3 + 1", "double", 5, SAME),
    ("2 * 3 % 4", "double", 2, SAME),
    ("7 % 3", "double", 1, SAME),
    ("-7 % 3", "double", -1, SAME),  # fmod: the sign of the dividend
    ("7.5 % 2", "double", 1.5, SAME),
    ("1.5e2 + .5", "double", 150.5, SAME),
    # comparisons give 1.0 / 0.0
    ("1 < 2", "double", 1, SAME),
    ("2 <= 1", "double", 0, SAME),
    ("3 == 3", "double", 1, SAME),
    ("3 != 3", "double", 0, SAME),
    ("2 > 1 == 1", "double", 1, SAME),
    ("1 >= 1", "double", 1, SAME),
    ("1 ~= 1.0000000001", "double", 1, SAME),
    ("1 ~= 1.1", "double", 0, SAME),
    # && || !
    ("1 && 0", "double", 0, SAME),
    ("2 && -1", "double", 1, SAME),
    ("0 || 0", "double", 0, SAME),
    ("0 || 3", "double", 1, SAME),
    ("!0", "double", 1, SAME),
    ("!5", "double", 0, SAME),
    ("1 || 0 && 0", "double", 1, SAME),
    ("!(1 > 2) && 1 < 2", "double", 1, SAME),
    ("true + false", "double", 1, SAME),
    ("if(3 in [1, 2, 3], 10, 20)", "double", 10, SAME),
    # if
    ("if(attribute(pop) > 1, 100, 200)", "double", 200, 100),
    ("if(0, 1, 2)", "double", 2, SAME),
    ("if(attribute(pop), attribute(v), 0)", "tensor<float>(x[3])", [1, 2, 3], [4, 5, 6]),
    # math functions
    ("exp(0) + log(1)", "double", 1, SAME),
    ("exp(1)", "double", E, SAME),
    ("sqrt(16)", "double", 4, SAME),
    ("sigmoid(0)", "double", 0.5, SAME),
    ("tanh(0)", "double", 0, SAME),
    ("relu(-3) + relu(2)", "double", 2, SAME),
    ("abs(-2.5)", "double", 2.5, SAME),
    ("floor(-2.5)", "double", -3, SAME),
    ("ceil(-2.5)", "double", -2, SAME),
    ("pow(2, 10)", "double", 1024, SAME),
    ("max(3, 4) + min(3, 4)", "double", 7, SAME),
    ("fmod(-7, 3)", "double", -1, SAME),
    ("isNan(0 / 0) + isNan(1)", "double", 1, SAME),
    ("log10(1000)", "double", 3, SAME),
    ("elu(-1)", "double", math.exp(-1) - 1, SAME),
    ("atan2(1, -1)", "double", 3 * math.pi / 4, SAME),
    ("fabs(-1) + sign(-3)", "double", 0, SAME),
    ("square(attribute(pop))", "double", 0.25, 4),
    ("ldexp(3, 2)", "double", 12, SAME),
    ("sin(0) + cos(0)", "double", 1, SAME),
    # attribute, query, constant: numbers are double
    ("attribute(pop) * 2", "double", 1, 4),
    ("attribute(n) / 2", "double", 1.5, -3.5),
    ("query(s) + constant(c)", "double", 3.25, SAME),
    ("query(undeclared)", "double", 0, SAME),
    ("constant(w)", "tensor<float>(x[3],y[2])", [[0, 1], [2, 3], [4, 5]], SAME),
    # profile functions, with and without arguments
    ("twice(3) + add(1, 2)", "double", 9, SAME),
    ("twice(attribute(v))", "tensor<float>(x[3])", [2, 4, 6], [8, 10, 12]),
    ("uses_boosted", "double", 15, 30),
    ("boosted()", "double", 1.5, 3),
    ("dot(attribute(v), query(q))", "double", -2, -2),
    # reduce and its shorthands; a reduction to a number is double
    ("reduce(attribute(v), sum)", "double", 6, 15),
    ("reduce(attribute(v), avg)", "double", 2, 5),
    ("reduce(attribute(v), count)", "double", 3, SAME),
    ("reduce(attribute(v), max)", "double", 3, 6),
    ("reduce(attribute(v), min)", "double", 1, 4),
    ("reduce(attribute(v), prod)", "double", 6, 120),
    ("reduce(attribute(m), sum, x)", "tensor<float>(y[3])", [3, 5, 7], [15, 17, 19]),
    ("reduce(attribute(m), avg, y)", "tensor<float>(x[2])", [1, 4], [7, 10]),
    ("reduce(attribute(m), count, y)", "tensor<float>(x[2])", [3, 3], SAME),
    ("reduce(attribute(m), max, x, y)", "double", 5, 11),
    ("sum(attribute(m))", "double", 15, 51),
    ("sum(attribute(m), y)", "tensor<float>(x[2])", [3, 12], [21, 30]),
    ("avg(attribute(dv))", "double", 2, 1 / 3),
    ("max(attribute(m), x)", "tensor<float>(y[3])", [3, 4, 5], [9, 10, 11]),
    ("min(attribute(dv))", "double", 1, -1),
    ("count(attribute(m))", "double", 6, SAME),
    ("prod(attribute(dv))", "double", 6, 0),
    # map and join with lambdas
    ("map(attribute(v), f(x)(x * x))", "tensor<float>(x[3])", [1, 4, 9], [16, 25, 36]),
    ("map(attribute(dv), f(a)(if(a > 0, a, 0)))", "tensor(x[3])", [1, 2, 3], [0, 0, 2]),
    ("map(attribute(v), f(x)(1))", "tensor<float>(x[3])", [1, 1, 1], SAME),
    ("join(attribute(v), query(q), f(a, b)(a * b))", "tensor<float>(x[3])", [1, 0, -3], [4, 0, -6]),
    ("join(attribute(v), query(qy), f(a, b)(a - b))", "tensor<float>(x[3],y[3])",
     [[0, -1, -2], [1, 0, -1], [2, 1, 0]], [[3, 2, 1], [4, 3, 2], [5, 4, 3]]),
    # tensor arithmetic joins by dimension name; a number keeps the tensor's cell type
    ("attribute(v) + query(q)", "tensor<float>(x[3])", [2, 2, 2], [5, 5, 5]),
    ("attribute(v) * query(qd)", "tensor(x[3],y[2])", [[10, 20], [20, 40], [30, 60]],
     [[40, 80], [50, 100], [60, 120]]),
    ("attribute(v) * 2", "tensor<float>(x[3])", [2, 4, 6], [8, 10, 12]),
    ("attribute(b16) * 2", "tensor<float>(x[3])", [2, 4, 6], [8, 10, 12]),
    ("attribute(i8) + 1", "tensor<float>(x[3])", [2, -1, 4], [5, 6, -5]),
    ("attribute(i8) + attribute(dv)", "tensor(x[3])", [2, 0, 6], [3, 5, -4]),
    ("attribute(v) > 2", "tensor<float>(x[3])", [0, 0, 1], [1, 1, 1]),
    ("attribute(dv) >= 2", "tensor(x[3])", [0, 1, 1], [0, 0, 1]),
    ("!attribute(dv)", "tensor(x[3])", [0, 0, 0], [0, 1, 0]),
    ("-attribute(v)", "tensor<float>(x[3])", [-1, -2, -3], [-4, -5, -6]),
    ("attribute(v) % 2", "tensor<float>(x[3])", [1, 0, 1], [0, 1, 0]),
    ("attribute(v) ^ 2", "tensor<float>(x[3])", [1, 4, 9], [16, 25, 36]),
    # rename
    ("rename(attribute(v), x, z)", "tensor<float>(z[3])", [1, 2, 3], [4, 5, 6]),
    ("rename(attribute(m), (x, y), (y, x))", "tensor<float>(x[3],y[2])", [[0, 3], [1, 4], [2, 5]],
     [[6, 9], [7, 10], [8, 11]]),
    # concat
    ("concat(attribute(v), query(q), x)", "tensor<float>(x[6])", [1, 2, 3, 1, 0, -1], [4, 5, 6, 1, 0, -1]),
    ("concat(attribute(v), 7, x)", "tensor<float>(x[4])", [1, 2, 3, 7], [4, 5, 6, 7]),
    ("concat(1, 2, x)", "tensor(x[2])", [1, 2], SAME),
    ("concat(attribute(m), query(qy), x)", "tensor<float>(x[3],y[3])", [[0, 1, 2], [3, 4, 5], [1, 2, 3]],
     [[6, 7, 8], [9, 10, 11], [1, 2, 3]]),
    # tensor generators; the dimension names are the cell's indices
    ("tensor<float>(x[3])(x)", "tensor<float>(x[3])", [0, 1, 2], SAME),
    ("tensor(x[2],y[3])(x * 10 + y)", "tensor(x[2],y[3])", [[0, 1, 2], [10, 11, 12]], SAME),
    ("tensor<float>(x[3])(attribute(pop) * x)", "tensor<float>(x[3])", [0, 0.5, 1], [0, 2, 4]),
    ("tensor(d0[1],d1[6])(attribute(ids){x:d1})", "tensor(d0[1],d1[6])", [[3, 1, 4, 1, 0, 0]],
     [[5, 9, 2, 6, 0, 0]]),  # past the end of x: 0, as Vespa's peek
    ("tensor(i[4])(attribute(ids){x:(3 - i)})", "tensor(i[4])", [1, 4, 1, 3], [6, 2, 9, 5]),
    # tensor literals: dense and cells forms; a cell value may be computed
    ("tensor<float>(x[3]):[1, 2, 3]", "tensor<float>(x[3])", [1, 2, 3], SAME),
    ("tensor(x[2],y[2]):[[1, 2], [3, 4]]", "tensor(x[2],y[2])", [[1, 2], [3, 4]], SAME),
    ("tensor(x[2]):{{x:0}:5, {x:1}:7}", "tensor(x[2])", [5, 7], SAME),
    ("tensor<float>(x[2],y[2]):{{x:0,y:1}:5, {x:1,y:0}:7}", "tensor<float>(x[2],y[2])", [[0, 5], [7, 0]], SAME),
    ("tensor(x[2]):[attribute(pop), -1]", "tensor(x[2])", [0.5, -1], [2, -1]),
    # cell_cast: bfloat16 keeps 8 significant bits, truncating (vespalib's BFloat16):
    # 1/3 is 0x1.555556p-2 as a float, 85 steps of 2^-9 and a part; 4/3 is 170.67 steps of 2^-7
    ("cell_cast(attribute(v), double)", "tensor(x[3])", [1, 2, 3], [4, 5, 6]),
    ("cell_cast(attribute(dv), bfloat16)", "tensor<bfloat16>(x[3])", [1, 2, 3], [-1, 0, 2]),
    ("cell_cast(attribute(v) / 3, bfloat16)", "tensor<bfloat16>(x[3])", [85 / 256, 170 / 256, 1],
     [170 / 128, 213 / 128, 2]),
    # slicing: by dimension, by position, with computed indices; a single cell is a double
    ("attribute(v){x:1}", "double", 2, 5),
    ("attribute(v)[2]", "double", 3, 6),
    ("attribute(m){x:1}", "tensor<float>(y[3])", [3, 4, 5], [9, 10, 11]),
    ("attribute(m){y:2, x:0}", "double", 2, 8),
    ("attribute(v)[attribute(pop)]", "double", 1, 6),  # indices truncate: 0.5 -> 0
    ("attribute(v){x:(1 + 1)}", "double", 3, 6),
    ("attribute(v)[attribute(pop) + 0.5]", "double", 2, 6),
    # l2_normalize, matmul, softmax, xw_plus_b, argmax, cosine_similarity and friends
    ("l2_normalize(tensor(x[2]):[3, 4], x)", "tensor(x[2])", [0.6, 0.8], SAME),
    ("l2_normalize(attribute(m), y)", "tensor<float>(x[2],y[3])",
     [[0, 1 / S5, 2 / S5], [3 / S50, 4 / S50, 5 / S50]],
     [[6 / math.sqrt(149), 7 / math.sqrt(149), 8 / math.sqrt(149)],
      [9 / math.sqrt(302), 10 / math.sqrt(302), 11 / math.sqrt(302)]]),
    ("matmul(attribute(v), constant(w), x)", "tensor<float>(y[2])", [16, 22], [34, 49]),
    ("matmul(attribute(m), query(qy), y)", "tensor<float>(x[2])", [8, 26], [44, 62]),
    ("softmax(tensor(x[2]):[0, 0], x)", "tensor(x[2])", [0.5, 0.5], SAME),
    ("softmax(tensor(x[3]):[1, 2, 3], x)", "tensor(x[3])", [s / sum(SOFT) for s in SOFT], SAME),
    ("xw_plus_b(attribute(v), constant(w), query(qd), x)", "tensor(y[2])", [26, 42], [44, 69]),
    ("argmax(attribute(ids), x)", "tensor<float>(x[4])", [0, 0, 1, 0], [0, 1, 0, 0]),
    ("argmin(attribute(ids))", "tensor<float>(x[4])", [0, 1, 0, 1], [0, 0, 1, 0]),
    ("argmax(attribute(m), y)", "tensor<float>(x[2],y[3])", [[0, 0, 1], [0, 0, 1]], SAME),
    ("cosine_similarity(attribute(v), query(q), x)", "double", -2 / math.sqrt(28), -2 / math.sqrt(154)),
    ("cosine_similarity(tensor(x[2]):[1, 0], tensor(x[2]):[0, 1], x)", "double", 0, SAME),
    ("euclidean_distance(tensor(x[2]):[0, 0], tensor(x[2]):[3, 4], x)", "double", 5, SAME),
    ("l1_normalize(tensor(x[4]):[1, 1, 2, 4], x)", "tensor(x[4])", [0.125, 0.125, 0.25, 0.5], SAME),
    ("expand(attribute(pop), z)", "tensor(z[1])", [0.5], [2]),
    ("range(3)", "tensor(i[3])", [0, 1, 2], SAME),
    ("diag(2, 2)", "tensor(i[2],j[2])", [[1, 0], [0, 1]], SAME),
    # onnx(...) in every form (models below: one.onnx y = mi * 3; two.onnx doubled = mi * 2,
    # plus_one = mi + 1; their input mi is bound by the function mi = rename(attribute(v), x, d0))
    ('onnx("one.onnx")', "tensor<float>(d0[3])", [3, 6, 9], [12, 15, 18]),
    ('onnx("two.onnx", "plus_one")', "tensor<float>(d0[3])", [2, 3, 4], [5, 6, 7]),
    ("onnx(one)", "tensor<float>(d0[3])", [3, 6, 9], [12, 15, 18]),
    ("onnx(two).doubled", "tensor<float>(d0[3])", [2, 4, 6], [8, 10, 12]),
    ('onnx("two.onnx").plus_one', "tensor<float>(d0[3])", [2, 3, 4], [5, 6, 7]),
    ("onnx(two, doubled)", "tensor<float>(d0[3])", [2, 4, 6], [8, 10, 12]),
    ("sum(onnx(one)) + attribute(pop)", "double", 18.5, 47),
]


def _models() -> dict[str, onnx.ModelProto]:
    def model(name: str, outputs: list[tuple[str, str, float]]) -> onnx.ModelProto:
        nodes = []
        inits = []
        for out, op, k in outputs:
            inits.append(helper.make_tensor(f"k_{out}", TensorProto.FLOAT, [], [k]))
            nodes.append(helper.make_node(op, ["mi", f"k_{out}"], [out]))
        graph = helper.make_graph(
            nodes, name,
            [helper.make_tensor_value_info("mi", TensorProto.FLOAT, [3])],
            [helper.make_tensor_value_info(out, TensorProto.FLOAT, [3]) for out, _, _ in outputs],
            inits,
        )
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])

    return {"one": model("one", [("y", "Mul", 3.0)]),
            "two": model("two", [("doubled", "Mul", 2.0), ("plus_one", "Add", 1.0)])}


MODELS = _models()


def load_model(ref: str, loc: Location) -> tuple[str, onnx.ModelProto]:
    name = ref.removesuffix(".onnx")
    if name not in MODELS:
        raise RankingError(f"no model {ref}", loc)
    return f"{name}.onnx", MODELS[name]


MODEL_FUNCTIONS = {"mi": ((), "rename(attribute(v), x, d0)")}


def test_table_is_large_enough() -> None:
    assert len(TABLE) >= 60


@pytest.mark.parametrize(("expr", "type_", "doc0", "doc1"), TABLE, ids=[row[0] for row in TABLE])
def test_expression(expr: str, type_: str, doc0: Any, doc1: Any) -> None:
    value, t = evaluate(expr, MODEL_FUNCTIONS, load_model)
    assert str(t) == type_
    want = np.asarray([doc0, doc0 if doc1 is SAME else doc1], dtype=np.float64)
    got = np.asarray(value).astype(np.float64)
    assert got.shape == want.shape, f"shape {got.shape}, want {want.shape}"
    # float cells carry about 7 significant digits, doubles about 16
    rtol = 1e-12 if "<" not in type_ else 1e-6
    np.testing.assert_allclose(got, want, rtol=rtol, atol=1e-12)
