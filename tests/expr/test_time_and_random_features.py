"""`now`, `age`, `freshness` and `random` against Vespa's documented formulas, written out
here in numpy, and drand48 against the C library's own (ctypes)."""

from __future__ import annotations

import ctypes
import ctypes.util
import math
from typing import Any

import numpy as np
import pytest

from cpu_fallback import NumpyBackend
from server.per_query import drand48_draws, fill_per_query, made_values
from server.ranking import Ranker
from server.store.view import ShardView
from tensor_ir.expr.errors import Location, RankingError
from tensor_ir.expr.parser import parse_expression
from tensor_ir.expr.profile import CompiledProfile, FieldDef, ProfileDef, compile_profile
from tensor_ir.expr.types import parse_type

NOW = 1_700_000_000.0
TIMES = np.array([NOW - 3600, NOW - 30 * 86400, NOW - 200 * 86400, NOW + 50, NOW - 7 * 86400, 0], np.int64)


def _compile(features: list[str], properties: dict[str, str] | None = None) -> CompiledProfile:
    p = ProfileDef("p", Location("t.sd", 1, 1))
    p.first_phase = parse_expression("attribute(t)")
    p.rank_properties = dict(properties or {})
    p.match_features = [(f, parse_expression(f)) for f in features]
    fields = {"t": FieldDef("t", parse_type("long"), True, Location()),
              "ft": FieldDef("ft", parse_type("double"), True, Location())}
    return compile_profile(p, fields, _no_models)


def _no_models(ref: str, loc: Location) -> Any:
    raise AssertionError(f"no model is loaded in these tests ({ref})")


def _features(cp: CompiledProfile, query: dict[str, Any], rows: int = len(TIMES)) -> dict[str, np.ndarray]:
    shard = ShardView([f"id:t:t::{i:02d}" for i in range(rows)],
                      {"t": TIMES[:rows], "ft": TIMES[:rows].astype(np.float64) + 0.75})
    result = Ranker(cp, NumpyBackend()).rank(shard, query, hits=rows)
    by_row = sorted(result.hits, key=lambda h: h.row)
    return {f.name: np.array([h.match_features[f.name] for h in by_row], np.float64) for f in cp.match_features}


def test_now_is_the_requests_whole_seconds_or_the_clock() -> None:
    cp = _compile(["now"])
    assert "vespa.now" in cp.query_inputs
    got = _features(cp, {"vespa.now": np.array(NOW + 0.9)})["now"]
    assert list(got) == [NOW] * len(TIMES)  # atoll: truncated
    before = math.floor(__import__("time").time())
    clock = _features(cp, {})["now"]
    assert before <= clock[0] <= before + 5 and clock[0] == int(clock[0])


def test_age_and_freshness_follow_vespas_formulas() -> None:
    cp = _compile(["age(t)", "age(ft)", "freshness(t)", "freshness(t).logscale"])
    got = _features(cp, {"vespa.now": np.array(NOW)})
    age = np.maximum(NOW - TIMES.astype(np.float64), 0)
    np.testing.assert_array_equal(got["age(t)"], age)
    np.testing.assert_array_equal(got["age(ft)"], age)  # a double attribute is read as whole seconds
    max_age, half = 90 * 86400.0, 7 * 86400.0
    np.testing.assert_allclose(got["freshness(t)"], np.maximum(1 - age / max_age, 0), rtol=1e-12)
    s = half * half / (max_age - 2 * half)
    log = (np.log(max_age + s) - np.log(np.minimum(age, max_age) + s)) / (np.log(max_age + s) - np.log(s))
    np.testing.assert_allclose(got["freshness(t).logscale"], log, rtol=1e-12)
    # age halfResponse gives 0.5, as documented
    assert got["freshness(t).logscale"][4] == pytest.approx(0.5, abs=1e-12)


def test_freshness_reads_rank_properties_and_corrects_them_as_vespa_does() -> None:
    cp = _compile(["freshness(t)", "freshness(t).logscale"],
                  {"freshness(t).maxAge": "86400", "freshness(t).halfResponse": "60000"})
    got = _features(cp, {"vespa.now": np.array(NOW)})
    age = np.maximum(NOW - TIMES.astype(np.float64), 0)
    np.testing.assert_allclose(got["freshness(t)"], np.maximum(1 - age / 86400, 0), rtol=1e-12)
    half = 86400 / 2 - 1  # halfResponse must stay below maxAge / 2
    s = half * half / (86400 - 2 * half)
    log = (np.log(86400 + s) - np.log(np.minimum(age, 86400) + s)) / (np.log(86400 + s) - np.log(s))
    np.testing.assert_allclose(got["freshness(t).logscale"], log, rtol=1e-12)


@pytest.mark.parametrize(("expr", "message"), [
    ("freshness(t).linear", "freshness(t) has the outputs"),
    ("age(nope)", "the schema has no field 'nope'"),
    ("age(t, t)", "takes one attribute name"),
])
def test_bad_time_features_are_refused(expr: str, message: str) -> None:
    with pytest.raises(RankingError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _compile([expr])


def _libc() -> Any:
    name = ctypes.util.find_library("c")
    if name is None:
        pytest.skip("no C library to compare drand48 with")
    lib = ctypes.CDLL(name)
    if not hasattr(lib, "lrand48"):
        pytest.skip("the C library has no lrand48")
    lib.lrand48.restype = ctypes.c_long
    return lib


def _libc_draws(lib: Any, seed: int, count: int) -> list[float]:
    lib.srand48(ctypes.c_long(seed))
    return [lib.lrand48() / 2.0**31 for _ in range(count)]


def test_drand48_is_the_c_librarys() -> None:
    lib = _libc()
    for seed in (1, 42, 1024, 123456789, 2**33 + 5):
        want = _libc_draws(lib, seed, 300)
        got = drand48_draws(np.full(300, seed, np.int64), np.arange(1, 301))
        np.testing.assert_array_equal(got, want)


def test_random_draws_per_row_in_row_order_from_the_seed() -> None:
    lib = _libc()
    cp = _compile(["random", "random(other)"], {"random.seed": "77"})
    got = _features(cp, {})
    np.testing.assert_array_equal(got["random"], _libc_draws(lib, 77, len(TIMES)))
    # another instance has its own seed (here the clock), so other numbers
    assert not np.array_equal(got["random(other)"], got["random"])
    assert np.all((got["random(other)"] >= 0) & (got["random(other)"] < 1))
    # the request may give the seed; the numbers are then reproducible
    again = _features(cp, {"random(other).seed": np.array(5.0)})["random(other)"]
    np.testing.assert_array_equal(again, _libc_draws(lib, 5, len(TIMES)))


def test_random_match_is_seeded_per_document() -> None:
    lib = _libc()
    cp = _compile(["random(x).match"])
    got = _features(cp, {})["random(x).match"]
    want = [_libc_draws(lib, 1024 + row, 1)[0] for row in range(len(TIMES))]  # default seed 1024
    np.testing.assert_array_equal(got, want)


def test_a_subset_of_rows_gets_the_numbers_the_whole_shard_would() -> None:
    cp = _compile(["random"], {"random.seed": "9"})
    qv = {"query(random.seed)": np.array(9.0)}
    fill_per_query(cp, qv)
    whole = made_values(cp.generated["random"], qv, 50, None)
    rows = np.array([40, 3, 17], np.int64)
    np.testing.assert_array_equal(made_values(cp.generated["random"], qv, 50, rows), whole[rows])


def test_random_seed_zero_means_the_clock_as_in_vespa() -> None:
    cp = _compile(["random"], {"random.seed": "0"})
    qv = {"query(random.seed)": np.array(0.0)}
    fill_per_query(cp, qv)
    assert float(qv["query(random.seed)"]) != 0
