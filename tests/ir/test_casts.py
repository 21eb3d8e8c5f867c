"""The cast rules of tensor_ir.casts, against values worked out by hand.

Every expected value here is written out, never computed with numpy's astype: the cases
are exactly those where a C conversion is undefined and numpy's answer depends on the host
(NaN, infinities, out-of-range values, negative values into unsigned types).
"""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np
import pytest

from tensor_ir import build
from tensor_ir.casts import cast_cells, int_range
from tensor_ir.dtypes import CellType
from tensor_ir.ir import Role
from tensor_ir.program import Program

C = CellType
NAN, INF = float("nan"), float("inf")
# the values every float -> int case below is worked out for
SOURCE = [0.0, -0.0, 0.9, -0.9, 1.5, -1.5, -1.0, 127.0, 128.0, -129.0, 255.0, 256.0, 65535.0, 65536.0,
          -32769.0, 2.0**31, -(2.0**31) - 2048.0, 2.0**63, -(2.0**63), 2.0**64, 1e300, -1e300, NAN, INF, -INF]
WANT: dict[CellType, list[int]] = {
    C.INT8: [0, 0, 0, 0, 1, -1, -1, 127, 127, -128, 127, 127, 127, 127,
             -128, 127, -128, 127, -128, 127, 127, -128, 0, 127, -128],
    C.UINT8: [0, 0, 0, 0, 1, 0, 0, 127, 128, 0, 255, 255, 255, 255,
              0, 255, 0, 255, 0, 255, 255, 0, 0, 255, 0],
    C.INT16: [0, 0, 0, 0, 1, -1, -1, 127, 128, -129, 255, 256, 32767, 32767,
              -32768, 32767, -32768, 32767, -32768, 32767, 32767, -32768, 0, 32767, -32768],
    C.UINT16: [0, 0, 0, 0, 1, 0, 0, 127, 128, 0, 255, 256, 65535, 65535,
               0, 65535, 0, 65535, 0, 65535, 65535, 0, 0, 65535, 0],
    C.INT32: [0, 0, 0, 0, 1, -1, -1, 127, 128, -129, 255, 256, 65535, 65536,
              -32769, 2147483647, -2147483648, 2147483647, -2147483648, 2147483647, 2147483647, -2147483648, 0,
              2147483647, -2147483648],
    C.UINT32: [0, 0, 0, 0, 1, 0, 0, 127, 128, 0, 255, 256, 65535, 65536,
               0, 2147483648, 0, 4294967295, 0, 4294967295, 4294967295, 0, 0, 4294967295, 0],
    C.INT64: [0, 0, 0, 0, 1, -1, -1, 127, 128, -129, 255, 256, 65535, 65536,
              -32769, 2147483648, -2147485696, 2**63 - 1, -(2**63), 2**63 - 1, 2**63 - 1, -(2**63), 0,
              2**63 - 1, -(2**63)],
    C.UINT64: [0, 0, 0, 0, 1, 0, 0, 127, 128, 0, 255, 256, 65535, 65536,
               0, 2147483648, 0, 2**63, 0, 2**64 - 1, 2**64 - 1, 0, 0, 2**64 - 1, 0],
    # int64 first (NaN 0, truncation, saturation), then the low bits, two's complement
    C.INT4: [0, 0, 0, 0, 1, -1, -1, -1, 0, -1, -1, 0, -1, 0,
             -1, 0, 0, -1, 0, -1, -1, 0, 0, -1, 0],
    C.UINT4: [0, 0, 0, 0, 1, 15, 15, 15, 0, 15, 15, 0, 15, 0,
              15, 0, 0, 15, 0, 15, 15, 0, 0, 15, 0],
    C.INT2: [0, 0, 0, 0, 1, -1, -1, -1, 0, -1, -1, 0, -1, 0,
             -1, 0, 0, -1, 0, -1, -1, 0, 0, -1, 0],
    C.UINT2: [0, 0, 0, 0, 1, 3, 3, 3, 0, 3, 3, 0, 3, 0,
              3, 0, 0, 3, 0, 3, 3, 0, 0, 3, 0],
}


def as_ints(a: np.ndarray[Any, Any]) -> list[int]:
    return [int(v) for v in a.astype(np.int64 if a.dtype != np.uint64 else np.uint64).tolist()]


@pytest.mark.parametrize("to", sorted(WANT, key=lambda t: t.name))
def test_float64_to_every_integer_type(to: CellType) -> None:
    got = cast_cells(np.array(SOURCE, np.float64), C.FLOAT64, to)
    assert got.dtype == to.np_dtype
    assert as_ints(got) == WANT[to]


# SOURCE's values that float16 and bfloat16 hold exactly (0.9 is inexact, but truncates to 0 all the same)
EXACT_IN_HALVES = [0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 22, 23, 24]


@pytest.mark.parametrize("src", [C.FLOAT32, C.FLOAT16, C.BFLOAT16])
@pytest.mark.parametrize("to", [C.UINT16, C.INT8, C.UINT64, C.INT4])
def test_narrower_float_sources_follow_the_same_rules(src: CellType, to: CellType) -> None:
    x = np.array([SOURCE[i] for i in EXACT_IN_HALVES], np.float64).astype(src.np_dtype)
    assert as_ints(cast_cells(x, src, to)) == [WANT[to][i] for i in EXACT_IN_HALVES]


def test_the_host_dependent_case_of_the_issue() -> None:
    # bfloat16 -1.0 into uint16: numpy gives 65535 on one host and 0 on another
    got = cast_cells(np.array([-1.0, 2.5], ml_dtypes.bfloat16), C.BFLOAT16, C.UINT16)
    assert got.tolist() == [0, 2]


@pytest.mark.parametrize(("src", "values", "to", "want"), [
    (C.INT64, [200, -200, 2**40 + 5, -1], C.INT8, [-56, 56, 5, -1]),
    (C.INT32, [-1, 65536 + 7, 300], C.UINT16, [65535, 7, 300]),
    (C.UINT64, [2**64 - 1, 2**63], C.INT64, [-1, -(2**63)]),
    (C.INT8, [-1, -128], C.UINT64, [2**64 - 1, 2**64 - 128]),
    (C.INT64, [-18, 15, 200, -129, 7, -8], C.INT4, [-2, -1, -8, -1, 7, -8]),
    (C.INT64, [-18, 15, 200, -129], C.UINT4, [14, 15, 8, 15]),
    (C.INT32, [5, -3, 2, -2], C.INT2, [1, 1, -2, -2]),
    (C.UINT64, [2**64 - 1, 6], C.UINT2, [3, 2]),
])
def test_integers_keep_their_low_bits(src: CellType, values: list[int], to: CellType, want: list[int]) -> None:
    got = cast_cells(np.array(values, dtype=src.np_dtype), src, to)
    assert as_ints(got) == want


def test_narrow_ints_widen_exactly() -> None:
    x = np.array([-8, -1, 0, 7], ml_dtypes.int4)
    assert cast_cells(x, C.INT4, C.INT64).tolist() == [-8, -1, 0, 7]
    assert cast_cells(x, C.INT4, C.UINT8).tolist() == [248, 255, 0, 7]
    assert cast_cells(x, C.INT4, C.FLOAT32).tolist() == [-8.0, -1.0, 0.0, 7.0]


def test_bool_targets_and_sources() -> None:
    assert cast_cells(np.array([0.0, -0.0, NAN, 1e-40, -INF]), C.FLOAT64, C.BOOL).tolist() == \
        [False, False, True, True, True]
    assert cast_cells(np.array([0, 3, -1], np.int8), C.INT8, C.BOOL).tolist() == [False, True, True]
    assert cast_cells(np.array([True, False]), C.BOOL, C.FLOAT32).tolist() == [1.0, 0.0]
    assert cast_cells(np.array([True, False]), C.BOOL, C.INT4).tolist() == [1, 0]


def test_float8_saturates_and_e8m0_rounds() -> None:
    # float8e4m3fn's largest finite value is 448; saturate clips, else 470 rounds to NaN (464 would tie to 448)
    x = np.array([1000.0, -INF, 470.0, 0.5], np.float32)
    sat = cast_cells(x, C.FLOAT32, C.FLOAT8E4M3FN, saturate=True).astype(np.float32)
    assert sat.tolist() == [448.0, -448.0, 448.0, 0.5]
    raw = cast_cells(x, C.FLOAT32, C.FLOAT8E4M3FN, saturate=False).astype(np.float32)
    assert np.isnan(raw[:3]).all() and raw[3] == 0.5
    e = cast_cells(np.array([3.0, 1.5, 0.0], np.float32), C.FLOAT32, C.FLOAT8E8M0, True, "nearest")
    assert e.astype(np.float32).tolist() == [4.0, 2.0, 2.0**-127]


def test_int_range() -> None:
    assert int_range(C.INT4) == (-8, 7) and int_range(C.UINT2) == (0, 3)
    assert int_range(C.UINT64) == (0, 2**64 - 1) and int_range(C.INT16) == (-32768, 32767)


def test_a_program_cast_runs_the_same_rules() -> None:
    # the reference kernel (and through it constant folding and the numpy backend) uses them
    from cpu_fallback import NumpyBackend

    x = build.input_("x", Role.ATTRIBUTE, (4,), C.FLOAT32)
    program = Program({"y": build.cast(x, C.UINT8)})
    feeds = {"x": np.array([[-1.0, NAN, 300.0, 2.9], [INF, -INF, 255.5, 0.0]], np.float32)}
    got = NumpyBackend().run(program, feeds, 2)["y"]
    assert np.asarray(got).tolist() == [[0, 0, 255, 2], [255, 0, 255, 0]]
    folded = build.cast(build.constant(np.array([-1.0, 1e10], np.float32)), C.INT16)
    assert folded.value.tolist() == [-1, 32767]
