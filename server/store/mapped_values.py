"""Values of tensor fields with mapped dimensions (`tensor<float>(cat{})`, `tensor<bfloat16>(dt{},x[16])`):
checking fed values, their stored form, and Vespa's partial updates of them.

A value is a tensor_ir.mapped.MappedTensor. Stored as one BLOB: a header (magic, subspace
count, length of the labels), the addresses as UTF-8 JSON (a list of label lists, in
the order of the type's mapped dimensions), then the cells, raw little-endian in the
cell type, subspace after subspace. Exact for every cell type, and the cells are read
back without parsing numbers.

Accepted inputs: Vespa's JSON forms (tensor_ir.expr.mapped_json), a MappedTensor of the
field's type, the stored form as bytes, or JSON text of a JSON form.

Updates (operations.py parses them into these): `add` puts subspaces, replacing those
at the same address; `remove` drops the subspaces matching any of the given addresses,
which may name some of the mapped dimensions; `modify` replaces, adds to or multiplies
given cells or whole blocks, ignoring the addresses that do not exist unless `create`.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from server.store.structured import FieldValueError
from tensor_ir.expr.mapped_json import (
    Address,
    address_and_value,
    block_from_json,
    checked,
    mapped_address,
    mapped_from_json,
    mapped_label,
    shown,
)
from tensor_ir.expr.tensor_json import TensorValueError
from tensor_ir.expr.types import TensorType
from tensor_ir.mapped import MappedTensor

_MAGIC = b"TRM1"
_HEADER = struct.Struct("<4sII")  # magic, subspaces, bytes of the labels' JSON


def empty(t: TensorType) -> MappedTensor:
    return MappedTensor(t, (), np.zeros((0, *t.shape), dtype=t.cell.np_dtype))


def convert(t: TensorType, value: Any) -> MappedTensor | None:
    """A fed value as stored (module doc); None (null) leaves the field unset."""
    if value is None:
        return None
    try:
        if isinstance(value, MappedTensor):
            if value.type != t:
                raise FieldValueError(f"the value has type {value.type}, expected {t}")
            return _recheck(value)
        if isinstance(value, bytes | bytearray | memoryview):
            return _recheck(decode(t, bytes(value)))
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                raise FieldValueError(f"{t} takes a tensor in Vespa's JSON form (or its text), got the string "
                                      f"{value!r:.60}") from None
        return mapped_from_json(value, t)
    except TensorValueError as e:
        raise FieldValueError(str(e)) from None


def _recheck(v: MappedTensor) -> MappedTensor:
    for a in v.addresses:
        for d, label in zip(v.type.mapped, a, strict=True):
            mapped_label(label, d)
    if len(set(v.addresses)) != len(v.addresses):
        raise FieldValueError("an address is given twice")
    return checked(v.type, v.addresses, list(v.cells.astype(np.float64)))


def encode(v: MappedTensor) -> bytes:
    labels = json.dumps([list(a) for a in v.addresses], ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    cells = np.ascontiguousarray(v.cells, dtype=v.type.cell.np_dtype).tobytes()
    return _HEADER.pack(_MAGIC, len(v.addresses), len(labels)) + labels + cells


def decode(t: TensorType, stored: bytes) -> MappedTensor:
    """The stored form back; FieldValueError where it is not one of type `t`."""
    bad = FieldValueError(f"stored value is not a tensor of type {t} in the stored form")
    if len(stored) < _HEADER.size:
        raise bad
    magic, k, n = _HEADER.unpack_from(stored)
    per = int(np.prod(t.shape, dtype=np.int64)) * t.cell.np_dtype.itemsize
    if magic != _MAGIC or len(stored) != _HEADER.size + n + k * per:
        raise bad
    try:
        labels = json.loads(stored[_HEADER.size:_HEADER.size + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise bad from None
    m = len(t.mapped)
    if not isinstance(labels, list) or len(labels) != k or \
            any(not isinstance(a, list) or len(a) != m or not all(isinstance(x, str) for x in a) for a in labels):
        raise bad
    cells = np.frombuffer(stored, dtype=t.cell.np_dtype, offset=_HEADER.size + n).reshape(k, *t.shape)
    return MappedTensor(t, tuple(tuple(a) for a in labels), cells)


# ---------------------------------------------------------------------- updates


@dataclass(frozen=True)
class AddSubspaces:
    """Vespa's `add` of tensor cells: put the subspaces, replacing any at the same address."""

    value: MappedTensor

    def apply(self, old: MappedTensor | None) -> MappedTensor | None:
        if old is None:
            return self.value
        new = self.value.as_dict()
        keep = [(a, old.cells[i]) for i, a in enumerate(old.addresses) if a not in new]
        addresses = [a for a, _ in keep] + list(self.value.addresses)
        blocks = [c for _, c in keep] + list(self.value.cells)
        cells = np.stack(blocks) if blocks else np.zeros((0, *old.type.shape), old.cells.dtype)
        return MappedTensor(old.type, tuple(addresses), cells.astype(old.type.cell.np_dtype, copy=False))


@dataclass(frozen=True)
class RemoveSubspaces:
    """Vespa's `remove` of tensor cells: drop the subspaces matching any address (module doc)."""

    addresses: tuple[dict[str, str], ...]

    def apply(self, old: MappedTensor | None) -> MappedTensor | None:
        if old is None:
            return None  # nothing to remove: the field stays unset
        dims = old.type.mapped

        def removed(a: Address) -> bool:
            labels = dict(zip(dims, a, strict=True))
            return any(all(labels[d] == x for d, x in r.items()) for r in self.addresses)

        keep = [i for i, a in enumerate(old.addresses) if not removed(a)]
        return MappedTensor(old.type, tuple(old.addresses[i] for i in keep), old.cells[keep])


@dataclass(frozen=True)
class ModifyCells:
    """Vespa's tensor `modify` of a mapped or mixed tensor: per subspace address, the cell
    (index tuple) or the whole block (index None) to replace, add to or multiply."""

    type: TensorType
    operation: str  # replace, add or multiply
    changes: tuple[tuple[Address, tuple[int, ...] | None, Any], ...]
    create: bool

    def apply(self, old: MappedTensor | None) -> MappedTensor | None:
        """The value after the update, its cells checked against the cell type; None: unchanged."""
        if old is None and not self.create:
            return None  # an unset tensor has no cells to modify: the update is ignored
        t = self.type
        blocks: dict[Address, npt.NDArray[Any]] = {} if old is None else \
            {a: np.array(old.cells[i], dtype=np.float64) for i, a in enumerate(old.addresses)}
        default = 1.0 if self.operation == "multiply" else 0.0
        for address, idx, v in self.changes:
            block = blocks.get(address)
            if block is None:
                if not self.create:
                    continue  # Vespa: a cell that does not exist is not modified
                block = blocks[address] = np.full(t.shape, default)
            where = (...,) if idx is None else idx
            if self.operation == "replace":
                block[where] = v
            elif self.operation == "add":
                block[where] += v
            else:
                block[where] *= v
        try:
            return checked(t, list(blocks), list(blocks.values()))
        except TensorValueError as e:
            raise FieldValueError(f"after modify ({self.operation}): {e}") from None


def parse_add(t: TensorType, arg: Any) -> AddSubspaces:
    value = convert(t, arg)
    if value is None:
        raise FieldValueError("'add' needs tensor cells or blocks, got null")
    return AddSubspaces(value)


def parse_remove(t: TensorType, arg: Any) -> RemoveSubspaces:
    if not isinstance(arg, Mapping) or set(arg) != {"addresses"}:
        raise FieldValueError(f"'remove' of tensor cells needs {{\"addresses\": [{{\"{t.mapped[0]}\": label}}, ..]}}, "
                              f"got {shown(arg)}")
    raw = arg["addresses"]
    if not isinstance(raw, list):
        raise FieldValueError(f"'addresses' in 'remove' must be an array of addresses, got {shown(raw)}")
    try:
        return RemoveSubspaces(tuple(mapped_address(a, t, partial=True) for a in raw))
    except TensorValueError as e:
        raise FieldValueError(f"'remove': {e}") from None


def modify_header(arg: Any, forms: tuple[str, ...], named: str, hint: dict[str, str] | None = None
                  ) -> tuple[str, bool]:
    """The operation and `create` flag of a 'modify' update, for dense tensors too
    (server.store.operations): any key but those and `forms` is refused, with `hint` where
    one is known for it."""
    if not isinstance(arg, Mapping):
        raise FieldValueError(f"'modify' needs an object with 'operation' and {named}")
    for k in arg:
        if k not in ("operation", "create", *forms):
            raise FieldValueError(f"unknown key '{k}' in 'modify'{(hint or {}).get(k, '')}")
    operation = arg.get("operation")
    if operation not in ("replace", "add", "multiply"):
        got = "no operation" if operation is None else f"operation {operation!r:.40}"
        raise FieldValueError(f"'modify' needs an 'operation' of replace, add or multiply, got {got}")
    create = arg.get("create", False)
    if not isinstance(create, bool):
        raise FieldValueError(f"'create' in 'modify' must be true or false, got {create!r:.40}")
    return str(operation), create


def parse_modify(t: TensorType, arg: Any) -> ModifyCells:
    operation, create = modify_header(arg, ("cells", "blocks"), "'cells' (or 'blocks')")
    forms = [k for k in ("cells", "blocks") if k in arg]
    if len(forms) != 1:
        raise FieldValueError("'modify' needs one of 'cells' or 'blocks'" +
                              (", not both" if forms else ""))
    try:
        changes = _cell_changes(t, arg["cells"]) if forms[0] == "cells" else _block_changes(t, arg["blocks"])
    except TensorValueError as e:
        raise FieldValueError(f"'modify': {e}") from None
    return ModifyCells(t, operation, tuple(changes), create)


def _cell_changes(t: TensorType, raw: Any) -> list[tuple[Address, tuple[int, ...] | None, Any]]:
    if isinstance(raw, Mapping) and len(t.mapped) == 1 and not t.dims:  # the short form {label: value}
        raw = [{"address": {t.mapped[0]: k}, "value": v} for k, v in raw.items()]
    if not isinstance(raw, list):
        raise TensorValueError("'cells' must be an array of {\"address\": {..}, \"value\": v}")
    return [address_and_value(c, t) for c in raw]


def _block_changes(t: TensorType, raw: Any) -> list[tuple[Address, tuple[int, ...] | None, Any]]:
    if not t.dims:
        raise TensorValueError(f"'blocks' are for mixed types; {t} has no indexed dimension: use 'cells'")
    if isinstance(raw, Mapping) and len(t.mapped) == 1:  # {label: block}
        raw = [{"address": {t.mapped[0]: k}, "values": v} for k, v in raw.items()]
    if not isinstance(raw, list):
        raise TensorValueError("'blocks' must be an array of {\"address\": {..}, \"values\": [..]}")
    out: list[tuple[Address, tuple[int, ...] | None, Any]] = []
    for b in raw:
        if not isinstance(b, Mapping) or set(b) != {"address", "values"}:
            raise TensorValueError(f"each block needs exactly 'address' and 'values', got {shown(b)}")
        addr = mapped_address(b["address"], t)
        out.append((tuple(addr[d] for d in t.mapped), None, block_from_json(b["values"], t, shown(b["address"]))))
    return out

