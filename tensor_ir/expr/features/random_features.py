"""`random`, `random(name)` and `random(name).match`, as Vespa's randomfeature draws them:
numbers in [0, 1) from drand48 (`lrand48() / 2^31`).

- `random` seeds once per query and draws once per document, in document order (here: the
  shard's row order). The seed is the rank property `random.seed` (`random(name).seed`),
  which a request may give as a query input of that name; without one, or with 0, it is the
  clock in microseconds, as in Vespa, and then not reproducible.
- `.match` seeds per document with `seed + document` (Vespa's local document id; here the
  row), so a document keeps its number across queries with the same seed; the seed is
  `random.match.seed` (`random(name).match.seed`), 1024 by default.

A name only makes an independent instance (`random(foo)`, `random(bar)`). Where Vespa
draws anew in each phase, here a document has one number per query in every phase.
"""

from __future__ import annotations

import math
from typing import Any

from tensor_ir.expr.ast import Call, Name, Num, Str
from tensor_ir.expr.errors import RankingError
from tensor_ir.expr.features import rank_feature
from tensor_ir.expr.features.per_query import MadeInput, made_input, per_query_number, property_number
from tensor_ir.expr.values import TValue

DEFAULT_MATCH_SEED = 1024.0


def _instance(call: Call) -> str:
    if not call.args:
        return "random"
    if len(call.args) != 1:
        raise RankingError("random takes at most one argument, a name for an independent instance", call.loc)
    arg = call.args[0]
    if isinstance(arg, Name):
        text = arg.name
    elif isinstance(arg, Str):
        text = arg.value
    elif isinstance(arg, Num):
        text = f"{arg.value:g}"
    else:
        raise RankingError("random(name): the name must be a word or a number", arg.loc)
    return f"random({text})"


@rank_feature("random")
def _random(ctx: Any, compiler: Any, call: Call) -> TValue:
    base = _instance(call)
    if call.output not in (None, "match"):
        raise RankingError(f"{base} has the outputs {base} and {base}.match, not .{call.output}", call.loc)
    if call.output is None:
        seed_name = f"{base}.seed"
        given = property_number(ctx, seed_name, call.loc)
        seed = math.nan if given is None else given
        kind, name = "random", base
    else:
        seed_name = f"{base}.match.seed"
        given = property_number(ctx, seed_name, call.loc)
        seed = DEFAULT_MATCH_SEED if given is None else given
        kind, name = "random.match", f"{base}.match"
    per_query_number(ctx, seed_name, seed, call.loc)
    return made_input(ctx, name, MadeInput(kind, seed_name))
