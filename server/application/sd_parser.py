"""A parser for the subset of Vespa's schema (.sd) language that tensorrank supports: the
schema block and the checks across its parts.

Unknown or unsupported constructs are errors with file:line:column, never ignored
silently: a user must know when part of a schema does not apply. The blocks inside a
schema are parsed in document_parser (document, fields), file_blocks (onnx-model,
constant) and profile_parser (rank-profile).
"""

from __future__ import annotations

from server.application.document_parser import parse_document
from server.application.errors import SchemaError
from server.application.file_blocks import parse_constant_file, parse_onnx_model
from server.application.profile_parser import parse_profile
from server.application.scanner import Scanner
from server.application.schema_defs import ConstantRef, SchemaDef
from tensor_ir.expr.errors import RankingError

# the schema's definitions stay importable from here, where callers have always found them
__all__ = ["ConstantRef", "SchemaDef", "parse_schema"]


def parse_schema(text: str, file: str) -> SchemaDef:
    """Parse one .sd file. Every problem is a SchemaError with file:line:column."""
    try:
        return _parse_schema(text, file)
    except SchemaError:
        raise
    except RankingError as e:
        # from the expression parser: the same located error, as this layer's type
        raise SchemaError(e.message, e.location) from None


def _parse_schema(text: str, file: str) -> SchemaDef:
    s = Scanner(text, file)
    loc = s.here()
    kw = s.word("'schema'")
    if kw not in ("schema", "search"):
        raise s.error(f"expected 'schema', found '{kw}'", loc)
    name_loc = s.here()
    name = s.word("the schema name")
    schema = SchemaDef(name, file, name_loc)
    if s.peek_word() == "inherits":
        raise s.error("schema inheritance is not supported")
    s.expect("{", "to open the schema")
    while not s.accept("}"):
        if s.at_end():
            raise s.error("missing '}' at the end of the schema")
        item_loc = s.here()
        kw = s.word("a schema element")
        if kw == "document":
            parse_document(s, schema)
        elif kw == "rank-profile":
            p = parse_profile(s, schema)
            if p.name in schema.profiles:
                raise s.error(f"rank profile '{p.name}' is defined twice", item_loc)
            schema.profiles[p.name] = p
        elif kw == "onnx-model":
            m = parse_onnx_model(s)
            schema.onnx_models[m.name] = m
        elif kw == "constant":
            c = parse_constant_file(s)
            schema.constant_files[c.name] = c
        elif kw in ("fieldset", "document-summary", "stemming", "index", "field", "annotation", "struct",
                    "import", "raw-as-base64-in-summary"):
            raise s.error(f"'{kw}' is not supported by tensorrank", item_loc)
        else:
            raise s.error(f"unknown schema element '{kw}' (expected document, rank-profile, onnx-model or "
                          "constant)", item_loc)
    if not s.at_end():
        raise s.error("unexpected text after the end of the schema")
    if not schema.document:
        raise SchemaError(f"schema '{name}' has no document block", name_loc)
    _check_profiles(schema)
    return schema


def _check_profiles(schema: SchemaDef) -> None:
    for p in schema.profiles.values():
        for parent in p.inherits:
            if parent not in schema.profiles and parent != "default":
                raise SchemaError(f"rank profile '{p.name}' inherits unknown profile '{parent}'", p.loc)
