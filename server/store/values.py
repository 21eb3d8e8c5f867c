"""Field values: checking fed values against the schema, and the form they are stored in.

A numeric or tensor field value is a numpy array of the field's cell type and shape (0-d
for a single-value field such as `float`); a string field's value is a str. Stored values
are the raw little-endian cell bytes (a BLOB per field) or TEXT. A field that was never
given a value is unset (None): absent from the stored document, zeros in a shard column.

Accepted inputs for a tensor field: Vespa's JSON forms (see tensor_ir.expr.tensor_json),
a numpy array of the field's shape (or flat), and bytes holding the raw little-endian
cells (what the wire carries). A tensor field with mapped dimensions holds a MappedTensor
instead (mapped_values.py has its inputs and stored form).
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from server.store import mapped_values
from server.store.structured import JSON_KINDS, STRING_KINDS, check_value, describe_json, to_text
from server.store.structured import FieldValueError as FieldValueError  # raised and caught by its old name
from tensor_ir.casts import truncate_to_bfloat16
from tensor_ir.dtypes import CellType
from tensor_ir.expr.mapped_json import mapped_to_json
from tensor_ir.expr.profile import FieldDef
from tensor_ir.expr.tensor_json import TensorValueError, tensor_from_json
from tensor_ir.expr.types import TensorType
from tensor_ir.mapped import MappedTensor

if sys.byteorder != "little":  # stored cells are little-endian and are used without conversion
    raise ImportError("server.store needs a little-endian host")

Array = npt.NDArray[Any]
# a field's value: an array of its cell type and shape, its raw little-endian cells (bytes, as
# they came in and are stored; already checked), for a string field a str, for a tensor field
# with mapped dimensions a MappedTensor
Value = Array | bytes | str | MappedTensor

_SCALAR_NAMES = {
    CellType.FLOAT32: "float",
    CellType.FLOAT64: "double",
    CellType.INT32: "int",
    CellType.INT64: "long",
    CellType.INT8: "byte",
    CellType.BOOL: "bool",
}
_F32_MAX = float(np.finfo(np.float32).max)




def type_text(t: TensorType | None) -> str:
    """The field type as the schema spells it: string, float, long, tensor<float>(x[64]) ..."""
    if t is None:
        return "string"
    if t.rank == 0 and not t.is_mapped:
        return _SCALAR_NAMES.get(t.cell, str(t))
    return str(t)


class FieldSpec:
    """A document field with what storing and checking its values needs."""

    __slots__ = ("attribute", "cells", "declared", "dtype", "float_cells", "is_json", "is_mapped", "is_scalar",
                 "is_string", "kind", "name", "nbytes", "shape", "structs", "type", "type_text")

    def __init__(self, name: str, type: TensorType | None, attribute: bool, declared: str = "", kind: str = "",
                 structs: Mapping[str, Mapping[str, str]] | None = None) -> None:
        self.name = name
        self.type = type
        self.attribute = attribute
        # not a number or tensor: text (string, uri, raw, predicate, reference) or, for
        # collections, structs and positions, canonical JSON text (structured.py)
        self.is_string = type is None
        self.kind = kind or ("string" if type is None else "tensor")
        self.is_json = type is None and self.kind in JSON_KINDS
        self.declared = declared or type_text(type)
        self.structs = dict(structs or {})
        self.is_mapped = type is not None and type.is_mapped
        self.is_scalar = type is not None and type.rank == 0 and not self.is_mapped
        self.type_text = self.declared if type is None else type_text(type)
        # a mapped value has no fixed size, so it never comes as raw cells (shape and nbytes
        # below are then those of one dense subspace)
        self.float_cells = type is not None and type.cell.is_float and not self.is_mapped
        if type is None:
            self.dtype: np.dtype[Any] = np.dtype(object)
            self.shape: tuple[int, ...] = ()
            self.cells = 0
            self.nbytes = 0
        else:
            self.dtype = type.cell.np_dtype
            self.shape = type.shape
            self.cells = int(np.prod(self.shape, dtype=np.int64))
            self.nbytes = self.cells * self.dtype.itemsize

    def __repr__(self) -> str:
        return f"FieldSpec({self.name}: {self.type_text}{', attribute' if self.attribute else ''})"

    @property
    def cell_name(self) -> str:
        assert self.type is not None
        return self.type.cell.vespa_name or self.type.cell.np_name

    def zeros(self) -> Array:
        return np.zeros(self.shape, dtype=self.dtype)

    # ------------------------------------------------------------------ checking

    def convert(self, value: Any, unchecked: Unchecked | None = None) -> Value | None:
        """A fed value as stored; None for null (and the empty string), which leave the field unset.

        Given `unchecked`, floating-point cells that arrive as raw bytes are not checked for
        NaN and infinity here but added to it, to be checked with the rest of the batch.
        """
        if self.is_mapped:
            assert self.type is not None
            return mapped_values.convert(self.type, value)
        if value.__class__ is bytes and self.type is not None and len(value) == self.nbytes:
            # the wire form: raw little-endian cells, kept as they are
            if self.float_cells:
                if unchecked is None:
                    return self.check_array(self.array(value), copy=False)
                unchecked.add(self, value)
            elif self.type.cell is CellType.BOOL and not (np.frombuffer(value, np.uint8) <= 1).all():
                raise FieldValueError("raw bool cells must be bytes 0 or 1")
            return value
        if value is None:
            return None
        if isinstance(value, bytes | bytearray | memoryview) and self.type is not None:
            raw = bytes(value)
            if len(raw) != self.nbytes:
                raise FieldValueError(f"{self.type_text} takes {self.nbytes} bytes of raw little-endian "
                                      f"{self.cell_name} cells ({self.cells} cells), got {len(raw)} bytes")
            return self.convert(raw, unchecked)
        if self.is_json:
            if isinstance(value, str) and self.kind != "position":
                # the wire carries these as their JSON text
                try:
                    value = json.loads(value)
                except json.JSONDecodeError:
                    raise FieldValueError(f"{self.declared} takes a JSON value (or its text), got "
                                          f"{describe_json(value)}") from None
            return to_text(check_value(value, self.declared, self.structs))
        if self.type is None:
            if self.kind in STRING_KINDS and self.kind != "string":
                check_value(value, self.declared, self.structs)
            if not isinstance(value, str):
                raise FieldValueError(f"expected a string, got {describe_json(value)}")
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise FieldValueError("the string is not valid Unicode (lone surrogate)") from None
            return value or None
        if self.is_scalar:
            return self._scalar(value)
        return self._tensor(value)

    def _scalar(self, v: Any) -> Array:
        assert self.type is not None
        cell = self.type.cell
        if isinstance(v, np.ndarray | np.generic):
            arr = np.asarray(v)
            if arr.size != 1:
                raise FieldValueError(f"{self.type_text} is a single value, got an array of {arr.size} values")
            v = arr.reshape(()).item()
        if cell is CellType.BOOL:
            if isinstance(v, bool):
                return np.array(v, dtype=np.bool_)
            raise FieldValueError(f"expected true or false, got {describe_json(v)}")
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise FieldValueError(f"expected a number for {self.type_text}, got {describe_json(v)}")
        if cell.is_int:
            if isinstance(v, float):
                if not math.isfinite(v):
                    raise FieldValueError(f"NaN or infinity is not allowed ({self.type_text} needs a whole number)")
                if not v.is_integer():
                    raise FieldValueError(f"{self.type_text} needs a whole number, got {v!r}")
                v = int(v)
            return np.array(self._int_in_range(v, f"{v}"), dtype=self.dtype)
        x = float(v) if isinstance(v, float) else _int_to_float(v, self.type_text)
        if not math.isfinite(x):
            raise FieldValueError("NaN or infinity is not allowed")
        if cell is not CellType.FLOAT64 and abs(x) > _F32_MAX:
            raise FieldValueError(f"{v!r} does not fit {self.type_text} (largest magnitude {_F32_MAX:.6g})")
        return np.array(x, dtype=self.dtype)

    def _int_in_range(self, v: int, shown: str) -> int:
        info = np.iinfo(self.dtype)
        if not info.min <= v <= info.max:
            raise FieldValueError(f"{shown} does not fit {self.type_text} ({info.min}..{info.max})")
        return v

    def _tensor(self, v: Any) -> Array:
        assert self.type is not None
        if isinstance(v, np.ndarray):
            return self.check_array(v, copy=True)
        # fast paths for the common forms: {"values": "hex"}, [..] and {"values": [..]}
        flat = v if isinstance(v, list) else v.get("values") if isinstance(v, dict) and len(v) == 1 else None
        if flat.__class__ is str and len(flat) == 2 * self.nbytes:
            try:
                raw = bytes.fromhex(flat)
            except ValueError:
                raw = b""  # tensor_json below says what is wrong
            if raw:
                # Vespa's hex dump is big-endian: each cell's bits as an unsigned integer
                size = self.dtype.itemsize
                cells = np.frombuffer(raw, dtype=f">u{size}").astype(f"<u{size}").view(self.dtype)
                return self.check_array(cells.reshape(self.shape), copy=False)
        if isinstance(flat, list) and len(flat) == self.cells and flat and not isinstance(flat[0], list):
            if bool not in set(map(type, flat)):
                arr = np.array(flat)
                if arr.ndim == 1 and arr.dtype.kind in "fi":
                    return self.check_array(arr, copy=False)
        try:
            arr = tensor_from_json(v, self.type)
        except TensorValueError as e:
            raise FieldValueError(str(e)) from None
        return self.check_array(arr, copy=False)  # also catches bfloat16 overflow, which tensor_json lets by

    def check_array(self, arr: Array, copy: bool) -> Array:
        """A numeric array as a value of this field: right cell count, finite, fits the cell type."""
        assert self.type is not None
        if arr.shape != self.shape:
            if arr.size != self.cells or arr.ndim != 1:
                raise FieldValueError(f"{self.type_text} has {self.cells} cells (shape {list(self.shape)}) but the "
                                      f"value has shape {list(arr.shape)}")
            arr = arr.reshape(self.shape)
        same = arr.dtype == self.dtype
        kind = arr.dtype.kind
        if not same and kind not in "fiu":
            raise FieldValueError(f"expected numbers for {self.type_text}, got an array of {arr.dtype}")
        cell = self.type.cell
        floating = kind == "f" or (same and cell.is_float)
        if cell.is_float:
            with np.errstate(over="ignore", invalid="ignore"):
                # bfloat16 as Vespa converts a fed value, truncated, not rounded (tensor_ir.casts)
                out = arr if same else (truncate_to_bfloat16(arr) if cell is CellType.BFLOAT16
                                        else arr.astype(self.dtype))
            if not np.isfinite(out).all():
                if floating and not np.isfinite(arr).all():
                    raise FieldValueError("NaN or infinity is not allowed")
                raise FieldValueError(f"a value does not fit cell type {self.cell_name}")
            return out.copy() if same and copy else out
        if not same:
            if floating:
                if not np.isfinite(arr).all():
                    raise FieldValueError("NaN or infinity is not allowed")
                if not (np.trunc(arr) == arr).all():
                    raise FieldValueError(f"cell type {self.cell_name} needs whole numbers")
            info = np.iinfo(self.dtype)
            if arr.size and (arr.min() < info.min or arr.max() > info.max):
                raise FieldValueError(f"a value does not fit cell type {self.cell_name} ({info.min}..{info.max})")
            return arr.astype(self.dtype)
        return arr.copy() if copy else arr

    # ------------------------------------------------------------------ stored form

    def array(self, value: Array | bytes) -> Array:
        """A numeric value as an array of the field's cell type and shape."""
        if value.__class__ is bytes:
            return np.frombuffer(value, self.dtype).reshape(self.shape)
        return value  # type: ignore[return-value]

    def encode(self, value: Value | None) -> bytes | str | None:
        if value is None or isinstance(value, str | bytes):
            return value
        if isinstance(value, MappedTensor):
            return mapped_values.encode(value)
        return value.tobytes()

    def decode(self, stored: bytes | str | None) -> Value | None:
        if stored is None:
            return None
        if self.type is None:
            if not isinstance(stored, str):
                raise FieldValueError(f"stored value of string field '{self.name}' is not text")
            return stored
        if self.is_mapped:
            if not isinstance(stored, bytes):
                raise FieldValueError(f"stored value of field '{self.name}' is not a BLOB")
            try:
                return mapped_values.decode(self.type, stored)
            except FieldValueError as e:
                raise FieldValueError(f"field '{self.name}': {e}") from None
        if not isinstance(stored, bytes) or len(stored) != self.nbytes:
            raise FieldValueError(f"stored value of field '{self.name}' is not {self.nbytes} bytes of "
                                  f"{self.type_text}")
        return np.frombuffer(stored, dtype=self.dtype).reshape(self.shape)

    def to_json(self, value: Value) -> Any:
        """Vespa's JSON form of a stored value (as /document/v1 renders it)."""
        if isinstance(value, str):
            return json.loads(value) if self.is_json else value
        if isinstance(value, MappedTensor):
            return mapped_to_json(value)
        value = self.array(value)
        if self.is_scalar:
            return value.item()
        wide = value.astype(np.float64) if self.type is not None and self.type.cell.is_float else value
        return {"type": self.type_text, "values": wide.tolist()}

    # ------------------------------------------------------------------ updates

    def arithmetic(self, old: Value | None, op: str, arg: int | float) -> Array:
        """increment / decrement / multiply / divide of a single numeric value (unset counts as 0)."""
        assert self.type is not None and self.is_scalar and not isinstance(old, str | MappedTensor)
        cur: int | float = 0 if old is None else self.array(old).item()
        if op == "divide" and arg == 0:
            raise FieldValueError("divide by 0")
        if self.type.cell.is_int:
            assert isinstance(cur, int)
            if isinstance(arg, int):
                # exact integer arithmetic; division truncates toward zero as Vespa's (int) cast does
                r = (cur + arg if op == "increment" else cur - arg if op == "decrement" else cur * arg
                     if op == "multiply" else _trunc_div(cur, arg))
            else:
                f = _float_op(float(cur), op, arg)
                if not math.isfinite(f):
                    raise FieldValueError(f"{op} {arg!r} gives {f}, which does not fit {self.type_text}")
                r = math.trunc(f)
            return np.array(self._int_in_range(r, f"result {r} of {op} {arg!r}"), dtype=self.dtype)
        f = _float_op(float(cur), op, arg)
        if not math.isfinite(f) or (self.type.cell is not CellType.FLOAT64 and abs(f) > _F32_MAX):
            raise FieldValueError(f"result {f!r} of {op} {arg!r} does not fit {self.type_text}")
        return np.array(f, dtype=self.dtype)

    def modify(self, old: Value | None, operation: str, cells: Sequence[tuple[tuple[int, ...], float]],
               create: bool) -> Array | None:
        """Vespa's tensor `modify`: replace, add to or multiply the given cells.

        An unset tensor has no cells to modify, so the update is ignored (None) unless `create`
        asks for a tensor of default cells first: 0 for replace and add, 1 for multiply.
        """
        assert self.type is not None and not isinstance(old, str | MappedTensor)
        if old is None:
            if not create:
                return None
            base = np.full(self.shape, 1.0 if operation == "multiply" else 0.0)
        else:
            base = self.array(old).astype(np.float64)
        for idx, v in cells:
            if operation == "replace":
                base[idx] = v
            elif operation == "add":
                base[idx] += v
            else:
                base[idx] *= v
        try:
            return self.check_array(base, copy=False)
        except FieldValueError as e:
            raise FieldValueError(f"after modify ({operation}): {e}") from None


class Unchecked:
    """Floating-point cells that came in as raw bytes, to be checked for NaN and infinity a batch at once.

    Two parallel lists rather than a list of pairs: a batch makes many of these, and pairs
    would be more objects for the garbage collector to track.
    """

    __slots__ = ("cells", "specs")

    def __init__(self) -> None:
        self.specs: list[FieldSpec] = []
        self.cells: list[bytes] = []

    def add(self, spec: FieldSpec, cells: bytes) -> None:
        self.specs.append(spec)
        self.cells.append(cells)

    def truncate(self, n: int) -> None:
        del self.specs[n:]
        del self.cells[n:]

    def nonfinite(self) -> list[int]:
        """Positions whose cells hold NaN or infinity: one vectorised check per field."""
        groups: dict[FieldSpec, list[int]] = {}
        for i, spec in enumerate(self.specs):
            groups.setdefault(spec, []).append(i)
        bad: list[int] = []
        for spec, idx in groups.items():
            raw = b"".join([self.cells[i] for i in idx])
            block = np.frombuffer(raw, spec.dtype).reshape(len(idx), spec.cells)
            ok = np.isfinite(block).all(axis=1)
            if not ok.all():
                bad.extend(idx[j] for j in np.flatnonzero(~ok).tolist())
        return sorted(bad)


def _trunc_div(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def _float_op(cur: float, op: str, arg: float) -> float:
    try:
        if op == "increment":
            return cur + arg
        if op == "decrement":
            return cur - arg
        if op == "multiply":
            return cur * arg
        return cur / arg
    except OverflowError:
        return math.inf


def _int_to_float(v: int, what: str) -> float:
    try:
        return float(v)
    except OverflowError:
        raise FieldValueError(f"{v} does not fit {what}") from None


@dataclass(frozen=True)
class DocType:
    """A document type: its fields in schema order."""

    name: str
    fields: dict[str, FieldSpec]

    @property
    def attributes(self) -> list[FieldSpec]:
        return [f for f in self.fields.values() if f.attribute]

    def position(self, name: str) -> int:
        """The column of field `name` in a stored row (id, *fields)."""
        return 1 + list(self.fields).index(name)

    @staticmethod
    def of(name: str, fields: Mapping[str, FieldDef]) -> DocType:
        return DocType(name, {n: _spec(f) for n, f in fields.items() if f.kind != "imported"})


def _spec(f: FieldDef) -> FieldSpec:
    """A field as the store holds it. Only numbers and tensors are resident columns; a string
    attribute is stored like a summary field (not a dictionary-encoded column yet)."""
    structs = {}
    if f.struct_fields:
        name = f.declared.replace(">", "").split("<")[-1].split(",")[-1]
        structs[name] = dict(f.struct_fields)
    return FieldSpec(f.name, f.type, f.attribute and f.type is not None, f.declared if f.type is None else "",
                     f.kind if f.type is None else "", structs)
