"""Packages over several files: schema and document inheritance, rank profiles in
schemas/<schema>/*.profile, and `check` reporting every problem of a package (each rank
profile compiled on its own) while Application.load raises the first."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from server.application.errors import SchemaError
from server.application.package import Application

from .helpers import write_app

REPO = Path(__file__).resolve().parents[2]

BASE = """schema base {
  document base {
    field skill type tensor<float>(s[3]) { indexing: attribute }
    field name type string { indexing: summary | index }
  }
  rank-profile skills {
    inputs { query(want) tensor<float>(s[3]) }
    first-phase { expression: sum(attribute(skill) * query(want)) }
  }
}
"""
CHILD = """schema child inherits base {
  document child inherits base {
    field years type int { indexing: attribute }
  }
  rank-profile senior inherits skills {
    first-phase { expression: firstPhase_of_skills + attribute(years) }
    function firstPhase_of_skills() { expression: sum(attribute(skill) * query(want)) }
  }
}
"""


def test_schema_and_document_inheritance(tmp_path: Path) -> None:
    app = Application.load(write_app(tmp_path / "app", {"base": BASE, "child": CHILD}))
    child = app.schemas["child"]
    assert list(child.definition.fields) == ["skill", "name", "years"]
    assert set(child.profiles) == {"skills", "senior"}
    assert set(child.profiles["senior"].attributes) == {"skill", "years"}
    assert set(child.profiles["senior"].query_inputs) == {"want"}


def test_inheriting_an_unknown_schema(tmp_path: Path) -> None:
    root = write_app(tmp_path / "app", {"child": CHILD})
    with pytest.raises(SchemaError) as err:
        Application.load(root)
    assert err.value.message == "schema 'child' inherits unknown schema 'base' (schemas: none)"
    assert err.value.location is not None and (err.value.location.line, err.value.location.column) == (1, 8)


def test_profiles_in_profile_files(tmp_path: Path) -> None:
    sd = ("schema doc {\n  document doc {\n    field pop type float { indexing: attribute }\n  }\n"
          "  rank-profile default inherits default {\n    first-phase { expression: attribute(pop) }\n  }\n}\n")
    extra = "rank-profile twice inherits default {\n  first-phase { expression: 2 * attribute(pop) }\n}\n"
    root = write_app(tmp_path / "app", {"doc": sd}, files={"schemas/doc/twice.profile": extra})
    app = Application.load(root)
    assert set(app.schemas["doc"].profiles) == {"default", "twice"}
    broken = extra.replace("2 * attribute(pop)", "2 * ")
    root = write_app(tmp_path / "bad", {"doc": sd}, files={"schemas/doc/twice.profile": broken})
    with pytest.raises(SchemaError) as err:
        Application.load(root)
    assert err.value.location is not None
    assert (err.value.location.file, err.value.location.line) == ("schemas/doc/twice.profile", 2)


MANY = """schema doc {
  document doc {
    field v type tensor<float>(x[2]) { indexing: attribute }
    field tags type tensor<float>(tag{}) { indexing: attribute }
    field title type string { indexing: index }
  }
  rank-profile text { first-phase { expression: bm25(title) } }
  rank-profile typo { first-phase { expression: sum(attribute(w)) } }
  rank-profile child inherits text { }
  rank-profile syntax { first-phase { expression: 1 + } }
  rank-profile heir inherits syntax { }
  rank-profile good { first-phase { expression: sum(attribute(v)) } }
  rank-profile mapped { first-phase { expression: attribute(tags) } }
}
"""


def test_check_reports_every_problem(tmp_path: Path) -> None:
    root = write_app(tmp_path / "app", {"doc": MANY})
    app = Application.check(root)
    got = [(e.location.line, e.location.column, e.message) for e in app.problems if e.location]
    # the expression parser's own message and column (its part): the place is on line 10, after '1 +'
    assert got[0][0] == 10 and got[0][1] >= 53
    assert got[0][2].startswith("rank profile 'syntax': expected a number, a name")
    syntax = got[0][2]
    got[0] = (10, 0, "")
    assert got == [
        (10, 0, ""),
        (7, 49, "rank profile 'text': text-match feature bm25 is not supported yet (it needs text matching of "
                "query terms)"),
        (8, 53, "rank profile 'typo': attribute(w): the schema has no field 'w'"),
        (7, 49, "rank profile 'child': text-match feature bm25 is not supported yet (it needs text matching of "
                "query terms)"),
        (11, 16, "rank profile 'heir' is not compiled: it inherits rank profile 'syntax', which has a problem: "
                 + syntax),
        (13, 51, "rank profile 'mapped': the first-phase expression must produce one number per document, but "
                 "produces tensor<float>(tag{}); reduce it, e.g. sum(...)"),
    ]
    assert set(app.schemas["doc"].profiles) == {"good"}
    with pytest.raises(SchemaError) as err:
        Application.load(root)
    assert err.value is app.problems[0] or err.value.message == app.problems[0].message

    out = subprocess.run([sys.executable, "-m", "server.cli", "check", str(root)], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    errors = out.stderr.splitlines()
    assert errors[-1] == f"{root}: 6 errors"
    assert errors[0].startswith(f"error: {root}/schemas/doc.sd:10:")
    assert len(errors) == 7
    assert "  rank-profile good: program of " in out.stdout
    assert any(line.startswith(f"ignored: {root}/schemas/doc.sd:5:11: field 'title' indexing: index")
               for line in out.stdout.splitlines()), out.stdout


def test_every_bad_field_is_reported(tmp_path: Path) -> None:
    sd = ("schema doc {\n  document doc {\n"
          "    field a type string { indexing: input b | embedd | summary }\n"
          "    field b type string { colour: red }\n"
          "    field c type float { indexing: attribute }\n"
          "  }\n"
          "  document-summary s { summary c { souce: c } }\n"
          "  rank-profile p { first-phase { expression: attribute(c) } }\n}\n")
    app = Application.check(write_app(tmp_path / "app", {"doc": sd}))
    got = [(e.location.line, e.location.column, e.message) for e in app.problems if e.location]
    assert got == [
        (3, 47, "field 'a': unknown indexing function 'embedd'"),
        (4, 27, "field 'b': unknown field setting 'colour'"),
        (7, 36, "document-summary 's': unknown summary setting 'souce'"),
    ]
    assert set(app.schemas["doc"].profiles) == {"p"}  # the fields that parsed are there to rank with
