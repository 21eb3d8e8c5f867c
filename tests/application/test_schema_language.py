"""The schema language beyond numbers and tensors, on small hand-written schemas: field
kinds, indexing statements, synthetic fields, summaries, settings accepted without effect
(each noted at its place), and the constructs refused with their name and place."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.application.errors import SchemaError
from server.application.indexing import parse_indexing
from server.application.package import Application
from server.application.sd_parser import parse_schema
from tensor_ir.expr.errors import Location

from .helpers import write_app

SD = """schema doc {
  document doc {
    field title type string {
      indexing: summary | index
      index: enable-bm25
    }
    field tags type array<string> {
      indexing: summary | attribute
      attribute: fast-search
    }
    field prefs type weightedset<int> {
      indexing: summary | attribute
      weightedset { create-if-nonexistent }
    }
    field props type map<string, float> { indexing: summary }
    struct purchase {
      field item type string {}
      field count type int {}
    }
    field buys type array<purchase> {
      indexing: summary
      struct-field item { indexing: attribute }
    }
    field where type position { indexing: attribute | summary }
    field rule type predicate { indexing: attribute }
    field blob type raw { indexing: summary }
    field parent type reference<doc> { indexing: attribute }
    field link type uri { indexing: summary }
    field ok type bool { indexing: attribute }
    field vec type tensor<float>(x[4]) {
      indexing: attribute | index
      attribute { distance-metric: angular }
      index { hnsw { max-links-per-node: 16 } }
    }
  }
  field emb type tensor<float>(x[4]) {
    indexing: input title . " " . input link | embed e5 | attribute
    attribute { distance-metric: dotproduct }
  }
  fieldset default { fields: title, link }
  document-summary short inherits default {
    from-disk
    summary title {}
    summary t2 { source: title }
  }
  rank-profile default inherits default {
    num-threads-per-search: 2
    rank-properties { freshness(ts).maxAge: 100 }
    constants { half: 0.5 }
    first-phase { expression: sum(attribute(vec)) * constant(half) }
    global-phase {
      rerank-count: 7
      expression: firstPhase
    }
  }
}
"""


def test_field_kinds() -> None:
    sd = parse_schema(SD, "schemas/doc.sd")
    assert sd.problems == []
    kinds = {n: (f.kind, f.declared, f.attribute, f.indexed, f.synthetic) for n, f in sd.fields.items()}
    assert kinds == {
        "title": ("string", "string", False, True, False),
        "tags": ("array", "array<string>", True, False, False),
        "prefs": ("weightedset", "weightedset<int>", True, False, False),
        "props": ("map", "map<string,float>", False, False, False),
        "buys": ("array", "array<purchase>", False, False, False),
        "where": ("position", "position", True, False, False),
        "rule": ("predicate", "predicate", True, False, False),
        "blob": ("raw", "raw", False, False, False),
        "parent": ("reference", "reference<doc>", True, False, False),
        "link": ("uri", "uri", False, False, False),
        "ok": ("bool", "bool", True, False, False),
        "vec": ("tensor", "tensor<float>(x[4])", True, True, False),
        "emb": ("tensor", "tensor<float>(x[4])", True, False, True),
    }
    assert sd.fields["buys"].struct_fields == (("item", "string"), ("count", "int"))
    assert sd.fields["vec"].distance_metric == "angular"
    assert sd.fields["emb"].distance_metric == "dotproduct"
    assert sd.fields["title"].type is None and str(sd.fields["vec"].type) == "tensor<float>(x[4])"
    assert sd.fieldsets == {"default": ["title", "link"]}
    short = sd.summaries["short"]
    assert (short.inherits, short.from_disk, short.fields) == (["default"], True, {"title": "title", "t2": "title"})


def test_profile_parts_kept() -> None:
    sd = parse_schema(SD, "schemas/doc.sd")
    p = sd.profiles["default"]
    assert p.inherits == ["default"]
    assert p.global_rerank_count == 7 and p.global_phase is not None
    assert p.rank_properties == {"freshness(ts).maxAge": "100"}
    t, v = p.constants["half"]
    assert str(t) == "double" and float(v) == 0.5


def test_settings_without_effect_are_noted_where_they_are() -> None:
    sd = parse_schema(SD, "schemas/doc.sd")
    notes = {(n.loc.line, n.loc.column): n.setting for n in sd.notes}
    assert notes[(5, 7)] == "field 'title' index: enable-bm25"
    assert notes[(9, 18)] == "field 'tags' attribute: fast-search"
    assert notes[(13, 7)] == "field 'prefs' weightedset { create-if-nonexistent }"
    assert notes[(22, 27)] == "field 'buys' struct-field item: indexing: attribute"
    assert notes[(33, 15)] == "field 'vec' index: hnsw { max-links-per-node: 16 }"
    assert notes[(37, 48)] == "field 'emb' indexing: embed"
    assert notes[(40, 12)] == "fieldset default"
    assert notes[(47, 5)] == "rank profile 'default' num-threads-per-search: 2"
    embed = next(n for n in sd.notes if n.setting == "field 'emb' indexing: embed")
    assert "the feed gives the field's value" in embed.reason


def test_the_package_loads_and_ranks_only_what_ranking_may_read(tmp_path: Path) -> None:
    app = Application.load(write_app(tmp_path / "app", {"doc": SD}))
    assert set(app.schemas["doc"].profiles) == {"default"}
    assert app.schemas["doc"].profiles["default"].attributes == {"vec": app.schemas["doc"].definition.fields[
        "vec"].type}


def _located(text: str) -> tuple[str, int, int]:
    before = text[:text.index("¦")]
    return text.replace("¦", ""), before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1


def _refused(tmp_path: Path, marked: str, message: str) -> None:
    text, line, col = _located(marked)
    with pytest.raises(SchemaError) as err:
        Application.load(write_app(tmp_path / "app", {"doc": text}))
    e = err.value
    assert e.message == message
    assert e.location is not None and (e.location.file, e.location.line, e.location.column) == (
        "schemas/doc.sd", line, col)


DOC = "schema doc {\n  document doc {\n    field tags type array<string> { indexing: attribute }\n"


@pytest.mark.parametrize(("marked", "message"), [
    (DOC + "  }\n  rank-profile p { first-phase { expression: sum(¦attribute(tags)) } }\n}\n",
     "rank profile 'p': attribute(tags): field 'tags' is not a numeric or tensor attribute (it is array<string>) "
     "(indexing: attribute)"),
    (DOC + "    field m type ¦tensor<float>(x{},x[2]) { indexing: attribute }\n  }\n}\n",
     "field 'm': dimension names repeat: ['x', 'x']"),
    (DOC + "    field a type string { indexing: input tags | ¦iff | summary }\n  }\n}\n",
     "field 'a': unknown indexing function 'iff'"),
    (DOC + "    field a type string { indexing: ¦if (input tags == \"x\") { summary } }\n  }\n}\n",
     "field 'a': conditional indexing statement 'if' is not supported"),
    (DOC + "    field v type tensor<float>(x[2]) {\n      attribute { distance-metric: ¦manhattan }\n    }\n  }\n}\n",
     "field 'v': unknown distance-metric 'manhattan' (expected euclidean, angular, prenormalized-angular, "
     "dotproduct, hamming, geodegrees)"),
    (DOC + "    field a type string {\n      ¦colour: red\n    }\n  }\n}\n",
     "field 'a': unknown field setting 'colour'"),
    (DOC + "  }\n  field ¦s type string { indexing: summary }\n}\n",
     "field 's' is outside the document, so its indexing must read document fields ('input ...')"),
    (DOC + "  }\n  document-summary d {\n    summary tags {\n      ¦souce: tags\n    }\n  }\n}\n",
     "document-summary 'd': unknown summary setting 'souce'"),
    (DOC + "    field w type ¦weightedset<float> { indexing: summary }\n  }\n}\n",
     "field 'w': a weightedset holds string, int, long or byte keys, not 'float'"),
    (DOC + "  }\n  rank-profile p {\n    ¦mutate { on-match { x += 1 } }\n  }\n}\n",
     "rank profile 'mutate' (updating attributes while ranking) is not supported"),
    (DOC + "  }\n  rank-profile p {\n    inputs { ¦query(s) string }\n    first-phase { expression: 1 }\n  }\n}\n",
     "rank profile 'p': query(s): string query input is not supported (only numbers and tensors)"),
], ids=["attribute of an array", "dimension mapped and indexed", "unknown indexing function", "indexing if",
        "unknown distance metric", "unknown field setting", "synthetic field without input",
        "unknown summary setting", "weightedset of floats", "mutate", "string query input"])
def test_refused_with_name_and_place(tmp_path: Path, marked: str, message: str) -> None:
    _refused(tmp_path, marked, message)


def test_imported_fields_are_kept_and_refused_in_ranking(tmp_path: Path) -> None:
    parent = ("schema cat {\n  document cat {\n    field ctr type float { indexing: attribute }\n  }\n}\n")
    child = ("schema doc {\n  document doc {\n    field ref type reference<cat> { indexing: attribute }\n  }\n"
             "  import field ref.ctr as cat_ctr {}\n"
             "  rank-profile p { first-phase { expression: attribute(cat_ctr) } }\n}\n")
    root = write_app(tmp_path / "app", {"cat": parent, "doc": child})
    app = Application.check(root)
    imported = app.schemas["doc"].definition.imported["cat_ctr"]
    assert (imported.reference, imported.target) == ("ref", "ctr")
    [e] = app.problems
    assert e.message == ("rank profile 'p': attribute(cat_ctr): field 'cat_ctr' is imported from a parent document "
                         "(ref.ctr): parent-child references are not supported yet")
    assert e.location is not None and (e.location.line, e.location.column) == (6, 46)


def test_indexing_statements() -> None:
    text = ('input paragraphs |\n  for_each {\n    (input title || "") . " " . ( _ || "")\n'
            '  } | embed e5 | attribute | index')
    got = parse_indexing(text, Location("f.sd", 10, 5), "p")
    assert got.targets == {"attribute", "index"}
    assert got.inputs == ["paragraphs", "title"]
    assert [(fn, loc.line, loc.column) for fn, loc in got.derived] == [("for_each", 11, 3), ("embed", 13, 7)]
    lang = parse_indexing('"en" | set_language; input body | tokenize normalize stem:"BEST" | summary body_copy',
                          Location("f.sd", 1, 1), "lang")
    assert lang.targets == {"summary"} and lang.names == {"summary": "body_copy"}
    assert [fn for fn, _ in lang.text_only] == ["set_language", "tokenize"]
    with pytest.raises(SchemaError) as err:
        parse_indexing("input a | (embed", Location("f.sd", 3, 20), "x")
    assert (err.value.message, err.value.location) == ("field 'x': indexing: expected ')', found 'the end'",
                                                       Location("f.sd", 3, 31))
