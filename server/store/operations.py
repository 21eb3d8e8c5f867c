"""Feed operations in Vespa's document JSON form, checked against the schema before anything is written.

    {"put": "id:ns:news::1", "fields": {"embedding": [..], "title": "..."}}     create or replace
    {"update": "id:ns:news::1", "create": true, "fields": {"f": {"assign": ..}}}
    {"remove": "id:ns:news::1"}

Update operations, per field, applied in the order given:
  assign (any field; null clears it), increment / decrement / multiply / divide (single
  numeric fields; an unset field counts as 0), modify (tensor cells: {"operation":
  "replace"|"add"|"multiply", "cells": [{"address": {..}, "value": v}, ..], "create": bool}).
Tensor fields with mapped dimensions also take Vespa's `add` (subspaces added or replaced),
`remove` ({"addresses": [{"x": "a"}, ..]}) and `modify` by cells or "blocks"
(mapped_values.py); `add` and `remove` are refused for indexed tensors. A test-and-set
`condition` is refused: evaluating Vespa's document selection language is not
implemented, and ignoring it would be a silent wrong write.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from server.store import mapped_values
from server.store.docid import VALID_ID, parse_document_id
from server.store.errors import FeedError
from server.store.values import DocType, FieldSpec, FieldValueError, Unchecked, Value

ARITHMETIC = ("increment", "decrement", "multiply", "divide")
_KEYS = {
    "put": {"put", "fields", "condition", "create"},
    "update": {"update", "fields", "condition", "create"},
    "remove": {"remove", "condition"},
}
_UPDATE_OPS = "assign, modify, increment, decrement, multiply or divide"


@dataclass(slots=True)
class Put:
    doc_id: str
    doctype: DocType
    fields: dict[str, Value]  # the fields given a value; the others are unset
    kind: ClassVar[str] = "put"


@dataclass(frozen=True, slots=True)
class Modify:
    operation: str  # replace, add or multiply
    cells: list[tuple[tuple[int, ...], float]]
    create: bool


@dataclass(slots=True)
class Update:
    doc_id: str
    doctype: DocType
    create: bool
    # (field, operation, argument): assign -> Value | None, arithmetic -> number, modify -> Modify;
    # for a mapped tensor field add, remove and modify -> the update of mapped_values.py
    steps: list[tuple[FieldSpec, str, Any]] = field(default_factory=list)
    kind: ClassVar[str] = "update"

    def apply(self, state: dict[str, Value] | None) -> dict[str, Value]:
        """The document after this update (state None: the document does not exist yet)."""
        new = {} if state is None else dict(state)
        for spec, op, arg in self.steps:
            try:
                if op == "assign":
                    if arg is None:
                        new.pop(spec.name, None)
                    else:
                        new[spec.name] = arg
                elif spec.is_mapped:  # add, remove, modify: None leaves the field as it is
                    value = arg.apply(new.get(spec.name))
                    if value is not None:
                        new[spec.name] = value
                elif op == "modify":
                    value = spec.modify(new.get(spec.name), arg.operation, arg.cells, arg.create)
                    if value is not None:
                        new[spec.name] = value
                else:
                    new[spec.name] = spec.arithmetic(new.get(spec.name), op, arg)
            except FieldValueError as e:
                raise FeedError(str(e), self.doc_id, spec.name) from None
        return new


@dataclass(slots=True)
class Remove:
    doc_id: str
    doctype: DocType
    kind: ClassVar[str] = "remove"
    fields: ClassVar[None] = None  # a removed document has no fields


Operation = Put | Update | Remove


def operation_id(obj: Any) -> str | None:
    """The document id an operation names, if it names one as a string (for error reports)."""
    if isinstance(obj, Mapping):
        for k in ("put", "update", "remove"):
            if isinstance(obj.get(k), str):
                return str(obj[k])
    return None


def parse_operation(obj: Any, types: Mapping[str, DocType],
                    unchecked: Unchecked | None = None) -> Operation:
    """Check one operation against the schema; raises FeedError naming the id, field and problem.

    `unchecked`: see FieldSpec.convert (only a put's fields are checked in bulk).
    """
    if obj.__class__ is dict and len(obj) == 2:  # the common case first: a put with no optional keys
        raw, fields = obj.get("put"), obj.get("fields")
        if raw.__class__ is str and fields.__class__ is dict:
            m = VALID_ID.match(raw)
            if m is not None and raw.isascii():
                doctype = types.get(m.group(2))
                if doctype is not None:
                    return Put(raw, doctype, _put_fields(raw, doctype, fields, unchecked))
    if not isinstance(obj, Mapping):
        raise FeedError("an operation must be a JSON object with 'put', 'update' or 'remove'")
    kinds = [k for k in ("put", "update", "remove") if k in obj]
    if len(kinds) != 1:
        found = f"found {' and '.join(repr(k) for k in kinds)}" if kinds else \
            f"found keys {', '.join(repr(str(k)) for k in obj) or 'none'}"
        raise FeedError(f"an operation needs exactly one of 'put', 'update' or 'remove' ({found})",
                        operation_id(obj))
    kind = kinds[0]
    doc_id = parse_document_id(obj[kind])
    did = doc_id.text
    unknown = [str(k) for k in obj if k not in _KEYS[kind]]
    if unknown:
        raise FeedError(f"unknown key '{unknown[0]}' in a {kind} operation (allowed: "
                        f"{', '.join(sorted(_KEYS[kind]))})", did)
    if "condition" in obj:
        raise FeedError(f"test-and-set conditions are not supported (condition {str(obj['condition'])!r:.120}); "
                        "the operation was not applied", did)
    doctype = types.get(doc_id.doctype)
    if doctype is None:
        known = ", ".join(sorted(types)) or "none"
        raise FeedError(f"unknown document type '{doc_id.doctype}' (document types: {known})", did)
    create = obj.get("create", False)
    if "create" in obj:
        if kind != "update":
            raise FeedError("'create' applies only to update operations", did)
        if not isinstance(create, bool):
            raise FeedError(f"'create' must be true or false, got {create!r:.60}", did)
    if kind == "remove":
        return Remove(did, doctype)
    fields = obj.get("fields")
    if not isinstance(fields, Mapping):
        what = "is missing a 'fields' object" if fields is None else "has 'fields' that is not an object"
        raise FeedError(f"the {kind} operation {what}", did)
    if kind == "put":
        return Put(did, doctype, _put_fields(did, doctype, fields))
    upd = Update(did, doctype, create)
    for name, ops in fields.items():
        spec = _field(did, doctype, str(name))
        if not isinstance(ops, Mapping) or not ops:
            raise FeedError(f"an update needs an operation per field ({_UPDATE_OPS}), e.g. "
                            '{"assign": value}', did, spec.name)
        for op, arg in ops.items():
            upd.steps.append((spec, op, _update_arg(did, spec, str(op), arg)))
    return upd


def _field(did: str, doctype: DocType, name: str) -> FieldSpec:
    spec = doctype.fields.get(name)
    if spec is not None:
        return spec
    if any(c in name for c in ".[{"):
        raise FeedError("field paths (struct, map and array elements) are not supported", did, name)
    known = ", ".join(doctype.fields) or "none"
    raise FeedError(f"unknown field (document type '{doctype.name}' has fields: {known})", did, name)


def _put_fields(did: str, doctype: DocType, fields: Mapping[str, Any],
                unchecked: Unchecked | None = None) -> dict[str, Value]:
    out: dict[str, Value] = {}
    specs = doctype.fields
    for name, value in fields.items():
        spec = specs.get(name) or _field(did, doctype, str(name))
        if value.__class__ is bytes and unchecked is not None and spec.float_cells and len(value) == spec.nbytes:
            unchecked.specs.append(spec)  # the wire form of float cells, as in FieldSpec.convert
            unchecked.cells.append(value)
            out[spec.name] = value
            continue
        try:
            v = spec.convert(value, unchecked)
        except FieldValueError as e:
            raise FeedError(str(e), did, spec.name) from None
        if v is not None:
            out[spec.name] = v
    return out


def _update_arg(did: str, spec: FieldSpec, op: str, arg: Any) -> Any:
    try:
        if op == "assign":
            return spec.convert(arg)
        if op in ARITHMETIC:
            if not spec.is_scalar or spec.type is None or spec.type.cell.is_bool:
                raise FieldValueError(f"'{op}' applies to single numeric fields (int, long, byte, float, double); "
                                      f"this field is {spec.type_text}")
            if isinstance(arg, bool) or not isinstance(arg, int | float):
                raise FieldValueError(f"'{op}' needs a number, got {arg!r:.60}")
            if isinstance(arg, float) and not math.isfinite(arg):
                raise FieldValueError(f"'{op}' needs a finite number, got {arg!r}")
            return arg
        if spec.is_mapped and op in ("add", "remove", "modify"):
            assert spec.type is not None
            parse = {"add": mapped_values.parse_add, "remove": mapped_values.parse_remove,
                     "modify": mapped_values.parse_modify}[op]
            return parse(spec.type, arg)
        if op == "modify":
            return _modify(spec, arg)
        if op in ("add", "remove"):
            if spec.type is not None and not spec.is_scalar:
                raise FieldValueError(f"'{op}' of tensor cells applies to mapped dimensions; {spec.type_text} is "
                                      "indexed: use 'modify' or 'assign'")
            raise FieldValueError(f"'{op}' applies to arrays, weighted sets and mapped tensors; this field is "
                                  f"{spec.type_text}")
        if op == "match":
            raise FieldValueError(f"'match' applies to arrays and weighted sets; this field is {spec.type_text}")
        raise FieldValueError(f"unknown update operation '{op}' (expected {_UPDATE_OPS})")
    except FieldValueError as e:
        raise FeedError(str(e), did, spec.name) from None


def _modify(spec: FieldSpec, arg: Any) -> Modify:
    t = spec.type
    if t is None or t.rank == 0:
        raise FieldValueError(f"'modify' applies to tensor fields; this field is {spec.type_text}")
    hint = {"blocks": f" ('blocks' are for mixed tensors; {spec.type_text} is indexed: use 'cells')"}
    operation, create = mapped_values.modify_header(arg, ("cells",), "'cells'", hint)
    raw = arg.get("cells")
    if raw is None:
        raise FieldValueError("'modify' has no 'cells'")
    if isinstance(raw, Mapping) and t.rank == 1:  # the short form {"label": value} of a one-dimensional tensor
        raw = [{"address": {t.names[0]: k}, "value": v} for k, v in raw.items()]
    if not isinstance(raw, list):
        raise FieldValueError("'cells' in 'modify' must be an array of {\"address\": {..}, \"value\": v}")
    cells: list[tuple[tuple[int, ...], float]] = []
    for c in raw:
        if not isinstance(c, Mapping) or set(c) != {"address", "value"}:
            raise FieldValueError(f"each cell in 'modify' needs exactly 'address' and 'value', got {c!r:.80}")
        addr, v = c["address"], c["value"]
        if not isinstance(addr, Mapping) or set(addr) != set(t.names):
            raise FieldValueError(f"cell address {addr!r:.80} must name exactly the dimensions {list(t.names)}")
        idx = []
        for name, size in t.dims:
            label = addr[name]
            i = label if isinstance(label, int) and not isinstance(label, bool) else \
                int(label) if isinstance(label, str) and label.isascii() and label.isdigit() else None
            if i is None or not 0 <= i < size:
                raise FieldValueError(f"cell address: dimension '{name}' has label {label!r:.40} but the type is "
                                      f"{spec.type_text} (labels 0..{size - 1})")
            idx.append(i)
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise FieldValueError(f"cell value {v!r:.40} is not a number")
        fv = float(v) if isinstance(v, float) or abs(v) < 2**1000 else math.inf
        if not math.isfinite(fv):
            raise FieldValueError(f"cell value {v!r:.40}: NaN or infinity is not allowed")
        cells.append((tuple(idx), fv))
    return Modify(operation, cells, create)
