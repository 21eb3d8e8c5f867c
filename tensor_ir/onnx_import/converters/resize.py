"""Resize and Upsample converters: their attributes and constant operands read into one
ResizeSpec, resampled as interpolation.py plans it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from tensor_ir.ir import Node
from tensor_ir.onnx_import.context import NodeContext
from tensor_ir.onnx_import.converters.interpolation import ResizeSpec, legacy_spec, resize_node
from tensor_ir.onnx_import.registry import converter


def _floats(values: npt.NDArray[Any] | None) -> list[float] | None:
    if values is None:
        return None
    flat = np.asarray(values).reshape(-1)
    return None if flat.size == 0 else [float(v) for v in flat]


def _optional_const(ctx: NodeContext, i: int, what: str) -> npt.NDArray[Any] | None:
    return None if ctx.optional(i) is None else ctx.const(i, what)


@converter("Resize", 10)
def resize_10(ctx: NodeContext) -> Sequence[Node | None]:
    mode = str(ctx.attr("mode"))
    if mode not in ("nearest", "linear"):
        raise ctx.error(f"unsupported mode '{mode}' (Resize-10 knows nearest and linear)")
    spec = legacy_spec(mode)
    scales = _floats(ctx.const(1, "scales"))
    if scales is None:
        raise ctx.error("scales must not be empty")
    return [resize_node(ctx, ctx.input(0), spec, scales, None)]


@converter("Resize", 11, 13, 18, 19)
def resize(ctx: NodeContext) -> Sequence[Node | None]:
    ctm = str(ctx.attr("coordinate_transformation_mode"))
    if ctm == "half_pixel_symmetric" and ctx.opset < 19:
        raise ctx.error("coordinate_transformation_mode 'half_pixel_symmetric' needs opset 19")
    if ctm == "tf_half_pixel_for_nn" and ctx.opset >= 13:
        raise ctx.error("coordinate_transformation_mode 'tf_half_pixel_for_nn' was removed in opset 13")
    spec = ResizeSpec(
        mode=str(ctx.attr("mode")),
        ctm=ctm,
        nearest_mode=str(ctx.attr("nearest_mode")),
        cubic_a=float(ctx.attr("cubic_coeff_a")),
        exclude_outside=bool(ctx.attr("exclude_outside")),
        extrapolation_value=float(ctx.attr("extrapolation_value")),
        # antialias and keep_aspect_ratio_policy arrive with Resize-18; Resize-11 and -13 do
        # neither, as the opset-18 defaults antialias=0 and 'stretch' say
        antialias=ctx.declares("antialias") and bool(ctx.attr("antialias")),
        policy=str(ctx.attr("keep_aspect_ratio_policy")) if ctx.declares("keep_aspect_ratio_policy") else "stretch",
    )
    scales = _floats(_optional_const(ctx, 2, "scales"))
    sizes_value = _optional_const(ctx, 3, "sizes")
    sizes = None if sizes_value is None or sizes_value.size == 0 else [int(v) for v in sizes_value.reshape(-1)]
    if scales is not None and sizes is not None:
        raise ctx.error("only one of 'scales' and 'sizes' may be given")
    # roi matters to tf_crop_and_resize only, where it must be known at deploy time
    roi_value = _optional_const(ctx, 1, "roi") if ctm == "tf_crop_and_resize" else None
    roi = None if roi_value is None or roi_value.size == 0 else roi_value.reshape(-1)
    # axes arrives with Resize-18 (optional, no default); absent, every axis is resized
    axes = ctx.attr("axes") if ctx.declares("axes") else None
    return [resize_node(ctx, ctx.input(0), spec, scales, sizes, roi, None if axes is None else list(axes))]


@converter("Upsample", 7, 9, 10)
def upsample(ctx: NodeContext) -> Sequence[Node | None]:
    mode = str(ctx.attr("mode"))
    if mode == "bilinear":
        mode = "linear"
    if mode not in ("nearest", "linear"):
        raise ctx.error(f"unsupported mode '{mode}' (expected nearest or linear)")
    if ctx.opset < 9:
        scales = [float(s) for s in ctx.attr("scales") or []]
    else:
        scales = _floats(ctx.const(1, "scales")) or []
    if any(s < 1 for s in scales):
        raise ctx.error(f"scales must be at least 1, got {scales}")
    return [resize_node(ctx, ctx.input(0), legacy_spec(mode), scales, None)]
