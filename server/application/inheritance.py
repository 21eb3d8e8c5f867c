"""Schema and document inheritance across the schemas of a package: `schema a inherits b`
gives a what b defines (fields, profiles, models, constants, summaries); `document a
inherits b` gives a's document b's document fields."""

from __future__ import annotations

from server.application.errors import SchemaError
from server.application.schema_defs import SchemaDef
from tensor_ir.expr.profile import FieldDef


def resolve_inheritance(schemas: dict[str, SchemaDef]) -> None:
    """Complete every schema with what it inherits, parents first. Raises on an unknown parent
    or a cycle."""
    done: set[str] = set()
    for name in schemas:
        _resolve(name, schemas, done, ())


def _resolve(name: str, schemas: dict[str, SchemaDef], done: set[str], path: tuple[str, ...]) -> None:
    if name in done:
        return
    sd = schemas[name]
    if name in path:
        raise SchemaError(f"schema inheritance cycle: {' -> '.join((*path, name))}", sd.loc)
    parents = list(dict.fromkeys([*sd.document_inherits, *([sd.inherits] if sd.inherits else [])]))
    for parent in parents:
        if parent not in schemas:
            what = "schema" if parent == sd.inherits else "document type"
            known = ", ".join(sorted(n for n in schemas if n != name)) or "none"
            raise SchemaError(f"schema '{name}' inherits unknown {what} '{parent}' (schemas: {known})", sd.loc)
        _resolve(parent, schemas, done, (*path, name))
    for parent in sd.document_inherits:
        base = schemas[parent]
        inherited = {n: f for n, f in base.fields.items() if not f.synthetic and f.kind != "imported"}
        _add_before(sd, inherited, parent)
        for sname, st in base.structs.items():
            sd.structs.setdefault(sname, st)
    if sd.inherits:
        base = schemas[sd.inherits]
        _add_before(sd, {n: f for n, f in base.fields.items() if n not in sd.fields}, sd.inherits)
        for attr in ("profiles", "onnx_models", "constant_files", "profile_constant_files", "summaries",
                     "fieldsets", "imported", "structs"):
            mine = getattr(sd, attr)
            for key, value in getattr(base, attr).items():
                mine.setdefault(key, value)
        for p, problem in base.broken_profiles.items():
            if sd.profiles.get(p) is base.profiles.get(p):  # inherited, not redefined here
                sd.broken_profiles.setdefault(p, problem)
    done.add(name)


def _add_before(sd: SchemaDef, inherited: dict[str, FieldDef], parent: str) -> None:
    """Inherited fields first, in the parent's order, then the schema's own."""
    for n in inherited:
        if n in sd.fields and sd.fields[n] is not inherited[n]:
            raise SchemaError(f"field '{n}' is defined both here and in the inherited '{parent}'", sd.fields[n].loc)
    merged = {**inherited, **sd.fields}
    sd.fields.clear()
    sd.fields.update(merged)
