"""Schema elements about what is searched and shown, kept as written: `fieldset`,
`document-summary`, and `import field` (a parent document's attribute through a reference)."""

from __future__ import annotations

from server.application.errors import SchemaError
from server.application.scanner import Scanner
from server.application.schema_defs import ImportedField, SchemaDef, SummaryDef
from server.application.settings import read_settings
from tensor_ir.expr.profile import FieldDef

_FIELDSET = "fieldset: the fields a text query searches; no text matching here yet"
_SUMMARY = "document summary: documents are returned with all their stored fields"


def parse_fieldset(s: Scanner, schema: SchemaDef) -> None:
    loc = s.here()
    name = s.word("the fieldset name")
    opened = s.expect("{", f"to open fieldset '{name}'")
    fields: list[str] = []
    for st in read_settings(s, f"fieldset '{name}'", opened):
        if st.name == "fields" and st.value is not None:
            fields += [f.strip() for f in st.value.split(",") if f.strip()]
        elif st.name in ("query-command", "match"):
            schema.note(st.loc, f"fieldset '{name}' {st.describe()}", _FIELDSET)
        else:
            raise SchemaError(f"fieldset '{name}': unknown setting '{st.name}' (expected fields)", st.loc)
    schema.fieldsets[name] = fields
    schema.note(loc, f"fieldset {name}", _FIELDSET)


def parse_document_summary(s: Scanner, schema: SchemaDef) -> None:
    loc = s.here()
    name = s.word("the document-summary name")
    summary = SummaryDef(name, loc)
    if s.peek_word() == "inherits":
        s.word()
        summary.inherits.append(s.word("a document-summary name"))
        while s.accept(","):
            summary.inherits.append(s.word("a document-summary name"))
    opened = s.expect("{", f"to open document-summary '{name}'")
    for st in read_settings(s, f"document-summary '{name}'", opened):
        if st.name == "from-disk":
            summary.from_disk = True
        elif st.name == "omit-summary-features":
            pass
        elif st.name == "summary":
            if not st.args:
                raise SchemaError(f"document-summary '{name}': 'summary' needs a field name", st.loc)
            source = st.args[0]
            for sub in st.children or []:
                if sub.name == "source" and sub.value:
                    source = sub.value.split(",")[0].strip()
                elif sub.name in ("select-elements-by", "bolding", "dynamic", "matched-elements-only", "full",
                                  "tokens"):
                    schema.note(sub.loc, f"document-summary '{name}' summary {st.args[0]}: {sub.describe()}",
                                _SUMMARY)
                else:
                    raise SchemaError(f"document-summary '{name}': unknown summary setting '{sub.name}'", sub.loc)
            summary.fields[st.args[0]] = source
        else:
            raise SchemaError(f"document-summary '{name}': unknown setting '{st.name}' (expected summary, "
                              "from-disk, omit-summary-features)", st.loc)
    if name in schema.summaries:
        raise SchemaError(f"document-summary '{name}' is defined twice", loc)
    schema.summaries[name] = summary
    schema.note(loc, f"document-summary {name}", _SUMMARY)


def parse_import(s: Scanner, schema: SchemaDef) -> None:
    """`import field ref.target as name {}`"""
    kw_loc = s.here()
    if s.word("'field'") != "field":
        raise s.error("expected 'field' after 'import'", kw_loc)
    loc = s.here()
    path = s.word("reference_field.parent_field")
    ref, dot, target = path.partition(".")
    if not dot or not ref or not target:
        raise SchemaError(f"import field '{path}': expected reference_field.parent_field", loc)
    as_loc = s.here()
    if s.word("'as'") != "as":
        raise s.error("expected 'as' and the imported field's name", as_loc)
    name = s.word("the imported field's name")
    opened = s.expect("{", f"to open import field '{name}'")
    for st in read_settings(s, f"import field '{name}'", opened):
        raise SchemaError(f"import field '{name}': unknown setting '{st.name}'", st.loc)
    schema.imported[name] = ImportedField(name, ref, target, loc)
    # a field ranking may name, with a clear refusal: the parent's values are not joined in
    schema.fields.setdefault(name, FieldDef(
        name, None, True, loc, declared=f"imported from {path}", kind="imported",
        refusal=f"field '{name}' is imported from a parent document ({path}): parent-child references are "
                "not supported yet"))
