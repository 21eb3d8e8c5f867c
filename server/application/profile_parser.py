"""The rank-profile block of a schema (.sd): inheritance, functions, phases, match and
summary features, query inputs, constants and the profile's own onnx-models."""

from __future__ import annotations

import re

from server.application.errors import SchemaError
from server.application.file_blocks import parse_onnx_model
from server.application.profile_tuning import PHASE_TUNING, tuning
from server.application.scanner import Scanner
from server.application.schema_defs import ConstantRef, SchemaDef
from server.application.settings import read_value
from server.application.typed_declarations import parse_typed_declaration
from tensor_ir.expr.ast import Expr
from tensor_ir.expr.errors import Location
from tensor_ir.expr.parser import parse_expression
from tensor_ir.expr.profile import FunctionDef, ProfileDef, QueryInput


def parse_profile(s: Scanner, schema: SchemaDef) -> ProfileDef:
    loc = s.here()
    name = s.word("the rank profile name")
    p = ProfileDef(name, loc)
    if s.peek_word() == "inherits":
        s.word()
        p.inherits.append(s.word("a profile name"))
        while s.accept(","):
            p.inherits.append(s.word("a profile name"))
    s.expect("{", "to open the rank profile")
    while not s.accept("}"):
        if s.at_end():
            raise s.error(f"missing '}}' at the end of rank profile '{name}'")
        kw_loc = s.here()
        kw = s.word("a rank profile element")
        if kw in ("function", "macro"):
            fn = _function(s)
            if fn.name in p.functions:
                raise SchemaError(f"function '{fn.name}' is defined twice in rank profile '{name}'", fn.loc)
            p.functions[fn.name] = fn
        elif kw == "inputs":
            _inputs(s, p)
        elif kw == "constants":
            _constants(s, p, schema)
        elif kw == "first-phase":
            p.first_phase = _phase(s, p, schema, second=False)
        elif kw == "second-phase":
            p.second_phase = _phase(s, p, schema, second=True)
        elif kw in ("match-features", "summary-features"):
            feats = _features(s)
            (p.match_features if kw == "match-features" else p.summary_features).extend(feats)
        elif kw == "onnx-model":
            m = parse_onnx_model(s)
            p.onnx_models[m.name] = m
        elif kw == "global-phase":
            _global_phase(s, p)
        elif kw == "rank-properties":
            _rank_properties(s, p, schema)
        else:
            tuning(s, kw, kw_loc, p, schema)
    return p


def _function(s: Scanner) -> FunctionDef:
    loc = s.here()
    name = s.word("the function name")
    if name.startswith("inline"):
        name = s.word("the function name")
    params: list[str] = []
    s.expect("(", f"after function name '{name}'")
    while not s.accept(")"):
        params.append(s.word("a parameter name"))
        if not s.accept(","):
            s.expect(")", "to close the parameters")
            break
    s.expect("{", f"to open function '{name}'")
    body: Expr | None = None
    while not s.accept("}"):
        if s.at_end():
            raise s.error(f"missing '}}' at the end of function '{name}'")
        kw_loc = s.here()
        kw = s.word("'expression'")
        if kw != "expression":
            raise s.error(f"expected 'expression' or '}}' in function '{name}' (opened at {loc.line}:{loc.column}), "
                          f"found '{kw}'", kw_loc)
        body = _expression(s)
    if body is None:
        raise SchemaError(f"function '{name}' has no expression", loc)
    return FunctionDef(name, tuple(params), body, loc)


def _phase(s: Scanner, p: ProfileDef, schema: SchemaDef, second: bool) -> Expr:
    s.expect("{")
    expr: Expr | None = None
    loc = s.here()
    while not s.accept("}"):
        if s.at_end():
            raise s.error("missing '}' at the end of the phase")
        kw_loc = s.here()
        kw = s.word("'expression'")
        if kw == "expression":
            expr = _expression(s)
        elif kw == "rerank-count" and second:
            p.rerank_count = _rerank_count(s)
        elif kw in ("keep-rank-count", "rank-score-drop-limit"):
            s.expect(":", f"after '{kw}'")
            value, _ = read_value(s)
            schema.note(kw_loc, f"rank profile '{p.name}' {kw}: {value}", PHASE_TUNING[kw])
        else:
            raise s.error(f"unknown phase property '{kw}' (expected expression"
                          f"{' or rerank-count' if second else ''})", kw_loc)
    if expr is None:
        raise SchemaError("phase has no expression", loc)
    return expr


def _rerank_count(s: Scanner) -> int:
    s.expect(":")
    vloc = s.here()
    text = s.word("a number")
    try:
        n = int(text.strip())
    except ValueError:
        raise SchemaError(f"rerank-count must be a whole number, got '{text.strip()}'", vloc) from None
    if n <= 0:
        raise SchemaError("rerank-count must be positive", vloc)
    return n


def _global_phase(s: Scanner, p: ProfileDef) -> None:
    """`global-phase { expression: ... rerank-count: N }`: kept on the profile."""
    opened = s.expect("{", "to open the global-phase")
    expr: Expr | None = None
    while not s.accept("}"):
        if s.at_end():
            raise s.error(f"missing '}}' at the end of the global-phase (opened at {opened.line}:{opened.column})")
        kw_loc = s.here()
        kw = s.word("'expression' or 'rerank-count'")
        if kw == "expression":
            expr = _expression(s)
        elif kw == "rerank-count":
            p.global_rerank_count = _rerank_count(s)
        else:
            raise s.error(f"unknown global-phase property '{kw}' (expected expression or rerank-count)", kw_loc)
    if expr is None:
        raise SchemaError("global-phase has no expression", opened)
    p.global_phase = expr


def _rank_properties(s: Scanner, p: ProfileDef, schema: SchemaDef) -> None:
    """`rank-properties { bm25(text).k1: 0.9 }`: name: value per line, kept for the features
    that read them."""
    opened = s.expect("{", "to open rank-properties")
    while not s.accept("}"):
        if s.at_end():
            raise s.error(f"missing '}}' at the end of rank-properties (opened at {opened.line}:{opened.column})")
        loc = s.here()
        text, _ = s.raw(stop_at_newline=True)
        name, colon, value = text.rpartition(":")
        if not colon or not name.strip():
            raise SchemaError(f"rank-properties: expected 'name: value', found '{text.strip()}'", loc)
        p.rank_properties[name.strip()] = value.strip().strip('"')
        schema.note(loc, f"rank profile '{p.name}' rank-properties {name.strip()}",
                    "kept for the feature it configures; features here read only the properties they document")


def _expression(s: Scanner) -> Expr:
    """`expression: text` to the end of the line, or `expression { text }` over several lines."""
    if s.accept(":"):
        text, loc = s.raw(stop_at_newline=True)
    else:
        s.expect("{", "or ':' after 'expression'")
        text, loc = s.raw(stop_at_newline=False)
        s.expect("}", "to close the expression")
    if not text.strip():
        raise SchemaError("empty expression", loc)
    return parse_expression(text, loc.file, loc.line, loc.column)


def _features(s: Scanner) -> list[tuple[str, Expr]]:
    if s.accept(":"):
        text, loc = s.raw(stop_at_newline=True)
    else:
        s.expect("{")
        text, loc = s.raw(stop_at_newline=False)
        s.expect("}")
    return _split_features(text, loc)


def _split_features(text: str, loc: Location) -> list[tuple[str, Expr]]:
    """Features are separated by white space at bracket depth 0."""
    # comments become blanks of the same length, so columns stay right
    text = re.sub(r"#[^\n]*", lambda m: " " * len(m.group()), text)
    out: list[tuple[str, Expr]] = []
    depth = 0
    start = 0
    line, col = loc.line, loc.column
    start_loc = (line, col)
    for i, ch in enumerate(text + " "):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch.isspace() and depth == 0:
            piece = text[start:i]
            if piece.strip():
                out.append((piece.strip(), parse_expression(piece, loc.file, *start_loc)))
            start = i + 1
            start_loc = (line + (ch == "\n"), 1 if ch == "\n" else col + 1)
        if ch == "\n":
            line += 1
            col = 1
        else:
            col += 1
    return out


def _inputs(s: Scanner, p: ProfileDef) -> None:
    s.expect("{", "to open inputs")
    while not s.accept("}"):
        if s.at_end():
            raise s.error("missing '}' at the end of inputs")
        loc = s.here()
        text, _ = s.raw(stop_at_newline=True)
        name, type_, default = parse_typed_declaration(text, loc, "query")
        p.inputs[name] = QueryInput(name, type_, default, loc)


def _constants(s: Scanner, p: ProfileDef, schema: SchemaDef) -> None:
    s.expect("{", "to open constants")
    while not s.accept("}"):
        if s.at_end():
            raise s.error("missing '}' at the end of constants")
        loc = s.here()
        text, _ = s.raw(stop_at_newline=True)
        if "file:" in text:
            head, _, path = text.partition("file:")
            name, type_, _ = parse_typed_declaration(head.rstrip().rstrip(":"), loc, "constant", need_default=False)
            schema.profile_constant_files.setdefault(p.name, {})[name] = ConstantRef(
                name, path.strip().strip('"'), type_, loc)
            continue
        name, type_, default = parse_typed_declaration(text, loc, "constant", need_default=True)
        assert default is not None
        p.constants[name] = (type_, default)
