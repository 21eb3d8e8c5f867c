"""Vespa's functions over the dense subspaces of a tensor: `map_subspaces`,
`filter_subspaces` and `top`.

A subspace is the dense part of a tensor at one address of its mapped dimensions. A
tensor without mapped dimensions is one subspace, so `map_subspaces(t, f(x)(...))` is f
applied to the whole of t, and its result, of the type f gives, is the result.
filter_subspaces keeps or drops the subspaces of mapped dimensions, and top(n, t) is built
on it (`t * filter_subspaces(cell_order(t, max) < n, f(s)(s))`): Vespa requires a mapped
dimension for both, and mapped dimensions are not supported here yet, so both are refused
with that reason.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tensor_ir.expr.ast import Call
from tensor_ir.expr.values import TValue, as_double

if TYPE_CHECKING:
    from tensor_ir.expr.compiler import Compiler


def map_subspaces(c: Compiler, e: Call) -> TValue:
    c.arity(e, 2)
    v = c.compile(e.args[0])
    lam = c.lambda_of(e.args[1], 1, "map_subspaces")
    return as_double(c.apply_lambda(lam, [v]))


def filter_subspaces(c: Compiler, e: Call) -> TValue:
    c.arity(e, 2)
    v = c.compile(e.args[0])
    raise c.error(f"filter_subspaces() filters the subspaces of a mapped dimension, which {v.type} lacks "
                  "(Vespa requires one); mapped dimensions are not supported yet", e.loc)


def top(c: Compiler, e: Call) -> TValue:
    c.arity(e, 2)
    v = c.compile(e.args[1])
    raise c.error(f"top(n, t) picks the top cells of a tensor with a mapped dimension, which {v.type} lacks "
                  "(Vespa builds it on filter_subspaces); mapped dimensions are not supported yet", e.loc)
