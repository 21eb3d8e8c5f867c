"""The document block of a schema (.sd) and its fields: their types (tensor, number,
string) and how they are indexed."""

from __future__ import annotations

from server.application.errors import SchemaError
from server.application.scanner import Scanner
from server.application.schema_defs import SchemaDef
from tensor_ir.dtypes import CellType
from tensor_ir.expr.profile import FieldDef
from tensor_ir.expr.types import TensorType, TypeSyntaxError, parse_type

_FIELD_TYPES_SCALAR = {"float": "float", "double": "double", "int": "int", "long": "long", "byte": "byte",
                       "bool": "bool"}


def parse_document(s: Scanner, schema: SchemaDef) -> None:
    loc = s.here()
    doc = s.word("the document type name")
    if doc != schema.name:
        raise s.error(f"document type '{doc}' must be named like its schema '{schema.name}'", loc)
    schema.document = doc
    if s.peek_word() == "inherits":
        raise s.error("document inheritance is not supported")
    s.expect("{", "to open the document")
    while not s.accept("}"):
        if s.at_end():
            raise s.error("missing '}' at the end of the document")
        kw_loc = s.here()
        kw = s.word("'field'")
        if kw != "field":
            raise s.error(f"expected 'field' in the document, found '{kw}'", kw_loc)
        f = _field(s)
        if f.name in schema.fields:
            raise s.error(f"field '{f.name}' is defined twice", f.loc)
        schema.fields[f.name] = f


def _field(s: Scanner) -> FieldDef:
    loc = s.here()
    name = s.word("the field name")
    kw_loc = s.here()
    if s.word("'type'") != "type":
        raise s.error("expected 'type' after the field name", kw_loc)
    type_text, type_loc = s.raw(stop_at_newline=False, stops="{")
    ftype: TensorType | None
    t = type_text.strip()
    if t == "string":
        ftype = None
    elif t in _FIELD_TYPES_SCALAR:
        ftype = TensorType({"float": CellType.FLOAT32, "double": CellType.FLOAT64, "int": CellType.INT32,
                            "long": CellType.INT64, "byte": CellType.INT8, "bool": CellType.BOOL}[t], ())
    elif t.startswith("tensor"):
        try:
            ftype = parse_type(t)
        except TypeSyntaxError as e:
            raise SchemaError(f"field '{name}': {e}", type_loc) from None
    elif t.startswith("array") or t.startswith("weightedset") or t.startswith("map"):
        raise SchemaError(f"field '{name}': collection type '{t}' is not supported", type_loc)
    else:
        raise SchemaError(f"field '{name}': unknown type '{t}' (expected a tensor type, float, double, int, "
                          "long, byte, bool or string)", type_loc)
    s.expect("{", "to open the field")
    attribute = False
    while not s.accept("}"):
        if s.at_end():
            raise s.error(f"missing '}}' at the end of field '{name}'")
        prop_loc = s.here()
        prop = s.word("a field property")
        s.expect(":", f"after '{prop}'")
        value, vloc = s.raw(stop_at_newline=True)
        if prop == "indexing":
            parts = [p.strip() for p in value.split("|")]
            for p in parts:
                if p not in ("attribute", "summary", "index"):
                    raise SchemaError(f"field '{name}': indexing '{p}' is not supported (attribute, summary)", vloc)
            attribute = "attribute" in parts
            if "index" in parts:
                raise SchemaError(f"field '{name}': 'index' (text search) is not supported", vloc)
        elif prop in ("attribute", "rank", "summary", "match"):
            continue  # tuning hints that do not change ranking results
        else:
            raise SchemaError(f"field '{name}': unknown property '{prop}'", prop_loc)
    if ftype is None and attribute:
        raise SchemaError(f"field '{name}': string fields can only be 'summary'", loc)
    return FieldDef(name, ftype, attribute, loc)
