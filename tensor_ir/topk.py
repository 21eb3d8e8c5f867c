"""Top-k candidates from block maxima, on the host (numpy).

Split the scores into blocks of documents and take each block's maximum. At least
k blocks have a maximum >= T, the k-th largest maximum, so the k-th best score is >= T
too, and every score that good lies in a block whose maximum is >= T. Those few blocks
(plus the documents after the last whole block) hold every candidate: the exact
selection runs on them alone, and its result is the one of a selection over all scores.

With a non-decreasing tail f (tensor_ir.passes.monotone_tail) the maximum of f over a
block is f of the block's maximum, so f runs on the maxima and on the chosen blocks only.
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
    best_f = np.asarray(best if tail is None else tail(best), dtype=np.float64)
    if np.isnan(best_f).any():
        return None
    threshold = np.partition(best_f, nb - k)[nb - k]
    if not np.isfinite(threshold):
        # -inf: the k-th best may be a NaN's -inf anywhere; +inf: nothing to gain
        return None
    # f(max) is the block's best f when f is non-decreasing; a vectorised exp or sigmoid can
    # be 1 ulp off that, so a tail's threshold gets a margin far above an ulp
    margin = 0.0 if tail is None else abs(float(threshold)) * 1e-6 + 1e-30
    chosen = np.flatnonzero(best_f >= threshold - margin)
    if chosen.size * size > n // 8:
        return None
    pos = (chosen[:, None] * size + np.arange(size)).reshape(-1)
    pos = np.concatenate([pos, np.arange(nb * size, n)])
    values = np.concatenate([blocks[chosen].reshape(-1), head[nb * size:]])
    scores = np.asarray(values if tail is None else tail(values), dtype=np.float64)
    key = np.where(np.isnan(scores), -np.inf, scores)
    kth = np.partition(key, key.size - k)[key.size - k]
    keep = np.flatnonzero(key >= kth)
    return pos[keep].astype(np.int64), scores[keep]
