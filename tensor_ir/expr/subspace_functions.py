"""Vespa's functions over the dense subspaces of a tensor: `map_subspaces`,
`filter_subspaces` and `top`.

A subspace is the dense part of a tensor at one address of its mapped dimensions. A
tensor without mapped dimensions is one subspace, so `map_subspaces(t, f(x)(...))` is f
applied to the whole of t, and its result, of the type f gives, is the result.
filter_subspaces keeps or drops the subspaces of mapped dimensions (Vespa requires one).
With mapped dimensions the lambda sees one subspace: the slot axes are hidden while its body
compiles (as in a per-cell lambda, tensor_ir.expr.types), so the body computes every
subspace at once, and they come back on its result with the labels and mask they had.
top(n, t) is Vespa's composition of cell_order and filter_subspaces.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tensor_ir import build
from tensor_ir.expr import sparse as sp
from tensor_ir.expr.ast import Call, Lambda
from tensor_ir.expr.types import HIDDEN_MARK, TensorType
from tensor_ir.expr.values import Sparse, TValue, as_double, compute_cell, expand_to, move_axes, with_cell

if TYPE_CHECKING:
    from tensor_ir.expr.compiler import Compiler


def map_subspaces(c: Compiler, e: Call) -> TValue:
    c.arity(e, 2)
    v = c.compile(e.args[0])
    lam = c.lambda_of(e.args[1], 1, "map_subspaces")
    if v.sparse is not None:
        return _per_subspace(c, lam, v)
    return as_double(c.apply_lambda(lam, [v]))


def _per_subspace(c: Compiler, lam: Lambda, v: TValue) -> TValue:
    """The lambda applied to each subspace of v (module doc); its result keeps v's mapped
    dimensions and adds the indexed ones the lambda gives."""
    assert v.sparse is not None
    hidden = {n: f"slot{HIDDEN_MARK}{sp.fresh_slot()[1:]}" for n, _ in v.type.slots}
    node, dims = move_axes(v.node, v.type.dims, hidden)
    out = c.apply_lambda(lam, [TValue(node, TensorType(v.type.cell, dims))])
    if out.sparse is not None or out.type.mapped:
        raise c.error(f"map_subspaces(): the lambda must give a dense subspace, but gives {out.type}", lam.body.loc)
    if out.is_scalar:
        # a number per subspace: cells of the type the input computes in (float for int8)
        out = with_cell(out, compute_cell(v.type.cell))
    want = tuple(sorted({**dict(out.type.dims), **{hidden[n]: s for n, s in v.type.slots}}.items()))
    full = build.broadcast(expand_to(out, want), [s for _, s in want])
    back, dims = move_axes(full, want, {h: n for n, h in hidden.items()})
    return TValue(back, TensorType(out.type.cell, dims, v.type.mapped), v.sparse)


def filter_subspaces(c: Compiler, e: Call) -> TValue:
    c.arity(e, 2)
    v = c.compile(e.args[0])
    if v.sparse is not None:
        lam = c.lambda_of(e.args[1], 1, "filter_subspaces")
        keep = _per_subspace(c, lam, v)
        if keep.type.visible:
            raise c.error(f"filter_subspaces(): the lambda must give a number per subspace, but gives "
                          f"{keep.type.value_type}", lam.body.loc)
        assert keep.sparse is not None
        slots = v.type.slots
        test = build.join("ne", keep.node, build.scalar(0, keep.node.dtype))
        mask = sp.and_masks(v.sparse.mask, TValue(test, TensorType(test.dtype, slots)))
        assert mask is not None
        return TValue(v.node, v.type, Sparse(v.sparse.labels, mask))
    raise c.error(f"filter_subspaces() filters the subspaces of a mapped dimension, which {v.type} lacks "
                  "(Vespa requires one); mapped dimensions are not supported yet", e.loc)


def top(c: Compiler, e: Call) -> TValue:
    c.arity(e, 2)
    v = c.compile(e.args[1])
    if v.sparse is not None:
        # Vespa's definition of top, in its own terms
        from tensor_ir.expr.parser import parse_expression

        body = parse_expression("top_t_ * filter_subspaces(cell_order(top_t_, max) < top_n_, f(s)(s))",
                                e.loc.file, e.loc.line, e.loc.column)
        return c.with_locals({"top_t_": v, "top_n_": c.compile(e.args[0])}).compile(body)
    raise c.error(f"top(n, t) picks the top cells of a tensor with a mapped dimension, which {v.type} lacks "
                  "(Vespa builds it on filter_subspaces); mapped dimensions are not supported yet", e.loc)
