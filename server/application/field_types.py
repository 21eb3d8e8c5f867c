"""Field types of a schema as declared (`float`, `string`, `array<string>`, `map<string,int>`,
`reference<doc>`, `tensor<float>(x[4])`, a struct's name ...): what a field holds, and
whether ranking can read it."""

from __future__ import annotations

from dataclasses import dataclass

from server.application.errors import SchemaError
from tensor_ir.dtypes import CellType
from tensor_ir.expr.errors import Location
from tensor_ir.expr.types import TensorType, TypeSyntaxError, parse_type

NUMBERS = {"float": CellType.FLOAT32, "double": CellType.FLOAT64, "int": CellType.INT32,
           "long": CellType.INT64, "byte": CellType.INT8, "bool": CellType.BOOL}
# single values that are not numbers: stored, shown in summaries, not read by ranking
PLAIN = {"string": "string", "uri": "uri", "raw": "raw", "position": "position", "predicate": "predicate"}
COLLECTIONS = ("array", "weightedset", "map")
# kinds a weighted set's keys and a map's keys may have
_KEY_TYPES = {"string", "int", "long", "byte"}


@dataclass(frozen=True)
class FieldType:
    kind: str  # number, bool, tensor, string, uri, raw, position, predicate, array, weightedset, map, struct, reference
    declared: str  # as written, white space removed
    tensor: TensorType | None = None  # numbers and tensors (indexed, mapped or mixed)
    refusal: str = ""  # a valid Vespa type this project cannot hold yet
    struct: str = ""  # the struct named, for struct fields and collections of structs


def parse_field_type(text: str, field: str, loc: Location) -> FieldType:
    t = text.strip()
    if t.startswith("tensor"):
        return _tensor(t, field, loc)
    compact = "".join(t.split())
    return _type(compact, field, loc)


def _tensor(t: str, field: str, loc: Location) -> FieldType:
    declared = " ".join(t.split())
    try:
        return FieldType("tensor", declared, parse_type(t, allow_mapped=True))
    except TypeSyntaxError as e:
        raise SchemaError(f"field '{field}': {e}", loc) from None


def _type(t: str, field: str, loc: Location) -> FieldType:
    if t in NUMBERS:
        return FieldType("bool" if t == "bool" else "number", t, TensorType(NUMBERS[t], ()))
    if t in PLAIN:
        return FieldType(PLAIN[t], t)
    head, _, rest = t.partition("<")
    if rest:
        if not rest.endswith(">"):
            raise SchemaError(f"field '{field}': type '{t}' is missing its closing '>'", loc)
        args = _split_args(rest[:-1], t, field, loc)
        if head == "array" and len(args) == 1:
            element = _type(args[0], field, loc)
            if element.refusal:
                return FieldType("array", t, refusal=element.refusal)
            return FieldType("array", t, struct=element.struct)
        if head == "weightedset" and len(args) == 1:
            if args[0] not in _KEY_TYPES:
                raise SchemaError(f"field '{field}': a weightedset holds string, int, long or byte keys, "
                                  f"not '{args[0]}'", loc)
            return FieldType("weightedset", t)
        if head == "map" and len(args) == 2:
            if args[0] not in _KEY_TYPES:
                raise SchemaError(f"field '{field}': map keys are string, int, long or byte, not '{args[0]}'", loc)
            value = _type(args[1], field, loc)
            return FieldType("map", t, refusal=value.refusal, struct=value.struct)
        if head == "reference" and len(args) == 1 and args[0].isidentifier():
            return FieldType("reference", t)
        if head in (*COLLECTIONS, "reference"):
            want = {"array": "array<element type>", "weightedset": "weightedset<key type>",
                    "map": "map<key type,value type>", "reference": "reference<document type>"}[head]
            raise SchemaError(f"field '{field}': '{t}' is not a valid type (expected {want})", loc)
        raise SchemaError(f"field '{field}': unknown type '{t}'", loc)
    if t.replace("_", "a").isalnum() and t[:1].isalpha():
        # another name: a struct of the document, checked once the document is read
        return FieldType("struct", t, struct=t)
    raise SchemaError(f"field '{field}': unknown type '{t}' (expected a tensor type, a number type, string, "
                      "array<...>, weightedset<...>, map<...>, a struct name ...)", loc)


def _split_args(body: str, whole: str, field: str, loc: Location) -> list[str]:
    out: list[str] = []
    depth, start = 0, 0
    for i, ch in enumerate(body):
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append(body[start:i])
            start = i + 1
    out.append(body[start:])
    if depth != 0 or any(not a for a in out):
        raise SchemaError(f"field '{field}': '{whole}' is not a valid type", loc)
    return out
