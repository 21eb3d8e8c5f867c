"""Vespa's rules that its tensor conformance spec tests little or not at all, each checked
against values worked out here (by hand, or with numpy written in the test):
generator variables are numbers, NaN in max/min keeps the first operand, bfloat16
conversion truncates, peeks out of range give 0, `~=` is vespalib's approx_equal, and
int8/bfloat16 cells are kept where Vespa's CellMeta keeps them."""

from __future__ import annotations

import math
from typing import Any

import ml_dtypes
import numpy as np
import pytest

from cpu_fallback import NumpyBackend
from tensor_ir import build
from tensor_ir.casts import truncate_to_bfloat16
from tensor_ir.dtypes import CellType
from tensor_ir.expr.values import convert
from tensor_ir.ir import Role
from tensor_ir.program import Program

from .helpers import evaluate

SAME = object()

RULES: list[tuple[str, str, Any, Any]] = [
    # generator variables: one number per cell, so reducing one reduces nothing
    ("tensor(x[3])(reduce(x, sum))", "tensor(x[3])", [0, 1, 2], SAME),
    ("tensor(x[3])(reduce(x, count))", "tensor(x[3])", [1, 1, 1], SAME),
    ("tensor(x[3])(sum(x) + count(attribute(v)))", "tensor(x[3])", [3, 4, 5], SAME),
    ("tensor(x[2],y[2])(max(x + y))", "tensor(x[2],y[2])", [[0, 1], [1, 2]], SAME),
    # a generator's dimension shadows a name; nested generators each see their own
    ("tensor(x[2])(tensor(x[3])(x * 10){x:(x + 1)})", "tensor(x[2])", [10, 20], SAME),
    ("tensor(x[2],z[2])(tensor(x[2],z[2])(x * 10 + z){x:(z), z:(x)})", "tensor(x[2],z[2])",
     [[0, 10], [1, 11]], SAME),
    ("tensor(y[2])(tensor(x[2]):[y, 5 + y]{x:1})", "tensor(y[2])", [5, 6], SAME),
    ("tensor(i[3])(attribute(v){x:(2 - i)})", "tensor(i[3])", [3, 2, 1], [6, 5, 4]),
    # so are a lambda's parameters: map and join apply it to one cell at a time
    ("map(attribute(v), f(a)(reduce(a, sum)))", "tensor<float>(x[3])", [1, 2, 3], [4, 5, 6]),
    ("map(attribute(v), f(a)(count(a)))", "tensor<float>(x[3])", [1, 1, 1], [1, 1, 1]),
    ("join(attribute(v), attribute(dv), f(a, b)(sum(a) * max(b)))", "tensor(x[3])", [1, 4, 9], [-4, 0, 12]),
    ("tensor(x[3])(map(x, f(v)(v * 2)))", "tensor(x[3])", [0, 2, 4], SAME),
    ("tensor(y[2])(sum(map(attribute(v), f(a)(a * y))))", "tensor(y[2])", [0, 6], [0, 15]),
    # peek: out of range gives 0, labels truncate toward zero, also for constant labels
    ("attribute(v){x:3}", "double", 0, 0),
    ("attribute(v){x:-1}", "double", 0, 0),
    ("attribute(v){x:1.9}", "double", 2, 5),
    ("attribute(v){x:(-0.5)}", "double", 1, 4),
    ("attribute(m){x:5}", "tensor<float>(y[3])", [0, 0, 0], [0, 0, 0]),
    ("tensor(y[4])(attribute(v){x:(y - 1)})", "tensor(y[4])", [0, 1, 2, 3], [0, 4, 5, 6]),
    # max and min keep the first operand where either is NaN (std::max)
    ("max(tensor(x[3]):[0/0, 1, 0/0], tensor(x[3]):[1, 0/0, 0/0])", "tensor(x[3])", [math.nan, 1, math.nan], SAME),
    ("min(tensor(x[3]):[0/0, 1, 2], tensor(x[3]):[1, 0/0, 0])", "tensor(x[3])", [math.nan, 1, 0], SAME),
    ("reduce(tensor(x[3]):[1, 0/0, 3], max)", "double", 3, SAME),
    ("reduce(tensor(x[3]):[0/0, 1, 3], max)", "double", math.nan, SAME),
    ("reduce(tensor(x[2],y[3]):[[1, 0/0, 3], [0/0, 1, 3]], min, y)", "tensor(x[2])", [1, math.nan], SAME),
    # `in []` holds nothing; four-argument if ignores the probability
    ("attribute(pop) in []", "double", 0, 0),
    ("if(attribute(pop) > 1, 10, 20, 0.25)", "double", 20, 10),
    # cell types: concat and if keep int8/bfloat16 (no decay), a join decays them to float
    ("concat(attribute(i8), attribute(i8), x)", "tensor<int8>(x[6])", [1, -2, 3, 1, -2, 3], [4, 5, -6, 4, 5, -6]),
    ("concat(attribute(b16), 7.5, x)", "tensor<bfloat16>(x[4])", [1, 2, 3, 7.5], [4, 5, 6, 7.5]),
    ("concat(attribute(i8), attribute(b16), y)", "tensor<float>(x[3],y[2])", [[1, 1], [-2, 2], [3, 3]],
     [[4, 4], [5, 5], [-6, 6]]),
    ("if(attribute(pop) > 1, attribute(i8), attribute(i8) * 0)", "tensor<float>(x[3])", [0, 0, 0], [4, 5, -6]),
    ("if(attribute(pop) > 1, attribute(i8), -attribute(i8){x:0} + attribute(i8) - attribute(i8))",
     "tensor<float>(x[3])", [-1, -1, -1], [4, 5, -6]),
    ("rename(attribute(i8), x, z)", "tensor<int8>(z[3])", [1, -2, 3], [4, 5, -6]),
    ("attribute(i8) + attribute(i8)", "tensor<float>(x[3])", [2, -4, 6], [8, 10, -12]),
    # int8 conversion truncates toward zero; bfloat16 keeps a float's upper 16 bits
    ("tensor<int8>(x[4])(x * 1.5)", "tensor<int8>(x[4])", [0, 1, 3, 4], SAME),
    ("tensor<bfloat16>(x[2]):[1/3, -1/3]", "tensor<bfloat16>(x[2])", [85 / 256, -85 / 256], SAME),
    ("tensor<bfloat16>(x[2])((x + 1) / 3)", "tensor<bfloat16>(x[2])", [85 / 256, 170 / 256], SAME),
]


@pytest.mark.parametrize(("expr", "type_", "doc0", "doc1"), RULES, ids=[r[0] for r in RULES])
def test_vespa_rule(expr: str, type_: str, doc0: Any, doc1: Any) -> None:
    value, t = evaluate(expr)
    assert str(t) == type_
    want = np.asarray([doc0, doc0 if doc1 is SAME else doc1], dtype=np.float64)
    got = np.asarray(value).astype(np.float64)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-7, atol=0, equal_nan=True)


def _approx_equal(a: float, b: float) -> bool:
    """vespalib/util/approx.h, written out with numpy's float32 nextafter."""
    if a == b:
        return True
    f32 = np.float32
    with np.errstate(all="ignore"):
        if a > 1.0 or a < -1.0:
            return bool(np.nextafter(f32(b / a), f32(1.0)) == f32(1.0))
        aa = f32(a)
        return bool(aa == np.nextafter(f32(b), aa))


def _pairs() -> list[tuple[float, float]]:
    step = float(np.spacing(np.float32(1.0)))
    pairs = [(1.0, 1.0 + 0.4 * step), (1.0, 1.0 + 2.5 * step), (1.0, 1.0 + 1.4 * step), (0.5, 0.5 + 1e-9),
             (0.5, 0.5000001), (0.5, 0.5000003), (2.0, 2.0000002), (2.0, 2.0000005), (-3.0, -3.0000002),
             (1e300, 1.0000001e300), (1e300, 1.000001e300), (0.0, 1e-46), (0.0, 1e-44), (1e-40, 1.1e-40),
             (0.25, 1e300), (1.5, -1.5), (0.9999999, 1.0000001), (1.0, 0.99999994), (1.0, 0.9999999)]
    rng = np.random.default_rng(12)
    for _ in range(60):
        a = float(rng.uniform(-4, 4))
        pairs.append((a, a * (1 + float(rng.choice([1, -1])) * 10 ** float(rng.uniform(-9, -6)))))
    return pairs


def test_approx_equal_is_vespas() -> None:
    pairs = _pairs()
    a = ",".join(repr(x) for x, _ in pairs)
    b = ",".join(repr(y) for _, y in pairs)
    n = len(pairs)
    value, t = evaluate(f"tensor(i[{n}]):[{a}] ~= tensor(i[{n}]):[{b}]")
    want = [1.0 if _approx_equal(x, y) else 0.0 for x, y in pairs]
    assert str(t) == f"tensor(i[{n}])"
    assert 0 < sum(want) < n  # both outcomes are exercised
    assert np.asarray(value)[0].tolist() == want


def _bits_truncated(x: np.ndarray) -> np.ndarray:
    f = x.astype(np.float32)
    return (f.view(np.uint32) & np.uint32(0xFFFF0000)).view(np.float32)


def test_bfloat16_truncation_host_and_program_agree_with_the_bits() -> None:
    rng = np.random.default_rng(3)
    edge = [0.0, -0.0, 1.0, -1.0, 1 / 3, -1 / 3, 3.3895313e38, 3.4028235e38, -3.4028235e38, 1e-40, -1e-40,
            2.0 - 2**-9, 1.0 + 2**-8, 1.0 + 3 * 2**-9, math.inf, -math.inf, math.nan]
    values = np.concatenate([np.asarray(edge), rng.standard_normal(500) * 10.0 ** rng.integers(-30, 30, 500)])
    want = _bits_truncated(values)
    host = truncate_to_bfloat16(values)
    assert host.dtype == ml_dtypes.bfloat16
    np.testing.assert_array_equal(host.astype(np.float32), want)
    x = build.input_("attribute(x)", Role.ATTRIBUTE, values.shape, CellType.FLOAT64)
    program = Program({"y": convert(x, CellType.BFLOAT16)})
    out = NumpyBackend().run(program, {"attribute(x)": values[None, :]}, 1)["y"]
    np.testing.assert_array_equal(np.asarray(out[0]).astype(np.float32), want)


def test_fed_bfloat16_values_truncate_too() -> None:
    from tensor_ir.expr.tensor_json import tensor_from_json
    from tensor_ir.expr.types import parse_type

    got = tensor_from_json({"values": [1 / 3, -4 / 3, 2.0]}, parse_type("tensor<bfloat16>(x[3])"))
    assert got.dtype == ml_dtypes.bfloat16
    assert got.astype(np.float64).tolist() == [85 / 256, -170 / 128, 2.0]
