"""The host side of Vespa's global phase (container-search's LinearNormalizer,
ReciprocalRankNormalizer and ResultReranker): cross-hit normalizers over the reranked hits,
and the rescaling of the hits after them.

The global phase rescores the best `rerank-count` hits (in their order after the earlier
phases). The hits after them keep their scores, but where the rescored ones reach below
where they started (the lowest new score under the lowest old one), the rest are mapped
linearly, `old * scale + bias`, so that none of them outranks a rescored hit by accident:
scale is (new range) / (old range), each range at least 1, and bias puts the old lowest
onto the new lowest.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from tensor_ir.expr.features.phase_features import Normalizer

FLOAT_MAX = float(np.finfo(np.float32).max)  # Java's Float.MAX_VALUE, the linear normalizer's bound


def normalize(normalizer: Normalizer, values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """The normalized value of each hit, the hits in their rerank order."""
    v = np.asarray(values, dtype=np.float64)
    if normalizer.kind == "linear":
        inside = v[(v < FLOAT_MAX) & (v > -FLOAT_MAX)]
        lo = float(inside.min()) if inside.size else FLOAT_MAX
        hi = float(inside.max()) if inside.size else -FLOAT_MAX
        scale, midpoint = (1.0 / (hi - lo), (lo + hi) * 0.5) if hi > lo else (0.0, 0.0)
        with np.errstate(invalid="ignore"):
            out: npt.NDArray[np.float64] = 0.5 + scale * (v - midpoint)
        return out
    # reciprocal rank: the highest value has rank 1; NaN lowest; ties keep the hit order
    key = np.where(np.isnan(v), -np.inf, v)
    order = np.argsort(-key, kind="stable")
    ranks = np.empty(v.size, dtype=np.float64)
    ranks[order] = np.arange(1, v.size + 1, dtype=np.float64)
    result: npt.NDArray[np.float64] = 1.0 / (normalizer.k + ranks)
    return result


def rescale_rest(initial: npt.NDArray[np.float64], final: npt.NDArray[np.float64],
                 rest: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """The scores of the hits after the rescored ones (Vespa's RangeAdjuster)."""
    if rest.size == 0:
        return rest
    i_lo, i_hi = _range(initial)
    f_lo, f_hi = _range(final)
    if not (i_lo > f_lo and i_hi >= i_lo and f_hi >= f_lo):
        return rest
    scale = max(f_hi - f_lo, 1.0) / max(i_hi - i_lo, 1.0)
    bias = f_lo - i_lo * scale
    out: npt.NDArray[np.float64] = rest * scale + bias
    return out


def _range(values: npt.NDArray[np.float64]) -> tuple[float, float]:
    """(lowest, highest) as Vespa's running comparisons find them: NaN never counts."""
    v = values[~np.isnan(values)]
    if v.size == 0:
        return float(np.finfo(np.float64).max), -float(np.finfo(np.float64).max)
    return float(v.min()), float(v.max())
