"""Token sequences for Transformer models, as Vespa's TokenTransformer writes them:
`tokenInputIds(length, a, b, ...)`, `customTokenInputIds(start, sep, length, a, b, ...)`,
`tokenTypeIds(length, a, b, ...)` and `tokenAttentionMask(length, a, b, ...)`.

Each is a `tensor<float>(d0[1],d1[length])`. The inputs are zero-padded token tensors of
one dimension (query inputs, attributes, constants or functions: Vespa takes references
only); an input's length is its number of tokens greater than 0, and its first that many
cells are taken. The sequence is `CLS a SEP b SEP ... 0 ...` with CLS 101 and SEP 102
(tokenInputIds), or the given start and separator ids (customTokenInputIds), cut at
`length`. tokenTypeIds is 0 over CLS, a and its SEP, 1 over the rest of the sequence
(up to and including the last SEP), 0 after; tokenAttentionMask is 1 over the whole
sequence and 0 after. Everything is computed per document, vectorised over the shard.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tensor_ir import build
from tensor_ir.dtypes import CellType
from tensor_ir.expr.ast import Call, Expr, Name, Num
from tensor_ir.expr.errors import RankingError
from tensor_ir.expr.features import rank_feature
from tensor_ir.expr.types import TensorType
from tensor_ir.expr.values import TValue
from tensor_ir.ir import Node

CLS = 101.0
SEP = 102.0
F64 = CellType.FLOAT64


def _c(v: float) -> Node:
    return build.scalar(v, F64)


def _whole_number(call: Call, arg: Expr, what: str) -> int:
    if not isinstance(arg, Num) or arg.value != int(arg.value) or arg.value < (1 if what == "length" else 0):
        raise RankingError(f"Invalid argument to {call.name}: the {what} must be a whole number"
                           f"{' of at least 1' if what == 'length' else ''}, got {arg}", arg.loc)
    return int(arg.value)


def _token_inputs(compiler: Any, call: Call, first: int) -> list[TValue]:
    values = []
    for i, arg in enumerate(call.args[first:], start=first):
        if not isinstance(arg, Name | Call):
            raise RankingError(f"Invalid argument {i} to {call.name}: the argument must be a reference "
                               "(a query input, attribute, constant or function)", arg.loc)
        v = compiler.compile(arg)
        if v.type.rank != 1:
            raise RankingError(f"Invalid argument {i} to {call.name}: a token sequence has one dimension, "
                               f"got {v.type}", arg.loc)
        values.append(v)
    if not values:
        raise RankingError(f"{call.name} needs at least one token input after the length", call.loc)
    return values


def _lengths(values: list[TValue]) -> list[Node]:
    """Tokens greater than 0 in each input: Vespa's sum(map(input, f(x)(x > 0)))."""
    out = []
    for v in values:
        positive = build.cast(build.join("gt", build.cast(v.node, F64), _c(0.0)), F64)
        out.append(build.reduce(positive, "sum", [0], False))
    return out


def _positions(length: int) -> Node:
    return build.constant(np.arange(length, dtype=np.float64), F64)


def _tokens_at(v: TValue, offset: Node, d1: Node) -> Node:
    """v{d0: d1 - offset} for each position d1 (0 where outside v)."""
    size = v.type.shape[0]
    idx = build.cast(build.join("sub", d1, offset), CellType.INT64)
    ok = build.join("and", build.join("ge", idx, build.scalar(0, CellType.INT64)),
                    build.join("lt", idx, build.scalar(size, CellType.INT64)))
    safe = build.select(ok, idx, build.broadcast(build.scalar(0, CellType.INT64), idx.shape))
    cells = build.gather(build.cast(v.node, F64), safe, 0)
    return build.select(ok, cells, build.broadcast(_c(0.0), cells.shape))


def _result(node: Node, length: int) -> TValue:
    t = TensorType(CellType.FLOAT32, (("d0", 1), ("d1", length)))
    out = build.reshape(build.cast(node, CellType.FLOAT32), [1, length])
    return TValue(out, t)


def _below(d1: Node, end: Node) -> Node:
    return build.join("lt", d1, end)


def _sequence(call: Call, compiler: Any, cls: float, sep: float, first: int) -> TValue:
    length = _whole_number(call, call.args[first - 1], "length")
    values = _token_inputs(compiler, call, first)
    lengths = _lengths(values)
    d1 = _positions(length)
    # Vespa's generator is a chain of ifs on d1 < (end of each part): CLS, a, SEP, b, SEP, ...
    parts: list[tuple[Node, Node]] = [(_c(1.0), _c(cls))]
    end = _c(1.0)
    for v, n in zip(values, lengths, strict=True):
        start = end
        end = build.join("add", start, n)
        parts.append((end, _tokens_at(v, start, d1)))
        end = build.join("add", end, _c(1.0))
        parts.append((end, _c(sep)))
    out: Node = build.broadcast(_c(0.0), [length])  # the padding after the last part
    for bound, here in reversed(parts):
        out = build.select(_below(d1, bound), here, out)
    return _result(out, length)


@rank_feature("tokenInputIds")
def _token_input_ids(ctx: Any, compiler: Any, call: Call) -> TValue:
    _check(call, 2)
    return _sequence(call, compiler, CLS, SEP, 1)


@rank_feature("customTokenInputIds")
def _custom_token_input_ids(ctx: Any, compiler: Any, call: Call) -> TValue:
    _check(call, 4)
    cls = _whole_number(call, call.args[0], "start sequence id")
    sep = _whole_number(call, call.args[1], "separator id")
    return _sequence(call, compiler, float(cls), float(sep), 3)


def _segment_ends(call: Call, compiler: Any) -> tuple[int, Node, Node, Node]:
    """(length, positions, end of the first segment, end of the whole sequence)."""
    length = _whole_number(call, call.args[0], "length")
    lengths = _lengths(_token_inputs(compiler, call, 1))
    first_end = build.join("add", lengths[0], _c(2.0))  # CLS a SEP
    total = first_end
    for n in lengths[1:]:
        total = build.join("add", total, build.join("add", n, _c(1.0)))
    return length, _positions(length), first_end, total


@rank_feature("tokenTypeIds")
def _token_type_ids(ctx: Any, compiler: Any, call: Call) -> TValue:
    _check(call, 2)
    length, d1, first_end, total = _segment_ends(call, compiler)
    ones = build.join("and", build.join("ge", d1, first_end), _below(d1, total))
    return _result(build.cast(ones, F64), length)


@rank_feature("tokenAttentionMask")
def _token_attention_mask(ctx: Any, compiler: Any, call: Call) -> TValue:
    _check(call, 2)
    length, d1, _, total = _segment_ends(call, compiler)
    return _result(build.cast(_below(d1, total), F64), length)


def _check(call: Call, at_least: int) -> None:
    if call.output is not None:
        raise RankingError(f"{call.name}(...) has no output '{call.output}'", call.loc)
    if len(call.args) < at_least:
        raise RankingError(f"{call.name} takes {'start, separator, ' if at_least == 4 else ''}length and at least "
                           "one token input", call.loc)

