"""`tensorrank conformance --suite vespa-tensor`: Vespa's tensor conformance cases
(tensor_ir.vespa_conformance) from ../shared/vespa-tensor-spec, in each way a parameter
can be given. Ends with one line per mode:

    vespa tensor conformance (query): P passed, W wrong, R refused, T total; with a mapped
    dimension P passed, W wrong, R refused of T
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from tensor_ir.backend import Backend

DEFAULT_SPEC = Path(__file__).resolve().parents[1].parent / "shared" / "vespa-tensor-spec"


def run(args: argparse.Namespace, backend: Backend) -> int:
    from tensor_ir.vespa_conformance import MODES, read_exclusions, run_conformance, stale, unexpected

    spec = Path(args.spec) if args.spec else DEFAULT_SPEC
    if not spec.is_dir():
        print(f"vespa tensor conformance: skipped: {spec} is absent (Vespa's cases are not part of this "
              "repository; they lie in ../shared/vespa-tensor-spec beside the checkout, or give --spec DIR)")
        return 0
    modes = list(MODES) if args.mode == "all" else [args.mode]
    pattern = args.filter

    def progress(i: int, n: int) -> None:
        if sys.stderr.isatty() and i % 200 == 0:
            print(f"\r{i}/{n} runs", end="", file=sys.stderr, flush=True)

    report = run_conformance(backend, spec, modes,
                             select=(lambda c: pattern in c.id or pattern in c.expression) if pattern else None,
                             progress=progress)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    exclusions = read_exclusions()
    bad, passing = unexpected(report, exclusions), stale(report, exclusions)
    if args.verbose:
        for r in report.results:
            if r.status in ("wrong", "refused"):
                print(f"  {r.status} ({r.mode}): {r.id}: {r.detail}", file=sys.stderr)
    if args.json:
        data = report.to_json()
        data["backend"] = args.backend
        data["unexpected"] = [f"{r.id}@{r.mode}" for r in bad]
        with open(args.json, "w") as f:
            json.dump(data, f, indent=1)
    # the probes (rules Vespa states but its spec does not test) are reported apart, as the
    # spec's README asks; the summary lines count them with the rest
    for mode in modes:
        probes = Counter(r.status for r in report.results if r.mode == mode and r.id.startswith("probe-"))
        if probes:
            print(f"spec_probe ({mode}): {probes['passed']} of {sum(probes.values())} passed")
    if bad:
        print(f"{len(bad)} results neither pass nor are excluded, e.g. "
              + ", ".join(f"{r.id} ({r.mode}): {r.detail}" for r in bad[:3]), file=sys.stderr)
    if passing and not pattern:
        print(f"{len(passing)} excluded results pass now; take them out of the exclusion file: "
              + ", ".join(f"{r.id} ({r.mode})" for r in passing[:5]), file=sys.stderr)
    for line in report.summary_lines():
        print(line)
    return 1 if bad or (passing and not pattern) else 0
