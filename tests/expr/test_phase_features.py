"""secondPhase, relevanceScore and the global-phase normalizers at compile time: where Vespa
allows them, and the refusals where it does not."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from cpu_fallback import NumpyBackend
from tensor_ir.expr.errors import Location, RankingError
from tensor_ir.expr.parser import parse_expression
from tensor_ir.expr.profile import FieldDef, FunctionDef, ProfileDef, compile_profile
from tensor_ir.expr.types import parse_type

FIELDS = {"x": FieldDef("x", parse_type("double"), True, Location()),
          "y": FieldDef("y", parse_type("double"), True, Location())}


def _no_models(ref: str, loc: Location) -> Any:
    raise AssertionError(f"no model is loaded in these tests ({ref})")


def _profile(first: str | None = "attribute(x)", second: str | None = None, glob: str | None = None,
             features: tuple[str, ...] = (), functions: dict[str, str] | None = None) -> ProfileDef:
    p = ProfileDef("p", Location("t.sd", 1, 1))
    p.first_phase = None if first is None else parse_expression(first, "t.sd", 2, 1)
    p.second_phase = None if second is None else parse_expression(second, "t.sd", 3, 1)
    p.global_phase = None if glob is None else parse_expression(glob, "t.sd", 4, 1)
    p.match_features = [(f, parse_expression(f)) for f in features]
    for name, body in (functions or {}).items():
        p.functions[name] = FunctionDef(name, (), parse_expression(body), Location("t.sd", 5, 1))
    return p


def test_second_phase_and_relevance_score_in_match_features() -> None:
    cp = compile_profile(_profile(second="attribute(x) * 10 + attribute(y)",
                                  features=("secondPhase", "relevanceScore", "firstPhase")), FIELDS, _no_models)
    assert cp.features is not None
    x, y = np.array([1.0, 2.0, 3.0]), np.array([0.5, -1.0, 4.0])
    out = NumpyBackend().run(cp.features, {"attribute(x)": x, "attribute(y)": y}, 3)
    np.testing.assert_array_equal(out["mf:secondPhase"], x * 10 + y)
    np.testing.assert_array_equal(out["mf:relevanceScore"], x * 10 + y)
    np.testing.assert_array_equal(out["mf:firstPhase"], x)
    # without a second phase, relevanceScore is the first-phase score
    cp = compile_profile(_profile(features=("relevanceScore",)), FIELDS, _no_models)
    assert cp.features is not None
    np.testing.assert_array_equal(NumpyBackend().run(cp.features, {"attribute(x)": x}, 3)["mf:relevanceScore"], x)


@pytest.mark.parametrize(("profile", "message"), [
    (_profile(second="secondPhase"), "secondPhase is not available in the second-phase expression"),
    (_profile(first="relevanceScore"), "relevanceScore is not available in the first-phase expression"),
    (_profile(features=("secondPhase",)), "has no second-phase expression"),
    (_profile(second="normalize_linear(attribute(x))"), "only the global-phase expression may use it"),
    (_profile(features=("reciprocal_rank(attribute(x))",)), "only the global-phase expression may use it"),
    (_profile(glob="reciprocal_rank_fusion(attribute(x))"), "takes at least two"),
    (_profile(glob="reciprocal_rank(attribute(x), attribute(y))"), "k must be a number"),
    (_profile(glob="normalize_linear(query(v) * tensor(a[2]):[1,2])"), "normalizes a number per hit"),
    (_profile(glob="attribute(x) * tensor(a[2]):[1,2]"), "global-phase expression must produce one number"),
    (_profile(first=None, glob="attribute(x)"), "Vespa's default first phase is nativeRank: text-match"),
])
def test_refused_where_vespa_refuses(profile: ProfileDef, message: str) -> None:
    with pytest.raises(RankingError, match=message):
        compile_profile(profile, FIELDS, _no_models)


def test_the_global_phase_compiles_its_normalizers_inputs_apart() -> None:
    p = _profile(glob="normalize_linear(f) + 2 * reciprocal_rank_fusion(attribute(x), f) + reciprocal_rank(f, 5)",
                 functions={"f": "attribute(y) * 3"})
    cp = compile_profile(p, FIELDS, _no_models)
    assert [(n.kind, n.k) for n in cp.normalizers] == [("linear", 0.0), ("reciprocal_rank", 60.0),
                                                       ("reciprocal_rank", 60.0), ("reciprocal_rank", 5.0)]
    assert cp.normalizer_inputs is not None and cp.global_phase is not None
    x, y = np.array([1.0, 2.0]), np.array([4.0, -1.0])
    out = NumpyBackend().run(cp.normalizer_inputs, {"attribute(x)": x, "attribute(y)": y}, 2)
    for n, want in zip(cp.normalizers, (y * 3, x, y * 3, y * 3), strict=True):
        np.testing.assert_array_equal(out[n.source], want)
    # the global program reads the normalized values as per-document inputs, in Vespa's sum
    feeds = {n.target: np.array([0.25 * (i + 1), 0.5]) for i, n in enumerate(cp.normalizers)}
    got = NumpyBackend().run(cp.global_phase, feeds, 2)["global_phase"]
    np.testing.assert_allclose(got, [0.25 + 2 * (0.5 + 0.75) + 1.0, 0.5 + 2 * 1.0 + 0.5])


def test_a_function_no_phase_uses_may_hold_a_normalizer() -> None:
    # compiled at deploy to find its errors, as Vespa checks every function
    cp = compile_profile(_profile(functions={"spare": "normalize_linear(attribute(y))"}), FIELDS, _no_models)
    assert cp.normalizers == []
