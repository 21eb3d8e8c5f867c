"""Rank profile settings that tune Vespa's search but change no score here: thread counts,
match-phase limits, diversity, drop limits, dumped rank features. Each is accepted and noted
(so `check` lists it); one that would change results and is not supported is refused."""

from __future__ import annotations

from server.application.errors import SchemaError
from server.application.scanner import Scanner
from server.application.schema_defs import SchemaDef
from server.application.settings import read_setting, read_settings, read_value
from tensor_ir.expr.errors import Location
from tensor_ir.expr.profile import ProfileDef

_THREADS = "search threading: ranking here runs as one pass over the shard"
_ALL_HITS = ("match-phase limit: ranking here scores every matched document; results are those of an "
             "unlimited match phase")
PHASE_TUNING = {
    "keep-rank-count": "phase tuning: every document keeps its rank score here",
    "rank-score-drop-limit": "drop limit: documents scoring below it are still returned here",
}
# single-value settings (`name: value`)
_VALUES = {
    "num-threads-per-search": _THREADS, "min-hits-per-thread": _THREADS, "num-search-partitions": _THREADS,
    "termwise-limit": "query evaluation tuning (termwise)", "rank-score-drop-limit": PHASE_TUNING[
        "rank-score-drop-limit"],
    "strict": "type checking mode: expressions are always type-checked here",
    "ignore-default-rank-features": "which features Vespa dumps by default",
    "approximate-threshold": _ALL_HITS, "post-filter-threshold": _ALL_HITS, "target-hits-max-adjustment-factor":
        _ALL_HITS, "filter-threshold": _ALL_HITS, "exploration-slack": _ALL_HITS,
}
# blocks (`name { ... }`)
_BLOCKS = {
    "match-phase": _ALL_HITS,
    "diversity": "result diversity over the match phase: results are the top scores here",
    "rank-features": "features Vespa dumps on request (rank-features=true): not computed here",
}
_REFUSED = {
    "mutate": "rank profile 'mutate' (updating attributes while ranking)",
    "second-phase-rerank": "second-phase-rerank",
}


def tuning(s: Scanner, kw: str, kw_loc: Location, p: ProfileDef, schema: SchemaDef) -> None:
    """A rank profile element other than phases, functions, inputs, constants, features, models."""
    where = f"rank profile '{p.name}'"
    if kw in _REFUSED:
        raise s.error(f"{_REFUSED[kw]} is not supported", kw_loc)
    if kw in _VALUES:
        s.expect(":", f"after '{kw}'")
        value, _ = read_value(s)
        schema.note(kw_loc, f"{where} {kw}: {value}", _VALUES[kw])
    elif kw in _BLOCKS:
        if kw == "rank-features" and s.accept(":"):
            value, _ = s.raw(stop_at_newline=True)
            schema.note(kw_loc, f"{where} rank-features: {value.strip()}", _BLOCKS[kw])
            return
        opened = s.expect("{", f"to open {kw}")
        if kw == "rank-features":
            text, _ = s.raw(stop_at_newline=False)
            s.expect("}", "to close rank-features")
            schema.note(kw_loc, f"{where} rank-features ({len(text.split())} features)", _BLOCKS[kw])
            return
        for st in read_settings(s, kw, opened):
            schema.note(st.loc, f"{where} {kw} {st.describe()}", _BLOCKS[kw])
    elif kw in ("rank", "weight", "rank-type"):
        # per-field overrides of text matching: `rank chunks { element-gap: 0 }`, `weight title: 200`
        s.restore(_back(s, kw_loc))
        st = read_setting(s, where)
        schema.note(kw_loc, f"{where} {st.describe()}", "per-field text matching setting: no text matching here")
    else:
        raise SchemaError(f"unknown rank profile element '{kw}'", kw_loc)


def _back(s: Scanner, loc: Location) -> tuple[int, int, int]:
    """The scanner state at `loc`, on the current line (the word just read starts there)."""
    pos = s.pos - (s.col - loc.column)
    return pos, loc.line, loc.column
