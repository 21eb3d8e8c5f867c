"""The ONNX backend node test suite, run through our importer and a backend.

Every node test case that the installed onnx package provides is imported with its
inputs as per-document attributes of two identical documents (so each case also checks
the document axis), evaluated, and compared at the suite's tolerances. Inputs that a
converter needs at deploy time (shapes, axes, pads, ...) are retried as constants.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx

from tensor_ir.backend import Backend
from tensor_ir.casts import int_range
from tensor_ir.dtypes import CellType
from tensor_ir.errors import EvaluationError, IRError
from tensor_ir.ir import Role
from tensor_ir.onnx_import import InputBinding, ModelImportError, import_model

log = logging.getLogger(__name__)

EXCLUSIONS_FILE = Path(__file__).with_name("conformance_exclusions.txt")
N_DOCS = 2


@dataclass
class CaseResult:
    name: str
    op: str
    status: str  # passed | failed | unsupported
    detail: str = ""
    seconds: float = 0.0


@dataclass
class Report:
    results: list[CaseResult] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)

    def by_op(self) -> dict[str, Counter[str]]:
        table: dict[str, Counter[str]] = defaultdict(Counter)
        for r in self.results:
            table[r.op][r.status] += 1
        return dict(sorted(table.items()))

    def summary_line(self) -> str:
        return (
            f"conformance: {self.count('passed')} passed, {self.count('failed')} failed, "
            f"{self.count('unsupported')} unsupported, {len(self.results)} total"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "passed": self.count("passed"),
            "failed": self.count("failed"),
            "unsupported": self.count("unsupported"),
            "total": len(self.results),
            "cases": [r.__dict__ for r in self.results],
        }


def load_cases() -> list[Any]:
    from onnx.backend.test import loader

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with np.errstate(all="ignore"):
            return list(loader.load_model_tests(kind="node"))


def case_op(model: onnx.ModelProto, name: str) -> str:
    ops = sorted({n.op_type for n in model.graph.node if n.op_type != "Constant"}) or ["Constant"]
    if len(ops) == 1 and not name.endswith("_expanded"):
        return str(ops[0])
    return "(expanded)" if name.endswith("_expanded") else "(graph)"


def read_exclusions(path: Path = EXCLUSIONS_FILE) -> dict[str, str]:
    """`case_name  reason` per line; '#' starts a comment."""
    out: dict[str, str] = {}
    if not path.exists():
        return out
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip() if line.lstrip().startswith("#") else line.strip()
        if not line:
            continue
        name, _, reason = line.partition(" ")
        out[name] = reason.strip()
    return out


def _is_unsupported(e: ModelImportError) -> bool:
    m = e.message
    return (
        m.startswith("unsupported")
        or "is not a tensor" in m
        or "unsupported ONNX element type" in m
        or "are not supported" in m
        or " not supported" in m
    )


def _bindings(
    model: onnx.ModelProto, inputs: list[npt.NDArray[Any]], constant_names: set[str]
) -> dict[str, InputBinding]:
    inits = {t.name for t in model.graph.initializer}
    names = [vi.name for vi in model.graph.input if vi.name not in inits]
    out: dict[str, InputBinding] = {}
    for name, value in zip(names, inputs):
        arr = np.asarray(value)
        if name in constant_names:
            out[name] = InputBinding.constant(arr)
        else:
            out[name] = InputBinding(Role.ATTRIBUTE, tuple(arr.shape))
    return out


def _compare(expected: Any, actual: npt.NDArray[Any], rtol: float, atol: float, what: str) -> str | None:
    exp = np.asarray(expected)
    if exp.dtype == object:
        return f"{what}: string outputs are not supported"
    if actual.shape != exp.shape:
        return f"{what}: shape {list(actual.shape)}, expected {list(exp.shape)}"
    if actual.dtype != exp.dtype:
        return f"{what}: dtype {actual.dtype}, expected {exp.dtype}"
    if exp.dtype.kind in "fc" or exp.dtype.kind == "V" or str(exp.dtype).startswith(("float8", "bfloat", "float4")):
        e64 = exp.astype(np.float64)
        a64 = actual.astype(np.float64)
        both_nan = np.isnan(e64) & np.isnan(a64)
        ok = both_nan | np.isclose(a64, e64, rtol=rtol, atol=atol, equal_nan=True) | (e64 == a64)
        if not ok.all():
            i = int(np.argmax(~ok.reshape(-1)))
            return (f"{what}: {int((~ok).sum())} of {ok.size} cells differ; first at flat index {i}: "
                    f"{a64.reshape(-1)[i]!r} vs expected {e64.reshape(-1)[i]!r}")
        return None
    if not np.array_equal(actual, exp):
        diff = actual != exp
        i = int(np.argmax(diff.reshape(-1)))
        return f"{what}: {int(diff.sum())} cells differ; first {actual.reshape(-1)[i]!r} vs {exp.reshape(-1)[i]!r}"
    return None


def run_case(case: Any, backend: Backend) -> CaseResult:
    model: onnx.ModelProto = case.model
    op = case_op(model, case.name)
    t0 = time.perf_counter()
    try:
        for inputs, outputs in case.data_sets:
            problem = _run_data_set(model, list(inputs), list(outputs), backend, case.rtol, case.atol)
            if problem is not None:
                status = "unsupported" if "not supported" in problem else "failed"
                return CaseResult(case.name, op, status, problem, time.perf_counter() - t0)
    except ModelImportError as e:
        status = "unsupported" if _is_unsupported(e) else "failed"
        return CaseResult(case.name, op, status, str(e), time.perf_counter() - t0)
    except (IRError, EvaluationError, ValueError, TypeError, IndexError, KeyError, ArithmeticError,
            NotImplementedError, RuntimeError, AttributeError) as e:
        # a bug in a converter or kernel: count it, keep the runner going
        return CaseResult(case.name, op, "failed", f"{type(e).__name__}: {e}", time.perf_counter() - t0)
    return CaseResult(case.name, op, "passed", "", time.perf_counter() - t0)


def _as_array(value: Any) -> Any:
    if isinstance(value, onnx.TensorProto):
        from onnx import numpy_helper

        return numpy_helper.to_array(value)
    if isinstance(value, np.generic):
        return np.asarray(value)
    return value


def _run_data_set(
    model: onnx.ModelProto,
    inputs: list[Any],
    outputs: list[Any],
    backend: Backend,
    rtol: float,
    atol: float,
) -> str | None:
    inputs = [_as_array(v) for v in inputs]
    outputs = [_as_array(v) for v in outputs]
    for v in [*inputs, *outputs]:
        if v is None:
            return "optional values are not supported (tensors only)"
        if isinstance(v, list | tuple | dict):
            return "sequence and map values are not supported (tensors only)"
        if not isinstance(v, np.ndarray) or v.dtype == object:
            return "string tensors are not supported (numeric tensors only)"
    inits = {t.name for t in model.graph.initializer}
    names = [vi.name for vi in model.graph.input if vi.name not in inits]
    attempts = [set(), {n for n, v in zip(names, inputs) if v.dtype.kind in "iub"}, set(names)]
    imported = None
    last: ModelImportError | None = None
    for constants in attempts:
        try:
            imported = import_model(model, _bindings(model, inputs, constants), name=model.graph.name)
            break
        except ModelImportError as e:
            last = e
            if not e.needs_constant:
                raise
    if imported is None:
        assert last is not None
        raise last
    feeds: dict[str, Any] = {}
    for name, value in zip(names, inputs):
        spec = imported.program.inputs.get(name)
        if spec is not None:
            feeds[name] = np.stack([value] * N_DOCS) if spec.role is Role.ATTRIBUTE else value
    with np.errstate(all="ignore"):
        result = backend.run(imported.program, feeds, N_DOCS)
    undefined = _undefined_cast_cells(model, inputs, outputs)
    for vi, expected in zip(model.graph.output, outputs):
        got = result[vi.name]
        for d in range(N_DOCS):
            mine = np.asarray(got[d])
            if undefined is not None:
                # cells ONNX leaves undefined agree by definition: ours stand in for the host's
                mine = np.where(undefined, np.asarray(expected), mine)
            problem = _compare(expected, mine, rtol, atol, f"output '{vi.name}' document {d}")
            if problem:
                return problem
    return None


def _undefined_cast_cells(model: onnx.ModelProto, inputs: list[Any], outputs: list[Any]) -> npt.NDArray[Any] | None:
    """The cells of a float -> integer Cast (or CastLike) whose value ONNX leaves undefined:
    NaN, infinities and values out of the target's range ("fixed point: undefined if OOR").

    The suite's expected outputs are computed when it is loaded, by ml_dtypes' astype on the
    host running it, so in those cells they are whatever that host's C conversion gives (for
    int4 out of range: 0 on one machine, the low bits on another). tensor_ir.casts defines
    them, the same everywhere; those cells are left out of the comparison, every other cell
    is compared. None for any other case."""
    ops = {n.op_type for n in model.graph.node} - {"Constant"}
    if not ops or not ops <= {"Cast", "CastLike"} or len(outputs) != 1 or not inputs:
        return None
    src, out = np.asarray(inputs[0]), np.asarray(outputs[0])
    if src.shape != out.shape or (src.dtype.kind != "f" and "float" not in str(src.dtype)):
        return None
    try:
        to = CellType.from_numpy(out.dtype)
    except ValueError:
        return None
    if not to.is_int:
        return None
    lo, hi = int_range(to)
    f = np.trunc(src.astype(np.float64))
    undefined: npt.NDArray[Any] = ~np.isfinite(f) | (f < lo) | (f > hi)
    return undefined if undefined.any() else None


def run_conformance(
    backend: Backend,
    select: Callable[[str], bool] | None = None,
    progress: Callable[[int, int, CaseResult], None] | None = None,
) -> Report:
    cases = [c for c in load_cases() if select is None or select(c.name)]
    report = Report()
    for i, case in enumerate(cases):
        res = run_case(case, backend)
        report.results.append(res)
        if progress is not None:
            progress(i + 1, len(cases), res)
    return report


def format_report(report: Report) -> Iterable[str]:
    for op, counts in report.by_op().items():
        total = sum(counts.values())
        yield (f"{op}: {counts['passed']}/{total} passed"
               + (f", {counts['failed']} failed" if counts["failed"] else "")
               + (f", {counts['unsupported']} unsupported" if counts["unsupported"] else ""))
    yield report.summary_line()
