"""Vespa's own tensor conformance cases, run through the rank-profile compiler and a backend.

The cases (../shared/vespa-tensor-spec, its README says the format) are expressions over
parameters `a`, `b`, ... with expected results. Each case runs three ways, as a ranking
application would give the parameters: as declared query inputs (`query(a)`), as
attributes of two identical documents (`attribute(a)`, checked per document), and as
profile constants (`constant(a)`). The profile compiler sees a profile whose functions
`a()`, `b()` return those, and whose summary feature is the case's expression, so the
result keeps its tensor type; the program runs on the backend given.

Mapped inputs are padded (tensor_ir.mapped) to exactly their subspace count, and a mapped
result is compared as a set of addresses, each with its cells. Results compare as the
README says: the type string must equal the expected one, and the cells by Vespa's
tolerances.
"""

from __future__ import annotations

import gzip
import json
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tensor_ir.backend import Backend
from tensor_ir.errors import TensorRankError
from tensor_ir.expr.ast import Call, Expr, Name, Num
from tensor_ir.expr.errors import Location, RankingError
from tensor_ir.expr.parser import parse_expression
from tensor_ir.expr.profile import (
    CompiledProfile,
    FieldDef,
    FunctionDef,
    ProfileDef,
    QueryInput,
    compile_profile,
)
from tensor_ir.expr.types import TensorType, parse_type
from tensor_ir.ir import Role
from tensor_ir.mapped import MappedTensor, capacity_for, pad, pad_many, unpad

SPEC_FILES = ("spec_2019", "spec_head", "spec_evalspec", "spec_probe")
MODES = ("query", "attribute", "constant")
EXCLUSIONS_FILE = Path(__file__).with_name("vespa_conformance_exclusions.txt")
N_DOCS = 2
_FEATURE = "expression"
_HERE = Location("<vespa conformance case>")
_MAPPED_DIM = re.compile(r"[A-Za-z_]\w*\s*\{\s*\}")


@dataclass(frozen=True)
class SpecTensor:
    type: str
    values: tuple[float, ...] | None  # None: a mapped tensor (blocks)
    blocks: Any = None


@dataclass(frozen=True)
class Case:
    id: str
    source: str
    group: str
    expression: str
    inputs: dict[str, SpecTensor]
    expected: SpecTensor | None  # None: Vespa defines no result (hashed string constants)

    @property
    def mapped(self) -> bool:
        types = [t.type for t in self.inputs.values()]
        if self.expected is not None:
            types.append(self.expected.type)
        return any("{}" in t.replace(" ", "") for t in types) or _MAPPED_DIM.search(self.expression) is not None


@dataclass
class CaseResult:
    id: str
    mode: str
    status: str  # passed | wrong | refused
    detail: str = ""
    mapped: bool = False  # the case has a mapped dimension


@dataclass
class Report:
    results: list[CaseResult] = field(default_factory=list)
    seconds: float = 0.0

    def counts(self, mode: str) -> Counter[str]:
        return Counter(r.status for r in self.results if r.mode == mode)

    def modes(self) -> list[str]:
        return [m for m in MODES if any(r.mode == m for r in self.results)]

    def mapped_counts(self, mode: str) -> Counter[str]:
        return Counter(r.status for r in self.results if r.mode == mode and r.mapped)

    def summary_lines(self) -> list[str]:
        lines = []
        for mode in self.modes():
            c, m = self.counts(mode), self.mapped_counts(mode)
            lines.append(f"vespa tensor conformance ({mode}): {c['passed']} passed, {c['wrong']} wrong, "
                         f"{c['refused']} refused, {sum(c.values())} total; with a mapped dimension "
                         f"{m['passed']} passed, {m['wrong']} wrong, {m['refused']} refused of {sum(m.values())}")
        return lines

    def to_json(self) -> dict[str, Any]:
        return {
            "modes": {m: dict(self.counts(m)) for m in self.modes()},
            "mapped": {m: dict(self.mapped_counts(m)) for m in self.modes()},
            "seconds": self.seconds,
            "cases": [r.__dict__ for r in self.results],
        }


# ---------------------------------------------------------------- reading the spec


def _tensor(obj: dict[str, Any]) -> SpecTensor:
    if "blocks" in obj:
        return SpecTensor(str(obj["type"]), None, obj["blocks"])
    return SpecTensor(str(obj["type"]), tuple(float(v) for v in obj["values"]))


def _input(v: Any, refs: dict[str, SpecTensor]) -> SpecTensor:
    """An input is a tensor, {"ref": ID} or the bare ID of a spec_head_tensors line."""
    if isinstance(v, str):
        return refs[v]
    return refs[v["ref"]] if "ref" in v else _tensor(v)


def _lines(path: Path) -> Iterator[dict[str, Any]]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def load_cases(spec_dir: Path, files: Iterable[str] = SPEC_FILES) -> list[Case]:
    """Every case of the spec files present in `spec_dir`, inputs resolved."""
    refs: dict[str, SpecTensor] = {}
    tensors = spec_dir / "spec_head_tensors.jsonl.gz"
    if tensors.exists():
        refs = {obj["ref"]: _tensor(obj["tensor"]) for obj in _lines(tensors)}
    cases: list[Case] = []
    for name in files:
        path = spec_dir / f"{name}.jsonl.gz"
        if not path.exists():
            continue
        for obj in _lines(path):
            inputs = {k: _input(v, refs) for k, v in obj.get("inputs", {}).items()}
            expected = obj.get("expected")
            cases.append(Case(obj["id"], obj.get("source", name), obj.get("group", ""), obj["expression"],
                              inputs, None if expected is None else _tensor(expected)))
    return cases


def read_exclusions(path: Path = EXCLUSIONS_FILE) -> dict[str, str]:
    """`case_id reason` per line ('#' starts a comment); a case id with `@mode` appended
    excludes it in that mode only."""
    out: dict[str, str] = {}
    if not path.exists():
        return out
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, reason = line.partition(" ")
        out[name] = reason.strip()
    return out


def excluded(exclusions: dict[str, str], case_id: str, mode: str) -> str | None:
    return exclusions.get(f"{case_id}@{mode}", exclusions.get(case_id))


# ---------------------------------------------------------------- running one case


def _mapped(t: SpecTensor, tt: TensorType) -> MappedTensor:
    blocks = t.blocks or []
    return MappedTensor.build(tt, [(tuple(str(b["address"][d]) for d in tt.mapped),
                                    np.asarray(b["values"], dtype=np.float64).reshape(tt.shape))
                                   for b in blocks])


def _value(t: SpecTensor, tt: TensorType) -> Any:
    return _mapped(t, tt) if tt.is_mapped else _array(t, tt)


def _array(t: SpecTensor, tt: TensorType) -> npt.NDArray[Any]:
    assert t.values is not None
    values = np.asarray(t.values, dtype=np.float64).reshape(tt.shape)
    return values.astype(tt.cell.np_dtype)


def _profile(case: Case, mode: str, expr: Expr, types: dict[str, TensorType]
             ) -> tuple[ProfileDef, dict[str, FieldDef]]:
    """A profile whose functions a(), b(), ... give the case's parameters as `mode` does,
    and whose one summary feature is the expression."""
    profile = ProfileDef("vespa_conformance", _HERE, first_phase=Num(_HERE, 0.0),
                         summary_features=[(_FEATURE, expr)])
    fields: dict[str, FieldDef] = {}
    for name, t in types.items():
        profile.functions[name] = FunctionDef(name, (), Call(_HERE, mode, (Name(_HERE, name),)), _HERE)
        if mode == "query":
            profile.inputs[name] = QueryInput(name, t, None, _HERE)
        elif mode == "attribute":
            fields[name] = FieldDef(name, t, True, _HERE)
        else:
            profile.constants[name] = (t, _value(case.inputs[name], t))
    return profile, fields


def _no_models(ref: str, loc: Location) -> Any:
    raise RankingError(f"no ONNX models in conformance cases ({ref})", loc)


def compile_case(case: Case, mode: str) -> CompiledProfile:
    """The case's expression compiled as a profile's summary feature, its parameters given
    as `mode` says. Raises TensorRankError where the compiler refuses it."""
    types = {name: parse_type(t.type, allow_mapped=True) for name, t in case.inputs.items()}
    profile, fields = _profile(case, mode, parse_expression(case.expression), types)
    capacities = {f"{mode}({name})": capacity_for([_mapped(case.inputs[name], t)])
                  for name, t in types.items() if t.is_mapped}
    return compile_profile(profile, fields, _no_models, capacities=capacities)


def run_case(case: Case, mode: str, backend: Backend) -> CaseResult:
    result = _run_case(case, mode, backend)
    result.mapped = case.mapped
    return result


def _run_case(case: Case, mode: str, backend: Backend) -> CaseResult:
    try:
        types = {name: parse_type(t.type, allow_mapped=True) for name, t in case.inputs.items()}
        compiled = compile_case(case, mode)
    except TensorRankError as e:
        return CaseResult(case.id, mode, "refused", str(e))
    except RecursionError:
        return CaseResult(case.id, mode, "refused", "expression nests too deeply")
    program = compiled.features
    assert program is not None and len(compiled.summary_features) == 1
    feature = compiled.summary_features[0]
    feeds: dict[str, Any] = {}
    for name, (t, cap) in compiled.mapped_inputs.items():
        value = _mapped(case.inputs[name[name.index("(") + 1:-1]], t)
        padded = pad_many([value] * N_DOCS, cap) if mode == "attribute" else pad(value, cap)
        feeds[name] = padded.cells
        feeds[f"{name}#mask"] = padded.mask
        feeds.update({f"{name}#label:{d}": x for d, x in padded.labels.items()})
    for spec in program.inputs.values():
        if spec.name in feeds:
            continue
        name = spec.name[spec.name.index("(") + 1:-1]
        cells = _array(case.inputs[name], types[name])
        feeds[spec.name] = np.stack([cells] * N_DOCS) if spec.role is Role.ATTRIBUTE else cells
    try:
        with np.errstate(all="ignore"):
            outs = backend.run(program, feeds, N_DOCS)
    except TensorRankError as e:
        return CaseResult(case.id, mode, "wrong", f"evaluation failed: {e}")
    if case.expected is None:
        return CaseResult(case.id, mode, "wrong", "Vespa defines no result for this case")
    got_type = str(feature.type)
    if got_type != case.expected.type:
        return CaseResult(case.id, mode, "wrong", f"type {got_type}, expected {case.expected.type}")
    narrow = any(not t.type.startswith(("double", "tensor(")) for t in [*case.inputs.values(), case.expected])
    for d in range(N_DOCS):

        def doc(out_name: str, d: int = d) -> npt.NDArray[Any]:
            return np.asarray(outs[out_name][d])  # every output comes with the document axis

        if feature.sparse is None:
            problem = compare_cells(doc(feature.program_output), case.expected, narrow)
        else:
            got = unpad(feature.type, doc(feature.program_output),
                        {dim: doc(o) for dim, o in feature.sparse.labels}, doc(feature.sparse.mask))
            problem = compare_mapped(got, case.expected, narrow)
        if problem:
            return CaseResult(case.id, mode, "wrong", f"document {d}: {problem}")
    return CaseResult(case.id, mode, "passed")


def compare_mapped(got: MappedTensor, expected: SpecTensor, narrow: bool) -> str | None:
    """Equal sets of addresses, and each address's cells as compare_cells says."""
    want = {tuple(str(b["address"][d]) for d in got.type.mapped): b["values"] for b in expected.blocks or []}
    have = got.as_dict()
    if set(have) != set(want):
        extra, missing = sorted(set(have) - set(want))[:3], sorted(set(want) - set(have))[:3]
        return f"{len(have)} subspaces, expected {len(want)} (extra {extra}, missing {missing})"
    for addr, values in want.items():
        problem = compare_cells(have[addr], SpecTensor(expected.type, tuple(float(x) for x in values)), narrow)
        if problem:
            return f"at {dict(zip(got.type.mapped, addr, strict=True))}: {problem}"
    return None


def compare_cells(got: npt.NDArray[Any], expected: SpecTensor, narrow: bool) -> str | None:
    """The README's comparison: within 1e-5 relative (float precision, Vespa's own
    approx_equal) where every type is double; 1e-5 relative or 1e-6 absolute where a cell
    type is narrower. NaN equals NaN."""
    assert expected.values is not None
    want = np.asarray(expected.values, dtype=np.float64)
    have = got.astype(np.float64).reshape(-1)
    if have.shape != want.shape:
        return f"{have.size} cells, expected {want.size}"
    with np.errstate(all="ignore"):
        scale = np.maximum(np.abs(want), np.abs(have))
        close = np.abs(have - want) <= 1e-5 * scale
        if narrow:
            close |= np.abs(have - want) <= 1e-6
    ok = (have == want) | (np.isnan(have) & np.isnan(want)) | close
    if ok.all():
        return None
    i = int(np.argmax(~ok))
    return f"{int((~ok).sum())} of {ok.size} cells differ; first at {i}: {have[i]!r}, expected {want[i]!r}"


def run_conformance(
    backend: Backend,
    spec_dir: Path,
    modes: Iterable[str] = MODES,
    select: Callable[[Case], bool] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Report:
    cases = [c for c in load_cases(spec_dir) if select is None or select(c)]
    modes = list(modes)
    report = Report()
    t0 = time.perf_counter()
    total = len(cases) * len(modes)
    for mode in modes:
        for case in cases:
            report.results.append(run_case(case, mode, backend))
            if progress is not None:
                progress(len(report.results), total)
    report.seconds = time.perf_counter() - t0
    return report


def unexpected(report: Report, exclusions: dict[str, str]) -> list[CaseResult]:
    """Results that neither pass nor are excluded."""
    return [r for r in report.results if r.status != "passed" and excluded(exclusions, r.id, r.mode) is None]


def stale(report: Report, exclusions: dict[str, str]) -> list[CaseResult]:
    """Excluded results that pass now."""
    return [r for r in report.results if r.status == "passed" and excluded(exclusions, r.id, r.mode) is not None]
