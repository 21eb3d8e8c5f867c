"""Resize, Upsample and GridSample against onnxruntime, three documents with different values.

Scales and sizes are chosen so that every source coordinate is exact in float32 as well as
in float64: onnxruntime works out coordinates in float32 and onnx's reference (which we
follow) in float64, and the two may round a position that sits on a tie differently.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from onnx import helper

from tensor_ir.onnx_import import ModelImportError, import_model
from tests.onnx_import.ort_check import check, docs_of, model_of

RTOL, ATOL = 1e-4, 1e-5


def _resize_model(
    attrs: dict[str, Any],
    scales: list[float] | None = None,
    sizes: list[int] | None = None,
    roi: list[float] | None = None,
    opset: int = 19,
) -> tuple[Any, dict[str, np.ndarray]]:
    """A Resize node whose roi / scales / sizes are initializers; returns it and one document."""
    inits: dict[str, np.ndarray] = {}
    names = ["x", "", "", ""]
    if roi is not None:
        names[1] = "roi"
        inits["roi"] = np.array(roi, np.float32)
    if scales is not None:
        names[2] = "scales"
        inits["scales"] = np.array(scales, np.float32)
    if sizes is not None:
        names[3] = "sizes"
        inits["sizes"] = np.array(sizes, np.int64)
    if opset == 10:
        names = ["x", "scales"]
    while names[-1] == "":
        names.pop()
    node = helper.make_node("Resize", names, ["y"], **attrs)
    return node, inits


def _check_resize(rng: np.random.Generator, x_shape: tuple[int, ...], attrs: dict[str, Any], opset: int = 19,
                  dtype: Any = np.float32, use_reference: bool = False, **kw: Any) -> None:
    node, inits = _resize_model(attrs, opset=opset, **kw)

    def make(r: np.random.Generator, i: int) -> dict[str, np.ndarray]:
        if np.dtype(dtype).kind == "f":
            return {"x": r.normal(size=x_shape).astype(dtype)}
        return {"x": r.integers(0, 100, size=x_shape).astype(dtype)}

    docs = docs_of(rng, make)
    check(model_of(node, docs[0], opset, inits), docs, rtol=RTOL, atol=ATOL, use_reference=use_reference)


# ---------------------------------------------------------------- Resize

COORDINATE_MODES = ["half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric"]


@pytest.mark.parametrize("ctm", COORDINATE_MODES)
@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
@pytest.mark.parametrize("scales", [[1, 1, 1.5, 2.0], [1, 1, 0.5, 0.75]], ids=["up", "down"])
def test_resize_modes_and_coordinates(rng: np.random.Generator, mode: str, ctm: str, scales: list[float]) -> None:
    # 4 x 8 spatial cells: every scale gives a whole number of output cells
    _check_resize(rng, (1, 2, 4, 8), {"mode": mode, "coordinate_transformation_mode": ctm}, scales=scales)


@pytest.mark.parametrize("nearest_mode", ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"])
@pytest.mark.parametrize("ctm", ["half_pixel", "asymmetric", "align_corners"])
def test_resize_nearest_modes_with_sizes(rng: np.random.Generator, nearest_mode: str, ctm: str) -> None:
    attrs = {"mode": "nearest", "nearest_mode": nearest_mode, "coordinate_transformation_mode": ctm}
    _check_resize(rng, (2, 1, 4, 6), attrs, sizes=[2, 1, 10, 3])


@pytest.mark.parametrize("scales", [[1, 1, 1.5, 2.0], [1, 1, 0.5, 0.75]], ids=["up", "down"])
def test_resize_cubic_coefficient_and_exclude_outside(rng: np.random.Generator, scales: list[float]) -> None:
    attrs = {"mode": "cubic", "cubic_coeff_a": -0.5, "exclude_outside": 1}
    _check_resize(rng, (1, 1, 4, 8), attrs, scales=scales)


@pytest.mark.parametrize("mode", ["linear", "cubic"])
@pytest.mark.parametrize("exclude_outside", [0, 1])
def test_resize_antialias_downsampling(rng: np.random.Generator, mode: str, exclude_outside: int) -> None:
    attrs = {"mode": mode, "antialias": 1, "exclude_outside": exclude_outside}
    _check_resize(rng, (1, 1, 8, 12), attrs, scales=[1, 1, 0.5, 0.25])
    _check_resize(rng, (1, 1, 8, 12), attrs, sizes=[1, 1, 6, 3])


@pytest.mark.parametrize(
    ("axes", "sizes", "policy"),
    [([2, 3], [10, 3], "stretch"), ([-1], [12], "stretch"), ([3, 2], [3, 10], "stretch"),
     ([2, 3], [8, 9], "not_larger"), ([2, 3], [8, 9], "not_smaller")],
)
def test_resize_axes_and_aspect_ratio(rng: np.random.Generator, axes: list[int], sizes: list[int],
                                      policy: str) -> None:
    attrs = {"mode": "linear", "axes": axes, "keep_aspect_ratio_policy": policy}
    _check_resize(rng, (1, 2, 4, 6), attrs, sizes=sizes)


@pytest.mark.parametrize("mode", ["linear", "nearest", "cubic"])
def test_resize_tf_crop_and_resize(rng: np.random.Generator, mode: str) -> None:
    # the crop reaches outside the input on both sides of the last axis
    attrs = {"mode": mode, "coordinate_transformation_mode": "tf_crop_and_resize", "extrapolation_value": 3.5}
    _check_resize(rng, (1, 1, 5, 9), attrs, sizes=[1, 1, 3, 5], roi=[0, 0, 0.25, -0.25, 1, 1, 0.75, 1.25])
    attrs["axes"] = [3, 2]
    _check_resize(rng, (1, 1, 5, 9), attrs, sizes=[5, 3], roi=[-0.25, 0.25, 1.25, 0.75])


@pytest.mark.parametrize("opset", [10, 11, 13, 18])
@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_resize_older_opsets(rng: np.random.Generator, opset: int, mode: str) -> None:
    # Resize-10 maps coordinates asymmetrically and takes the floor (ceiling) when upsampling
    # (downsampling); 11 needs a roi input, empty when unused
    roi = None if opset == 10 or opset >= 13 else []
    _check_resize(rng, (1, 2, 4, 8), {"mode": mode}, scales=[1, 1, 2.5, 0.75], roi=roi, opset=opset)


@pytest.mark.parametrize("scales", [[1, 1, 1.5, 2.0], [1, 1, 0.5, 0.75]], ids=["up", "down"])
def test_resize_11_tf_half_pixel_for_nn(rng: np.random.Generator, scales: list[float]) -> None:
    attrs = {"mode": "nearest", "coordinate_transformation_mode": "tf_half_pixel_for_nn"}
    _check_resize(rng, (1, 2, 4, 8), attrs, scales=scales, roi=[], opset=11)


def test_resize_nearest_copies_integer_cells(rng: np.random.Generator) -> None:
    _check_resize(rng, (1, 3, 4, 4), {"mode": "nearest"}, scales=[1, 1, 2.0, 0.5], dtype=np.uint8)


def test_resize_linear_integer_cells_round_as_the_reference(rng: np.random.Generator) -> None:
    # onnxruntime truncates; onnx's reference rounds half to even and saturates
    _check_resize(rng, (1, 1, 4, 6), {"mode": "linear"}, scales=[1, 1, 2.5, 0.5], dtype=np.int32,
                  use_reference=True)


def test_resize_per_document_scales_are_refused() -> None:
    node = helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="linear")
    model = model_of(node, {"x": np.zeros((1, 1, 2, 2), np.float32), "scales": np.ones(4, np.float32)}, 19)
    with pytest.raises(ModelImportError, match=r"scales.*must be a constant known at deploy time"):
        import_model(model)


def test_resize_antialias_with_nearest_is_refused() -> None:
    node, inits = _resize_model({"mode": "nearest", "antialias": 1}, scales=[1, 1, 0.5, 0.5])
    model = model_of(node, {"x": np.zeros((1, 1, 2, 2), np.float32)}, 19, inits)
    with pytest.raises(ModelImportError, match="antialias is not defined for mode 'nearest'"):
        import_model(model)


# ---------------------------------------------------------------- Upsample


@pytest.mark.parametrize("opset", [7, 9])
@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_upsample(rng: np.random.Generator, opset: int, mode: str) -> None:
    scales = [1.0, 1.0, 2.5, 3.0]
    if opset == 7:
        node = helper.make_node("Upsample", ["x"], ["y"], mode=mode, scales=scales)
        inits = {}
    else:
        node = helper.make_node("Upsample", ["x", "s"], ["y"], mode=mode)
        inits = {"s": np.array(scales, np.float32)}
    docs = docs_of(rng, lambda r, i: {"x": r.normal(size=(1, 2, 3, 4)).astype(np.float32)})
    check(model_of(node, docs[0], opset, inits), docs, rtol=RTOL, atol=ATOL)


# ---------------------------------------------------------------- GridSample


def _grid_docs(rng: np.random.Generator, x_shape: tuple[int, ...], grid_shape: tuple[int, ...],
               reach: float = 1.3) -> list[dict[str, np.ndarray]]:
    # the grid reaches past [-1, 1] so that every padding mode matters
    return docs_of(rng, lambda r, i: {"x": r.normal(size=x_shape).astype(np.float32),
                                      "g": r.uniform(-reach, reach, size=grid_shape).astype(np.float32)})


@pytest.mark.parametrize("align_corners", [0, 1])
@pytest.mark.parametrize("padding", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("mode", ["linear", "nearest", "cubic"])
def test_grid_sample(rng: np.random.Generator, mode: str, padding: str, align_corners: int) -> None:
    node = helper.make_node("GridSample", ["x", "g"], ["y"], mode=mode, padding_mode=padding,
                            align_corners=align_corners)
    docs = _grid_docs(rng, (2, 3, 4, 5), (2, 6, 7, 2))
    check(model_of(node, docs[0], 20), docs, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("mode", ["bilinear", "nearest", "bicubic"])
def test_grid_sample_16(rng: np.random.Generator, mode: str) -> None:
    node = helper.make_node("GridSample", ["x", "g"], ["y"], mode=mode, padding_mode="border")
    docs = _grid_docs(rng, (1, 2, 3, 4), (1, 5, 2, 2))
    check(model_of(node, docs[0], 16), docs, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("padding", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("mode", ["linear", "nearest"])
def test_grid_sample_volumetric(rng: np.random.Generator, mode: str, padding: str) -> None:
    node = helper.make_node("GridSample", ["x", "g"], ["y"], mode=mode, padding_mode=padding)
    docs = _grid_docs(rng, (1, 2, 3, 4, 5), (1, 2, 3, 4, 3), reach=2.5)
    check(model_of(node, docs[0], 22), docs, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("const", ["x", "g"])
def test_grid_sample_with_a_constant_operand(rng: np.random.Generator, const: str) -> None:
    # a fixed image sampled at per-document positions, or per-document images at fixed positions
    node = helper.make_node("GridSample", ["x", "g"], ["y"], mode="linear", padding_mode="zeros")
    docs = _grid_docs(rng, (1, 2, 4, 5), (1, 3, 3, 2))
    inits = {const: docs[0][const]}
    docs = [{k: v for k, v in d.items() if k != const} for d in docs]
    check(model_of(node, docs[0], 20, inits), docs, rtol=RTOL, atol=ATOL)
