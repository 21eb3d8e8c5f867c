"""Mapped and mixed tensors on the wire, and the forms users write them in.

On the wire (proto/tensorrank/v1 `Tensor`) a value of K subspaces carries `labels`, K x M
strings (M mapped dimensions, each address's labels in the type's sorted order), and
`values`, the K dense subspaces' cells, little-endian, in the same order.

Users give them as a `MappedTensor`, as Vespa's JSON forms (`cells`, `blocks`, or their
short forms keyed by label for a type of one mapped dimension: {label: number} sparse,
{label: [cells]} mixed), as a dict keyed by address tuples (`MappedTensor.as_dict()`), or
on the command line as Vespa's tensor literals (`{{cat:a}:1.0}`, short `{a:1,b:2}`, mixed
`{a:[1,2]}`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from proto.tensorrank.v1 import ranking_pb2 as pb
from tensor_ir.errors import TensorRankError
from tensor_ir.expr.mapped_json import mapped_from_json
from tensor_ir.expr.tensor_json import TensorValueError
from tensor_ir.expr.types import TensorType, TypeSyntaxError, parse_type
from tensor_ir.mapped import MAX_LABEL_BYTES, LabelError, MappedTensor, label_text


class WireError(TensorRankError, ValueError):
    """A tensor whose type or bytes are wrong; the message says which and how (server.wire
    offers it; it lives here so that both modules raise the one class)."""


def little_endian(dt: np.dtype[Any]) -> np.dtype[Any]:
    return dt.newbyteorder("<") if dt.itemsize > 1 and dt.byteorder != "|" else dt


def _address_text(t: TensorType, address: Sequence[str]) -> str:
    return "{" + ", ".join(f"{d}:{x}" for d, x in zip(t.mapped, address, strict=True)) + "}"


def decode_mapped(labels: Sequence[str], values: bytes, given: TensorType, target: TensorType,
                  what: str) -> MappedTensor:
    """The value a wire tensor's `labels` and `values` carry, of type `given` (its own), cells
    cast to `target`'s cell type."""
    labels = list(labels)
    m = len(given.mapped)
    if len(labels) % m:
        raise WireError(f"{what}: {given} has {m} mapped dimensions, so its labels come {m} per address; "
                              f"got {len(labels)} labels")
    k = len(labels) // m
    size = int(np.prod(given.shape, dtype=np.int64))
    width = given.cell.np_dtype.itemsize
    if len(values) != k * size * width:
        raise WireError(f"{what}: {k} subspaces of {given} need {k * size * width} bytes "
                              f"({k} x {size} cells of {width}), got {len(values)}")
    for label in labels:
        if len(label.encode("utf-8", "surrogatepass")) > MAX_LABEL_BYTES:
            raise WireError(f"{what}: a label of more than {MAX_LABEL_BYTES} bytes ('{label[:40]}...')")
    addresses = tuple(tuple(labels[i * m:(i + 1) * m]) for i in range(k))
    if len(set(addresses)) != k:
        seen: set[tuple[str, ...]] = set()
        for a in addresses:
            if a in seen:
                raise WireError(f"{what}: the address {_address_text(given, a)} is given twice")
            seen.add(a)
    cells = np.frombuffer(values, dtype=little_endian(given.cell.np_dtype)).reshape(k, *given.shape)
    return MappedTensor(target, addresses, cells.astype(target.cell.np_dtype))


def encode_mapped(value: MappedTensor, type_text: str) -> pb.Tensor:
    t = value.type
    cells = np.ascontiguousarray(value.cells, dtype=little_endian(t.cell.np_dtype))
    try:
        return pb.Tensor(type=type_text, values=cells.tobytes(), labels=[x for a in value.addresses for x in a])
    except ValueError as e:  # protobuf strings must be valid UTF-8 (a lone surrogate is not)
        raise WireError(f"a label of {t} is not valid UTF-8: {e}") from None


def same_dimensions(a: TensorType, b: TensorType) -> bool:
    return a.dims == b.dims and a.mapped == b.mapped


def cast_mapped(value: MappedTensor, t: TensorType, what: str) -> MappedTensor:
    """`value` as a value of `t`: same dimensions, cells in `t`'s cell type."""
    if not same_dimensions(value.type, t):
        raise WireError(f"{what}: expected {t}, got {value.type}")
    if value.type == t:
        return value
    return MappedTensor(t, value.addresses, value.cells.astype(t.cell.np_dtype))


# ---------------------------------------------------------------------- users' forms


def mapped_from_value(value: Any, t: TensorType, what: str) -> MappedTensor:
    """A value of mapped type `t` from what a user gives (module doc); WireError names
    `what` and the fault. Vespa's JSON forms are read as the feed reads them
    (tensor_ir.expr.mapped_json)."""
    if isinstance(value, MappedTensor):
        return cast_mapped(value, t, what)
    if not isinstance(value, Mapping | list):
        raise WireError(f"{what}: {t} takes a MappedTensor, Vespa's JSON form ('cells' or 'blocks') or a "
                        f"dict keyed by label, got {type(value).__name__}")
    try:
        if isinstance(value, Mapping) and any(isinstance(k, tuple) for k in value):
            value = _addressed(value, t, what)
        elif isinstance(value, Mapping):
            value = {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in value.items()}
        return mapped_from_json(value, t)
    except (TensorValueError, LabelError) as e:
        raise WireError(f"{what}: {t}: {e}") from None


def _addressed(value: Mapping[Any, Any], t: TensorType, what: str) -> dict[str, Any]:
    """{(label, ...): cell or block} (MappedTensor.as_dict()'s form) as Vespa's JSON form."""
    entries = []
    for key, block in value.items():
        address = key if isinstance(key, tuple) else (key,)
        if len(address) != len(t.mapped):
            raise WireError(f"{what}: {t} has {len(t.mapped)} mapped dimensions ({', '.join(t.mapped)}); "
                            f"the address {key!r} has {len(address)} labels")
        labels = {d: label_text(x) for d, x in zip(t.mapped, address, strict=True)}
        block = block.tolist() if isinstance(block, np.ndarray) else block
        entries.append({"address": labels, "values": block} if t.dims else {"address": labels, "value": block})
    return {"blocks": entries} if t.dims else {"cells": entries}


# ---------------------------------------------------------------------- literals

_TOKEN = re.compile(r"\s*(\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|[{}\[\]:,]|[^\s{}\[\]:,\"']+)")


def mapped_from_literal(text: str, t: TensorType, what: str) -> MappedTensor:
    """Vespa's tensor literal for `t`: `{{cat:a,x:0}:1.0, ...}` (verbose), `{a:1.0, b:2.0}`
    (one mapped dimension), `{a:[1,2], b:[3,4]}` (mixed, one mapped dimension), optionally
    after the type: `tensor<float>(cat{}):{a:1}`."""
    body = text.strip()
    if body.startswith("tensor"):
        head, sep, rest = body.partition("):")
        if not sep:
            raise WireError(f"{what}: expected TYPE:{{...}}, e.g. {t}:{{a:1.0}}")
        try:
            given = parse_type(head + ")", allow_mapped=True)
        except TypeSyntaxError as e:
            raise WireError(f"{what}: {e}") from None
        if not same_dimensions(given, t):
            raise WireError(f"{what}: the literal has type {given}, expected {t}")
        body = rest
    tokens = _tokens(body, what)
    try:
        value = _Literal(tokens, what).tensor(t)
    except IndexError:
        raise WireError(f"{what}: the literal ends too early") from None
    return mapped_from_value(value, t, what)


def _tokens(text: str, what: str) -> list[str]:
    out, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise WireError(f"{what}: cannot read the literal at column {pos + 1}: {text[pos:pos + 20]!r}")
        out.append(m.group(1))
        pos = m.end()
    return out


class _Literal:
    def __init__(self, tokens: list[str], what: str) -> None:
        self.tokens, self.pos, self.what = tokens, 0, what

    def _next(self) -> str:
        tok = self.tokens[self.pos]
        self.pos += 1
        return tok

    def _expect(self, tok: str) -> None:
        got = self._next()
        if got != tok:
            raise WireError(f"{self.what}: expected '{tok}' in the literal, got '{got}'")

    def _label(self) -> str:
        tok = self._next()
        if tok in "{}[]:,":
            raise WireError(f"{self.what}: expected a label in the literal, got '{tok}'")
        if tok[0] in "\"'":
            return re.sub(r"\\(.)", r"\1", tok[1:-1])
        return tok

    def _number(self) -> float:
        tok = self._next()
        try:
            return float(tok)
        except ValueError:
            raise WireError(f"{self.what}: expected a number in the literal, got '{tok}'") from None

    def _array(self) -> list[Any]:
        self._expect("[")
        items: list[Any] = []
        while self.tokens[self.pos] != "]":
            items.append(self._array() if self.tokens[self.pos] == "[" else self._number())
            if self.tokens[self.pos] == ",":
                self.pos += 1
        self.pos += 1
        return items

    def tensor(self, t: TensorType) -> dict[str, Any]:
        """The literal as Vespa's JSON form, for mapped_from_value to check."""
        self._expect("{")
        cells: list[dict[str, Any]] = []
        keyed: dict[str, Any] = {}
        while self.tokens[self.pos] != "}":
            if self.tokens[self.pos] == "{":
                self.pos += 1
                address: dict[str, str] = {}
                while self.tokens[self.pos] != "}":
                    dim = self._label()
                    self._expect(":")
                    if dim in address:
                        raise WireError(f"{self.what}: dimension {dim} twice in one address")
                    address[dim] = self._label()
                    if self.tokens[self.pos] == ",":
                        self.pos += 1
                self.pos += 1
                self._expect(":")
                cells.append({"address": address, "value": self._number()})
            else:
                label = self._label()
                self._expect(":")
                if label in keyed:
                    raise WireError(f"{self.what}: the label {label} is given twice")
                keyed[label] = self._array() if self.tokens[self.pos] == "[" else self._number()
            if self.tokens[self.pos] == ",":
                self.pos += 1
        self.pos += 1
        if self.pos != len(self.tokens):
            raise WireError(f"{self.what}: unexpected '{self.tokens[self.pos]}' after the literal")
        if cells and keyed:
            raise WireError(f"{self.what}: the literal mixes full addresses and labels")
        if cells:
            return {"cells": cells}
        return {"blocks" if t.dims else "cells": keyed}
