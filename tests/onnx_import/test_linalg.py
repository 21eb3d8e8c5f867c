"""MatMul, Gemm, Einsum and the integer / quantized matmuls against onnxruntime (or onnx's
reference evaluator where onnxruntime lacks a kernel), three documents with different values."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import pytest
from onnx import helper

from cpu_fallback import NumpyBackend
from tensor_ir.ir import Op, Role
from tensor_ir.onnx_import import InputBinding, ModelImportError, import_model
from tests.onnx_import.ort_check import N_DOCS, check, docs_of, model_of, ort, run_ours


def _normal(*shapes: tuple[int, ...], names: str = "ab", dtype: Any = np.float32) -> Any:
    def make(rng: np.random.Generator, i: int) -> dict[str, np.ndarray]:
        return {n: rng.normal(size=s).astype(dtype) for n, s in zip(names, shapes, strict=True)}

    return make


def check_with_query_input(model: onnx.ModelProto, docs: list[dict[str, np.ndarray]],
                           query: dict[str, np.ndarray], rtol: float = 1e-5, atol: float = 1e-5) -> None:
    """Like `check`, with the inputs in `query` bound to one query-role value for all documents."""
    bindings = {k: InputBinding(Role.QUERY, tuple(v.shape)) for k, v in query.items()}
    imported = import_model(model, bindings, name="test")
    feeds: dict[str, np.ndarray] = {k: np.stack([d[k] for d in docs]) for k in docs[0]}
    feeds.update(query)
    got = NumpyBackend().run(imported.program, feeds, len(docs))
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in model.graph.output]
    for i, doc in enumerate(docs):
        want = sess.run(None, {**doc, **query})
        for name, w in zip(names, want, strict=True):
            np.testing.assert_allclose(np.asarray(got[name][i]), w, rtol=rtol, atol=atol,
                                       err_msg=f"output {name} document {i}")


# ---------------------------------------------------------------- MatMul

MATMUL_SHAPES = [
    ((3, 4), (4, 5)),
    ((2, 3, 4), (4, 5)),
    ((2, 3, 4), (2, 4, 5)),
    ((2, 1, 3, 4), (5, 4, 2)),
    ((4,), (4, 5)),
    ((2, 3, 4), (4,)),
    ((4,), (2, 4, 3)),
    ((4,), (4,)),
]


@pytest.mark.parametrize(("sa", "sb"), MATMUL_SHAPES, ids=str)
@pytest.mark.parametrize("opset", [1, 9, 13])
def test_matmul_numpy_semantics(rng: np.random.Generator, sa: tuple[int, ...], sb: tuple[int, ...],
                                opset: int) -> None:
    docs = docs_of(rng, _normal(sa, sb))
    check(model_of(helper.make_node("MatMul", ["a", "b"], ["y"]), docs[0], opset), docs, rtol=1e-5, atol=1e-5)


def test_matmul_integers(rng: np.random.Generator) -> None:
    docs = docs_of(rng, lambda r, i: {"a": r.integers(-50, 50, (3, 4)).astype(np.int32),
                                      "b": r.integers(-50, 50, (4, 2)).astype(np.int32)})
    check(model_of(helper.make_node("MatMul", ["a", "b"], ["y"]), docs[0], 13), docs)


def test_matmul_constant_weight_and_query_weight(rng: np.random.Generator) -> None:
    docs = docs_of(rng, _normal((2, 6), names="a"))
    w = rng.normal(size=(6, 3)).astype(np.float32)
    model = model_of(helper.make_node("MatMul", ["a", "W"], ["y"]), docs[0], 13, {"W": w})
    check(model, docs, atol=1e-5)
    # the same weight as a query input: one value shared by every document
    model = model_of(helper.make_node("MatMul", ["a", "W"], ["y"]), {**docs[0], "W": w}, 13)
    check_with_query_input(model, docs, {"W": w})


# ---------------------------------------------------------------- Gemm

GEMM_CASES: list[tuple[dict[str, Any], tuple[int, ...] | None]] = [
    ({}, None),
    ({}, ()),
    ({}, (5,)),
    ({}, (3, 1)),
    ({"alpha": 0.5, "beta": 2.0}, (3, 5)),
    ({"transA": 1}, (1, 5)),
    ({"transB": 1, "alpha": -1.5}, (5,)),
    ({"transA": 1, "transB": 1, "beta": 0.0}, (3, 5)),
]


@pytest.mark.parametrize(("attrs", "c_shape"), GEMM_CASES, ids=str)
def test_gemm(rng: np.random.Generator, attrs: dict[str, Any], c_shape: tuple[int, ...] | None) -> None:
    sa = (4, 3) if attrs.get("transA") else (3, 4)
    sb = (5, 4) if attrs.get("transB") else (4, 5)
    shapes = [sa, sb] + ([] if c_shape is None else [c_shape])
    docs = docs_of(rng, _normal(*shapes, names="abc"[: len(shapes)]))
    node = helper.make_node("Gemm", ["a", "b"] + ([] if c_shape is None else ["c"]), ["y"], **attrs)
    check(model_of(node, docs[0], 13), docs, atol=1e-5)


def test_gemm_constant_operands_fold_alpha(rng: np.random.Generator) -> None:
    docs = docs_of(rng, _normal((2, 4), names="a"))
    w = rng.normal(size=(3, 4)).astype(np.float32)
    c = rng.normal(size=(3,)).astype(np.float32)
    node = helper.make_node("Gemm", ["a", "W", "c"], ["y"], transB=1, alpha=0.25, beta=3.0)
    model = model_of(node, docs[0], 11, {"W": w, "c": c})
    check(model, docs, atol=1e-5)
    ops = [n.op for n in import_model(model).program.nodes()]
    assert ops.count(Op.JOIN) == 1  # only the bias add: alpha and beta folded into constants


def test_gemm_legacy_broadcast_attribute(rng: np.random.Generator) -> None:
    docs = docs_of(rng, _normal((3, 4), (4, 5), (5,), names="abc"))
    node = helper.make_node("Gemm", ["a", "b", "c"], ["y"], broadcast=1, alpha=2.0)
    # onnxruntime has no Gemm-6 kernel
    check(model_of(node, docs[0], 6), docs, atol=1e-5, use_reference=True)
    node = helper.make_node("Gemm", ["a", "b", "c"], ["y"], broadcast=0)
    with pytest.raises(ModelImportError, match="broadcast=0"):
        import_model(model_of(node, docs[0], 6))


def test_gemm_with_query_role_weight(rng: np.random.Generator) -> None:
    docs = docs_of(rng, _normal((1, 4), names="a"))
    w = rng.normal(size=(4, 2)).astype(np.float32)
    node = helper.make_node("Gemm", ["a", "W"], ["y"], alpha=0.5)
    check_with_query_input(model_of(node, {**docs[0], "W": w}, 13), docs, {"W": w})


# ---------------------------------------------------------------- Einsum

EINSUM_CASES: list[tuple[str, list[tuple[int, ...]]]] = [
    ("ij,jk->ik", [(3, 4), (4, 5)]),
    ("ij,jk", [(3, 4), (4, 5)]),
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
    ("ij,kj->ik", [(3, 4), (5, 4)]),
    ("ij->ji", [(3, 4)]),
    ("ij->", [(3, 4)]),
    ("ij->j", [(3, 4)]),
    ("i,i", [(5,), (5,)]),
    ("i,j->ij", [(3,), (4,)]),
    ("ij,ij->ij", [(3, 4), (3, 4)]),
    ("ii->i", [(4, 4)]),
    ("ii", [(4, 4)]),
    ("bii->bi", [(2, 3, 3)]),
    ("iji->j", [(3, 2, 3)]),
    ("...ij,...jk->...ik", [(2, 1, 3, 4), (1, 5, 4, 2)]),
    ("...ii->...i", [(2, 3, 3)]),
    ("i...,i->...", [(3, 2, 4), (3,)]),
    ("...,...->...", [(2, 3), (1, 3)]),
    ("bn,anm,bm->ba", [(2, 3), (4, 3, 5), (2, 5)]),
    ("abc,cd,de->abe", [(2, 3, 4), (4, 5), (5, 2)]),
    ("ab,ab,ab->", [(3, 4), (3, 4), (3, 4)]),
    ("bhqd,bhkd->bhqk", [(1, 2, 3, 4), (1, 2, 5, 4)]),
    ("a b , b c -> a c", [(2, 3), (3, 4)]),
    ("ij,jk->ki", [(3, 1), (1, 4)]),
]


@pytest.mark.parametrize(("equation", "shapes"), EINSUM_CASES, ids=lambda v: str(v))
def test_einsum(rng: np.random.Generator, equation: str, shapes: list[tuple[int, ...]]) -> None:
    names = [f"x{i}" for i in range(len(shapes))]

    def make(r: np.random.Generator, i: int) -> dict[str, np.ndarray]:
        return {n: r.normal(size=s).astype(np.float32) for n, s in zip(names, shapes, strict=True)}

    docs = docs_of(rng, make)
    model = model_of(helper.make_node("Einsum", names, ["y"], equation=equation), docs[0], 12)
    # onnxruntime's einsum rejects some valid equations (repeated labels, broadcast ellipses):
    # onnx's reference evaluator (numpy.einsum) judges those
    try:
        ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        use_reference = False
    except Exception:  # onnxruntime raises its own exception types
        use_reference = True
    check(model, docs, rtol=1e-5, atol=1e-5, use_reference=use_reference)


def test_einsum_integers_and_opset_28(rng: np.random.Generator) -> None:
    docs = docs_of(rng, lambda r, i: {"a": r.integers(-9, 9, (2, 3)).astype(np.int64),
                                      "b": r.integers(-9, 9, (3, 4)).astype(np.int64)})
    check(model_of(helper.make_node("Einsum", ["a", "b"], ["y"], equation="ij,jk->ik"), docs[0], 12), docs)
    check(model_of(helper.make_node("Einsum", ["a", "b"], ["y"], equation="ij,jk->ik"), docs[0], 28), docs,
          use_reference=True)


def test_einsum_trace_uses_one_gather_not_a_loop() -> None:
    x = np.zeros((6, 6), np.float32)
    model = model_of(helper.make_node("Einsum", ["x"], ["y"], equation="ii"), {"x": x}, 12)
    hist = import_model(model).program.op_histogram()
    assert hist["gather"] == 1 and hist["reduce"] == 1


@pytest.mark.parametrize(("equation", "message"), [
    ("ij,jk->iz", "appears in no input"),
    ("ij->ii", "repeats a label"),
    ("ijk,jk->ik", "names 3 axes but its operand has rank 2"),
    ("ij->i,j", "invalid character"),
])
def test_einsum_bad_equations(equation: str, message: str) -> None:
    names = ["a", "b"] if "," in equation.split("->")[0] else ["a"]
    graph = helper.make_graph([helper.make_node("Einsum", names, ["y"], equation=equation)], "m",
                              [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, [2, 2]) for n in names],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 12)])
    with pytest.raises(ModelImportError, match=message):
        import_model(model)


# ---------------------------------------------------------------- integer and quantized matmul


@pytest.mark.parametrize(("ta", "tb", "zp"), [
    (np.uint8, np.uint8, "scalar"),
    (np.int8, np.int8, "none"),
    (np.uint8, np.int8, "vector"),
])
def test_matmul_integer(rng: np.random.Generator, ta: Any, tb: Any, zp: str) -> None:
    def make(r: np.random.Generator, i: int) -> dict[str, np.ndarray]:
        ia, ib = np.iinfo(ta), np.iinfo(tb)
        return {"a": r.integers(ia.min, ia.max, (3, 4), endpoint=True).astype(ta),
                "b": r.integers(ib.min, ib.max, (4, 5), endpoint=True).astype(tb)}

    docs = docs_of(rng, make)
    inits: dict[str, np.ndarray] = {}
    names = ["a", "b"]
    if zp == "scalar":
        inits = {"za": np.array(7, ta), "zb": np.array(200, tb)}
        names += ["za", "zb"]
    elif zp == "vector":
        inits = {"za": np.array(1, ta), "zb": np.array([-1, 0, 1, 2, 3], tb)}  # B: per column
        names += ["za", "zb"]
    # onnxruntime's uint8 x int8 kernel saturates pairwise int16 sums on some CPUs: the exact
    # result comes from the reference evaluator there
    check(model_of(helper.make_node("MatMulInteger", names, ["y"]), docs[0], 10, inits), docs,
          use_reference=(ta != tb))


def test_matmul_integer_per_row_zero_point_of_a(rng: np.random.Generator) -> None:
    # onnxruntime accepts only a scalar zero point for A and the reference evaluator subtracts
    # it per column; onnx's schema says an [M] vector is per row: worked out with numpy
    docs = docs_of(rng, lambda r, i: {"a": r.integers(0, 255, (3, 4)).astype(np.uint8),
                                      "b": r.integers(0, 255, (4, 2)).astype(np.uint8)})
    za = np.array([1, 100, 250], np.uint8)
    model = model_of(helper.make_node("MatMulInteger", ["a", "b", "za"], ["y"]), docs[0], 10, {"za": za})
    got = run_ours(model, docs)["y"]
    for i, d in enumerate(docs):
        want = (d["a"].astype(np.int32) - za.astype(np.int32)[:, None]) @ d["b"].astype(np.int32)
        np.testing.assert_array_equal(got[i], want)


@pytest.mark.parametrize("qtype", [np.uint8, np.int8])
def test_qlinear_matmul(rng: np.random.Generator, qtype: Any) -> None:
    info = np.iinfo(qtype)

    def make(r: np.random.Generator, i: int) -> dict[str, np.ndarray]:
        return {"a": r.integers(info.min, info.max, (2, 3, 4), endpoint=True).astype(qtype)}

    docs = docs_of(rng, make)
    inits = {
        "sa": np.array(0.02, np.float32), "za": np.array(3, qtype),
        "b": rng.integers(info.min, info.max, (4, 5), endpoint=True).astype(qtype),
        "sb": np.array(0.03, np.float32), "zb": np.array(-2 if qtype == np.int8 else 130, qtype),
        "sy": np.array(0.05, np.float32), "zy": np.array(5, qtype),
    }
    node = helper.make_node("QLinearMatMul", ["a", "sa", "za", "b", "sb", "zb", "sy", "zy"], ["y"])
    check(model_of(node, docs[0], 10, inits), docs)


@pytest.mark.parametrize(("qtype", "opset", "mode"), [
    (np.uint8, 10, "tensor"),
    (np.int8, 13, "axis"),
    (np.uint16, 21, "tensor"),
    (np.int16, 21, "axis"),
    (np.int8, 21, "blocked"),
    (np.uint8, 23, "blocked"),
])
def test_quantize_dequantize(rng: np.random.Generator, qtype: Any, opset: int, mode: str) -> None:
    shape = (3, 5)

    def make(r: np.random.Generator, i: int) -> dict[str, np.ndarray]:
        x = r.normal(scale=4.0, size=shape).astype(np.float32)
        x[0, :3] = [1000.0, -1000.0, 0.25]  # saturation and a rounding tie (0.25 / 0.5 = 0.5)
        return {"x": x}

    docs = docs_of(rng, make)
    info = np.iinfo(qtype)
    attrs: dict[str, Any] = {}
    if mode == "tensor":
        scale, zp = np.array(0.5, np.float32), np.array(info.min // 2 + info.max // 2 + 1, qtype)
    elif mode == "axis":
        attrs["axis"] = 1
        scale = rng.uniform(0.05, 0.5, size=(5,)).astype(np.float32)
        scale[0] = 0.5
        zp = rng.integers(0 if info.min == 0 else -5, 10, size=(5,)).astype(qtype)
    else:
        attrs.update(axis=1, block_size=2)
        scale = rng.uniform(0.05, 0.5, size=(3, 3)).astype(np.float32)
        scale[0, 0] = 0.5
        zp = rng.integers(0 if info.min == 0 else -5, 10, size=(3, 3)).astype(qtype)
    q = helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], **attrs)
    dq = helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], **attrs)
    model = model_of([q, dq], docs[0], opset, {"s": scale, "z": zp}, outputs=("q", "y"))
    check(model, docs, use_reference=(qtype in (np.uint16, np.int16) or mode == "blocked"))


def test_quantize_without_zero_point_gives_uint8(rng: np.random.Generator) -> None:
    docs = docs_of(rng, _normal((4, 3), names="x"))
    node = helper.make_node("QuantizeLinear", ["x", "s"], ["y"])
    check(model_of(node, docs[0], 13, {"s": np.array(0.02, np.float32)}), docs)


def test_float8_quantize_round_trip(rng: np.random.Generator) -> None:
    def make(r: np.random.Generator, i: int) -> dict[str, np.ndarray]:
        x = r.normal(scale=50.0, size=(2, 6)).astype(np.float32)
        x[0, 0] = 1e6  # saturates to the largest float8e4m3fn
        return {"x": x}

    docs = docs_of(rng, make)
    zp_f8 = helper.make_tensor("z", onnx.TensorProto.FLOAT8E4M3FN, [], [0.0])
    q = helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"])
    dq = helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"])
    model = model_of([q, dq], docs[0], 21, {"s": np.array(2.0, np.float32)}, outputs=("y",))
    model.graph.initializer.append(zp_f8)
    check(model, docs, use_reference=True)


def test_matmul_of_query_weight_has_one_matmul_per_document_batch(rng: np.random.Generator) -> None:
    # the shared weight stays query-only: no per-document copy of it is made
    a = rng.normal(size=(N_DOCS, 2, 4)).astype(np.float32)
    w = rng.normal(size=(4, 3)).astype(np.float32)
    model = model_of(helper.make_node("MatMul", ["a", "W"], ["y"]), {"a": a[0], "W": w}, 13)
    imported = import_model(model, {"W": InputBinding(Role.QUERY, (4, 3))})
    (mm,) = [n for n in imported.program.nodes() if n.op is Op.MATMUL]
    assert not mm.inputs[1].per_document
    got = NumpyBackend().run(imported.program, {"a": a, "W": w}, N_DOCS)["y"]
    np.testing.assert_allclose(got, a @ w, rtol=1e-5)
