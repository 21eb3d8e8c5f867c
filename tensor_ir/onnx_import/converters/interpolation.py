"""Resampling an axis-aligned grid, as Resize and Upsample do: coordinate transforms,
interpolation kernels and the program they become.

Resize and Upsample take their scales or sizes (and roi) as deploy-time constants, so every
source position is known at import: for each resized axis, numpy works out (exactly as onnx's
reference does) which input cells each output cell reads and with which weights. The axis
then becomes one GATHER with a constant [out, taps] index table and, unless every output cell
copies a single input cell, a MUL by the constant weights and a REDUCE over the taps. Axes
that keep their size and coordinates cost nothing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from tensor_ir import build
from tensor_ir.dtypes import CellType, compute_type
from tensor_ir.ir import Node
from tensor_ir.onnx_import.context import NodeContext
from tensor_ir.onnx_import.converters.common import scalar_like
from tensor_ir.onnx_import.converters.linalg import round_saturate

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

_MODES = ("nearest", "linear", "cubic")
_COORDINATE_MODES = (
    "half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric", "tf_crop_and_resize",
    "tf_half_pixel_for_nn",  # Resize-11 only
)  # fmt: skip
_NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")
# Resize-10 and Upsample predate nearest_mode: onnxruntime takes the floor of the source
# coordinate when upsampling an axis and its ceiling when downsampling it
_SIMPLE = "simple"

# ---------------------------------------------------------------- per-axis plans (numpy, at import)


@dataclass(frozen=True)
class _AxisPlan:
    """How one axis is resampled: output cell o is sum_k weights[o, k] * x[indices[o, k]], or
    `extrapolation_value` where outside[o]."""

    indices: IntArray  # [out, taps], within the input axis
    weights: FloatArray  # [out, taps]
    outside: npt.NDArray[np.bool_] | None  # [out]: tf_crop_and_resize positions outside the input

    @property
    def one_hot(self) -> bool:
        """Every output cell copies one input cell."""
        w = self.weights
        return self.outside is None and bool(np.all((w == 0) | (w == 1))) and bool(np.all(w.sum(axis=1) == 1))


def _source_coordinates(
    ctm: str, out_size: int, in_size: int, scale: float, roi: tuple[np.floating[Any], np.floating[Any]] | None
) -> tuple[FloatArray, npt.NDArray[np.bool_] | None]:
    """Where in the input each output cell of an axis sits (onnx's _compute_x_ori). The roi
    bounds stay numpy scalars of the roi's cell type: the reference does part of this
    arithmetic in that precision, which decides which cell a tie goes to."""
    y = np.arange(out_size, dtype=np.float64)
    out_width = scale * in_size  # fractional: the size the scale alone implies
    outside = None
    if ctm == "align_corners":
        x = np.zeros(out_size) if out_width == 1 else y * (in_size - 1) / (out_width - 1)
    elif ctm == "asymmetric":
        x = y / scale
    elif ctm == "tf_crop_and_resize":
        assert roi is not None
        start, end = roi
        if out_width == 1:
            x = np.full(out_size, (end - start) * (in_size - 1) / 2)
        else:
            x = y * (end - start) * (in_size - 1) / (out_width - 1)
        x = x + start * (in_size - 1)
        outside = (x < 0) | (x > in_size - 1)
    elif ctm == "pytorch_half_pixel":
        # the spec and onnxruntime read a single output cell at 0; onnx's reference at -0.5, and
        # only when scale * in_size is exactly 1 (the two agree for nearest and linear)
        x = np.zeros(out_size) if out_size <= 1 else (y + 0.5) / scale - 0.5
    elif ctm == "half_pixel":
        x = (y + 0.5) / scale - 0.5
    elif ctm == "tf_half_pixel_for_nn":
        x = (y + 0.5) / scale
    elif ctm == "half_pixel_symmetric":
        offset = in_size / 2 * (1 - out_size / out_width)
        x = offset + (y + 0.5) / scale - 0.5
    else:  # pragma: no cover - checked by the caller
        raise ValueError(ctm)
    return np.asarray(x, dtype=np.float64), outside


def _coefficients(
    mode: str, ratios: FloatArray, scale: float, nearest_mode: str, cubic_a: float, antialias: bool
) -> FloatArray:
    """[out, taps] weights for the fractional positions `ratios` in (0, 1] (onnx's *_coeffs)."""
    r = ratios[:, None]
    if mode == "nearest":
        whole = r == 1
        if nearest_mode == "round_prefer_floor":
            right = r > 0.5
        elif nearest_mode == "round_prefer_ceil":
            right = r >= 0.5
        elif nearest_mode == "floor":
            right = np.zeros_like(whole)
        elif nearest_mode == "ceil":
            right = np.ones_like(whole)
        else:  # _SIMPLE
            right = np.full_like(whole, scale < 1)
        right = right | whole
        return np.concatenate([~right, right], axis=1).astype(np.float64)
    if mode == "linear":
        if not antialias:
            return np.concatenate([1 - r, r], axis=1)
        s = min(scale, 1.0)
        start = int(np.floor(-1 / s) + 1)
        taps = np.arange(start, 2 - start, dtype=np.float64)[None, :]
        c = np.clip(1 - np.abs((taps - r) * s), 0, 1)
        return np.asarray(c / c.sum(axis=1, keepdims=True), dtype=np.float64)
    a = cubic_a
    if not antialias:
        def near(t: FloatArray) -> FloatArray:  # |t| <= 1
            return np.asarray(((a + 2) * t - (a + 3)) * t * t + 1, dtype=np.float64)

        def far(t: FloatArray) -> FloatArray:  # 1 < |t| < 2
            return np.asarray(((a * t - 5 * a) * t + 8 * a) * t - 4 * a, dtype=np.float64)

        return np.concatenate([far(r + 1), near(r), near(1 - r), far(2 - r)], axis=1)
    s = min(scale, 1.0)
    start = int(np.floor(-2 / s) + 1)
    t = np.abs(s * (np.arange(start, 2 - start, dtype=np.float64)[None, :] - r))
    c = np.where(
        t <= 1,
        (a + 2) * t**3 - (a + 3) * t**2 + 1,
        np.where(t < 2, a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a, 0.0),
    )
    return np.asarray(c / c.sum(axis=1, keepdims=True), dtype=np.float64)


def _plan_axis(
    *,
    in_size: int,
    out_size: int,
    scale: float,
    roi: tuple[np.floating[Any], np.floating[Any]] | None,
    mode: str,
    ctm: str,
    nearest_mode: str,
    cubic_a: float,
    exclude_outside: bool,
    antialias: bool,
) -> _AxisPlan:
    """onnx's _interpolate_1d_along_axis, with the data left out."""
    x, outside = _source_coordinates(ctm, out_size, in_size, scale, roi)
    floor = np.floor(x)
    # a position on a cell prefers the cell to its left: ratio 1, never 0
    ratios = np.where(x == floor, 1.0, x - floor)
    weights = _coefficients(mode, ratios, scale, nearest_mode, cubic_a, antialias)
    n = weights.shape[1]
    # the n cells nearest to x, ties to the smaller index, in edge-padded coordinates
    pad = math.ceil(n / 2)
    xp = x + pad
    p = np.floor(xp).astype(np.int64)
    frac = xp - p
    if n % 2 == 0:
        first = np.where(frac == 0, -(n // 2), -(n // 2) + 1)
    else:
        base = -((n - 1) // 2)
        first = np.where(frac <= 0.5, base, base + 1)
    neighbours = (p + first)[:, None] + np.arange(n)[None, :] - pad
    if exclude_outside:
        weights = np.where((neighbours < 0) | (neighbours >= in_size), 0.0, weights)
        total = weights.sum(axis=1, keepdims=True)
        weights = weights / np.where(total == 0, 1.0, total)
    # edge padding is clamping the indices into the axis
    indices = np.clip(neighbours, 0, max(in_size - 1, 0)).astype(np.int64)
    if outside is not None and not outside.any():
        outside = None
    return _AxisPlan(indices, np.asarray(weights, dtype=np.float64), outside)


# ---------------------------------------------------------------- building the program


def _resample_axis(x: Node, axis: int, plan: _AxisPlan, extrapolation_value: float) -> Node:
    """`x` (already in its compute type unless the plan is one-hot) resampled along `axis`."""
    out = plan.indices.shape[0]
    if plan.one_hot:
        picked = plan.indices[np.arange(out), np.argmax(plan.weights, axis=1)]
        return build.gather(x, build.constant(picked.astype(np.int64)), axis)
    trailing = (1,) * (x.rank - axis - 1)
    gathered = build.gather(x, build.constant(plan.indices), axis)  # [..., out, taps, ...]
    weights = build.constant(plan.weights.reshape((*plan.weights.shape, *trailing)), x.dtype)
    y = build.reduce(build.join("mul", gathered, weights), "sum", [axis + 1], keepdims=False)
    if plan.outside is not None:
        mask = build.constant(plan.outside.reshape((out, *trailing)))
        y = build.select(mask, scalar_like(y, extrapolation_value), y)
    return y


def interpolation_cell_type(ctx: NodeContext, ct: CellType) -> CellType:
    if ct.is_float:
        return compute_type(ct)
    if ct.is_int:
        # as the reference: a float32 sum can land either side of the .5 that rounding splits on
        return CellType.FLOAT64
    raise ctx.error(f"unsupported: interpolating {ct.np_name} cells (only 'nearest' copies them)")


def _apply_plans(ctx: NodeContext, x: Node, plans: dict[int, _AxisPlan], extrapolation_value: float) -> Node:
    if all(p.one_hot for p in plans.values()):
        # pure copies: any cell type, bit for bit
        for axis, plan in sorted(plans.items()):
            x = _resample_axis(x, axis, plan, extrapolation_value)
        return x
    ct = interpolation_cell_type(ctx, x.dtype)
    y = build.cast(x, ct)
    for axis, plan in sorted(plans.items()):
        y = _resample_axis(y, axis, plan, extrapolation_value)
    if x.dtype.is_int:
        return round_saturate(y, x.dtype)
    return build.cast(y, x.dtype)


@dataclass(frozen=True)
class ResizeSpec:
    mode: str
    ctm: str
    nearest_mode: str
    cubic_a: float
    exclude_outside: bool
    extrapolation_value: float
    antialias: bool
    policy: str


def legacy_spec(mode: str) -> ResizeSpec:
    """Resize-10 and Upsample: asymmetric coordinates and their own nearest rounding, and none
    of Resize-11's other attributes. cubic_a and extrapolation_value are never read (no cubic
    mode, no tf_crop_and_resize); no exclusion, antialias or aspect policy is what Resize-11's
    exclude_outside=0 and Resize-18's antialias=0 and 'stretch' defaults mean."""
    return ResizeSpec(mode=mode, ctm="asymmetric", nearest_mode=_SIMPLE, cubic_a=math.nan, exclude_outside=False,
                       extrapolation_value=math.nan, antialias=False, policy="stretch")


def resize_node(
    ctx: NodeContext,
    x: Node,
    spec: ResizeSpec,
    scales: list[float] | None,
    sizes: list[int] | None,
    roi: npt.NDArray[np.floating[Any]] | None = None,
    axes: Sequence[int] | None = None,
) -> Node:
    """onnx's _interpolate_nd: output sizes and per-axis scales, then one plan per axis."""
    rank = x.rank
    if spec.mode not in _MODES:
        raise ctx.error(f"unsupported mode '{spec.mode}' (expected one of {', '.join(_MODES)})")
    if spec.ctm not in _COORDINATE_MODES:
        raise ctx.error(f"unsupported coordinate_transformation_mode '{spec.ctm}'")
    if spec.mode == "nearest" and spec.nearest_mode not in (*_NEAREST_MODES, _SIMPLE):
        raise ctx.error(f"unsupported nearest_mode '{spec.nearest_mode}'")
    if spec.antialias and spec.mode == "nearest":
        raise ctx.error("antialias is not defined for mode 'nearest'")
    if axes is None:
        axes = list(range(rank))
    else:
        axes = [build.normalize_axis(int(a), rank, "axes entry") for a in axes]
        if len(set(axes)) != len(axes):
            raise ctx.error(f"axes {list(axes)} name an axis twice")
    n = len(axes)
    if (scales is None) == (sizes is None):
        raise ctx.error("needs exactly one of 'scales' and 'sizes' (a non-empty constant)")
    if spec.policy not in ("stretch", "not_larger", "not_smaller"):
        raise ctx.error(f"unsupported keep_aspect_ratio_policy '{spec.policy}'")

    scale = [1.0] * rank
    out = list(x.shape)
    if scales is not None:
        if len(scales) != n:
            raise ctx.error(f"scales has {len(scales)} values for {n} axes")
        if any(not s > 0 for s in scales):
            raise ctx.error(f"scales must be positive, got {scales}")
        for a, s in zip(axes, scales, strict=True):
            scale[a] = s
            out[a] = int(s * x.shape[a])
    else:
        assert sizes is not None
        if len(sizes) != n:
            raise ctx.error(f"sizes has {len(sizes)} values for {n} axes")
        if any(s < 0 for s in sizes):
            raise ctx.error(f"sizes must not be negative, got {sizes}")
        if any(x.shape[a] == 0 for a in axes):
            raise ctx.error("cannot resize an empty axis to a given size")
        for a, s in zip(axes, sizes, strict=True):
            scale[a] = s / x.shape[a]
            out[a] = s
        if spec.policy != "stretch":
            pick = min if spec.policy == "not_larger" else max
            common = pick(scale[a] for a in axes)
            for a in axes:
                scale[a] = common
                out[a] = int(common * x.shape[a] + 0.5)

    roi_pairs: dict[int, tuple[np.floating[Any], np.floating[Any]]] = {}
    if spec.ctm == "tf_crop_and_resize":
        if roi is None:
            raise ctx.error("coordinate_transformation_mode 'tf_crop_and_resize' needs a non-empty roi")
        if len(roi) != 2 * n:
            raise ctx.error(f"roi has {len(roi)} values; expected {2 * n} (start and end per resized axis)")
        for i, a in enumerate(axes):
            roi_pairs[a] = (roi[i], roi[n + i])

    plans: dict[int, _AxisPlan] = {}
    for a in axes:
        pair = roi_pairs.get(a)
        if (
            math.isclose(scale[a], 1.0)
            and out[a] == x.shape[a]
            and (pair is None or (math.isclose(float(pair[0]), 0.0) and math.isclose(float(pair[1]), 1.0)))
        ):
            continue  # every cell maps onto itself
        if out[a] > 0 and x.shape[a] == 0:
            raise ctx.error(f"cannot resize empty axis {a} to {out[a]} cells")
        plans[a] = _plan_axis(
            in_size=x.shape[a], out_size=out[a], scale=scale[a], roi=pair, mode=spec.mode, ctm=spec.ctm,
            nearest_mode=spec.nearest_mode, cubic_a=spec.cubic_a, exclude_outside=spec.exclude_outside,
            antialias=spec.antialias,
        )  # fmt: skip
    return _apply_plans(ctx, x, plans, spec.extrapolation_value)
