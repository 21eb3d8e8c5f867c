"""If, Loop and Scan against onnxruntime, three documents with different values.

A program is straight-line: If with a deploy-time condition imports one branch, If with a
per-document condition selects between both, Loop and Scan are unrolled.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from tensor_ir.onnx_import import ModelImportError, import_model
from tests.onnx_import.ort_check import check, docs_of, model_of

F = TensorProto.FLOAT


def _branch(name: str, nodes: list[onnx.NodeProto], out: str, shape: list[int] | None) -> onnx.GraphProto:
    return helper.make_graph(nodes, name, [], [helper.make_tensor_value_info(out, F, shape)])


def _if_node(then_shape: list[int], else_reshape: list[int] | None = None) -> list[onnx.NodeProto]:
    """then: x * 2; else: x - 1 (optionally reshaped); both read x from the outer graph."""
    then_g = _branch("then", [helper.make_node("Mul", ["x", "two"], ["t"])], "t", then_shape)
    else_nodes = [helper.make_node("Sub", ["x", "one"], ["e0"])]
    if else_reshape is None:
        else_nodes.append(helper.make_node("Identity", ["e0"], ["e"]))
    else:
        else_nodes.append(helper.make_node("Reshape", ["e0", "shape"], ["e"]))
    else_g = _branch("else", else_nodes, "e", else_reshape or then_shape)
    return [helper.make_node("If", ["c"], ["y"], then_branch=then_g, else_branch=else_g)]


_CONSTS = {"two": np.array(2, np.float32), "one": np.array(1, np.float32)}


@pytest.mark.parametrize("cond", [True, False])
def test_if_with_a_constant_condition_imports_one_branch(rng: np.random.Generator, cond: bool) -> None:
    docs = docs_of(rng, lambda r, i: {"x": r.normal(size=(2, 3)).astype(np.float32)})
    model = model_of(_if_node([2, 3]), docs[0], 13, {**_CONSTS, "c": np.array(cond)})
    assert import_model(model).program.op_histogram() == {"join": 1}
    check(model, docs)


def test_if_with_a_per_document_condition_selects(rng: np.random.Generator) -> None:
    def make(r: np.random.Generator, i: int) -> dict[str, np.ndarray]:
        return {"x": r.normal(size=(2, 3)).astype(np.float32), "c": np.array(i != 1)}

    docs = docs_of(rng, make)
    model = model_of(_if_node([2, 3]), docs[0], 13, _CONSTS)
    assert import_model(model).program.op_histogram()["select"] == 1
    check(model, docs)


def test_if_with_a_per_document_condition_and_differing_branches_is_refused() -> None:
    model = model_of(_if_node([2, 3], [6]), {"x": np.zeros((2, 3), np.float32), "c": np.array(True)}, 13,
                     {**_CONSTS, "shape": np.array([6], np.int64)})
    with pytest.raises(ModelImportError, match=r"output 0 is float32\[2, 3\] in the then branch and float32\[6\]"):
        import_model(model)


def _loop_body(stop_after: int | None) -> onnx.GraphProto:
    """y_out = y_in + x * i; scan output y_out; stop once i reaches `stop_after`."""
    nodes = [
        helper.make_node("Cast", ["i"], ["fi"], to=F),
        helper.make_node("Mul", ["x", "fi"], ["xi"]),
        helper.make_node("Add", ["y_in", "xi"], ["y_out"]),
        helper.make_node("Identity", ["y_out"], ["scan"]),
    ]
    if stop_after is None:
        nodes.append(helper.make_node("Identity", ["c_in"], ["c_out"]))
    else:
        nodes.append(helper.make_node("Less", ["i", "stop"], ["c_out"]))
    return helper.make_graph(
        nodes,
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("c_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("y_in", F, [3])],
        [helper.make_tensor_value_info("c_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("y_out", F, [3]),
         helper.make_tensor_value_info("scan", F, [3])],
    )


@pytest.mark.parametrize("stop_after", [None, 2])
def test_loop_with_a_constant_trip_count_unrolls(rng: np.random.Generator, stop_after: int | None) -> None:
    def make(r: np.random.Generator, i: int) -> dict[str, np.ndarray]:
        return {"x": r.normal(size=(3,)).astype(np.float32), "y0": r.normal(size=(3,)).astype(np.float32)}

    docs = docs_of(rng, make)
    node = helper.make_node("Loop", ["m", "cond", "y0"], ["y", "ys"], body=_loop_body(stop_after))
    inits = {"m": np.array(5, np.int64), "cond": np.array(True), "stop": np.array(stop_after or 0, np.int64)}
    check(model_of(node, docs[0], 13, inits, outputs=["y", "ys"]), docs)


def test_loop_with_a_per_document_trip_count_is_refused() -> None:
    node = helper.make_node("Loop", ["m", "", "y0"], ["y", "ys"], body=_loop_body(None))
    model = model_of(node, {"m": np.array(3, np.int64), "y0": np.zeros(3, np.float32)}, 13,
                     {"x": np.zeros(3, np.float32)}, outputs=["y", "ys"])
    with pytest.raises(ModelImportError, match=r"trip count M .* must be a constant known at deploy time"):
        import_model(model)


def _scan_body() -> onnx.GraphProto:
    """state += row; scan outputs: the running state and row * 2."""
    return helper.make_graph(
        [helper.make_node("Add", ["s_in", "row"], ["s_out"]),
         helper.make_node("Identity", ["s_out"], ["run"]),
         helper.make_node("Add", ["row", "row"], ["dbl"])],
        "scan_body",
        [helper.make_tensor_value_info("s_in", F, [2]), helper.make_tensor_value_info("row", F, [2])],
        [helper.make_tensor_value_info("s_out", F, [2]), helper.make_tensor_value_info("run", F, [2]),
         helper.make_tensor_value_info("dbl", F, [2])],
    )


@pytest.mark.parametrize(
    ("in_axis", "in_dir", "out_axes", "out_dirs"),
    [(0, 0, [0, 0], [0, 0]), (1, 1, [1, -1], [0, 1]), (-1, 0, [0, 1], [1, 0])],
)
def test_scan_unrolls(rng: np.random.Generator, in_axis: int, in_dir: int, out_axes: list[int],
                      out_dirs: list[int]) -> None:
    shape = (4, 2) if in_axis == 0 else (2, 4)

    def make(r: np.random.Generator, i: int) -> dict[str, np.ndarray]:
        return {"s0": r.normal(size=(2,)).astype(np.float32), "xs": r.normal(size=shape).astype(np.float32)}

    docs = docs_of(rng, make)
    node = helper.make_node("Scan", ["s0", "xs"], ["s", "run", "dbl"], body=_scan_body(), num_scan_inputs=1,
                            scan_input_axes=[in_axis], scan_input_directions=[in_dir],
                            scan_output_axes=out_axes, scan_output_directions=out_dirs)
    check(model_of(node, docs[0], 11, outputs=["s", "run", "dbl"]), docs)


def test_scan_opset_8_runs_per_batch_row(rng: np.random.Generator) -> None:
    def make(r: np.random.Generator, i: int) -> dict[str, np.ndarray]:
        return {"s0": r.normal(size=(2, 2)).astype(np.float32), "xs": r.normal(size=(2, 3, 2)).astype(np.float32)}

    docs = docs_of(rng, make)
    node = helper.make_node("Scan", ["", "s0", "xs"], ["s", "run", "dbl"], body=_scan_body(), num_scan_inputs=1,
                            directions=[1])
    check(model_of(node, docs[0], 8, outputs=["s", "run", "dbl"]), docs)
