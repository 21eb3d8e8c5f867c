"""`tensorrank` command line."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from tensor_ir.backend import Backend

if TYPE_CHECKING:
    from server.application.schema_defs import Note
    from tensor_ir.expr.errors import Location

log = logging.getLogger("server")


def _backend(name: str) -> Backend:
    if name == "cpu":
        from cpu_fallback import NumpyBackend

        return NumpyBackend()
    if name == "gpu":
        try:
            from gpu_engine.backend import CupyBackend  # type: ignore[import-not-found]
        except ImportError as e:
            raise SystemExit(f"tensorrank: the gpu backend is not available: {e}") from None
        return CupyBackend()  # type: ignore[no-any-return]
    raise SystemExit(f"tensorrank: unknown backend '{name}' (expected cpu or gpu)")


def cmd_inspect(args: argparse.Namespace) -> int:
    from server.inspect_model import inspect_model

    report, ok = inspect_model(args.model)
    print(report)
    return 0 if ok else 1


def cmd_conformance(args: argparse.Namespace) -> int:
    from tensor_ir.conformance import format_report, read_exclusions, run_conformance

    backend = _backend(args.backend)
    if args.suite == "vespa-tensor":
        from server.cli_vespa_conformance import run as run_vespa_tensor

        return run_vespa_tensor(args, backend)
    pattern = args.filter

    def progress(i: int, n: int, res: object) -> None:
        if sys.stderr.isatty():
            print(f"\r{i}/{n} cases", end="", file=sys.stderr, flush=True)

    report = run_conformance(backend, select=(lambda n: pattern in n) if pattern else None, progress=progress)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    for line in format_report(report):
        print(line)
    exclusions = read_exclusions()
    unexpected = [r for r in report.results if r.status != "passed" and r.name not in exclusions]
    if args.json:
        data = report.to_json()
        data["backend"] = args.backend
        data["unexpected_failures"] = [r.name for r in unexpected]
        with open(args.json, "w") as f:
            json.dump(data, f, indent=1)
    if args.verbose:
        for r in report.results:
            if r.status != "passed":
                print(f"  {r.status}: {r.name}: {r.detail}", file=sys.stderr)
    if unexpected and not pattern:
        print(f"{len(unexpected)} cases failed that the exclusion file does not list, e.g. "
              + ", ".join(r.name for r in unexpected[:5]), file=sys.stderr)
        return 1
    return 0


def _located(app_dir: str, e: RankingErrorLike) -> str:
    where = e.location
    if where is not None and not os.path.isabs(where.file):
        # locations are relative to the package; printed from where the user stands
        return f"{os.path.join(app_dir, where.file)}:{where.line}:{where.column}: {e.message}"
    return str(e)


def cmd_check(args: argparse.Namespace) -> int:
    from server.application.errors import SchemaError
    from server.application.package import Application

    try:
        app = Application.check(args.app)
    except SchemaError as e:
        print(f"error: {_located(args.app, e)}", file=sys.stderr)
        return 1
    for schema in app.schemas.values():
        print(f"schema {schema.name}: {len(schema.definition.fields)} fields")
        for f in schema.definition.fields.values():
            kind = "attribute" if f.attribute else "summary"
            shown = f.declared or (f.type if f.type is not None else "string")
            extra = ", synthetic: fed" if f.synthetic else ""
            print(f"  field {f.name}: {shown} ({kind}{extra})")
        for name in schema.definition.profiles:
            prof = schema.profiles.get(name)
            if prof is None:
                if name not in schema.definition.broken_profiles and not any(
                        e.message.startswith(f"rank profile '{name}'") for e in app.problems):
                    print(f"  rank-profile {name}: no first-phase, only for other profiles to inherit")
                continue
            print(f"  rank-profile {prof.name}: program of {prof.program_size()} nodes")
            for q in prof.query_inputs.values():
                default = "" if q.default is None else " (has default)"
                print(f"    input query({q.name}) {q.type}{default}")
            for a, t in prof.attributes.items():
                print(f"    reads attribute({a}) {t}")
            for m in prof.models:
                print(f"    model {m}")
            for feat in prof.match_features:
                print(f"    match-feature {feat.name}: {feat.type}")
            if prof.second_phase is not None:
                print(f"    second-phase over the best {prof.rerank_count}")
    # accepted settings that change nothing here: listed, never silently dropped
    for note in app.notes:
        print(f"ignored: {_located(args.app, _NoteLike(note))}")
    for problem in app.problems:
        print(f"error: {_located(args.app, problem)}", file=sys.stderr)
    if app.problems:
        print(f"{args.app}: {len(app.problems)} error{'s' if len(app.problems) != 1 else ''}", file=sys.stderr)
        return 1
    print(f"{args.app}: ok")
    return 0


class RankingErrorLike(Protocol):
    @property
    def location(self) -> Location | None: ...

    @property
    def message(self) -> str: ...


class _NoteLike:
    def __init__(self, note: Note) -> None:
        self.location = note.loc
        self.message = f"{note.setting}: {note.reason}"

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tensorrank", description="GPU-backed tensor ranking service")
    p.add_argument("--log-level", default="WARNING")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("inspect", help="show a model's inputs, outputs, ops and converted program")
    s.add_argument("model")
    s.set_defaults(func=cmd_inspect)

    s = sub.add_parser("check", help="validate an application package and describe its rank profiles")
    s.add_argument("app", help="application package directory")
    s.set_defaults(func=cmd_check)

    s = sub.add_parser("conformance", help="run the ONNX backend node test suite, or Vespa's tensor conformance cases")
    s.add_argument("--backend", choices=["cpu", "gpu"], default="cpu")
    s.add_argument("--suite", choices=["onnx", "vespa-tensor"], default="onnx")
    s.add_argument("--spec", default="", help="vespa-tensor: the cases' folder (default ../shared/vespa-tensor-spec)")
    s.add_argument("--mode", choices=["query", "attribute", "constant", "all"], default="all",
                   help="vespa-tensor: give the parameters as query inputs, attributes, constants, or each way")
    s.add_argument("--json", help="write per-case results to this file")
    s.add_argument("--filter", default="", help="only cases whose name contains this text")
    s.add_argument("-v", "--verbose", action="store_true", help="print why each case did not pass")
    s.set_defaults(func=cmd_conformance)

    from server.cli_serve import register as register_serve  # serve
    register_serve(sub)

    from server.cli_client import register_client_commands  # query, feed, health, demo
    register_client_commands(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
