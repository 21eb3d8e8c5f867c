"""Values a rank feature needs that neither a document nor the query tensors hold: numbers
the ranker fills once per query (`now`, a random seed) and per-document values it makes
for the rows it scores (`random`). Both become program inputs whose names say what they
are; `server/per_query.py` fills them.

A per-query number is a query input of type double named like the rank property Vespa
reads for it (`vespa.now`, `random.seed`), so a request may set it like any query input
(reproducible results: give the seed, or the time). Its default is the profile's
rank-properties value, else NaN, which the ranker replaces (the clock).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tensor_ir import build
from tensor_ir.dtypes import CellType
from tensor_ir.expr.errors import Location, RankingError
from tensor_ir.expr.types import TensorType
from tensor_ir.expr.values import TValue
from tensor_ir.ir import Role

DOUBLE = TensorType(CellType.FLOAT64, ())
NOW_PROPERTY = "vespa.now"  # Vespa's query property for the time `now` reads


@dataclass(frozen=True)
class MadeInput:
    """A per-document program input the ranker makes: `kind` says how (server/per_query.py)."""

    kind: str  # "random": the n-th draw of drand48 seeded once; "random.match": seeded per document
    seed: str  # the query input (per-query number) holding the seed


def property_number(ctx: Any, name: str, loc: Location) -> float | None:
    """A number from the profile's rank-properties, or None when it gives none."""
    text = ctx.profile.rank_properties.get(name)
    if text is None:
        return None
    try:
        return float(str(text).strip().strip('"'))
    except ValueError:
        raise RankingError(f"rank-properties {name} must be a number, got '{text}'", loc) from None


def per_query_number(ctx: Any, name: str, default: float, loc: Location) -> TValue:
    """A double the request may give as query input `name`, else `default` (NaN: the ranker's)."""
    from tensor_ir.expr.profile import QueryInput

    q = ctx.profile.inputs.get(name)
    if q is not None and q.type != DOUBLE:
        raise RankingError(f"query({name}) is declared {q.type}; the rank feature reading it needs a double", loc)
    if name not in ctx.queries_used:
        ctx.queries_used[name] = q if q is not None else QueryInput(name, DOUBLE, np.asarray(default, np.float64), loc)
    node = build.input_(f"query({name})", Role.QUERY, (), CellType.FLOAT64)
    return TValue(node, DOUBLE)


def made_input(ctx: Any, name: str, made: MadeInput) -> TValue:
    """A per-document double the ranker makes for the rows it scores."""
    ctx.generated[name] = made
    node = build.input_(name, Role.ATTRIBUTE, (), CellType.FLOAT64)
    return TValue(node, DOUBLE)
