"""IR programs for the backend tests, each with its expected values worked out by hand.

A case is a program and its oracle. The oracle is plain numpy written from what each
primitive means (ONNX-like numpy broadcasting over per-document shapes, tensor_ir/ir.py;
casts by the rules in tensor_ir/casts.py's docstring) and it sees one document at a time:
its attribute values without the document axis, query values as they are. The test stacks
its answers, so the backends' vectorisation over documents is checked too. Nothing here
evaluates IR: tensor_ir.build only makes the programs, and no backend is called.

Each value is stored in its node's cell type, so where the IR rounds an intermediate to
float16 (its arithmetic is carried out in float32), the oracle rounds it there too.
Elsewhere it computes in float64 and rounds once at the end.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import ml_dtypes
import numpy as np

from tensor_ir import build
from tensor_ir.dtypes import CellType
from tensor_ir.ir import Node, Role
from tensor_ir.program import Program

Array = np.ndarray[Any, Any]
Values = dict[str, Array]

F32, F16, F64, I32, I64, BOOL = (CellType.FLOAT32, CellType.FLOAT16, CellType.FLOAT64, CellType.INT32,
                                 CellType.INT64, CellType.BOOL)


@dataclass(frozen=True)
class Case:
    program: Program
    # (one document's attribute values, the query values) -> every output for that document
    oracle: Callable[[Values, Values], Values]
    # outputs whose float32 values went through a float16 step: one float16 rounding apart
    # where an ulp of float32 difference upstream crosses a float16 rounding boundary
    rtol: Mapping[str, float] = field(default_factory=dict)


def merge(*cases: Case) -> Case:
    """One program with every output of `cases` (their input names must differ)."""
    def oracle(d: Values, q: Values) -> Values:
        return {k: v for c in cases for k, v in c.oracle(d, q).items()}

    return Case(Program({k: v for c in cases for k, v in c.program.outputs.items()}), oracle,
                {k: v for c in cases for k, v in c.rtol.items()})


def doc(name: str, shape: tuple[int, ...], ct: CellType = F32) -> Node:
    return build.input_(name, Role.ATTRIBUTE, shape, ct)


def query(name: str, shape: tuple[int, ...], ct: CellType = F32) -> Node:
    return build.input_(name, Role.QUERY, shape, ct)


def const(rng: np.random.Generator, shape: tuple[int, ...], ct: CellType = F32) -> tuple[Array, Node]:
    """A random constant: its value for the oracle and its node for the program."""
    value = rng.standard_normal(shape).astype(ct.np_dtype)
    return value, build.constant(value, ct)


def s(v: float, ct: CellType = F32) -> Node:
    return build.scalar(v, ct)


def f64(a: Any) -> Array:
    return np.asarray(a, np.float64)


def f32(a: Any) -> Array:
    return np.asarray(a, np.float32)


_erf = np.vectorize(math.erf, otypes=[np.float64])


def bfloat16_by_bits(x: Array) -> Array:
    """float32 -> bfloat16 rounding to nearest even: the upper 16 bits after adding
    0x7fff plus the lowest kept bit (ties go to the even upper half)."""
    u = x.astype(np.float32).view(np.uint32).astype(np.uint64)
    upper = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return upper.astype(np.uint16).view(ml_dtypes.bfloat16)


def float8e4m3fn_value(x: Array) -> Array:
    """The float8e4m3fn value a saturating cast gives: 3 mantissa bits, round to nearest
    even, binades down to 2^-6 (below that the subnormal spacing 2^-9), clipped at +-448."""
    a = np.abs(f64(x))
    binade = np.floor(np.log2(np.maximum(a, 2.0**-6)))
    spacing = 2.0 ** (binade - 3)
    return np.sign(f64(x)) * np.minimum(np.rint(a / spacing) * spacing, 448.0)  # rint: ties to even


# ---------------------------------------------------------------- cases


def elementwise_f32(rng: np.random.Generator) -> Case:
    x, q = doc("x", (4, 8)), query("q", (8,))
    cv, c = const(rng, (4, 1))
    y = build.join("sub", build.map_("sigmoid", build.join("add", build.join("mul", x, q), c)), s(0.5))
    z = build.select(build.join("gt", x, s(0.0)), build.map_("sqrt", build.map_("abs", x)), build.map_("neg", y))
    e = build.map_("erf", build.join("div", x, s(1.41421356)))

    def oracle(d: Values, qv: Values) -> Values:
        xd = f64(d["x"])
        yd = 1 / (1 + np.exp(-(xd * f64(qv["q"]) + f64(cv)))) - 0.5
        return {"y": f32(yd), "z": f32(np.where(xd > 0, np.sqrt(np.abs(xd)), -yd)),
                "e": f32(_erf(xd / f64(np.float32(1.41421356))))}

    return Case(Program({"y": y, "z": z, "e": e}), oracle)


def elementwise_mixed_types(rng: np.random.Generator) -> Case:
    h = doc("h", (5,), F16)
    t = build.cast(build.join("mul", build.map_("tanh", h), s(3.0, F16)), F32)
    i = doc("i", (5,), I32)
    k = build.join("shift_right", build.join("mod", build.join("div", i, s(3, I32)), s(5, I32)), s(1, I32))
    b = build.join("and", build.join("lt", i, s(4, I32)), build.map_("not", build.join("eq", k, s(0, I32))))
    r = build.cast(build.map_("round", build.join("mul", build.cast(i, F64), s(0.25, F64))), I64)

    def oracle(d: Values, q: Values) -> Values:
        hd, id_ = d["h"], d["i"]
        tanh16 = np.tanh(hd.astype(np.float32)).astype(np.float16)  # float16 cells, float32 arithmetic
        div = np.sign(id_) * (np.abs(id_) // 3)  # integer div truncates toward zero
        kd = ((div % 5) >> 1).astype(np.int32)  # mod takes the divisor's sign, as Python's %
        return {
            "t": f32((tanh16.astype(np.float32) * 3).astype(np.float16)),
            "k": kd,
            "b": (id_ < 4) & (kd != 0),
            "r": np.rint(f64(id_) * 0.25).astype(np.int64),  # Round: halves to even
            "h2": np.maximum(hd, np.float16(0.5)),
        }

    return Case(Program({"t": t, "k": k, "b": b, "r": r, "h2": build.join("max", h, s(0.5, F16))}), oracle,
                {"t": 2e-3})


def reductions(rng: np.random.Generator) -> Case:
    x = doc("x", (3, 5))
    q = query("q", (4, 6))
    out = {
        "sum_last": build.reduce(x, "sum", [1], True),
        "max_all": build.reduce(x, "max", None, False),
        "min_first": build.reduce(build.map_("exp", x), "min", [0], False),
        "prod": build.reduce(build.join("mul", x, s(0.5)), "prod", [1], False),
        "post": build.map_("sqrt", build.join("add", build.reduce(build.join("mul", x, x), "sum", [0, 1], False),
                                                  s(1e-3))),
        "query_only": build.reduce(q, "sum", [1], False),
        "doc_times_query_max": build.join("mul", build.reduce(x, "sum", None, False),
                                          build.reduce(q, "max", None, False)),
        "int_sum": build.reduce(doc("i", (6,), I32), "sum", [0], False),
        "bool_any": build.reduce(doc("b", (4,), BOOL), "max", [0], False),
    }

    def oracle(d: Values, qv: Values) -> Values:
        xd, qd = f64(d["x"]), f64(qv["q"])
        return {
            "sum_last": f32(xd.sum(axis=1, keepdims=True)),
            "max_all": f32(xd.max()),
            "min_first": f32(np.exp(xd).min(axis=0)),
            "prod": f32((xd * 0.5).prod(axis=1)),
            "post": f32(np.sqrt((xd * xd).sum() + 1e-3)),
            "query_only": f32(qd.sum(axis=1)),
            "doc_times_query_max": f32(xd.sum() * qd.max()),
            "int_sum": np.asarray(sum(int(v) for v in d["i"]), np.int32),
            "bool_any": np.asarray(any(bool(v) for v in d["b"])),
        }

    return Case(Program(out), oracle)


def softmax_layernorm(rng: np.random.Generator) -> Case:
    x = doc("x", (3, 6))
    m = build.reduce(x, "max", [1], True)
    e = build.map_("exp", build.join("sub", x, m))
    sm = build.join("div", e, build.reduce(e, "sum", [1], True))
    mean = build.join("div", build.reduce(x, "sum", [1], True), s(6.0))
    dev = build.join("sub", x, mean)
    var = build.join("div", build.reduce(build.join("mul", dev, dev), "sum", [1], True), s(6.0))
    (gv, g), (bv, b) = const(rng, (6,)), const(rng, (6,))
    ln = build.join("add", build.join("mul", build.join("div", dev, build.map_("sqrt", build.join("add", var,
                                                                                                  s(1e-5)))), g), b)

    def oracle(d: Values, q: Values) -> Values:
        xd = f64(d["x"])
        ed = np.exp(xd - xd.max(axis=1, keepdims=True))
        devd = xd - xd.mean(axis=1, keepdims=True)
        vard = (devd * devd).mean(axis=1, keepdims=True)
        return {"softmax": f32(ed / ed.sum(axis=1, keepdims=True)),
                "layernorm": f32(devd / np.sqrt(vard + 1e-5) * f64(gv) + f64(bv))}

    return Case(Program({"softmax": sm, "layernorm": ln}), oracle)


def matmuls(rng: np.random.Generator) -> Case:
    (w1v, w1), (b1v, b1), (w2v, w2) = const(rng, (8, 16)), const(rng, (16,)), const(rng, (16, 1))
    (cv, c), (c16v, c16) = const(rng, (2, 4, 3)), const(rng, (4, 3), F16)
    v = doc("v", (8,))
    mlp = build.matmul(build.map_("relu", build.join("add", build.matmul(build.reshape(v, (1, 8)), w1), b1)), w2)
    a, b = doc("a", (3, 4)), doc("b", (4, 2))
    q1, q2 = query("q1", (2, 3)), query("q2", (4, 5))
    program = Program({
        "mlp": mlp,
        "doc_doc": build.matmul(a, b),
        "query_doc": build.matmul(q1, a),
        "doc_query": build.matmul(a, q2),
        "batched_const": build.matmul(doc("t", (2, 3, 4)), c),
        "f16": build.matmul(doc("h", (2, 4), F16), c16),
    })

    def oracle(d: Values, q: Values) -> Values:
        ad, td = f64(d["a"]), f64(d["t"])
        hidden = np.maximum(f64(d["v"]).reshape(1, 8) @ f64(w1v) + f64(b1v), 0.0)
        return {
            "mlp": f32(hidden @ f64(w2v)),
            "doc_doc": f32(ad @ f64(d["b"])),
            "query_doc": f32(f64(q["q1"]) @ ad),
            "doc_query": f32(ad @ f64(q["q2"])),
            "batched_const": f32(np.stack([td[j] @ f64(cv[j]) for j in range(2)])),
            "f16": (f64(d["h"]) @ f64(c16v)).astype(np.float16),
        }

    return Case(program, oracle)


def gathers(rng: np.random.Generator) -> Case:
    tv, table = const(rng, (10, 4))
    data = doc("data", (5, 4))
    didx = build.input_("didx", Role.ATTRIBUTE, (3,), I64)
    pos = build.join("mod", didx, s(5, I64))
    per_row = [[3, 0, 1, 2], [1, 1, 0, 3], [2, 3, 3, 0], [0, 2, 1, 1], [3, 3, 2, 0]]
    program = Program({
        "const_by_doc_idx": build.gather(table, build.join("mod", didx, s(10, I64)), 0),
        "doc_by_const_idx": build.gather(data, build.constant(np.array([3, -1, 0], np.int64)), 0),
        "doc_by_doc_idx": build.gather(data, pos, 0),
        "doc_axis1": build.gather(data, build.constant(np.array([[1, 2], [3, 0]], np.int64)), 1),
        "elements": build.gather_elements(data, build.constant(np.array(per_row, np.int64)), 1),
        "elements_doc_idx": build.gather_elements(table, build.reshape(build.join("mod", didx, s(4, I64)), (3, 1)), 1),
        "nd": build.gather_nd(data, build.constant(np.array([[1], [4]], np.int64)), 0),
        "nd_doc_idx": build.gather_nd(table, build.reshape(build.join("mod", didx, s(10, I64)), (3, 1)), 0),
    })

    def oracle(d: Values, q: Values) -> Values:
        x, ix = d["data"], [int(j) for j in d["didx"]]
        return {
            "const_by_doc_idx": np.stack([tv[j % 10] for j in ix]),
            "doc_by_const_idx": np.stack([x[3], x[4], x[0]]),  # -1: the last row
            "doc_by_doc_idx": np.stack([x[j % 5] for j in ix]),
            "doc_axis1": np.stack([[[row[1], row[2]], [row[3], row[0]]] for row in x]),
            "elements": np.array([[x[r, c] for c in cols] for r, cols in enumerate(per_row)], np.float32),
            "elements_doc_idx": np.array([[tv[r, j % 4]] for r, j in enumerate(ix)], np.float32),
            "nd": np.stack([x[1], x[4]]),
            "nd_doc_idx": np.stack([tv[j % 10] for j in ix]),
        }

    return Case(program, oracle)


def structural(rng: np.random.Generator) -> Case:
    x, q = doc("x", (2, 3)), query("q", (2, 2))
    v = doc("v", (3,))
    program = Program({
        "concat_doc_query": build.concat([x, q], 1),
        "concat_vec": build.concat([v, query("w", (2,)), build.constant(np.array([9.0], np.float32))], 0),
        "transpose": build.transpose(x, [1, 0]),
        "reshape": build.reshape(x, (3, 2)),
        "slice_rev": build.slice_(x, [1, 2], [-3, -4], [-1, -2]),
        "pad_const": build.pad(x, [(1, 0), (0, 2)], "constant", 1.5),
        "pad_reflect": build.pad(x, [(0, 0), (2, 1)], "reflect"),
        "pad_edge": build.pad(x, [(1, 1), (0, 0)], "edge"),
        "pad_wrap_crop": build.pad(x, [(0, 0), (-1, 2)], "wrap"),
        "broadcast": build.broadcast(v, (2, 3)),
        "broadcast_then_exp": build.map_("exp", build.broadcast(build.reshape(v, (3, 1)), (3, 4))),
    })

    def oracle(d: Values, qv: Values) -> Values:
        xd, vd, qd = d["x"], d["v"], qv["q"]
        padded = np.full((3, 5), 1.5, np.float32)
        padded[1:, :3] = xd
        return {
            "concat_doc_query": np.array([[*xd[r], *qd[r]] for r in range(2)], np.float32),
            "concat_vec": np.array([*vd, *qv["w"], 9.0], np.float32),
            "transpose": np.array([[xd[r, c] for r in range(2)] for c in range(3)], np.float32),
            "reshape": np.array([[xd.flat[2 * r], xd.flat[2 * r + 1]] for r in range(3)], np.float32),
            "slice_rev": xd[[1, 0]][:, [2, 0]],  # rows 1, 0; columns 2, 0
            "pad_const": padded,
            "pad_reflect": xd[:, [2, 1, 0, 1, 2, 1]],
            "pad_edge": xd[[0, 0, 1, 1]],
            # the negative pad crops column 0 first, then the rest wraps (as onnxruntime's Pad)
            "pad_wrap_crop": xd[:, [1, 2, 1, 2]],
            "broadcast": np.stack([vd, vd]),
            "broadcast_then_exp": f32(np.exp(f64([[c] * 4 for c in vd]))),
        }

    return Case(program, oracle)


def scans_and_args(rng: np.random.Generator) -> Case:
    x = doc("x", (3, 4))
    program = Program({
        "cumsum": build.scan(x, "sum", 1, False, False),
        "cumsum_excl_rev": build.scan(x, "sum", 0, True, True),
        "cumprod": build.scan(build.join("mul", x, s(0.5)), "prod", 1, False, False),
        "argmax": build.arg_reduce(x, "argmax", 1, False, False),
        "argmin_last_keep": build.arg_reduce(build.map_("round", x), "argmin", 0, True, True),
        "topk": build.topk(x, 2, 1, True),
    })

    def oracle(d: Values, q: Values) -> Values:
        xd = f64(d["x"])
        rounded = np.rint(xd)  # ties to even; round(x) has many equal cells, so "last" matters

        def top2(row: Array) -> list[int]:  # largest first, ties to the lower index
            return sorted(range(4), key=lambda j: (-row[j], j))[:2]

        return {
            "cumsum": f32([[xd[r, :c + 1].sum() for c in range(4)] for r in range(3)]),
            "cumsum_excl_rev": f32([xd[r + 1:].sum(axis=0) for r in range(3)]),
            "cumprod": f32([[(0.5 * xd[r, :c + 1]).prod() for c in range(4)] for r in range(3)]),
            "argmax": np.array([min(j for j in range(4) if row[j] == row.max()) for row in xd], np.int64),
            "argmin_last_keep": np.array([[max(r for r in range(3) if col[r] == col.min()) for col in rounded.T]],
                                         np.int64),
            "topk": np.array([top2(row) for row in xd], np.int64),
        }

    return Case(program, oracle)


def casts_and_fallbacks(rng: np.random.Generator) -> Case:
    x = doc("x", (6,))
    f8 = build.cast(build.cast(x, CellType.FLOAT8E4M3FN), F32)  # no GPU kernels: the host fallback
    program = Program({
        "to_int8": build.cast(build.join("mul", x, s(10.0)), CellType.INT8),
        "to_bool": build.cast(build.map_("round", x), BOOL),
        "bool_to_f": build.cast(build.join("gt", x, s(0.0)), F16),
        "to_bf16": build.cast(x, CellType.BFLOAT16),
        "via_float8": build.join("add", f8, s(1.0)),
        "int_pow": build.join("pow", build.cast(build.map_("abs", build.join("mul", x, s(2.0))), I32), s(3, I32)),
    })

    def oracle(d: Values, q: Values) -> Values:
        xd = d["x"]
        times10 = xd * np.float32(10)  # the float32 product is what gets cast
        return {
            # float -> int: truncated toward zero, saturated at the target's range
            "to_int8": np.array([min(max(math.trunc(float(v)), -128), 127) for v in times10], np.int8),
            "to_bool": np.rint(xd) != 0,
            "bool_to_f": np.where(xd > 0, 1.0, 0.0).astype(np.float16),
            "to_bf16": bfloat16_by_bits(xd),
            "via_float8": f32(float8e4m3fn_value(xd) + 1.0),
            "int_pow": np.array([math.trunc(abs(2.0 * float(v))) ** 3 for v in xd], np.int32),
        }

    return Case(program, oracle)


def leaves_as_outputs(rng: np.random.Generator) -> Case:
    x = doc("x", (3,))
    q = query("q", (2,))
    program = Program({"x": x, "q": q, "c": build.constant(np.arange(4, dtype=np.float32)),
                       "q2": build.join("mul", q, s(2.0))})

    def oracle(d: Values, qv: Values) -> Values:
        return {"x": d["x"], "q": qv["q"], "c": np.array([0, 1, 2, 3], np.float32), "q2": f32(f64(qv["q"]) * 2)}

    return Case(program, oracle)


def long_reduction(rng: np.random.Generator) -> Case:
    """More cells per document than a CUDA block has threads."""
    x = doc("x", (2, 1500))

    def oracle(d: Values, q: Values) -> Values:
        xd = f64(d["x"])
        return {"sum": f32([math.fsum(row) for row in xd]), "max": f32([[xd.max()]])}

    return Case(Program({"sum": build.reduce(x, "sum", [1], False), "max": build.reduce(x, "max", None, True)}),
                oracle)


CASES: dict[str, Callable[[np.random.Generator], Case]] = {
    "elementwise_f32": elementwise_f32,
    "elementwise_mixed_types": elementwise_mixed_types,
    "reductions": reductions,
    "softmax_layernorm": softmax_layernorm,
    "matmuls": matmuls,
    "gathers": gathers,
    "structural": structural,
    "scans_and_args": scans_and_args,
    "casts_and_fallbacks": casts_and_fallbacks,
    "leaves_as_outputs": leaves_as_outputs,
}
