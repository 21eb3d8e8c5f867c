"""Resize, Upsample and GridSample.

Resize and Upsample take their scales or sizes (and roi) as deploy-time constants, so every
source position is known at import: for each resized axis, numpy works out (exactly as onnx's
reference does) which input cells each output cell reads and with which weights. The axis
then becomes one GATHER with a constant [out, taps] index table and, unless every output cell
copies a single input cell, a MUL by the constant weights and a REDUCE over the taps. Axes
that keep their size and coordinates cost nothing.

GridSample's grid is usually data, so its source positions are computed elementwise at run
time: per spatial axis a few integer tap coordinates and their weights, combined into flat
indices into the spatial cells of each channel and read with one GATHER_ELEMENTS.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import product
from typing import Any

import numpy as np
import numpy.typing as npt

from tensor_ir import build
from tensor_ir.dtypes import CellType, compute_type
from tensor_ir.ir import Node
from tensor_ir.onnx_import.context import NodeContext
from tensor_ir.onnx_import.converters.common import scalar_like, squeeze
from tensor_ir.onnx_import.converters.linalg import round_saturate
from tensor_ir.onnx_import.registry import converter

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


def _compute_cell_type(ctx: NodeContext, ct: CellType) -> CellType:
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
    ct = _compute_cell_type(ctx, x.dtype)
    y = build.cast(x, ct)
    for axis, plan in sorted(plans.items()):
        y = _resample_axis(y, axis, plan, extrapolation_value)
    if x.dtype.is_int:
        return round_saturate(y, x.dtype)
    return build.cast(y, x.dtype)


@dataclass(frozen=True)
class _ResizeSpec:
    mode: str
    ctm: str
    nearest_mode: str
    cubic_a: float = -0.75
    exclude_outside: bool = False
    extrapolation_value: float = 0.0
    antialias: bool = False
    policy: str = "stretch"


def _floats(values: npt.NDArray[Any] | None) -> list[float] | None:
    if values is None:
        return None
    flat = np.asarray(values).reshape(-1)
    return None if flat.size == 0 else [float(v) for v in flat]


def _resize(
    ctx: NodeContext,
    x: Node,
    spec: _ResizeSpec,
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


# ---------------------------------------------------------------- converters


def _optional_const(ctx: NodeContext, i: int, what: str) -> npt.NDArray[Any] | None:
    return None if ctx.optional(i) is None else ctx.const(i, what)


@converter("Resize", 10)
def resize_10(ctx: NodeContext) -> Sequence[Node | None]:
    mode = str(ctx.attr("mode", "nearest"))
    spec = _ResizeSpec(mode=mode, ctm="asymmetric", nearest_mode=_SIMPLE)
    scales = _floats(ctx.const(1, "scales"))
    if scales is None:
        raise ctx.error("scales must not be empty")
    return [_resize(ctx, ctx.input(0), spec, scales, None)]


@converter("Resize", 11, 13, 18, 19)
def resize(ctx: NodeContext) -> Sequence[Node | None]:
    ctm = str(ctx.attr("coordinate_transformation_mode", "half_pixel"))
    if ctm == "half_pixel_symmetric" and ctx.opset < 19:
        raise ctx.error("coordinate_transformation_mode 'half_pixel_symmetric' needs opset 19")
    if ctm == "tf_half_pixel_for_nn" and ctx.opset >= 13:
        raise ctx.error("coordinate_transformation_mode 'tf_half_pixel_for_nn' was removed in opset 13")
    spec = _ResizeSpec(
        mode=str(ctx.attr("mode", "nearest")),
        ctm=ctm,
        nearest_mode=str(ctx.attr("nearest_mode", "round_prefer_floor")),
        cubic_a=float(ctx.attr("cubic_coeff_a", -0.75)),
        exclude_outside=bool(ctx.attr("exclude_outside", 0)),
        extrapolation_value=float(ctx.attr("extrapolation_value", 0.0)),
        antialias=bool(ctx.attr("antialias", 0)),
        policy=str(ctx.attr("keep_aspect_ratio_policy", "stretch")),
    )
    scales = _floats(_optional_const(ctx, 2, "scales"))
    sizes_value = _optional_const(ctx, 3, "sizes")
    sizes = None if sizes_value is None or sizes_value.size == 0 else [int(v) for v in sizes_value.reshape(-1)]
    if scales is not None and sizes is not None:
        raise ctx.error("only one of 'scales' and 'sizes' may be given")
    # roi matters to tf_crop_and_resize only, where it must be known at deploy time
    roi_value = _optional_const(ctx, 1, "roi") if ctm == "tf_crop_and_resize" else None
    roi = None if roi_value is None or roi_value.size == 0 else roi_value.reshape(-1)
    axes = ctx.attr("axes")
    return [_resize(ctx, ctx.input(0), spec, scales, sizes, roi, None if axes is None else list(axes))]


@converter("Upsample", 7, 9, 10)
def upsample(ctx: NodeContext) -> Sequence[Node | None]:
    mode = str(ctx.attr("mode", "nearest"))
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
    spec = _ResizeSpec(mode=mode, ctm="asymmetric", nearest_mode=_SIMPLE)
    return [_resize(ctx, ctx.input(0), spec, scales, None)]


# ---------------------------------------------------------------- GridSample

_GRID_MODES = {"bilinear": "linear", "linear": "linear", "nearest": "nearest", "bicubic": "cubic", "cubic": "cubic"}
_CUBIC_A = -0.75  # GridSample's cubic kernel is fixed (PyTorch's)


def _reflect(x: Node, lo: float, hi: float) -> Node:
    """Fold `x` back into [lo, hi] by reflecting at the bounds (onnx's _gs_reflect)."""
    span = hi - lo
    if span <= 0:
        return build.broadcast(scalar_like(x, lo), x.shape)
    below = build.join("lt", x, scalar_like(x, lo))
    above = build.join("gt", x, scalar_like(x, hi))
    dx = build.select(below, build.join("sub", scalar_like(x, lo), x), build.join("sub", x, scalar_like(x, hi)))
    turns = build.map_("floor", build.join("div", dx, scalar_like(x, span)))
    rest = build.join("sub", dx, build.join("mul", turns, scalar_like(x, span)))
    even = build.join("eq", build.join("mod", turns, scalar_like(x, 2)), scalar_like(x, 0))
    from_lo = build.join("add", scalar_like(x, lo), rest)
    from_hi = build.join("sub", scalar_like(x, hi), rest)
    low_side = build.select(even, from_lo, from_hi)
    high_side = build.select(even, from_hi, from_lo)
    return build.select(below, low_side, build.select(above, high_side, x))


def _clamp(x: Node, lo: float, hi: float) -> Node:
    return build.join("min", build.join("max", x, scalar_like(x, lo)), scalar_like(x, hi))


def _cubic_weights(t: Node) -> list[Node]:
    """Weights of taps floor-1 .. floor+2 for the fraction t in [0, 1)."""
    a = _CUBIC_A

    def near(u: Node) -> Node:  # ((a + 2) u - (a + 3)) u^2 + 1
        inner = build.join("sub", build.join("mul", scalar_like(u, a + 2), u), scalar_like(u, a + 3))
        return build.join("add", build.join("mul", inner, build.join("mul", u, u)), scalar_like(u, 1))

    def far(u: Node) -> Node:  # ((a u - 5a) u + 8a) u - 4a
        p = build.join("sub", build.join("mul", scalar_like(u, a), u), scalar_like(u, 5 * a))
        p = build.join("add", build.join("mul", p, u), scalar_like(u, 8 * a))
        return build.join("sub", build.join("mul", p, u), scalar_like(u, 4 * a))

    one_minus = build.join("sub", scalar_like(t, 1), t)
    return [
        far(build.join("add", t, scalar_like(t, 1))),
        near(t),
        near(one_minus),
        far(build.join("add", one_minus, scalar_like(t, 1))),
    ]


def _axis_taps(
    coord: Node, size: int, mode: str, padding: str, align_corners: bool
) -> list[tuple[Node, Node | None, Node | None]]:
    """For one spatial axis: (index, weight, in-range mask) per tap, from the normalised grid
    coordinate. Indices are int64 within the axis; weight None means 1; mask None means always."""
    lo, hi = (0.0, size - 1.0) if align_corners else (-0.5, size - 0.5)
    if align_corners:
        x = build.join("mul", build.join("div", build.join("add", coord, scalar_like(coord, 1)),
                                         scalar_like(coord, 2)), scalar_like(coord, size - 1))
    else:
        x = build.join("div", build.join("sub", build.join("mul", build.join("add", coord, scalar_like(coord, 1)),
                                                           scalar_like(coord, size)), scalar_like(coord, 1)),
                       scalar_like(coord, 2))
    if mode == "nearest":
        x = build.map_("round", x)  # half to even, as PyTorch
    outside = build.join("or", build.join("lt", x, scalar_like(x, lo)), build.join("gt", x, scalar_like(x, hi)))
    if padding == "border" and mode != "cubic":
        # onnx's reference clamps a cubic coordinate too, onnxruntime and PyTorch clamp only
        # its taps (below): the clamped taps keep the kernel's shape at the border
        x = build.select(outside, _clamp(x, 0, size - 1), x)
    elif padding == "reflection":
        x = build.select(outside, _reflect(x, lo, hi), x)

    weights: list[Node | None] = [None]
    offsets = [0]
    base = x
    if mode != "nearest":
        base = build.map_("floor", x)
        t = build.join("sub", x, base)
        if mode == "linear":
            weights = [build.join("sub", scalar_like(t, 1), t), t]
            offsets = [0, 1]
        else:
            weights = list(_cubic_weights(t))
            offsets = [-1, 0, 1, 2]

    taps: list[tuple[Node, Node | None, Node | None]] = []
    for off, w in zip(offsets, weights, strict=True):
        i = base if off == 0 else build.join("add", base, scalar_like(base, off))
        mask: Node | None = None
        if padding == "zeros":
            in_range = build.join("le", i, scalar_like(i, size - 1))
            mask = build.join("and", build.join("ge", i, scalar_like(i, 0)), in_range)
        elif padding == "reflection":
            i = _reflect(i, lo, hi)
        # every index the gather sees is in range; zeros padding masks the clamped reads out
        idx = build.cast(_clamp(i, 0, size - 1), CellType.INT64)
        taps.append((idx, w, mask))
    return taps


@converter("GridSample", 16, 20, 22)
def grid_sample(ctx: NodeContext) -> Sequence[Node | None]:
    x, grid = ctx.input(0), ctx.input(1)
    mode_name = str(ctx.attr("mode", "linear" if ctx.opset >= 20 else "bilinear"))
    mode = _GRID_MODES.get(mode_name)
    if mode is None:
        raise ctx.error(f"unsupported mode '{mode_name}'")
    padding = str(ctx.attr("padding_mode", "zeros"))
    if padding not in ("zeros", "border", "reflection"):
        raise ctx.error(f"unsupported padding_mode '{padding}'")
    align_corners = bool(ctx.attr("align_corners", 0))
    ctx.float_types_only(grid)
    r = x.rank - 2
    if r < 1 or grid.rank != r + 2 or grid.shape[-1] != r or grid.shape[0] != x.shape[0]:
        raise ctx.error(f"grid of shape {list(grid.shape)} does not fit input {list(x.shape)}: "
                        f"expected [N, *out, {r}] for N = {x.shape[0] if x.rank else '?'}")
    if ctx.opset < 20 and r != 2:
        raise ctx.error(f"GridSample before opset 20 takes 4-D input, got rank {x.rank}")
    if mode != "nearest" and not x.dtype.is_float and not x.dtype.is_int:
        raise ctx.error(f"unsupported: interpolating {x.dtype.np_name} cells")
    batch, channels, spatial = x.shape[0], x.shape[1], x.shape[2:]
    out_spatial = grid.shape[1:-1]
    n_out = math.prod(out_spatial)
    n_in = math.prod(spatial)

    g = build.cast(grid, CellType.FLOAT64 if grid.dtype is CellType.FLOAT64 else CellType.FLOAT32)
    g = build.reshape(g, (batch, n_out, r))
    per_axis = []
    for axis in range(r):
        # grid coordinates run innermost axis first: (x, y, z) for [.., D, H, W]
        c = squeeze(build.slice_(g, [0, 0, r - 1 - axis], [batch, n_out, r - axis], [1, 1, 1]), [2])
        per_axis.append(_axis_taps(c, spatial[axis], mode, padding, align_corners))

    strides = [math.prod(spatial[a + 1:]) for a in range(r)]
    indices: list[Node] = []
    weights: list[Node] = []
    masks: list[Node] = []
    for combo in product(*per_axis):
        flat: Node | None = None
        weight: Node | None = None
        mask: Node | None = None
        for (idx, w, m), stride in zip(combo, strides, strict=True):
            term = idx if stride == 1 else build.join("mul", idx, scalar_like(idx, stride))
            flat = term if flat is None else build.join("add", flat, term)
            if w is not None:
                weight = w if weight is None else build.join("mul", weight, w)
            if m is not None:
                mask = m if mask is None else build.join("and", mask, m)
        assert flat is not None
        indices.append(build.reshape(flat, (batch, 1, n_out)))
        if weight is not None:
            weights.append(build.reshape(weight, (batch, 1, n_out)))
        if mask is not None:
            masks.append(build.reshape(mask, (batch, 1, n_out)))
    taps = len(indices)

    index = build.concat(indices, axis=1) if taps > 1 else indices[0]  # [N, taps, P]
    index = build.broadcast(build.reshape(index, (batch, 1, taps * n_out)), (batch, channels, taps * n_out))
    data = build.reshape(x, (batch, channels, n_in))
    if n_in == 0:
        raise ctx.error("cannot sample from an empty input")
    picked = build.gather_elements(data, index, axis=2)
    picked = build.reshape(picked, (batch, channels, taps, n_out))
    compute = x.dtype if mode == "nearest" else _compute_cell_type(ctx, x.dtype)
    values = build.cast(picked, compute)
    if weights:
        w = build.concat(weights, axis=1) if taps > 1 else weights[0]  # [N, taps, P]
        w = build.cast(build.reshape(w, (batch, 1, taps, n_out)), compute)
        values = build.join("mul", values, w)
    if masks:
        m = build.concat(masks, axis=1) if taps > 1 else masks[0]
        m = build.reshape(m, (batch, 1, taps, n_out))
        values = build.select(m, values, scalar_like(values, 0))
    y = build.reduce(values, "sum", [2], keepdims=False) if taps > 1 else squeeze(values, [2])
    # the onnx reference stores the float result into the input's cell type as numpy does
    y = build.cast(y, x.dtype)
    return [build.reshape(y, (batch, channels, *out_spatial))]
