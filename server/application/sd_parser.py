"""A parser for Vespa's schema (.sd) language: the schema block and the checks across its parts.

Every construct is either understood, accepted as changing nothing here (a Note, which
`check` lists), or refused with file:line:column and its name; nothing is skipped silently.
A refusal inside one element (a field, a rank profile, a summary) is recorded on the schema
and parsing goes on with the next element, so `check` can report every problem of a
package; syntax that leaves the structure unclear stops the parse. The blocks are parsed in
document_parser and field_parser (document, fields), summaries (fieldset, document-summary,
import), file_blocks (onnx-model, constant) and profile_parser (rank-profile).
"""

from __future__ import annotations

from server.application.document_parser import add_field, parse_document
from server.application.errors import SchemaError
from server.application.field_parser import parse_field
from server.application.file_blocks import parse_constant_file, parse_onnx_model
from server.application.profile_parser import parse_profile
from server.application.recovery import as_schema_error, recovering
from server.application.scanner import Scanner
from server.application.schema_defs import ConstantRef, SchemaDef
from server.application.summaries import parse_document_summary, parse_fieldset, parse_import
from tensor_ir.expr.errors import RankingError
from tensor_ir.expr.profile import ProfileDef

# the schema's definitions stay importable from here, where callers have always found them
__all__ = ["ConstantRef", "SchemaDef", "parse_profile_file", "parse_schema"]

_IGNORED_ELEMENTS = {
    "stemming": "schema-wide stemming: no text matching here",
    "raw-as-base64-in-summary": "summary rendering of raw fields",
}


def parse_schema(text: str, file: str, found: list[SchemaError] | None = None) -> SchemaDef:
    """Parse one .sd file. A problem that stops the parse is raised as a SchemaError with
    file:line:column; refusals that do not are in the result's `problems`.

    Where the parse stops after refusals it went past, the first refusal is raised: the stop
    may be its consequence (an element skipped wrongly); `found`, if given, receives them all."""
    problems: list[SchemaError] = []
    try:
        return _parse_schema(text, file, problems)
    except RankingError as e:
        stop = as_schema_error(e)
        if found is not None:
            found += [*problems, stop]
        raise (problems[0] if problems else stop) from None


def parse_profile_file(text: str, file: str, schema: SchemaDef) -> None:
    """A schemas/<schema>/NAME.profile file: one rank profile, added to `schema`."""
    s = Scanner(text, file)
    while not s.at_end():
        loc = s.here()
        kw = s.word("'rank-profile'")
        if kw != "rank-profile":
            raise s.error(f"expected 'rank-profile' in a .profile file, found '{kw}'", loc)
        _profile(s, schema)


def _parse_schema(text: str, file: str, problems: list[SchemaError]) -> SchemaDef:
    s = Scanner(text, file)
    loc = s.here()
    kw = s.word("'schema'")
    if kw not in ("schema", "search"):
        raise s.error(f"expected 'schema', found '{kw}'", loc)
    name_loc = s.here()
    name = s.word("the schema name")
    schema = SchemaDef(name, file, name_loc, problems=problems)
    if s.peek_word() == "inherits":
        s.word()
        schema.inherits = s.word("the schema it inherits")
    s.expect("{", "to open the schema")
    while not s.accept("}"):
        if s.at_end():
            raise s.error("missing '}' at the end of the schema")
        _element(s, schema)
    if not s.at_end():
        raise s.error("unexpected text after the end of the schema")
    if not schema.document:
        raise SchemaError(f"schema '{name}' has no document block", name_loc)
    return schema


def _element(s: Scanner, schema: SchemaDef) -> None:
    item_loc = s.here()
    kw = s.word("a schema element")
    if kw == "document":
        parse_document(s, schema)
    elif kw == "rank-profile":
        _profile(s, schema)
    elif kw == "onnx-model":
        def onnx() -> None:
            m = parse_onnx_model(s)
            schema.onnx_models[m.name] = m
        recovering(s, schema, onnx)
    elif kw == "constant":
        def constant() -> None:
            c = parse_constant_file(s)
            schema.constant_files[c.name] = c
        recovering(s, schema, constant)
    elif kw == "field":
        recovering(s, schema, lambda: add_field(schema, parse_field(s, schema, "schema"), s))
    elif kw == "fieldset":
        recovering(s, schema, lambda: parse_fieldset(s, schema))
    elif kw == "document-summary":
        recovering(s, schema, lambda: parse_document_summary(s, schema))
    elif kw == "import":
        recovering(s, schema, lambda: parse_import(s, schema))
    elif kw in _IGNORED_ELEMENTS:
        s.expect(":", f"after '{kw}'")
        value, _ = s.raw(stop_at_newline=True)
        schema.note(item_loc, f"{kw}: {value.strip()}", _IGNORED_ELEMENTS[kw])
    elif kw in ("annotation", "index", "struct"):
        raise s.error(f"schema element '{kw}' is not supported"
                      + (" outside the document" if kw == "struct" else ""), item_loc)
    else:
        raise s.error(f"unknown schema element '{kw}' (expected document, field, rank-profile, onnx-model, "
                      "constant, fieldset, document-summary or import)", item_loc)


def _profile(s: Scanner, schema: SchemaDef) -> None:
    name_loc = s.here()
    start = s.save()
    name = s.peek_word() or "?"
    s.restore(start)

    def parse() -> None:
        try:
            p = parse_profile(s, schema)
        except RankingError as e:
            if e.message.startswith("rank profile") or e.message.startswith("missing '}'"):
                raise
            raise SchemaError(f"rank profile '{name}': {e.message}", e.location) from None
        if p.name in schema.profiles:
            raise SchemaError(f"rank profile '{p.name}' is defined twice", name_loc)
        schema.profiles[p.name] = p

    recovering(s, schema, parse, profile=name)
    if name not in schema.profiles and name in schema.broken_profiles:
        # kept, so profiles inheriting it say what is wrong rather than "unknown profile"
        schema.profiles[name] = ProfileDef(name, name_loc)
