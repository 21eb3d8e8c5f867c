"""Vespa's document-JSON forms of tensors with mapped dimensions (sparse and mixed types).

Accepted, as Vespa's document JSON reference documents them (an optional "type" member
must equal the expected type):
  {"cells": [{"address": {"x": "a", "y": "0"}, "value": 2.0}, ...]}  full addresses, any type;
      the bare array of such cells too. In a mixed type the cells of a subspace that are
      not given are 0, and the indexed labels are indices ("0" or 0) within the size.
  {"cells": {"a": 2.0, "b": 3.0}}, and the bare {"a": 2.0, "b": 3.0}   one mapped dimension,
      no indexed ones.
  {"blocks": [{"address": {"x": "a"}, "values": [2.0, 3.0]}, ...]}      mixed types: a block
      per subspace, addressed by every mapped dimension.
  {"blocks": {"a": [2.0, 3.0]}}, and the bare {"a": [2.0, 3.0]}          mixed, one mapped
      dimension.
Block values are a flat or nested array of the subspace's cells, or a string of hex digits
(the cells' bits, big-endian, as tensor_json reads a dense value's hex).

`mapped_to_json` writes a value as Vespa renders it by default: the short forms where the
type has one mapped dimension, else full addresses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from tensor_ir.dtypes import CellType
from tensor_ir.expr.tensor_json import TensorValueError, check_cells
from tensor_ir.expr.types import TensorType, TypeSyntaxError, parse_type
from tensor_ir.mapped import MAX_LABEL_BYTES, MappedTensor

_FORMS = ("cells", "blocks", "values")
_HEX_WIDTH = {CellType.FLOAT64: 16, CellType.FLOAT32: 8, CellType.BFLOAT16: 4, CellType.INT8: 2}
_F32_MAX = float(np.finfo(np.float32).max)
Address = tuple[str, ...]


def mapped_from_json(value: Any, t: TensorType, allow_nonfinite: bool = False) -> MappedTensor:
    """A value of mapped or mixed type `t` from its JSON form (module doc); raises
    TensorValueError saying exactly what is wrong."""
    if not t.is_mapped:
        raise TensorValueError(f"{t} has no mapped dimension: read it with tensor_ir.expr.tensor_json")
    subspaces = _subspaces(value, t)
    return checked(t, list(subspaces), [subspaces[a] for a in subspaces], allow_nonfinite)


def checked(t: TensorType, addresses: Sequence[Address], blocks: Sequence[npt.NDArray[Any]],
            allow_nonfinite: bool = False) -> MappedTensor:
    """Subspaces (float64 blocks of t.shape) as a value of `t`, the cells checked as
    tensor_json checks a dense value's."""
    cells = np.stack(blocks) if blocks else np.zeros((0, *t.shape), np.float64)
    if t.cell in (CellType.BFLOAT16, CellType.FLOAT32):
        finite = cells[np.isfinite(cells)]
        if finite.size and np.abs(finite).max() > _F32_MAX:  # bfloat16 goes via float (tensor_ir.casts)
            raise TensorValueError(f"a value does not fit cell type {t.cell.vespa_name or t.cell.np_name}")
    return MappedTensor(t, tuple(addresses), check_cells(cells, t, allow_nonfinite))


def mapped_to_json(v: MappedTensor) -> dict[str, Any]:
    """Vespa's default rendering of `v` (module doc)."""
    t = v.type
    wide = v.cells.astype(np.float64) if t.cell.is_float else v.cells.astype(np.int64)
    out: dict[str, Any] = {"type": str(t)}
    single = len(t.mapped) == 1
    if not t.dims:
        if single:
            out["cells"] = {a[0]: wide[i].item() for i, a in enumerate(v.addresses)}
        else:
            out["cells"] = [{"address": dict(zip(t.mapped, a, strict=True)), "value": wide[i].item()}
                            for i, a in enumerate(v.addresses)]
    elif single:
        out["blocks"] = {a[0]: wide[i].tolist() for i, a in enumerate(v.addresses)}
    else:
        out["blocks"] = [{"address": dict(zip(t.mapped, a, strict=True)), "values": wide[i].tolist()}
                         for i, a in enumerate(v.addresses)]
    return out


def mapped_label(label: Any, dim: str) -> str:
    """A label of mapped dimension `dim`: a string (or a whole number, written as digits)."""
    if isinstance(label, bool) or not isinstance(label, str | int):
        raise TensorValueError(f"dimension '{dim}' has label {shown(label)}, which is not a string")
    text = str(label)
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise TensorValueError(f"dimension '{dim}' has a label that is not valid Unicode (lone surrogate)") from None
    if size > MAX_LABEL_BYTES:
        raise TensorValueError(f"dimension '{dim}' has a label of {size} bytes ('{text[:40]}...'); "
                               f"at most {MAX_LABEL_BYTES} bytes")
    return text


def index_label(label: Any, dim: str, size: int, t: TensorType) -> int:
    """A label of indexed dimension `dim`: an index 0..size-1, as a number or its digits."""
    i = label if isinstance(label, int) and not isinstance(label, bool) else \
        int(label) if isinstance(label, str) and label.isascii() and label.isdigit() else None
    if i is None or not 0 <= i < size:
        raise TensorValueError(f"dimension '{dim}' has label {shown(label)} but it is indexed in {t} "
                               f"(labels 0..{size - 1})")
    return i


def mapped_address(addr: Any, t: TensorType, partial: bool = False) -> dict[str, str]:
    """An address of mapped dimensions only (a block's, or a removed subspace's); `partial`
    lets it name some of them (Vespa's remove by a subset of the mapped dimensions)."""
    if not isinstance(addr, Mapping):
        raise TensorValueError(f"an address must be an object of dimension: label, got {shown(addr)}")
    for d in addr:
        if d not in t.mapped:
            if d in t.visible_names:
                raise TensorValueError(f"the address {shown(addr)} names indexed dimension '{d}'; it must name "
                                       f"only the mapped dimensions {list(t.mapped)}")
            raise TensorValueError(f"the address {shown(addr)} names dimension '{d}', which {t} does not have")
    missing = [d for d in t.mapped if d not in addr]
    if missing and (not partial or len(missing) == len(t.mapped)):
        raise TensorValueError(f"the address {shown(addr)} is missing mapped dimension '{missing[0]}' "
                               f"(it must name {list(t.mapped)})")
    return {d: mapped_label(addr[d], d) for d in t.mapped if d in addr}


def type_member(value: Mapping[str, Any], t: TensorType) -> None:
    if "type" not in value:
        return
    given = value["type"]
    try:
        parsed = parse_type(str(given), allow_mapped=True)
    except TypeSyntaxError as e:
        raise TensorValueError(f"'type': {e}") from None
    if parsed.dims != t.dims or parsed.mapped != t.mapped or parsed.cell is not t.cell:
        raise TensorValueError(f"the value has type {parsed}, expected {t}")


def _subspaces(value: Any, t: TensorType) -> dict[Address, npt.NDArray[Any]]:
    if isinstance(value, list):
        return _cells_list(value, t)
    if not isinstance(value, Mapping):
        raise TensorValueError(f"expected a tensor of type {t} in Vespa's JSON form (an object), got {shown(value)}")
    if any(k in value for k in _FORMS) or (set(value) == {"type"} and isinstance(value["type"], str)):
        extra = [k for k in value if k not in (*_FORMS, "type")]
        forms = [k for k in _FORMS if k in value]
        if extra:
            raise TensorValueError(f"unknown member '{extra[0]}' beside '{forms[0]}' in a tensor value")
        if len(forms) > 1:
            raise TensorValueError(f"a tensor value has one of 'cells' or 'blocks', got both '{forms[0]}' and "
                                   f"'{forms[1]}'")
        type_member(value, t)
        if not forms:
            return {}
        form = forms[0]
        if form == "values":
            raise TensorValueError(f"'values' is the form of indexed tensors; {t} has mapped dimensions: use "
                                   "'cells' or 'blocks'")
        body = value[form]
        if form == "cells":
            if isinstance(body, list):
                return _cells_list(body, t)
            if isinstance(body, Mapping):
                return _short(body, t, "cells")
            raise TensorValueError(f"'cells' must be an array of {{\"address\", \"value\"}} objects or an object of "
                                   f"label: value, got {shown(body)}")
        if isinstance(body, list):
            return _blocks_list(body, t)
        if isinstance(body, Mapping):
            return _short(body, t, "blocks")
        raise TensorValueError(f"'blocks' must be an array of {{\"address\", \"values\"}} objects or an object of "
                               f"label: values, got {shown(body)}")
    return _short(value, t)


def _short(body: Mapping[str, Any], t: TensorType, form: str = "") -> dict[Address, npt.NDArray[Any]]:
    """{label: value} (sparse) or {label: block} (mixed) of a type with one mapped dimension;
    `form` is the member it came in ("cells" or "blocks"), "" for the bare object."""
    what = f"'{form}' as an object" if form else "the short form {label: ...}"
    if not body:
        return {}
    if len(t.mapped) != 1:
        raise TensorValueError(f"{what} is for types with one mapped dimension; {t} has "
                               f"{len(t.mapped)}: give full addresses ('cells' or 'blocks' arrays)")
    if form == "blocks" and not t.dims:
        raise TensorValueError(f"'blocks' are for mixed types; {t} has no indexed dimension: use 'cells'")
    if form == "cells" and t.dims:
        raise TensorValueError(f"'cells' as an object of label: value is for sparse types; {t} is mixed: use "
                               "'blocks'")
    dim = t.mapped[0]
    out: dict[Address, npt.NDArray[Any]] = {}
    for label, v in body.items():
        key = (mapped_label(label, dim),)
        if key in out:
            raise TensorValueError(f"the address {{{dim}:{key[0]}}} is given twice")
        where = f"{{{dim}:{key[0]}}}"
        out[key] = block_from_json(v, t, where) if t.dims else np.asarray(cell_number(v, where), dtype=np.float64)
    return out


def _cells_list(cells: list[Any], t: TensorType) -> dict[Address, npt.NDArray[Any]]:
    out: dict[Address, npt.NDArray[Any]] = {}
    seen: set[tuple[Address, tuple[int, ...]]] = set()
    for cell in cells:
        key, idx, value = address_and_value(cell, t)
        if (key, idx) in seen:
            raise TensorValueError(f"the cell {shown(cell['address'])} is given twice")
        seen.add((key, idx))
        block = out.get(key)
        if block is None:
            block = out[key] = np.zeros(t.shape, dtype=np.float64)
        block[idx] = value
    return out


def address_and_value(cell: Any, t: TensorType) -> tuple[Address, tuple[int, ...], float]:
    """One {"address": {...}, "value": v} cell naming every dimension of t: its mapped
    labels, its indices along the indexed dimensions, and its number."""
    if not isinstance(cell, Mapping) or set(cell) != {"address", "value"}:
        raise TensorValueError(f"each cell needs exactly 'address' and 'value', got {shown(cell)}")
    addr = cell["address"]
    if not isinstance(addr, Mapping):
        raise TensorValueError(f"a cell address must be an object of dimension: label, got {shown(addr)}")
    for d in addr:
        if d not in t.mapped and d not in t.visible_names:
            raise TensorValueError(f"the cell address {shown(addr)} names dimension '{d}', which {t} does "
                                   "not have")
    missing = [d for d in t.all_names if d not in addr]
    if missing:
        raise TensorValueError(f"the cell address {shown(addr)} is missing dimension '{missing[0]}' (a cell "
                               f"names every dimension of {t})")
    key = tuple(mapped_label(addr[d], d) for d in t.mapped)
    idx = tuple(index_label(addr[d], d, s, t) for d, s in t.dims)
    return key, idx, cell_number(cell["value"], shown(addr))


def _blocks_list(blocks: list[Any], t: TensorType) -> dict[Address, npt.NDArray[Any]]:
    if not t.dims:
        raise TensorValueError(f"'blocks' are for mixed types; {t} has no indexed dimension: use 'cells'")
    out: dict[Address, npt.NDArray[Any]] = {}
    for b in blocks:
        if not isinstance(b, Mapping) or set(b) != {"address", "values"}:
            raise TensorValueError(f"each block needs exactly 'address' and 'values', got {shown(b)}")
        addr = mapped_address(b["address"], t)
        key = tuple(addr[d] for d in t.mapped)
        where = shown(b["address"])
        if key in out:
            raise TensorValueError(f"the block {where} is given twice")
        out[key] = block_from_json(b["values"], t, where)
    return out


def block_from_json(v: Any, t: TensorType, where: str) -> npt.NDArray[Any]:
    """One dense subspace: a flat or nested array of t.shape's cells, or their hex digits."""
    size = int(np.prod(t.shape, dtype=np.int64))
    if isinstance(v, str):
        return _hex(v, t, where, size)
    if not isinstance(v, list):
        raise TensorValueError(f"the block {where} must be an array of {size} numbers (or their hex), got {shown(v)}")
    flat = _flatten(v)
    if flat is None:
        raise TensorValueError(f"the block {where} must be an array of numbers (nested arrays must be rectangular)")
    arr = np.asarray([cell_number(x, where) for x in flat], dtype=np.float64)
    nested = np.shape(v) if all(isinstance(x, list) for x in v) and v else None
    if arr.size != size or (nested is not None and tuple(nested) != t.shape):
        got = f"shape {list(nested)}" if nested is not None else f"{arr.size} cells"
        raise TensorValueError(f"the block {where} has {got}; a subspace of {t} has {size} cells "
                               f"(shape {list(t.shape)})")
    return arr.reshape(t.shape)


def _flatten(v: list[Any]) -> list[Any] | None:
    if not any(isinstance(x, list) for x in v):
        return v
    if not all(isinstance(x, list) for x in v):
        return None
    out: list[Any] = []
    for x in v:
        inner = _flatten(x)
        if inner is None or (out and len(x) != len(v[0])):
            return None
        out.extend(inner)
    return out


def _hex(text: str, t: TensorType, where: str, size: int) -> npt.NDArray[Any]:
    width = _HEX_WIDTH.get(t.cell)
    if width is None:
        raise TensorValueError(f"hex values are not defined for cell type {t.cell.np_name}")
    if len(text) != width * size:
        raise TensorValueError(f"the block {where} has {len(text)} hex digits; a subspace of {t} needs "
                               f"{width * size} ({size} cells of {width})")
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise TensorValueError(f"the block {where} is not a valid hex string") from None
    if t.cell is CellType.BFLOAT16:
        bits = np.frombuffer(raw, dtype=">u2").astype(np.uint32) << 16
        return bits.view(np.float32).astype(np.float64).reshape(t.shape)
    big = t.cell.np_dtype.newbyteorder(">") if t.cell.np_dtype.itemsize > 1 else t.cell.np_dtype
    return np.frombuffer(raw, dtype=big).astype(np.float64).reshape(t.shape)


def cell_number(v: Any, where: str) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise TensorValueError(f"the value at {where} is {shown(v)}, not a number")
    try:
        return float(v)
    except OverflowError:
        raise TensorValueError(f"the value at {where} ({str(v)[:20]}...) does not fit any cell type") from None


def shown(v: Any) -> str:
    if isinstance(v, Mapping):
        return "{" + ", ".join(f"{k}:{x}" for k, x in v.items()) + "}" if len(v) <= 8 else "an object"
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."
