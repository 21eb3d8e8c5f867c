"""Typed declarations of a rank profile's inputs and constants (`query(q) tensor(x[3]): [1,2,3]`):
the name, the type and the value, which must be constant."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import numpy.typing as npt

from server.application.errors import SchemaError
from tensor_ir.expr.compiler import Compiler
from tensor_ir.expr.errors import Location, RankingError
from tensor_ir.expr.parser import parse_expression
from tensor_ir.expr.types import TensorType, TypeSyntaxError, parse_type
from tensor_ir.ir import Op
from tensor_ir.mapped import MappedTensor, unpad


def parse_typed_declaration(text: str, loc: Location, wrapper: str, need_default: bool = False
                       ) -> tuple[str, TensorType, npt.NDArray[Any] | None]:
    """`query(q) tensor<float>(x[3]) : [1,2,3]`, `q double: 0.5`, `constant(w) tensor(x[2]): [1,2]`."""
    t = text.strip()
    if t.startswith(f"{wrapper}("):
        close = t.find(")")
        name = t[len(wrapper) + 1:close].strip()
        rest = t[close + 1:].strip()
    else:
        m = re.match(r"([^\s:]*)\s*(.*)$", t, re.S)
        if not t or m is None:
            raise SchemaError(f"expected a {wrapper} declaration", loc)
        name, rest = m.group(1), m.group(2).strip()
    if not name.replace("_", "a").replace("$", "a").replace("@", "a").isalnum():
        raise SchemaError(f"'{name}' is not a valid {wrapper} name", loc)
    if rest.startswith(":") and wrapper == "constant":
        # untyped `name: value`: a number is a double, a tensor literal has its own type
        return (name, *_untyped_value(rest[1:].strip(), loc, f"constant({name})"))
    type_text, default_text = _split_default(rest)
    if not type_text:
        type_text = "double"
    if type_text == "string":
        raise SchemaError(f"{wrapper}({name}): string {wrapper} input is not supported (only numbers and tensors)",
                          loc)
    try:
        type_ = parse_type(type_text, allow_mapped=True)
    except TypeSyntaxError as e:
        raise SchemaError(f"{wrapper}({name}): {e}", loc) from None
    default = None
    if default_text is not None and type_.is_mapped:
        default = _mapped_value_of(default_text, type_, loc, f"{wrapper}({name})")
    elif default_text is not None:
        default = _value_of(default_text, type_, loc, f"{wrapper}({name})")
    elif need_default:
        raise SchemaError(f"constant {name} needs a value (name type: value)", loc)
    return name, type_, default


def _split_default(rest: str) -> tuple[str, str | None]:
    depth = 0
    for i, ch in enumerate(rest):
        if ch in "(<[{":
            depth += 1
        elif ch in ")>]}":
            depth -= 1
        elif ch == ":" and depth == 0:
            return rest[:i].strip(), rest[i + 1:].strip()
    return rest.strip(), None


def _untyped_value(text: str, loc: Location, what: str) -> tuple[TensorType, npt.NDArray[Any]]:
    try:
        expr = parse_expression(text, loc.file, loc.line, loc.column)
        v = Compiler(_NoContext()).compile(expr)
    except RankingError as e:
        raise SchemaError(f"{what}: bad value: {e.message}", loc) from None
    if v.node.op is not Op.CONSTANT:
        raise SchemaError(f"{what}: the value must be a constant", loc)
    t = TensorType(v.type.cell, v.type.dims)
    return t, np.asarray(v.node.value, dtype=t.cell.np_dtype)


def _value_of(text: str, t: TensorType, loc: Location, what: str) -> npt.NDArray[Any]:
    """A default or constant value: a number, a dense list, or a full tensor literal."""
    body = text.strip()
    if body.startswith("[") or body.startswith("{"):
        body = f"{t}:{body}"
    try:
        expr = parse_expression(body, loc.file, loc.line, loc.column)
        v = Compiler(_NoContext()).compile(expr)
    except RankingError as e:
        raise SchemaError(f"{what}: bad value: {e.message}", loc) from None
    if v.node.op is not Op.CONSTANT:
        raise SchemaError(f"{what}: the value must be a constant", loc)
    if v.type.shape != t.shape:
        raise SchemaError(f"{what}: value of type {v.type} does not match {t}", loc)
    return np.asarray(v.node.value, dtype=t.cell.np_dtype)


class _NoContext:
    """Values in declarations may not refer to anything."""

    def _no(self, what: str, loc: Location) -> RankingError:
        return RankingError(f"{what} cannot be used in a constant value", loc)

    def attribute(self, name: str, loc: Location) -> Any:
        raise self._no("attribute()", loc)

    def query(self, name: str, loc: Location) -> Any:
        raise self._no("query()", loc)

    def constant(self, name: str, loc: Location) -> Any:
        raise self._no("constant()", loc)

    def has_function(self, name: str) -> bool:
        return False

    def function(self, name: str, args: Any, loc: Location, compiler: Any) -> Any:
        raise self._no("a function", loc)

    def onnx(self, model: str, output: str | None, loc: Location, compiler: Any) -> Any:
        raise self._no("onnx()", loc)

    def feature(self, call: Any, compiler: Any) -> Any:
        return None  # no rank features in a constant value: the name is reported as unknown


def _mapped_value_of(text: str, t: TensorType, loc: Location, what: str) -> Any:
    """A default or constant value of a mapped type, written as a Vespa tensor literal."""
    try:
        expr = parse_expression(text if text.lstrip().startswith("tensor") else f"{t}:{text}",
                                loc.file, loc.line, loc.column)
        v = Compiler(_NoContext()).compile(expr)
    except RankingError as e:
        raise SchemaError(f"{what}: bad value: {e.message}", loc) from None
    if v.sparse is None or any(x.node.op is not Op.CONSTANT for x in (v, v.sparse.mask)):
        raise SchemaError(f"{what}: the value must be a constant tensor of type {t}", loc)
    got = unpad(v.type.value_type, np.asarray(v.node.value), {d: np.asarray(x.node.value) for d, x in v.sparse.labels},
                np.asarray(v.sparse.mask.node.value))
    if got.type.all_names != t.all_names:
        raise SchemaError(f"{what}: the value has type {got.type}, expected {t}", loc)
    return MappedTensor(t, got.addresses, got.cells.astype(t.cell.np_dtype))
