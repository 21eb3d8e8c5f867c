"""What the ranker fills in per query for rank features: the time `now` reads, random
seeds left to the clock, and the per-document random numbers (tensor_ir/expr/features/
per_query.py declares them).

Random numbers are drand48's, as Vespa's random feature draws them: `srand48(seed)` sets
the 48-bit state to `(seed mod 2^32) * 2^16 + 0x330E`, each `lrand48()` steps it by
`a * state + c mod 2^48` and returns its top 31 bits, and the number is that over 2^31.
The n-th draw is computed directly (the n-th power of the step), so documents are drawn
vectorised and any subset of rows gets the numbers the whole shard would.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from tensor_ir.expr.features.per_query import NOW_PROPERTY, MadeInput
from tensor_ir.expr.profile import CompiledProfile

_A = 0x5DEECE66D
_C = 0xB
_MASK = (1 << 48) - 1
_U64 = np.uint64


def fill_per_query(profile: CompiledProfile, qv: dict[str, Any]) -> None:
    """`now` and clock seeds, where the request and the profile leave them open (NaN)."""
    key = f"query({NOW_PROPERTY})"
    if key in qv:
        now = float(qv[key])
        # Vespa reads the property with atoll: whole seconds
        qv[key] = np.asarray(math.floor(time.time()) if math.isnan(now) else math.trunc(now), np.float64)
    for made in profile.generated.values():
        key = f"query({made.seed})"
        seed = float(qv[key])
        if made.kind == "random" and (math.isnan(seed) or seed == 0):
            # Vespa's default: the clock in microseconds (so not reproducible)
            qv[key] = np.asarray(float(time.time_ns() // 1000 & 0xFFFFFFFF), np.float64)


def made_values(made: MadeInput, qv: Mapping[str, Any], n: int, rows: npt.NDArray[np.int64] | None
                ) -> npt.NDArray[np.float64]:
    """One number per scored row (all n rows of the shard, or `rows`)."""
    seed = int(float(qv[f"query({made.seed})"]))
    docs = np.arange(n, dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
    if made.kind == "random":
        # the documents drawn in row order after one seeding: row r takes draw r + 1
        return drand48_draws(np.full(docs.shape, seed, dtype=np.int64), docs + 1)
    return drand48_draws(seed + docs, np.ones(docs.shape, dtype=np.int64))


def drand48_draws(seeds: npt.NDArray[np.int64], draws: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    """For each element: srand48(seed), then lrand48() `draw` times; the last one over 2^31."""
    state = ((seeds.astype(np.int64) & 0xFFFFFFFF).astype(_U64) << _U64(16)) | _U64(0x330E)
    # the step applied k times is state * A_k + C_k: square-and-multiply over the bits of k
    mul = np.full(state.shape, _A, dtype=_U64)
    add = np.full(state.shape, _C, dtype=_U64)
    k = draws.astype(np.int64).copy()
    mask = _U64(_MASK)
    with np.errstate(over="ignore"):  # products wrap mod 2^64, which keeps them right mod 2^48
        while bool(np.any(k > 0)):
            odd = (k & 1) == 1
            stepped = (state * mul + add) & mask
            state = np.where(odd, stepped, state)
            # compose the step with itself: (m, a) -> (m * m, a * m + a)
            add = (add * mul + add) & mask
            mul = (mul * mul) & mask
            k >>= 1
    return (state >> _U64(17)).astype(np.float64) / float(1 << 31)
