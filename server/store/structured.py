"""Values of fields that are neither numbers nor tensors: strings of a kind (uri, raw,
predicate, reference), position, and the collections and structs (`array<string>`,
`weightedset<int>`, `map<string,float>`, a struct) in Vespa's document JSON.

Each fed value is checked against the declared type, element by element, and kept as
canonical JSON text: stored as it is (summary storage), returned as the structure it was.
Ranking does not read these fields."""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Mapping
from typing import Any

from tensor_ir.errors import TensorRankError

# kinds whose value is structured JSON; the others of this module are strings
JSON_KINDS = {"array", "weightedset", "map", "struct", "position"}
STRING_KINDS = {"string", "uri", "raw", "predicate", "reference"}
_INTS = {"int": 2**31, "long": 2**63, "byte": 2**7}


class FieldValueError(TensorRankError, ValueError):
    """A value that does not fit its field; the caller adds the document id and field name.
    (Defined here, where the checks of every field kind can raise it; values.py exports it.)"""


def check_value(value: Any, declared: str, structs: Mapping[str, Mapping[str, str]]) -> Any:
    """`value` as its field stores it; raises FieldValueError naming the part that is wrong."""
    return _check(value, declared, structs, "")


def to_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _where(path: str) -> str:
    return f" at {path}" if path else ""


def _check(v: Any, t: str, structs: Mapping[str, Mapping[str, str]], path: str) -> Any:
    head, _, rest = t.partition("<")
    args = _args(rest[:-1]) if rest else []
    if head == "array":
        if not isinstance(v, list):
            raise FieldValueError(f"expected an array for {t}{_where(path)}, got {describe_json(v)}")
        return [_check(x, args[0], structs, f"{path}[{i}]") for i, x in enumerate(v)]
    if head == "weightedset":
        if not isinstance(v, dict):
            raise FieldValueError(f"expected an object of key: weight for {t}{_where(path)}, got {describe_json(v)}")
        out: dict[str, int] = {}
        for k, w in v.items():
            _key(k, args[0], t, path)
            if isinstance(w, bool) or not isinstance(w, int) or not -2**31 <= w < 2**31:
                raise FieldValueError(f"weight of '{k}'{_where(path)} must be a whole number (int), got "
                                           f"{describe_json(w)}")
            out[str(k)] = w
        return out
    if head == "map":
        if not isinstance(v, dict):
            raise FieldValueError(f"expected an object for {t}{_where(path)}, got {describe_json(v)}")
        for k in v:
            _key(k, args[0], t, path)
        return {str(k): _check(x, args[1], structs, f"{path}{{{k}}}") for k, x in v.items()}
    if head == "position":
        return _position(v, path)
    if t in structs:
        if not isinstance(v, dict):
            raise FieldValueError(f"expected an object for struct {t}{_where(path)}, got {describe_json(v)}")
        parts = structs[t]
        for k in v:
            if k not in parts:
                raise FieldValueError(f"struct {t} has no field '{k}'{_where(path)} (fields: "
                                           f"{', '.join(parts) or 'none'})")
        return {k: _check(x, parts[k], structs, f"{path}.{k}" if path else k) for k, x in v.items()}
    return _primitive(v, t, path)


def _primitive(v: Any, t: str, path: str) -> Any:
    if t in ("string", "uri", "predicate"):
        if not isinstance(v, str):
            raise FieldValueError(f"expected a string for {t}{_where(path)}, got {describe_json(v)}")
        return v
    if t == "raw":
        if not isinstance(v, str):
            raise FieldValueError(f"expected base64 text for raw{_where(path)}, got {describe_json(v)}")
        try:
            base64.b64decode(v, validate=True)
        except (binascii.Error, ValueError):
            raise FieldValueError(f"raw value{_where(path)} is not valid base64") from None
        return v
    if t.startswith("reference"):
        if not isinstance(v, str) or not v.startswith("id:"):
            raise FieldValueError(f"expected a document id ('id:namespace:type::key') for {t}{_where(path)}, "
                                       f"got {describe_json(v)}")
        return v
    if t == "bool":
        if not isinstance(v, bool):
            raise FieldValueError(f"expected true or false{_where(path)}, got {describe_json(v)}")
        return v
    if t in _INTS:
        if isinstance(v, bool) or not isinstance(v, int):
            raise FieldValueError(f"expected a whole number for {t}{_where(path)}, got {describe_json(v)}")
        if not -_INTS[t] <= v < _INTS[t]:
            raise FieldValueError(f"{v}{_where(path)} does not fit {t}")
        return v
    if t in ("float", "double"):
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise FieldValueError(f"expected a finite number for {t}{_where(path)}, got {describe_json(v)}")
        return v
    raise FieldValueError(f"values of type {t}{_where(path)} cannot be stored here")


def _key(k: Any, t: str, whole: str, path: str) -> None:
    if t in _INTS:
        try:
            n = int(k)
        except (TypeError, ValueError):
            raise FieldValueError(f"key '{k}'{_where(path)} of {whole} must be a whole number") from None
        if not -_INTS[t] <= n < _INTS[t]:
            raise FieldValueError(f"key {n}{_where(path)} does not fit {t}")


def _position(v: Any, path: str) -> Any:
    if isinstance(v, str):
        return v  # Vespa's text form, "N63.429722;E10.393333"
    if isinstance(v, dict) and set(v) == {"lat", "lng"}:
        for k in ("lat", "lng"):
            x = v[k]
            if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
                raise FieldValueError(f"position {k}{_where(path)} must be a number, got {describe_json(x)}")
        if not -90 <= v["lat"] <= 90 or not -180 <= v["lng"] <= 180:
            raise FieldValueError(f"position{_where(path)} out of range (lat -90..90, lng -180..180)")
        return {"lat": v["lat"], "lng": v["lng"]}
    raise FieldValueError(f"expected a position {{\"lat\": .., \"lng\": ..}}{_where(path)}, got {describe_json(v)}")


def _args(body: str) -> list[str]:
    out, depth, start = [], 0, 0
    for i, ch in enumerate(body):
        depth += ch == "<"
        depth -= ch == ">"
        if ch == "," and depth == 0:
            out.append(body[start:i])
            start = i + 1
    out.append(body[start:])
    return out


def describe_json(v: Any) -> str:
    """A JSON value in a few words, for error messages."""
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, str):
        return f"the string {v!r:.60}"
    if isinstance(v, list):
        return "an array"
    if isinstance(v, dict):
        return "an object"
    if v is None:
        return "null"
    if isinstance(v, int | float):
        return f"the number {v!r}"
    return f"a value of type {type(v).__name__}"
