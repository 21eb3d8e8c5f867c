"""Programs whose kernels the render tests compile: the conformance suite's, and hand-made
ones that put every function, cast and reduction the renderer accepts into a kernel."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from gpu_engine.expressions import GPU_CELL_TYPES, can_fuse
from tensor_ir import build
from tensor_ir.conformance import _as_array, _bindings, load_cases
from tensor_ir.dtypes import CellType
from tensor_ir.ir import BINARY_FUNCTIONS, UNARY_FUNCTIONS, Node, Role
from tensor_ir.onnx_import import ModelImportError, import_model
from tensor_ir.program import Program

TYPES = sorted(GPU_CELL_TYPES, key=lambda t: t.name)


def conformance_programs() -> list[tuple[str, Program]]:
    """Every ONNX backend node test case that imports, imported the way the conformance
    runner does (inputs as attributes; retried with int inputs, then all, as constants)."""
    out: list[tuple[str, Program]] = []
    for case in load_cases():
        model = case.model
        values = [_as_array(v) for v in case.data_sets[0][0]]
        if any(not isinstance(v, np.ndarray) or v.dtype == object for v in values):
            continue
        inits = {t.name for t in model.graph.initializer}
        names = [vi.name for vi in model.graph.input if vi.name not in inits]
        for constants in (set(), {n for n, v in zip(names, values) if v.dtype.kind in "iub"}, set(names)):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    imported = import_model(model, _bindings(model, values, constants), name=model.graph.name)
            except ModelImportError as e:
                if e.needs_constant:
                    continue
                break
            except (ValueError, TypeError, KeyError, IndexError, NotImplementedError, ArithmeticError):
                break  # a converter bug: the conformance suite reports it; nothing to render
            out.append((case.name, imported.program))
            break
    return out


def _doc(name: str, ct: CellType, shape: tuple[int, ...] = ()) -> Node:
    return build.input_(name, Role.ATTRIBUTE, shape, ct)


def _sum_as_f64(terms: list[Node]) -> Node:
    acc = build.cast(terms[0], CellType.FLOAT64)
    for t in terms[1:]:
        acc = build.join("add", acc, build.cast(t, CellType.FLOAT64))
    return acc


def coverage_programs() -> list[tuple[str, Program]]:
    """One kernel per cell type holding every unary and binary function and cast the
    renderer accepts for it, and one kernel per (aggregation, cell type) reduction."""
    out: list[tuple[str, Program]] = []
    for ct in TYPES:
        x, y, c = _doc("x", ct, (3,)), _doc("y", ct, (3,)), _doc("c", CellType.BOOL, (3,))
        terms: list[Node] = [build.select(c, x, y)]
        for fn in sorted(UNARY_FUNCTIONS):
            try:
                node = build.map_(fn, x)
            except ValueError:
                continue
            if can_fuse(node):
                terms.append(node)
        for fn in sorted(BINARY_FUNCTIONS):
            try:
                node = build.join(fn, x, y)
            except ValueError:
                continue
            if can_fuse(node):
                terms.append(node)
        terms += [build.cast(x, to) for to in TYPES if to is not ct]
        # an immediate of this type, so literals of every type are compiled too
        imm: Any = True if ct.is_bool else (-2.5 if ct.is_float else (-3 if ct.is_signed else 3))
        terms.append(build.join("eq", x, build.scalar(imm, ct)))
        out.append((f"functions[{ct.np_name}]", Program({"out": _sum_as_f64(terms)})))
        for agg in ("sum", "prod", "max", "min"):
            if ct.is_bool and agg in ("sum", "prod"):
                continue
            red = build.reduce(build.join("max", x, y) if not ct.is_bool else build.join("or", x, y), agg, [0], True)
            post = build.cast(build.map_("isnan", red), CellType.INT32) if ct.is_float else red
            out.append((f"reduce-{agg}[{ct.np_name}]", Program({"out": post})))
    q = build.input_("q", Role.QUERY, (), CellType.FLOAT32)
    out.append(("query-scalar", Program({"out": build.map_("exp", q)})))
    qv = build.input_("qv", Role.QUERY, (5,), CellType.FLOAT16)
    out.append(("query-reduce-to-scalar", Program({"out": build.reduce(qv, "max", None, False)})))
    return out


def application_programs(tmp: Path) -> list[tuple[str, Program]]:
    """Every program of every rank profile of the bundled example packages (examples/*)
    and of the benchmark packages (bench.models, written under `tmp`)."""
    from bench.models import MODELS, write_package
    from server.application.package import Application

    root = Path(__file__).resolve().parents[2]
    packages = [p for p in sorted((root / "examples").glob("*")) if (p / "schemas").is_dir()]
    # a benchmark model from ../shared is left out where that folder is absent
    packages += [write_package(m, tmp) for m in MODELS.values() if m.missing() is None]
    out: list[tuple[str, Program]] = []
    for pkg in packages:
        app = Application.load(pkg)
        for schema in app.schemas.values():
            for prof in schema.profiles.values():
                for phase, prog in (("first", prof.first_phase), ("second", prof.second_phase),
                                    ("features", prof.features)):
                    if prog is not None:
                        out.append((f"{pkg.name}/{schema.name}/{prof.name}/{phase}", prog))
    return out
