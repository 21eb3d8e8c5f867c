"""Top-k candidates from block maxima, on the host (numpy).

Split the scores into blocks of documents and take each block's maximum. At least
k blocks have a maximum >= T, the k-th largest maximum, so the k-th best score is >= T
too, and every score that good lies in a block whose maximum is >= T. Those few blocks
(plus the documents after the last whole block) hold every candidate: the exact
selection runs on them alone, and its result is the one of a selection over all scores.

With a non-decreasing tail f (tensor_ir.passes.monotone_tail) the blocks are chosen by
their head maxima, and f runs on the chosen blocks only, plus the largest maximum left out:
f of that bounds every score left out, so the selection is exact when the bound is below
the k-th best score. Where f saturates (a sigmoid's 1.0 for many heads) it may not be, and
the caller selects over all scores.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

MIN_DOCS = 1 << 16
# Larger blocks make the maxima cheaper (numpy reduces a short row slowly: 0.13 ms per
# million float32 scores in rows of 1024, 0.3 ms in rows of 256) but rule out less.
BLOCKS = (1024, 512, 256)
# At least k blocks are chosen; with 16 blocks per candidate that is a sixteenth of the
# scores, within the eighth beyond which the selection over all is as cheap.
_BLOCKS_PER_CANDIDATE = 16

Candidates = tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]


def block_size(n: int, k: int) -> int | None:
    """The block size for selecting k of n scores; None when blocks would not pay."""
    if n < MIN_DOCS or k <= 0:
        return None
    return next((b for b in BLOCKS if n // b >= _BLOCKS_PER_CANDIDATE * k), None)


def block_candidates(head: npt.NDArray[np.floating], k: int,
                     tail: Callable[[npt.NDArray[np.floating]], npt.NDArray[np.floating]] | None = None,
                     ) -> Candidates | None:
    """Positions (ascending) and scores (float64) of every score at least the k-th best,
    ties included, NaN ranking lowest; the scores are tail(head) or head itself. None when
    blocks would not pay (few documents, a large k, NaN among the maxima, or so many
    blocks tied at the threshold that the caller's selection over all is as cheap), and
    for scores that are not floats."""
    n = int(head.shape[0])
    size = block_size(n, k)
    if size is None or head.dtype.kind != "f":  # float64 keys would merge large integers
        return None
    nb = n // size
    blocks = head[:nb * size].reshape(nb, size)
    best = blocks.max(axis=1)  # NaN propagates: such a block's best non-NaN score is unknown
    if np.isnan(best).any():
        return None
    # first by the heads alone, with one tail run; then, if a block left out might hold a
    # score tied with the k-th best (a saturated sigmoid), by the tail of every block's best
    found = _select(head, blocks, best, best >= np.partition(best, nb - k)[nb - k], k, tail, bound=True)
    if found is None and tail is not None:
        best_f = np.asarray(tail(best), dtype=np.float64)
        if np.isnan(best_f).any():
            return None
        threshold = np.partition(best_f, nb - k)[nb - k]
        if not np.isfinite(threshold):
            # -inf: the k-th best may be a NaN's -inf anywhere; +inf: nothing to gain
            return None
        found = _select(head, blocks, best, best_f >= threshold - _margin(threshold), k, tail, bound=False)
    return found


def _select(head: npt.NDArray[np.floating], blocks: npt.NDArray[np.floating], best: npt.NDArray[np.floating],
            chosen: npt.NDArray[np.bool_], k: int,
            tail: Callable[[npt.NDArray[np.floating]], npt.NDArray[np.floating]] | None,
            bound: bool) -> Candidates | None:
    """The exact selection among the chosen blocks and the documents after the last whole
    block (`best`: each block's maximum). With `bound`, the best head left out goes through
    the tail too: every score left out is at most its score, so the selection holds only if
    that is below the k-th best."""
    nb, size = blocks.shape
    n = int(head.shape[0])
    picked = np.flatnonzero(chosen)
    if picked.size * size > n // 8:
        return None
    left_out = best[~chosen] if bound else head[:0]
    pos = np.concatenate([(picked[:, None] * size + np.arange(size)).reshape(-1), np.arange(nb * size, n)])
    values = np.concatenate([blocks[picked].reshape(-1), head[nb * size:],
                             left_out.max(keepdims=True) if left_out.size else head[:0]])
    scored = np.asarray(values if tail is None else tail(values), dtype=np.float64)
    scores = scored[:pos.size]
    key = np.where(np.isnan(scores), -np.inf, scores)
    kth = np.partition(key, key.size - k)[key.size - k]
    if left_out.size and not scored[-1] < kth - (0.0 if tail is None else _margin(kth)):
        return None  # NaN too
    keep = np.flatnonzero(key >= kth)
    return pos[keep].astype(np.int64), scores[keep]


def _margin(value: float) -> float:
    """f(max) is a block's best f for a non-decreasing f, but a vectorised exp or sigmoid can
    be 1 ulp off monotone: thresholds on tail values get a margin far above an ulp."""
    return abs(float(value)) * 1e-6 + 1e-30
