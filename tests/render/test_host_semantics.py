"""The arithmetic of rendered kernels, run on the host with g++, against the reference.

Every unary and binary function and every cast that `expressions.can_fuse` accepts, for every
cell type the GPU holds, is rendered as a one-node kernel and evaluated on edge values
(zeros of both signs, halves, infinities, NaN, the integer extremes, values past every
integer range, so casts are checked where C leaves them undefined); reductions with
their post-map chains likewise. Expected values come from the numpy backend, i.e. from
tensor_ir.reference. What this cannot see (CUDA's own libm, -ftz, CuPy's reduction
template) the NVRTC test and the GPU run of tests/backends cover.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from cpu_fallback import NumpyBackend
from gpu_engine.expressions import GPU_CELL_TYPES, can_fuse
from gpu_engine.render import KernelSource, render_group
from tensor_ir import build
from tensor_ir.dtypes import CellType
from tensor_ir.ir import BINARY_FUNCTIONS, UNARY_FUNCTIONS, Node, Role
from tensor_ir.passes.fusion import fuse
from tensor_ir.program import Program
from tests.render.host_cpp import HostKernels, available

pytestmark = pytest.mark.skipif(available() is not None, reason=str(available()))

TYPES = sorted(GPU_CELL_TYPES, key=lambda t: t.name)
FLOAT_VALUES = [0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 1.5, 2.5, -2.5, 3.75, -3.75, 0.001, 7.0, -100.0, 1e4,
                300.0, -200.0, 70000.0, 3e9, -3e9, 1e20, -1e20, np.inf, -np.inf, np.nan]


def values(ct: CellType) -> np.ndarray[Any, Any]:
    if ct.is_bool:
        return np.array([False, True])
    if ct.is_float:
        with np.errstate(over="ignore"):
            return np.array(FLOAT_VALUES, dtype=np.float64).astype(ct.np_dtype)
    info = np.iinfo(ct.np_dtype)
    base = [0, 1, -1, 2, -2, 3, 7, -7, 8, 31, 64, -100, 100, info.min, info.max, info.min + 1, info.max - 1]
    return np.array([v % (2 ** (8 * info.bits // 8)) if info.min == 0 else v for v in base],
                    dtype=np.int64 if info.min < 0 else np.uint64).astype(ct.np_dtype)


def doc(name: str, ct: CellType, shape: tuple[int, ...] = ()) -> Node:
    return build.input_(name, Role.ATTRIBUTE, shape, ct)


class Case:
    def __init__(self, label: str, root: Node, feeds: dict[str, np.ndarray[Any, Any]], m: int = 1) -> None:
        self.label = label
        self.program = Program({"out": root})
        plan = fuse(self.program, can_fuse)
        assert len(plan.steps) == 1 and plan.groups, f"{label}: {plan.describe()}"
        self.group = plan.groups[0]
        self.source: KernelSource = render_group(self.group)
        self.feeds = feeds
        self.m = m


def unary_cases() -> Iterator[Case]:
    for fn, ct in itertools.product(sorted(UNARY_FUNCTIONS), TYPES):
        x = doc("x", ct)
        try:
            node = build.map_(fn, x)
        except ValueError:
            continue
        if can_fuse(node):
            yield Case(f"{fn}[{ct.np_name}]", node, {"x": values(ct)})


def binary_cases() -> Iterator[Case]:
    for fn, ct in itertools.product(sorted(BINARY_FUNCTIONS), TYPES):
        x, y = doc("x", ct), doc("y", ct)
        try:
            node = build.join(fn, x, y)
        except ValueError:
            continue
        if can_fuse(node):
            v = values(ct)
            a, b = np.meshgrid(v, v, indexing="ij")
            yield Case(f"{fn}[{ct.np_name}]", node, {"x": a.reshape(-1), "y": b.reshape(-1)})


def cast_cases() -> Iterator[Case]:
    for src, to in itertools.product(TYPES, TYPES):
        if src is to:
            continue
        node = build.cast(doc("x", src), to)
        if can_fuse(node):
            yield Case(f"cast[{src.np_name}->{to.np_name}]", node, {"x": values(src)})


def other_cases() -> Iterator[Case]:
    for ct in TYPES:
        c, a, b = doc("c", CellType.BOOL), doc("a", ct), doc("b", ct)
        v = values(ct)
        cond = (np.arange(v.size) % 2).astype(bool)
        yield Case(f"select[{ct.np_name}]", build.select(c, a, b), {"c": cond, "a": v, "b": v[::-1].copy()})
    # chains mixing cell types, with immediates and rounding of every half-type node
    x = doc("x", CellType.FLOAT16)
    h = build.join("mul", build.map_("exp", x), build.scalar(3.0, CellType.FLOAT16))
    h = build.cast(build.join("add", h, build.scalar(0.1, CellType.FLOAT16)), CellType.FLOAT32)
    yield Case("f16-chain", h, {"x": values(CellType.FLOAT16)})
    d = doc("d", CellType.FLOAT64)
    yield Case("f64->f16", build.cast(build.join("div", d, build.scalar(3.0, CellType.FLOAT64)), CellType.FLOAT16),
               {"d": np.array([1.0 + 2**-11 + 2**-40, 1 / 3, 65519.0, 65520.0, -2.0**-25, np.nan])})
    i = doc("i", CellType.INT32)
    yield Case("int-chain", build.join("mod", build.join("mul", i, build.scalar(-3, CellType.INT32)),
                                       build.scalar(7, CellType.INT32)), {"i": values(CellType.INT32)})


def reduce_cases() -> Iterator[Case]:
    for agg, ct in itertools.product(["sum", "prod", "max", "min"], TYPES):
        if ct.is_bool and agg in ("sum", "prod"):
            continue
        x = doc("x", ct, (4,))
        node = build.reduce(x, agg, [0], False)
        v = values(ct)
        v = np.resize(v, (v.size * 4 + 3) // 4 * 4)
        if ct.is_float:
            # no cancellation of huge values: float sums differ with the order of their terms
            f = v.astype(np.float64)
            v = np.where(np.isfinite(f) & (np.abs(f) > 1e4), 1e4, f).astype(ct.np_dtype)
        if agg == "prod" and ct.is_float:
            v = np.where(np.abs(v.astype(np.float64)) > 10, 1.5, v).astype(ct.np_dtype)
        yield Case(f"reduce-{agg}[{ct.np_name}]", node, {"x": v.reshape(-1, 4)}, m=4)
    # a pre-map chain, a reduction and a post-map chain in one kernel (softmax denominator)
    x = doc("x", CellType.FLOAT32, (4,))
    s = build.reduce(build.map_("exp", build.join("sub", x, build.scalar(1.0, CellType.FLOAT32))), "sum", [0], True)
    post = build.map_("log", build.join("mul", s, build.scalar(0.25, CellType.FLOAT32)))
    yield Case("pre-reduce-post", post, {"x": np.linspace(-3, 3, 32, dtype=np.float32).reshape(-1, 4)}, m=4)
    x16 = doc("x", CellType.FLOAT16, (4,))
    yield Case("reduce-f16-mean", build.join("div", build.reduce(x16, "sum", [0], False),
                                             build.scalar(4.0, CellType.FLOAT16)),
               {"x": np.linspace(-3, 3, 32, dtype=np.float16).reshape(-1, 4)}, m=4)


def all_cases() -> list[Case]:
    return [*unary_cases(), *binary_cases(), *cast_cases(), *other_cases(), *reduce_cases()]


@pytest.fixture(scope="module")
def compiled() -> Iterator[tuple[list[Case], HostKernels]]:
    cases = all_cases()
    lib = HostKernels([c.source for c in cases])
    yield cases, lib
    lib.close()


def expected(case: Case) -> np.ndarray[Any, Any]:
    n = next(iter(case.feeds.values())).shape[0]
    with np.errstate(all="ignore"):
        out = NumpyBackend().run(case.program, case.feeds, n)["out"]
    return np.asarray(out).reshape(-1)


def tolerance(case: Case) -> float:
    t = case.source.out_type
    if "erf" in case.label:
        return 2e-6  # the reference's erf is an approximation good to about 1e-7
    return {CellType.FLOAT16: 1e-3, CellType.BFLOAT16: 8e-3, CellType.FLOAT32: 5e-7}.get(t, 1e-14)


def mismatches(case: Case, got: np.ndarray[Any, Any], want: np.ndarray[Any, Any]) -> list[str]:
    if got.dtype.kind in "fV" or case.source.out_type.is_float:
        g, w = got.astype(np.float64), want.astype(np.float64)
        # subnormal results may be flushed (numpy's SIMD paths and CUDA's -ftz=true both do)
        tiny = float(np.finfo(np.float32).tiny) if case.source.out_type is CellType.FLOAT32 else 0.0
        ok = (np.isnan(g) & np.isnan(w)) | (g == w) | np.isclose(g, w, rtol=tolerance(case), atol=tiny)
    else:
        ok = got == want
    bad = np.flatnonzero(~ok)
    inputs = {k: v.reshape(-1) if case.m == 1 else v.reshape(-1, case.m) for k, v in case.feeds.items()}
    return [f"{case.label}: inputs {[inputs[k][i].tolist() for k in inputs]} -> {got[i]!r}, reference {want[i]!r}"
            for i in bad[:5]]


def test_rendered_arithmetic_matches_the_reference(compiled: tuple[list[Case], HostKernels]) -> None:
    cases, lib = compiled
    problems: list[str] = []
    for k, case in enumerate(cases):
        args = [case.feeds[leaf.attrs["name"]] for leaf in case.group.leaves]
        got = lib.run(k, args, case.m)
        problems += mismatches(case, got, expected(case))
    assert len(cases) > 300
    assert not problems, "\n".join(problems[:60])


# float -> int outside the target's range, where C (and numpy's astype) leave the result
# undefined: tensor_ir.casts gives 0 for NaN and saturates the rest at the target's range.
# Worked out by hand from those rules.
OUT_OF_RANGE = np.array([np.nan, np.inf, -np.inf, 3e9, -3e9, 300.7, -300.7, 1e20, -1e20, 2.5e19, 40000.5, 70000.2])
I32_MAX, I32_MIN, I64_MAX, I64_MIN = 2**31 - 1, -(2**31), 2**63 - 1, -(2**63)
EXPECTED_OUT_OF_RANGE = {
    CellType.INT8: [0, 127, -128, 127, -128, 127, -128, 127, -128, 127, 127, 127],
    CellType.INT16: [0, 32767, -32768, 32767, -32768, 300, -300, 32767, -32768, 32767, 32767, 32767],
    CellType.INT32: [0, I32_MAX, I32_MIN, I32_MAX, I32_MIN, 300, -300, I32_MAX, I32_MIN, I32_MAX, 40000, 70000],
    CellType.INT64: [0, I64_MAX, I64_MIN, 3000000000, -3000000000, 300, -300, I64_MAX, I64_MIN, I64_MAX, 40000, 70000],
    CellType.UINT8: [0, 255, 0, 255, 0, 255, 0, 255, 0, 255, 255, 255],
    CellType.UINT16: [0, 65535, 0, 65535, 0, 300, 0, 65535, 0, 65535, 40000, 65535],
    CellType.UINT32: [0, 2**32 - 1, 0, 3000000000, 0, 300, 0, 2**32 - 1, 0, 2**32 - 1, 40000, 70000],
    CellType.UINT64: [0, 2**64 - 1, 0, 3000000000, 0, 300, 0, 2**64 - 1, 0, 2**64 - 1, 40000, 70000],
}


def test_out_of_range_float_to_int_casts_saturate() -> None:
    cases = []
    for to in EXPECTED_OUT_OF_RANGE:
        for src in (CellType.FLOAT32, CellType.FLOAT64):
            cases.append(Case(f"cast[{src.np_name}->{to.np_name}]", build.cast(doc("x", src), to),
                              {"x": OUT_OF_RANGE.astype(src.np_dtype)}))
    lib = HostKernels([c.source for c in cases])
    try:
        problems = []
        for k, case in enumerate(cases):
            got = lib.run(k, [case.feeds["x"]]).tolist()
            want = EXPECTED_OUT_OF_RANGE[case.source.out_type]
            if got != want:
                problems.append(f"{case.label}: {got} != {want}")
        assert not problems, "\n".join(problems)
    finally:
        lib.close()


def test_a_wrong_rendering_is_caught() -> None:
    """The harness itself: a kernel whose add is a subtract must fail the comparison."""
    x, y = doc("x", CellType.FLOAT32), doc("y", CellType.FLOAT32)
    case = Case("add", build.join("add", x, y), {"x": np.array([1.0, 2.0]), "y": np.array([3.0, 4.0])})
    broken = KernelSource(**{**case.source.__dict__, "body": case.source.body.replace("+", "-")})
    lib = HostKernels([broken])
    try:
        got = lib.run(0, [case.feeds["x"], case.feeds["y"]])
        assert mismatches(case, got, expected(case))
    finally:
        lib.close()
