"""Shape and layout converters against onnxruntime, three documents with different values.

Shapes, axes, split sizes, slice bounds and pads are initializers (deploy-time constants);
the data varies per document. Where a constant-only operand may also vary (Pad's fill
value, ReverseSequence's lengths) a test makes it a per-document input too.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from onnx import helper

from tensor_ir.ir import Op
from tensor_ir.onnx_import import ModelImportError, import_model
from tests.onnx_import.ort_check import check, docs_of, model_of, run_ours


def _i64(*v: int) -> np.ndarray:
    return np.array(v, dtype=np.int64)


def _x(shape: tuple[int, ...], dtype: Any = np.float32) -> Any:
    def make(rng: np.random.Generator, i: int) -> dict[str, np.ndarray]:
        return {"x": rng.normal(size=shape).astype(dtype)}

    return make


def _ints(shape: tuple[int, ...]) -> Any:
    def make(rng: np.random.Generator, i: int) -> dict[str, np.ndarray]:
        return {"x": rng.integers(-50, 50, size=shape).astype(np.int32)}

    return make


# ---------------------------------------------------------------- reshape and friends


@pytest.mark.parametrize(
    ("shape", "target", "allowzero"),
    [
        ((2, 3, 4), [4, -1], 0),
        ((2, 3, 4), [0, -1], 0),
        ((2, 3, 4), [0, 0, 2, 2], 0),
        ((2, 3, 4), [-1], 0),
        ((2, 3, 4), [3, 8], 1),
    ],
)
def test_reshape(rng: np.random.Generator, shape: tuple[int, ...], target: list[int], allowzero: int) -> None:
    docs = docs_of(rng, _x(shape))
    node = helper.make_node("Reshape", ["x", "s"], ["y"], allowzero=allowzero)
    check(model_of(node, docs[0], 14, {"s": _i64(*target)}), docs)


def test_reshape_allowzero_keeps_a_literal_zero() -> None:
    # an empty tensor cannot differ between documents, so this one is checked by shape
    docs = [{"x": np.zeros((2, 0, 4), np.float32)}] * 3
    model = model_of(helper.make_node("Reshape", ["x", "s"], ["y"], allowzero=1), docs[0], 14, {"s": _i64(0, 4, 2)})
    assert run_ours(model, docs)["y"].shape == (3, 0, 4, 2)


def test_reshape_before_opset_5_takes_an_attribute(rng: np.random.Generator) -> None:
    # onnxruntime has no Reshape-1 kernel: numpy gives the answer
    docs = docs_of(rng, _x((2, 3, 4)))
    got = run_ours(model_of(helper.make_node("Reshape", ["x"], ["y"], shape=[0, -1]), docs[0], 4), docs)
    for i, d in enumerate(docs):
        np.testing.assert_array_equal(got["y"][i], d["x"].reshape(2, 12))


def test_reshape_refuses_two_inferred_dims() -> None:
    model = model_of(helper.make_node("Reshape", ["x", "s"], ["y"]), {"x": np.zeros((2, 3), np.float32)}, 13,
                     {"s": _i64(2, 3)})
    model.graph.initializer[0].CopyFrom(helper.make_tensor("s", 7, [2], [-1, -1]))
    with pytest.raises(ModelImportError, match="more than one -1"):
        import_model(model)


@pytest.mark.parametrize(("start", "end"), [(None, None), (1, None), (-2, None), (0, -1), (1, 2), (-9, 9), (2, 1)])
def test_shape_is_a_constant_of_the_per_document_shape(rng: np.random.Generator, start: int | None,
                                                       end: int | None) -> None:
    docs = docs_of(rng, _x((2, 3, 4)))
    attrs = {k: v for k, v in (("start", start), ("end", end)) if v is not None}
    model = model_of(helper.make_node("Shape", ["x"], ["y"], **attrs), docs[0], 15)
    prog = import_model(model).program
    assert prog.outputs["y"].op is Op.CONSTANT
    sess_docs = [dict(d) for d in docs]
    got = run_ours(model, sess_docs)
    want = np.asarray((2, 3, 4)[slice(start, end)], dtype=np.int64)
    for i in range(len(docs)):
        np.testing.assert_array_equal(got["y"][i], want)


def test_shape_gather_concat_reshape_chain_folds(rng: np.random.Generator) -> None:
    # the pattern of exported transformers: split the last axis into heads by computed shape
    docs = docs_of(rng, _x((5, 12)))
    nodes = [
        helper.make_node("Shape", ["x"], ["shp"]),
        helper.make_node("Gather", ["shp", "zero"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n", "ax0"], ["n1"]),
        helper.make_node("Concat", ["n1", "heads"], ["target"], axis=0),
        helper.make_node("Reshape", ["x", "target"], ["r"]),
        helper.make_node("Transpose", ["r"], ["y"], perm=[1, 0, 2]),
    ]
    inits = {"zero": np.array(0, np.int64), "ax0": _i64(0), "heads": _i64(3, 4)}
    model = model_of(nodes, docs[0], 13, inits)
    hist = import_model(model).program.op_histogram()
    assert set(hist) == {"reshape", "transpose"}, hist
    check(model, docs)


def test_size(rng: np.random.Generator) -> None:
    docs = docs_of(rng, _x((2, 3, 4)))
    check(model_of(helper.make_node("Size", ["x"], ["y"]), docs[0], 13), docs)


def test_identity(rng: np.random.Generator) -> None:
    docs = docs_of(rng, _x((2, 3)))
    check(model_of(helper.make_node("Identity", ["x"], ["y"]), docs[0], 16), docs)


@pytest.mark.parametrize("opset", [11, 13])
@pytest.mark.parametrize("axes", [None, [1], [-1, 1]])
def test_squeeze(rng: np.random.Generator, opset: int, axes: list[int] | None) -> None:
    docs = docs_of(rng, _x((2, 1, 3, 1)))
    if opset < 13:
        node = helper.make_node("Squeeze", ["x"], ["y"], **({} if axes is None else {"axes": axes}))
        model = model_of(node, docs[0], opset)
    else:
        names = ["x"] if axes is None else ["x", "axes"]
        model = model_of(helper.make_node("Squeeze", names, ["y"]), docs[0], opset,
                         {} if axes is None else {"axes": _i64(*axes)})
    check(model, docs)


def test_squeeze_of_a_non_unit_axis_fails() -> None:
    model = model_of(helper.make_node("Squeeze", ["x"], ["y"], axes=[0]), {"x": np.zeros((1, 3), np.float32)}, 11)
    model.graph.node[0].attribute[0].ints[:] = [1]
    with pytest.raises(ModelImportError, match="cannot squeeze axis 1 of size 3"):
        import_model(model)


@pytest.mark.parametrize("opset", [11, 13])
@pytest.mark.parametrize("axes", [[0], [2], [-1], [3, 0], [1, -1, 0]])
def test_unsqueeze(rng: np.random.Generator, opset: int, axes: list[int]) -> None:
    docs = docs_of(rng, _x((2, 3)))
    if opset < 13:
        model = model_of(helper.make_node("Unsqueeze", ["x"], ["y"], axes=axes), docs[0], opset)
    else:
        model = model_of(helper.make_node("Unsqueeze", ["x", "axes"], ["y"]), docs[0], opset, {"axes": _i64(*axes)})
    check(model, docs)


@pytest.mark.parametrize("axis", [0, 1, 2, 3, -1, -3])
def test_flatten(rng: np.random.Generator, axis: int) -> None:
    docs = docs_of(rng, _x((2, 3, 4)))
    check(model_of(helper.make_node("Flatten", ["x"], ["y"], axis=axis), docs[0], 13), docs)


@pytest.mark.parametrize("perm", [None, [0, 2, 1], [2, 0, 1]])
def test_transpose(rng: np.random.Generator, perm: list[int] | None) -> None:
    docs = docs_of(rng, _x((2, 3, 4)))
    attrs = {} if perm is None else {"perm": perm}
    check(model_of(helper.make_node("Transpose", ["x"], ["y"], **attrs), docs[0], 13), docs)


@pytest.mark.parametrize(
    ("shape", "target"), [((3, 1), [2, 3, 4]), ((3, 1), [1]), ((1, 4), [3, 1]), ((2, 1, 4), [3, 1, 1, 1])]
)
def test_expand(rng: np.random.Generator, shape: tuple[int, ...], target: list[int]) -> None:
    docs = docs_of(rng, _x(shape))
    check(model_of(helper.make_node("Expand", ["x", "s"], ["y"]), docs[0], 13, {"s": _i64(*target)}), docs)


@pytest.mark.parametrize("repeats", [[1, 1], [2, 3], [3, 1], [1, 0]])
def test_tile(rng: np.random.Generator, repeats: list[int]) -> None:
    docs = docs_of(rng, _ints((2, 3)))
    check(model_of(helper.make_node("Tile", ["x", "r"], ["y"]), docs[0], 13, {"r": _i64(*repeats)}), docs)


# ---------------------------------------------------------------- concat, split, slice


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concat_of_per_document_and_constant_operands(rng: np.random.Generator, axis: int) -> None:
    def make(r: np.random.Generator, i: int) -> dict[str, np.ndarray]:
        return {"a": r.normal(size=(2, 3)).astype(np.float32), "b": r.normal(size=(2, 3)).astype(np.float32)}

    docs = docs_of(rng, make)
    c = rng.normal(size=(2, 3)).astype(np.float32)
    node = helper.make_node("Concat", ["a", "c", "b", "c"], ["y"], axis=axis)
    check(model_of(node, docs[0], 13, {"c": c}), docs)


@pytest.mark.parametrize(
    ("opset", "axis", "split", "n_out"),
    [(11, 1, [2, 4], 2), (11, 0, None, 2), (13, 1, [1, 0, 5], 3), (13, -1, None, 3), (18, 1, None, 4),
     (18, 0, [1, 3], 2)],
)
def test_split(rng: np.random.Generator, opset: int, axis: int, split: list[int] | None, n_out: int) -> None:
    docs = docs_of(rng, _x((4, 6)))
    outs = [f"y{i}" for i in range(n_out)]
    inits: dict[str, np.ndarray] = {}
    attrs: dict[str, Any] = {"axis": axis}
    names = ["x"]
    if split is not None and opset < 13:
        attrs["split"] = split
    elif split is not None:
        names.append("split")
        inits["split"] = _i64(*split)
    elif opset >= 18:
        attrs["num_outputs"] = n_out
    check(model_of(helper.make_node("Split", names, outs, **attrs), docs[0], opset, inits, outputs=outs), docs)


BIG = 2**62


@pytest.mark.parametrize(
    ("starts", "ends", "axes", "steps"),
    [
        ([0, 1], [2, 3], None, None),
        ([-1], [-BIG], [1], [-1]),
        ([BIG], [0], [0], [-2]),
        ([1, -BIG], [BIG, BIG], [0, -1], [1, 3]),
        ([5], [1], [1], [1]),  # empty
        ([-3], [-1], [-2], [1]),
        ([2, 4], [-BIG, -BIG], [0, 1], [-1, -2]),
        ([-7, -BIG], [-9, -BIG], [0, 1], [-1, -1]),  # a start below -d clamps to 0: one cell
    ],
)
def test_slice(rng: np.random.Generator, starts: list[int], ends: list[int], axes: list[int] | None,
               steps: list[int] | None) -> None:
    docs = docs_of(rng, _x((4, 6)))
    inits = {"s": _i64(*starts), "e": _i64(*ends)}
    names = ["x", "s", "e"]
    if axes is not None:
        names.append("a")
        inits["a"] = _i64(*axes)
    if steps is not None:
        names.append("st")
        inits["st"] = _i64(*steps)
    check(model_of(helper.make_node("Slice", names, ["y"]), docs[0], 13, inits), docs)


def test_slice_attribute_form_before_opset_10(rng: np.random.Generator) -> None:
    docs = docs_of(rng, _x((4, 6)))
    node = helper.make_node("Slice", ["x"], ["y"], starts=[1, -4], ends=[BIG, -1], axes=[0, 1])
    check(model_of(node, docs[0], 9), docs)


def test_slice_bounds_that_vary_per_document_are_refused() -> None:
    model = model_of(helper.make_node("Slice", ["x", "s", "e"], ["y"]),
                     {"x": np.zeros((4,), np.float32), "s": _i64(0), "e": _i64(2)}, 13)
    with pytest.raises(ModelImportError, match="starts must be a constant known at deploy time"):
        import_model(model)


# ---------------------------------------------------------------- pad


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge"])
@pytest.mark.parametrize("pads", [[1, 2, 0, 1], [0, 0, 2, 2], [-1, 1, 1, -2]])
def test_pad_modes(rng: np.random.Generator, mode: str, pads: list[int]) -> None:
    docs = docs_of(rng, _x((3, 4)))
    check(model_of(helper.make_node("Pad", ["x", "p"], ["y"], mode=mode), docs[0], 13, {"p": _i64(*pads)}), docs)


def test_pad_wrap(rng: np.random.Generator) -> None:
    docs = docs_of(rng, _x((3, 4)))
    node = helper.make_node("Pad", ["x", "p"], ["y"], mode="wrap")
    check(model_of(node, docs[0], 19, {"p": _i64(2, 1, 1, 3)}), docs)


def test_pad_constant_value_and_axes(rng: np.random.Generator) -> None:
    docs = docs_of(rng, _ints((2, 3, 4)))
    node = helper.make_node("Pad", ["x", "p", "v", "a"], ["y"])
    inits = {"p": _i64(1, 0, 2, 3), "v": np.array(7, np.int32), "a": _i64(-1, 0)}
    check(model_of(node, docs[0], 18, inits), docs)


def test_pad_value_that_varies_per_document(rng: np.random.Generator) -> None:
    def make(r: np.random.Generator, i: int) -> dict[str, np.ndarray]:
        return {"x": r.normal(size=(2, 3)).astype(np.float32), "v": np.array(r.normal(), np.float32)}

    docs = docs_of(rng, make)
    check(model_of(helper.make_node("Pad", ["x", "p", "v"], ["y"]), docs[0], 13, {"p": _i64(1, 0, 0, 2)}), docs)


def test_pad_attribute_form_before_opset_11(rng: np.random.Generator) -> None:
    docs = docs_of(rng, _x((3, 4)))
    node = helper.make_node("Pad", ["x"], ["y"], pads=[0, 1, 2, 0], value=1.5)
    check(model_of(node, docs[0], 10), docs)
    node = helper.make_node("Pad", ["x"], ["y"], pads=[1, 1, 1, 1], mode="reflect")
    check(model_of(node, docs[0], 10), docs)


def test_center_crop_pad(rng: np.random.Generator) -> None:
    docs = docs_of(rng, _x((5, 4, 3)))
    node = helper.make_node("CenterCropPad", ["x", "s"], ["y"], axes=[0, -1])
    check(model_of(node, docs[0], 18, {"s": _i64(2, 6)}), docs)


# ---------------------------------------------------------------- depth <-> space, ReverseSequence


@pytest.mark.parametrize("mode", ["DCR", "CRD"])
def test_depth_to_space(rng: np.random.Generator, mode: str) -> None:
    docs = docs_of(rng, _x((1, 8, 2, 3)))
    check(model_of(helper.make_node("DepthToSpace", ["x"], ["y"], blocksize=2, mode=mode), docs[0], 13), docs)


def test_space_to_depth(rng: np.random.Generator) -> None:
    docs = docs_of(rng, _x((2, 2, 4, 6)))
    check(model_of(helper.make_node("SpaceToDepth", ["x"], ["y"], blocksize=2), docs[0], 13), docs)


@pytest.mark.parametrize(("batch_axis", "time_axis"), [(1, 0), (0, 1)])
def test_reverse_sequence_with_lengths_per_document(rng: np.random.Generator, batch_axis: int,
                                                    time_axis: int) -> None:
    shape = [0, 0, 2]
    shape[batch_axis], shape[time_axis] = 3, 5

    def make(r: np.random.Generator, i: int) -> dict[str, np.ndarray]:
        return {"x": r.normal(size=shape).astype(np.float32), "lens": r.integers(0, 6, size=3).astype(np.int64)}

    docs = docs_of(rng, make)
    node = helper.make_node("ReverseSequence", ["x", "lens"], ["y"], batch_axis=batch_axis, time_axis=time_axis)
    check(model_of(node, docs[0], 10), docs)
