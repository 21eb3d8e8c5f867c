"""A field of a schema (`field name type T { ... }`) in the document, in a struct, or outside
the document (a synthetic field), with its indexing statements and settings.

What changes nothing here (search tuning, text processing, HNSW parameters) is accepted and
noted, so `check` can list it; a setting Vespa does not have is refused, located."""

from __future__ import annotations

from server.application.errors import SchemaError
from server.application.field_types import FieldType, parse_field_type
from server.application.indexing import Indexing, parse_indexing
from server.application.scanner import Scanner
from server.application.schema_defs import SchemaDef
from server.application.settings import Setting, read_setting
from tensor_ir.expr.errors import Location
from tensor_ir.expr.profile import FieldDef

DISTANCE_METRICS = ("euclidean", "angular", "prenormalized-angular", "dotproduct", "hamming", "geodegrees")

_SEARCH_TUNING = "search tuning: ranking here reads every document's value, so it changes nothing"
_TEXT = "text matching setting: text matching is not supported yet, the text is stored and returned"
_HNSW = "nearest-neighbour index (HNSW) setting: ranking here is exact over every document"
_SUMMARY = "summary rendering setting: documents are returned as stored"
# field settings that change nothing here, and why
_IGNORED = {
    "match": _TEXT, "stemming": _TEXT, "normalizing": _TEXT, "bolding": _TEXT, "alias": "query-side field alias",
    "rank": "matching setting (rank: filter): no text matching here", "query-command": _TEXT,
    "rank-type": _TEXT, "weight": _TEXT, "id": "field id for the wire format", "dictionary": _SEARCH_TUNING,
    "sorting": "sort order setting: results are ordered by rank score", "summary": _SUMMARY,
    "summary-to": _SUMMARY, "weightedset": "weighted set update setting: feeds give whole values here",
}


def parse_field(s: Scanner, schema: SchemaDef, where: str) -> FieldDef:
    """After 'field': name, type and block. `where` is "document", "struct" or "schema"."""
    loc = s.here()
    name = s.word("the field name")
    kw_loc = s.here()
    if s.word("'type'") != "type":
        raise s.error(f"expected 'type' after the field name '{name}'", kw_loc)
    type_text, type_loc = s.raw(stop_at_newline=False, stops="{")
    ftype = parse_field_type(type_text, name, type_loc)
    if ftype.refusal:
        schema.refuse(SchemaError(f"field '{name}': {ftype.refusal}", type_loc))
    opened = s.expect("{", f"to open field '{name}'")
    indexing = Indexing()
    metric: list[str] = []
    struct_fields: dict[str, FieldDef] = {}
    while not s.accept("}"):
        if s.at_end():
            raise s.error(f"missing '}}' at the end of field '{name}' (opened at {opened.line}:{opened.column})")
        if s.peek_word() == "indexing":
            _indexing(s, name, indexing)
            continue
        st = read_setting(s, f"field '{name}'")
        if st.name == "struct-field":
            sub = _struct_field(st, name, schema)
            struct_fields[sub.name] = sub
        else:
            _setting(st, name, ftype, schema, metric)
    return _field_def(name, loc, ftype, indexing, metric, where, schema)


def _indexing(s: Scanner, name: str, into: Indexing) -> None:
    s.word()
    if s.accept(":"):
        text, tloc = s.raw(stop_at_newline=True)
    else:
        s.expect("{", "or ':' after 'indexing'")
        text, tloc = s.raw(stop_at_newline=False)
        s.expect("}", "to close the indexing statements")
    got = parse_indexing(text, tloc, name)
    into.targets |= got.targets
    into.inputs += got.inputs
    into.derived += got.derived
    into.text_only += got.text_only
    into.names.update(got.names)


def _setting(st: Setting, name: str, ftype: FieldType, schema: SchemaDef, metric: list[str]) -> None:
    if st.name == "attribute":
        _attribute(st, name, ftype, schema, metric)
    elif st.name == "index":
        for part in st.children if st.children is not None else [st]:
            text = part.describe()
            reason = _HNSW if ftype.kind == "tensor" else _TEXT
            schema.note(part.loc, f"field '{name}' index: {text}" if part is not st else f"field '{name}' {text}",
                        reason)
    elif st.name in _IGNORED:
        schema.note(st.loc, f"field '{name}' {st.describe()}", _IGNORED[st.name])
    else:
        raise SchemaError(f"field '{name}': unknown field setting '{st.name}'", st.loc)


def _attribute(st: Setting, name: str, ftype: FieldType, schema: SchemaDef, metric: list[str]) -> None:
    parts = st.children if st.children is not None else [Setting(st.value or "", st.value_loc or st.loc)]
    for part in parts:
        if part.name == "distance-metric":
            value = (part.value or "").strip()
            if value == "innerproduct":
                # Vespa's former name of the metric, still accepted there
                schema.note(part.loc, f"field '{name}' distance-metric: innerproduct",
                            "the former name of prenormalized-angular, read as that")
                value = "prenormalized-angular"
            if value not in DISTANCE_METRICS:
                raise SchemaError(f"field '{name}': unknown distance-metric '{value}' (expected "
                                  f"{', '.join(DISTANCE_METRICS)})", part.value_loc or part.loc)
            if ftype.kind != "tensor":
                raise SchemaError(f"field '{name}': distance-metric applies to tensor fields, not {ftype.declared}",
                                  part.loc)
            metric.append(value)
        elif part.name:
            schema.note(part.loc, f"field '{name}' attribute: {part.describe()}", _SEARCH_TUNING)


def _struct_field(st: Setting, name: str, schema: SchemaDef) -> FieldDef:
    """`struct-field f { indexing: attribute ... }`: how one part of a struct or map field is
    indexed. Stored with the field; ranking does not read struct parts."""
    if not st.args:
        raise SchemaError(f"field '{name}': struct-field needs the name of a part", st.loc)
    part = st.args[0]
    for sub in st.children or []:
        schema.note(sub.loc, f"field '{name}' struct-field {part}: {sub.describe()}",
                    "struct part indexing: struct fields are stored, not read by ranking")
    return FieldDef(f"{name}.{part}", None, False, st.loc, declared="struct-field", kind="struct-field")


def _field_def(name: str, loc: Location, ftype: FieldType, indexing: Indexing, metric: list[str], where: str,
               schema: SchemaDef) -> FieldDef:
    attribute = "attribute" in indexing.targets
    indexed = "index" in indexing.targets
    synthetic = where == "schema"
    for fn, floc in indexing.derived:
        schema.note(floc, f"field '{name}' indexing: {fn}",
                    "Vespa computes the value while indexing; here the feed gives the field's value")
    for fn, floc in indexing.text_only:
        schema.note(floc, f"field '{name}' indexing: {fn}", _TEXT)
    if indexed:
        schema.note(loc, f"field '{name}' indexing: index",
                    _HNSW if ftype.kind == "tensor" else "text index: the text is stored; text-match features "
                    "(bm25, nativeRank, ...) are not supported yet")
    if attribute and ftype.tensor is None and ftype.kind != "tensor":
        schema.note(loc, f"field '{name}' indexing: attribute",
                    f"attribute of type {ftype.declared}: stored and returned, not resident for ranking or filters")
    if synthetic and not indexing.inputs:
        raise SchemaError(f"field '{name}' is outside the document, so its indexing must read document fields "
                          "('input ...')", loc)
    struct = schema.structs.get(ftype.struct) if ftype.struct else None
    parts = tuple((f.name, f.declared) for f in struct.fields.values()) if struct is not None else ()
    return FieldDef(
        name, ftype.tensor, attribute, loc, declared=ftype.declared,
        distance_metric=metric[-1] if metric else "euclidean", kind=ftype.kind, indexed=indexed,
        synthetic=synthetic, refusal=ftype.refusal, struct_fields=parts,
    )
