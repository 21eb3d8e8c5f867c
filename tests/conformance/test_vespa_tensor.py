"""Vespa's own tensor conformance cases (../shared/vespa-tensor-spec) through the rank-profile
compiler and the numpy backend, with the parameters as query inputs, as attributes and
as constants. Every case runs (about 150 s a mode here). Every case passes in every mode,
or is listed with its reason in tensor_ir/vespa_conformance_exclusions.txt; a listed case
that passes must leave the list. Of the cases with a mapped dimension at least 99% pass
in every mode (issue #13).

The runner itself is checked on a small spec written here, with results worked out by
hand, so that it cannot pass what it should not."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path
from typing import Any

import pytest

from cpu_fallback import NumpyBackend
from tensor_ir.ir import Role
from tensor_ir.vespa_conformance import (
    MODES,
    Report,
    compile_case,
    excluded,
    load_cases,
    read_exclusions,
    run_case,
    run_conformance,
    stale,
    unexpected,
)
from tests.shared_data import shared

SUMMARY = re.compile(r"^vespa tensor conformance \((query|attribute|constant)\): (\d+) passed, (\d+) wrong, "
                     r"(\d+) refused, (\d+) total; with a mapped dimension (\d+) passed, (\d+) wrong, "
                     r"(\d+) refused of (\d+)$")


@pytest.fixture(scope="module")
def report() -> Report:
    return run_conformance(NumpyBackend(), shared("vespa-tensor-spec"))


def test_every_case_passes_or_is_excluded_in_every_mode(report: Report) -> None:
    bad = unexpected(report, read_exclusions())
    assert not bad, f"{len(bad)} results neither pass nor are excluded:\n" + "\n".join(
        f"{r.id} ({r.mode}): {r.detail}" for r in bad[:30])


def test_excluded_cases_still_fail_and_exist(report: Report) -> None:
    exclusions = read_exclusions()
    assert all(exclusions.values()), "every exclusion needs a reason"
    passing = stale(report, exclusions)
    assert not passing, f"excluded but passing, take them out: {[f'{r.id}@{r.mode}' for r in passing]}"
    known = {r.id for r in report.results}
    assert not [k for k in exclusions if k.split("@")[0] not in known], "exclusions name cases the spec lacks"


def test_each_mode_gives_the_same_answer(report: Report) -> None:
    by_case: dict[str, set[str]] = {}
    for r in report.results:
        by_case.setdefault(r.id, set()).add(r.status)
    differ = sorted(i for i, statuses in by_case.items() if len(statuses) > 1)
    assert not differ, f"cases whose outcome depends on how the parameters are given: {differ[:20]}"


def test_summary_lines_count_every_case(report: Report) -> None:
    matches = [SUMMARY.match(line) for line in report.summary_lines()]
    assert [m.group(1) if m else None for m in matches] == list(MODES)
    for m in matches:
        assert m is not None
        passed, wrong, refused, total, m_passed, m_wrong, m_refused, m_total = (int(g) for g in m.groups()[1:])
        assert passed + wrong + refused == total
        assert total == 27_635 + 32  # the spec's cases and the probes (README)
        assert passed >= 27_000  # what these lines report is a real run
        assert m_passed + m_wrong + m_refused == m_total == 17_416
        assert m_wrong == 0 and m_passed >= 0.99 * m_total  # issue #13's measure


# ---------------------------------------------------------------- the runner, on a spec of our own


def _tensor(t: str, values: list[Any]) -> dict[str, Any]:
    return {"type": t, "values": values}


# id, expression, inputs, expected, the status it must get
OWN_CASES: list[tuple[str, str, dict[str, Any], dict[str, Any] | None, str]] = [
    ("ok-1", "a + b", {"a": _tensor("tensor(x[2])", [1, 2]), "b": _tensor("double", [10])},
     _tensor("tensor(x[2])", [11, 12]), "passed"),
    ("ok-2", "reduce(a * b, sum, x)", {"a": _tensor("tensor<float>(x[2],y[2])", [1, 2, 3, 4]),
                                       "b": _tensor("tensor<float>(x[2])", [1, -1])},
     _tensor("tensor<float>(y[2])", [-2, -2]), "passed"),
    ("ok-3", "cell_cast(a, int8)", {"a": _tensor("tensor(x[3])", [1.5, -2.7, 100.2])},
     _tensor("tensor<int8>(x[3])", [1, -2, 100]), "passed"),
    ("bad-value", "a * 2", {"a": _tensor("tensor(x[2])", [1, 2])}, _tensor("tensor(x[2])", [2, 4.001]), "wrong"),
    ("bad-type", "a * 2", {"a": _tensor("tensor<float>(x[2])", [1, 2])}, _tensor("tensor(x[2])", [2, 4]), "wrong"),
    ("bad-nan", "a / 0", {"a": _tensor("double", [0])}, _tensor("double", [0]), "wrong"),
    ("no-such", "nonesuch(a)", {"a": _tensor("double", [1])}, _tensor("double", [1]), "refused"),
    ("mapped", "a * 2", {"a": {"type": "tensor(k{})", "blocks": [{"address": {"k": "1"}, "values": [1]},
                                                               {"address": {"k": "b"}, "values": [-3]}]}},
     {"type": "tensor(k{})", "blocks": [{"address": {"k": "b"}, "values": [-6]},
                                        {"address": {"k": "1"}, "values": [2]}]}, "passed"),
    ("mapped-missing", "a", {"a": {"type": "tensor(k{})", "blocks": [{"address": {"k": "1"}, "values": [1]}]}},
     {"type": "tensor(k{})", "blocks": [{"address": {"k": "1"}, "values": [1]},
                                        {"address": {"k": "2"}, "values": [0]}]}, "wrong"),
    ("mapped-label", "a", {"a": {"type": "tensor(k{})", "blocks": [{"address": {"k": "1"}, "values": [1]}]}},
     {"type": "tensor(k{})", "blocks": [{"address": {"k": "01"}, "values": [1]}]}, "wrong"),
    ("no-result", "a", {"a": _tensor("double", [1])}, None, "wrong"),
]


def _own_spec(tmp_path: Path) -> Path:
    with gzip.open(tmp_path / "spec_probe.jsonl.gz", "wt") as f:
        for case_id, expr, inputs, expected, _ in OWN_CASES:
            f.write(json.dumps({"id": case_id, "expression": expr, "inputs": inputs, "expected": expected}) + "\n")
    return tmp_path


@pytest.mark.parametrize("mode", MODES)
def test_runner_counts_what_it_should(tmp_path: Path, mode: str) -> None:
    cases = load_cases(_own_spec(tmp_path))
    assert [c.id for c in cases] == [c[0] for c in OWN_CASES]
    got = {c.id: run_case(c, mode, NumpyBackend()).status for c in cases}
    assert got == {c[0]: c[4] for c in OWN_CASES}


def test_runner_reads_referenced_inputs_and_modes_feed_as_they_say(tmp_path: Path) -> None:
    with gzip.open(tmp_path / "spec_head_tensors.jsonl.gz", "wt") as f:
        f.write(json.dumps({"ref": "t1", "tensor": _tensor("tensor(x[2])", [3, 4])}) + "\n")
    with gzip.open(tmp_path / "spec_head.jsonl.gz", "wt") as f:
        f.write(json.dumps({"id": "r1", "expression": "a * a", "inputs": {"a": "t1"},
                            "expected": _tensor("tensor(x[2])", [9, 16])}) + "\n")
        f.write(json.dumps({"id": "r2", "expression": "a - 1", "inputs": {"a": {"ref": "t1"}},
                            "expected": _tensor("tensor(x[2])", [2, 3])}) + "\n")
    report = run_conformance(NumpyBackend(), tmp_path)
    assert [(r.id, r.mode, r.status) for r in report.results] == [
        (i, m, "passed") for m in MODES for i in ("r1", "r2")]


def test_exclusions_by_mode(tmp_path: Path) -> None:
    path = tmp_path / "ex.txt"
    path.write_text("# comment\ncase-1 everywhere\ncase-2@attribute only as attributes\n")
    ex = read_exclusions(path)
    assert excluded(ex, "case-1", "query") == "everywhere"
    assert excluded(ex, "case-2", "attribute") == "only as attributes"
    assert excluded(ex, "case-2", "query") is None


def test_modes_give_the_parameters_as_they_say(tmp_path: Path) -> None:
    # a*2 over a parameter: a query input, a per-document attribute, or nothing to feed
    # (a constant), never folded away in the first two
    case = next(c for c in load_cases(_own_spec(tmp_path)) if c.id == "bad-value")
    want = {"query": [("query(a)", Role.QUERY)], "attribute": [("attribute(a)", Role.ATTRIBUTE)], "constant": []}
    for mode in MODES:
        program = compile_case(case, mode).features
        assert program is not None
        assert [(i.name, i.role) for i in program.inputs.values()] == want[mode]


def test_cli_prints_one_line_per_mode_and_fails_on_unexcused_cases(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from server.cli import main

    rc = main(["conformance", "--suite", "vespa-tensor", "--spec", str(_own_spec(tmp_path)), "--mode", "all"])
    lines = capsys.readouterr().out.splitlines()
    # ok-1..3 and mapped pass; bad-value, bad-type, bad-nan, mapped-missing, mapped-label, no-result are
    # wrong; no-such refused
    assert lines[-3:] == [f"vespa tensor conformance ({m}): 4 passed, 6 wrong, 1 refused, 11 total; with a "
                          "mapped dimension 1 passed, 2 wrong, 0 refused of 3" for m in MODES]
    assert rc == 1  # none of those is in the exclusion file
    rc = main(["conformance", "--suite", "vespa-tensor", "--spec", str(tmp_path), "--mode", "constant",
               "--filter", "ok-"])
    assert capsys.readouterr().out.splitlines()[-1] == (
        "vespa tensor conformance (constant): 3 passed, 0 wrong, 0 refused, 3 total; with a mapped dimension "
        "0 passed, 0 wrong, 0 refused of 0")
    assert rc == 0


def test_cli_skips_with_a_reason_where_the_spec_is_absent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from server.cli import main

    assert main(["conformance", "--suite", "vespa-tensor", "--spec", str(tmp_path / "absent")]) == 0
    assert "skipped" in capsys.readouterr().out
