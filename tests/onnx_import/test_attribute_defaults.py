"""Attribute defaults come from onnx.defs schemas only.

No converter may write a default by hand (`ctx.attr("axis", 1)`): the sources are checked for
such calls. A node that leaves an attribute out gets the default of its op's schema at the
model's opset, compared here with onnx.defs itself. An attribute the schema of that opset
does not declare is a converter bug and raises; the converters for old opsets, whose schemas
lack attributes added later, are run against onnxruntime (or onnx's reference evaluator).
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnx.defs
import pytest
from onnx import TensorProto as T
from onnx import helper

from tensor_ir.onnx_import import ModelImportError, import_model
from tensor_ir.onnx_import.attributes import node_attributes
from tensor_ir.onnx_import.context import NodeContext, UndeclaredAttributeError
from tests.onnx_import.ort_check import check, docs_of, model_of

ONNX_IMPORT = Path(__file__).resolve().parents[2] / "tensor_ir" / "onnx_import"


def _context(node: onnx.NodeProto, opset: int) -> NodeContext:
    return NodeContext(node, [], node_attributes(node, opset), opset, "test", lambda g, ins: [])


def _schema_default(op: str, opset: int, name: str) -> Any:
    value = helper.get_attribute_value(onnx.defs.get_schema(op, opset).attributes[name].default_value)
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, list) and value and isinstance(value[0], bytes):
        return [v.decode() for v in value]
    return value


# ---------------------------------------------------------------- no hand-written defaults


def _hand_defaults(source: str, filename: str) -> list[str]:
    """`.attr(...)` calls with anything beyond the attribute name, and reads of `ctx.attrs`
    that would bypass the schema check."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "attr":
            if len(node.args) != 1 or node.keywords:
                found.append((node.lineno, ast.unparse(node)))
        if (isinstance(node, ast.Attribute) and node.attr == "attrs" and isinstance(node.value, ast.Name)
                and node.value.id == "ctx"):
            found.append((node.lineno, ast.unparse(node)))
    return [f"{filename}:{line}: {text}" for line, text in sorted(found)]


def test_the_detector_finds_hand_written_defaults() -> None:
    sample = 'a = ctx.attr("axis", 1)\nb = ctx.attr("axis", default=1)\nc = ctx.attr("axis")\nd = ctx.attrs["p"]\n'
    assert [f.split(": ", 1)[1] for f in _hand_defaults(sample, "sample.py")] == [
        "ctx.attr('axis', 1)", "ctx.attr('axis', default=1)", "ctx.attrs",
    ]


def test_no_converter_writes_a_default_by_hand() -> None:
    sources = sorted(ONNX_IMPORT.rglob("*.py"))
    assert len(sources) > 10
    found = [f for path in sources for f in _hand_defaults(path.read_text(), str(path.relative_to(ONNX_IMPORT)))]
    assert found == [], "defaults come from onnx.defs schemas only:\n" + "\n".join(found)


def test_attr_takes_no_default() -> None:
    assert list(inspect.signature(NodeContext.attr).parameters) == ["self", "name"]


# ---------------------------------------------------------------- the schema's defaults arrive


@pytest.mark.parametrize(
    ("op", "opset", "name"),
    [
        ("Gemm", 13, "alpha"),
        ("LeakyRelu", 16, "alpha"),
        # Selu's defaults changed between versions 1 and 6
        ("Selu", 1, "alpha"),
        ("Selu", 6, "alpha"),
        ("Resize", 19, "coordinate_transformation_mode"),
        ("MeanVarianceNormalization", 13, "axes"),
    ],
)
def test_a_left_out_attribute_gets_the_schema_default(op: str, opset: int, name: str) -> None:
    ctx = _context(helper.make_node(op, ["x"], ["y"]), opset)
    assert ctx.attr(name) == _schema_default(op, opset, name)


def test_selu_defaults_follow_the_opset() -> None:
    # the two versions' defaults differ in the fourth digit; each opset must get its own
    v1 = _context(helper.make_node("Selu", ["x"], ["y"]), 1).attr("alpha")
    v6 = _context(helper.make_node("Selu", ["x"], ["y"]), 6).attr("alpha")
    assert v1 == pytest.approx(1.6732, abs=1e-4) and v6 == pytest.approx(1.67326, abs=1e-5)
    assert v1 != v6


def test_a_given_attribute_beats_the_default() -> None:
    ctx = _context(helper.make_node("LeakyRelu", ["x"], ["y"], alpha=0.5), 16)
    assert ctx.attr("alpha") == 0.5
    assert ctx.has_attr("alpha")


def test_optional_without_default_is_none() -> None:
    ctx = _context(helper.make_node("Transpose", ["x"], ["y"]), 21)
    assert ctx.declares("perm") and ctx.attr("perm") is None


def test_left_out_leaky_relu_alpha_computes_like_onnxruntime(rng: np.random.Generator) -> None:
    docs = docs_of(rng, lambda r, i: {"x": r.normal(size=(2, 5)).astype(np.float32)})
    check(model_of(helper.make_node("LeakyRelu", ["x"], ["y"]), docs[0], 16), docs)


# ---------------------------------------------------------------- undeclared attributes


def test_an_undeclared_attribute_is_a_converter_bug() -> None:
    ctx = _context(helper.make_node("Cast", ["x"], ["y"], to=T.INT32), 13)
    assert not ctx.declares("saturate")
    with pytest.raises(UndeclaredAttributeError, match=r"Cast .*opset 13.*'saturate'"):
        ctx.attr("saturate")
    assert _context(helper.make_node("Cast", ["x"], ["y"], to=T.INT32), 19).attr("saturate") == 1
    # not the model's error: the importer must not report it as one
    assert not issubclass(UndeclaredAttributeError, ModelImportError)


def test_an_op_without_schema_reads_its_own_attributes() -> None:
    node = helper.make_node("Mystery", ["x"], ["y"], domain="com.example", alpha=2.0)
    ctx = _context(node, 1)
    assert ctx.declares("anything")
    assert ctx.attr("alpha") == 2.0 and ctx.attr("beta") is None


def test_a_constant_with_an_attribute_of_a_later_opset_is_the_models_error() -> None:
    # value_float arrives with Constant-12
    model = model_of(helper.make_node("Constant", [], ["y"], value_float=1.5), {}, 12)
    model.opset_import[0].version = 11
    with pytest.raises(ModelImportError, match="value_float"):
        import_model(model, name="test")


# ---------------------------------------------------------------- converters of old opsets

F32 = np.float32


def _ints(r: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    # few distinct values, so argmax and topk see ties
    return r.integers(0, 3, size=shape).astype(F32)


OLD_OPSETS: list[tuple[str, onnx.NodeProto, int, Any, dict[str, np.ndarray]]] = [
    ("Cast-13", helper.make_node("Cast", ["x"], ["y"], to=T.INT32), 13,
     lambda r: {"x": (r.normal(size=(6,)) * 50).astype(F32)}, {}),
    ("CastLike-15", helper.make_node("CastLike", ["x", "t"], ["y"]), 15,
     lambda r: {"x": r.normal(size=(6,)).astype(F32)}, {"t": np.zeros(1, np.float64)}),
    ("ArgMax-11", helper.make_node("ArgMax", ["x"], ["y"], axis=1), 11, lambda r: {"x": _ints(r, (3, 6))}, {}),
    ("Shape-13", helper.make_node("Shape", ["x"], ["y"]), 13, lambda r: {"x": r.normal(size=(2, 3)).astype(F32)},
     {}),
    ("Squeeze-13", helper.make_node("Squeeze", ["x"], ["y"]), 13,
     lambda r: {"x": r.normal(size=(1, 3, 1)).astype(F32)}, {}),
    ("ReduceMean-13", helper.make_node("ReduceMean", ["x"], ["y"]), 13,
     lambda r: {"x": r.normal(size=(2, 3)).astype(F32)}, {}),
    ("ReduceMean-18", helper.make_node("ReduceMean", ["x"], ["y"], keepdims=0), 18,
     lambda r: {"x": r.normal(size=(2, 3)).astype(F32)}, {}),
    ("GatherND-11", helper.make_node("GatherND", ["x", "i"], ["y"]), 11,
     lambda r: {"x": r.normal(size=(3, 4)).astype(F32)}, {"i": np.array([[0, 1], [2, 3]], np.int64)}),
    ("TopK-10", helper.make_node("TopK", ["x", "k"], ["y", "yi"]), 10, lambda r: {"x": _ints(r, (2, 6))},
     {"k": np.array([3], np.int64)}),
    ("Reshape-13", helper.make_node("Reshape", ["x", "s"], ["y"]), 13,
     lambda r: {"x": r.normal(size=(2, 3, 4)).astype(F32)}, {"s": np.array([0, -1], np.int64)}),
    ("Split-11", helper.make_node("Split", ["x"], ["y", "z"], axis=1, split=[1, 3]), 11,
     lambda r: {"x": r.normal(size=(2, 4)).astype(F32)}, {}),
    ("Split-13", helper.make_node("Split", ["x"], ["y", "z"], axis=1), 13,
     lambda r: {"x": r.normal(size=(2, 4)).astype(F32)}, {}),
    ("SpaceToDepth-13", helper.make_node("SpaceToDepth", ["x"], ["y"], blocksize=2), 13,
     lambda r: {"x": r.normal(size=(1, 2, 4, 4)).astype(F32)}, {}),
    ("DepthToSpace-1", helper.make_node("DepthToSpace", ["x"], ["y"], blocksize=2), 1,
     lambda r: {"x": r.normal(size=(1, 8, 2, 3)).astype(F32)}, {}),
    ("AveragePool-7", helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[3], pads=[1, 1], strides=[2]), 7,
     lambda r: {"x": r.normal(size=(1, 2, 7)).astype(F32)}, {}),
    ("MaxPool-8", helper.make_node("MaxPool", ["x"], ["y", "yi"], kernel_shape=[2, 2]), 8,
     lambda r: {"x": r.normal(size=(1, 1, 4, 5)).astype(F32)}, {}),
    ("Resize-13", helper.make_node("Resize", ["x", "", "s"], ["y"], mode="linear"), 13,
     lambda r: {"x": r.normal(size=(1, 1, 3, 4)).astype(F32)}, {"s": np.array([1, 1, 2, 1.5], F32)}),
    ("ScatterElements-13", helper.make_node("ScatterElements", ["x", "i", "u"], ["y"], axis=1), 13,
     lambda r: {"x": r.normal(size=(2, 4)).astype(F32), "u": r.normal(size=(2, 2)).astype(F32)},
     {"i": np.array([[0, 3], [1, 2]], np.int64)}),
    ("QuantizeLinear-10", helper.make_node("QuantizeLinear", ["x", "s", "z"], ["y"]), 10,
     lambda r: {"x": (r.normal(size=(6,)) * 20).astype(F32)}, {"s": np.array(0.5, F32), "z": np.array(3, np.uint8)}),
    ("DequantizeLinear-10", helper.make_node("DequantizeLinear", ["x", "s", "z"], ["y"]), 10,
     lambda r: {"x": r.integers(0, 255, size=(6,)).astype(np.uint8)},
     {"s": np.array(0.5, F32), "z": np.array(3, np.uint8)}),
]


@pytest.mark.parametrize(("label", "node", "opset", "make", "consts"), OLD_OPSETS, ids=[c[0] for c in OLD_OPSETS])
def test_converters_of_old_opsets_ask_only_for_declared_attributes(
    rng: np.random.Generator, label: str, node: onnx.NodeProto, opset: int, make: Any, consts: dict[str, np.ndarray]
) -> None:
    docs = docs_of(rng, lambda r, i: make(r))
    check(model_of(node, docs[0], opset, initializers=consts, outputs=[o for o in node.output]), docs)
