"""The document block of a schema (.sd): its fields and structs, and the document types it
inherits from."""

from __future__ import annotations

from server.application.errors import SchemaError
from server.application.field_parser import parse_field
from server.application.recovery import recovering
from server.application.scanner import Scanner
from server.application.schema_defs import SchemaDef, StructDef
from tensor_ir.expr.profile import FieldDef


def parse_document(s: Scanner, schema: SchemaDef) -> None:
    loc = s.here()
    doc = s.word("the document type name")
    if doc != schema.name:
        raise s.error(f"document type '{doc}' must be named like its schema '{schema.name}'", loc)
    schema.document = doc
    if s.peek_word() == "inherits":
        s.word()
        schema.document_inherits.append(s.word("a document type name"))
        while s.accept(","):
            schema.document_inherits.append(s.word("a document type name"))
    opened = s.expect("{", "to open the document")
    while not s.accept("}"):
        if s.at_end():
            raise s.error(f"missing '}}' at the end of the document (opened at {opened.line}:{opened.column})")
        kw_loc = s.here()
        kw = s.word("'field'")
        if kw == "field":
            recovering(s, schema, lambda: add_field(schema, parse_field(s, schema, "document"), s))
        elif kw == "struct":
            recovering(s, schema, lambda: _struct(s, schema))
        elif kw in ("annotation", "compression"):
            raise s.error(f"document '{kw}' is not supported", kw_loc)
        else:
            raise s.error(f"expected 'field' or 'struct' in the document, found '{kw}'", kw_loc)
    for f in schema.fields.values():
        if f.kind in ("struct", "array", "map") and f.declared and _struct_name(f) and not schema.document_inherits:
            name = _struct_name(f)
            if name not in schema.structs:
                schema.refuse(SchemaError(f"field '{f.name}': unknown type '{name}' (no struct of that name in the "
                                          "document)", f.loc))


def _struct_name(f: FieldDef) -> str:
    # the innermost name of array<x>, map<k,x> or x, when it is not a built-in type
    inner = f.declared.replace(">", "").split("<")[-1].split(",")[-1]
    builtin = {"string", "int", "long", "byte", "float", "double", "bool", "uri", "raw", "position", "predicate"}
    return "" if inner in builtin or inner.startswith("tensor") or inner.startswith("reference") else inner


def add_field(schema: SchemaDef, f: FieldDef, s: Scanner) -> None:
    if f.name in schema.fields:
        raise s.error(f"field '{f.name}' is defined twice", f.loc)
    schema.fields[f.name] = f


def _struct(s: Scanner, schema: SchemaDef) -> None:
    loc = s.here()
    name = s.word("the struct name")
    if s.peek_word() == "inherits":
        raise s.error("struct inheritance is not supported")
    opened = s.expect("{", f"to open struct '{name}'")
    st = StructDef(name, loc)
    while not s.accept("}"):
        if s.at_end():
            raise s.error(f"missing '}}' at the end of struct '{name}' (opened at {opened.line}:{opened.column})")
        kw_loc = s.here()
        kw = s.word("'field'")
        if kw != "field":
            raise s.error(f"expected 'field' in struct '{name}', found '{kw}'", kw_loc)
        f = parse_field(s, schema, "struct")
        if f.name in st.fields:
            raise s.error(f"field '{f.name}' is defined twice in struct '{name}'", f.loc)
        st.fields[f.name] = f
    if name in schema.structs:
        raise SchemaError(f"struct '{name}' is defined twice", loc)
    schema.structs[name] = st
