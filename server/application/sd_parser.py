"""A parser for the subset of Vespa's schema (.sd) language that tensorrank supports.

Unknown or unsupported constructs are errors with file:line:column, never ignored
silently: a user must know when part of a schema does not apply.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from server.application.errors import SchemaError
from server.application.scanner import Scanner
from tensor_ir.dtypes import CellType
from tensor_ir.expr.ast import Expr
from tensor_ir.expr.compiler import Compiler
from tensor_ir.expr.errors import Location, RankingError
from tensor_ir.expr.parser import parse_expression
from tensor_ir.expr.profile import FieldDef, FunctionDef, OnnxModelDef, ProfileDef, QueryInput
from tensor_ir.expr.types import TensorType, TypeSyntaxError, parse_type
from tensor_ir.ir import Op

_FIELD_TYPES_SCALAR = {"float": "float", "double": "double", "int": "int", "long": "long", "byte": "byte",
                       "bool": "bool"}


@dataclass
class ConstantRef:
    """A constant defined in a file of the package, loaded by the package loader."""

    name: str
    file: str
    type: TensorType
    loc: Location


@dataclass
class SchemaDef:
    name: str
    file: str
    loc: Location
    document: str = ""
    fields: dict[str, FieldDef] = field(default_factory=dict)
    profiles: dict[str, ProfileDef] = field(default_factory=dict)
    onnx_models: dict[str, OnnxModelDef] = field(default_factory=dict)
    constant_files: dict[str, ConstantRef] = field(default_factory=dict)
    profile_constant_files: dict[str, dict[str, ConstantRef]] = field(default_factory=dict)


def parse_schema(text: str, file: str) -> SchemaDef:
    """Parse one .sd file. Every problem is a SchemaError with file:line:column."""
    try:
        return _parse_schema(text, file)
    except SchemaError:
        raise
    except RankingError as e:
        # from the expression parser: the same located error, as this layer's type
        raise SchemaError(e.message, e.location) from None


def _parse_schema(text: str, file: str) -> SchemaDef:
    s = Scanner(text, file)
    loc = s.here()
    kw = s.word("'schema'")
    if kw not in ("schema", "search"):
        raise s.error(f"expected 'schema', found '{kw}'", loc)
    name_loc = s.here()
    name = s.word("the schema name")
    schema = SchemaDef(name, file, name_loc)
    if s.peek_word() == "inherits":
        raise s.error("schema inheritance is not supported")
    s.expect("{", "to open the schema")
    while not s.accept("}"):
        if s.at_end():
            raise s.error("missing '}' at the end of the schema")
        item_loc = s.here()
        kw = s.word("a schema element")
        if kw == "document":
            _document(s, schema)
        elif kw == "rank-profile":
            p = _profile(s, schema)
            if p.name in schema.profiles:
                raise s.error(f"rank profile '{p.name}' is defined twice", item_loc)
            schema.profiles[p.name] = p
        elif kw == "onnx-model":
            m = _onnx_model(s)
            schema.onnx_models[m.name] = m
        elif kw == "constant":
            c = _constant_file(s)
            schema.constant_files[c.name] = c
        elif kw in ("fieldset", "document-summary", "stemming", "index", "field", "annotation", "struct",
                    "import", "raw-as-base64-in-summary"):
            raise s.error(f"'{kw}' is not supported by tensorrank", item_loc)
        else:
            raise s.error(f"unknown schema element '{kw}' (expected document, rank-profile, onnx-model or "
                          "constant)", item_loc)
    if not s.at_end():
        raise s.error("unexpected text after the end of the schema")
    if not schema.document:
        raise SchemaError(f"schema '{name}' has no document block", name_loc)
    _check_profiles(schema)
    return schema


def _document(s: Scanner, schema: SchemaDef) -> None:
    loc = s.here()
    doc = s.word("the document type name")
    if doc != schema.name:
        raise s.error(f"document type '{doc}' must be named like its schema '{schema.name}'", loc)
    schema.document = doc
    if s.peek_word() == "inherits":
        raise s.error("document inheritance is not supported")
    s.expect("{", "to open the document")
    while not s.accept("}"):
        if s.at_end():
            raise s.error("missing '}' at the end of the document")
        kw_loc = s.here()
        kw = s.word("'field'")
        if kw != "field":
            raise s.error(f"expected 'field' in the document, found '{kw}'", kw_loc)
        f = _field(s)
        if f.name in schema.fields:
            raise s.error(f"field '{f.name}' is defined twice", f.loc)
        schema.fields[f.name] = f


def _field(s: Scanner) -> FieldDef:
    loc = s.here()
    name = s.word("the field name")
    kw_loc = s.here()
    if s.word("'type'") != "type":
        raise s.error("expected 'type' after the field name", kw_loc)
    type_text, type_loc = s.raw(stop_at_newline=False, stops="{")
    ftype: TensorType | None
    t = type_text.strip()
    if t == "string":
        ftype = None
    elif t in _FIELD_TYPES_SCALAR:
        ftype = TensorType({"float": CellType.FLOAT32, "double": CellType.FLOAT64, "int": CellType.INT32,
                            "long": CellType.INT64, "byte": CellType.INT8, "bool": CellType.BOOL}[t], ())
    elif t.startswith("tensor"):
        try:
            ftype = parse_type(t)
        except TypeSyntaxError as e:
            raise SchemaError(f"field '{name}': {e}", type_loc) from None
    elif t.startswith("array") or t.startswith("weightedset") or t.startswith("map"):
        raise SchemaError(f"field '{name}': collection type '{t}' is not supported", type_loc)
    else:
        raise SchemaError(f"field '{name}': unknown type '{t}' (expected a tensor type, float, double, int, "
                          "long, byte, bool or string)", type_loc)
    s.expect("{", "to open the field")
    attribute = False
    while not s.accept("}"):
        if s.at_end():
            raise s.error(f"missing '}}' at the end of field '{name}'")
        prop_loc = s.here()
        prop = s.word("a field property")
        s.expect(":", f"after '{prop}'")
        value, vloc = s.raw(stop_at_newline=True)
        if prop == "indexing":
            parts = [p.strip() for p in value.split("|")]
            for p in parts:
                if p not in ("attribute", "summary", "index"):
                    raise SchemaError(f"field '{name}': indexing '{p}' is not supported (attribute, summary)", vloc)
            attribute = "attribute" in parts
            if "index" in parts:
                raise SchemaError(f"field '{name}': 'index' (text search) is not supported", vloc)
        elif prop in ("attribute", "rank", "summary", "match"):
            continue  # tuning hints that do not change ranking results
        else:
            raise SchemaError(f"field '{name}': unknown property '{prop}'", prop_loc)
    if ftype is None and attribute:
        raise SchemaError(f"field '{name}': string fields can only be 'summary'", loc)
    return FieldDef(name, ftype, attribute, loc)


def _onnx_model(s: Scanner) -> OnnxModelDef:
    loc = s.here()
    name = s.word("the onnx-model name")
    s.expect("{", "to open the onnx-model")
    file = ""
    inputs: dict[str, tuple[str, Location]] = {}
    outputs: dict[str, str] = {}
    while not s.accept("}"):
        if s.at_end():
            raise s.error(f"missing '}}' at the end of onnx-model '{name}'")
        kw_loc = s.here()
        kw = s.word("file, input or output")
        if kw == "file":
            s.expect(":")
            file, _ = s.raw(stop_at_newline=True)
            file = file.strip().strip('"')
        elif kw == "uri":
            raise s.error("onnx-model 'uri' is not supported: put the model in the package and use 'file'", kw_loc)
        elif kw in ("input", "output"):
            key = s.word(f"the {kw} name")
            s.expect(":", f"after the {kw} name")
            value, vloc = s.raw(stop_at_newline=True)
            value = value.strip()
            if not value:
                raise SchemaError(f"onnx-model '{name}': {kw} '{key}' has no source", vloc)
            if kw == "input":
                inputs[key] = (value, vloc)
            else:
                outputs[key] = value.strip('"')
        elif kw in ("intraop-threads", "interop-threads", "execution-mode", "gpu-device"):
            s.expect(":")
            s.raw(stop_at_newline=True)
        else:
            raise s.error(f"unknown onnx-model property '{kw}' (expected file, input or output)", kw_loc)
    if not file:
        raise SchemaError(f"onnx-model '{name}' has no file", loc)
    return OnnxModelDef(name, file, inputs, outputs, loc)


def _constant_file(s: Scanner) -> ConstantRef:
    loc = s.here()
    name = s.word("the constant name")
    s.expect("{", "to open the constant")
    file, type_ = "", None
    while not s.accept("}"):
        if s.at_end():
            raise s.error(f"missing '}}' at the end of constant '{name}'")
        kw_loc = s.here()
        kw = s.word("file or type")
        s.expect(":")
        value, vloc = s.raw(stop_at_newline=True)
        if kw == "file":
            file = value.strip().strip('"')
        elif kw == "type":
            try:
                type_ = parse_type(value)
            except TypeSyntaxError as e:
                raise SchemaError(f"constant '{name}': {e}", vloc) from None
        else:
            raise s.error(f"unknown constant property '{kw}' (expected file or type)", kw_loc)
    if not file or type_ is None:
        raise SchemaError(f"constant '{name}' needs both file and type", loc)
    return ConstantRef(name, file, type_, loc)


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


def _profile(s: Scanner, schema: SchemaDef) -> ProfileDef:
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
            p.first_phase = _phase(s, p, second=False)
        elif kw == "second-phase":
            p.second_phase = _phase(s, p, second=True)
        elif kw in ("match-features", "summary-features"):
            feats = _features(s)
            (p.match_features if kw == "match-features" else p.summary_features).extend(feats)
        elif kw == "onnx-model":
            m = _onnx_model(s)
            p.onnx_models[m.name] = m
        elif kw in ("num-threads-per-search", "min-hits-per-thread", "rank-properties", "global-phase",
                    "diversity", "mutate", "rank"):
            raise s.error(f"'{kw}' is not supported by tensorrank", kw_loc)
        else:
            raise s.error(f"unknown rank profile element '{kw}'", kw_loc)
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


def _phase(s: Scanner, p: ProfileDef, second: bool) -> Expr:
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
            s.expect(":")
            vloc = s.here()
            text = s.word("a number")
            try:
                n = int(text.strip())
            except ValueError:
                raise SchemaError(f"rerank-count must be a whole number, got '{text.strip()}'", vloc) from None
            if n <= 0:
                raise SchemaError("rerank-count must be positive", vloc)
            p.rerank_count = n
        elif kw in ("keep-rank-count", "rank-score-drop-limit"):
            raise s.error(f"'{kw}' is not supported by tensorrank", kw_loc)
        else:
            raise s.error(f"unknown phase property '{kw}' (expected expression"
                          f"{' or rerank-count' if second else ''})", kw_loc)
    if expr is None:
        raise SchemaError("phase has no expression", loc)
    return expr


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
        name, type_, default = _typed_declaration(text, loc, "query")
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
            name, type_, _ = _typed_declaration(head.rstrip().rstrip(":"), loc, "constant", need_default=False)
            schema.profile_constant_files.setdefault(p.name, {})[name] = ConstantRef(
                name, path.strip().strip('"'), type_, loc)
            continue
        name, type_, default = _typed_declaration(text, loc, "constant", need_default=True)
        assert default is not None
        p.constants[name] = (type_, default)


def _typed_declaration(text: str, loc: Location, wrapper: str, need_default: bool = False
                       ) -> tuple[str, TensorType, npt.NDArray[Any] | None]:
    """`query(q) tensor<float>(x[3]) : [1,2,3]`, `q double: 0.5`, `constant(w) tensor(x[2]): [1,2]`."""
    t = text.strip()
    if t.startswith(f"{wrapper}("):
        close = t.find(")")
        name = t[len(wrapper) + 1:close].strip()
        rest = t[close + 1:].strip()
    else:
        parts = t.split(None, 1)
        if not parts:
            raise SchemaError(f"expected a {wrapper} declaration", loc)
        name = parts[0].rstrip(":")
        rest = parts[1] if len(parts) > 1 else ""
    if not name.replace("_", "a").replace("$", "a").replace("@", "a").isalnum():
        raise SchemaError(f"'{name}' is not a valid {wrapper} name", loc)
    type_text, default_text = _split_default(rest)
    if not type_text:
        type_text = "double"
    try:
        type_ = parse_type(type_text)
    except TypeSyntaxError as e:
        raise SchemaError(f"{wrapper}({name}): {e}", loc) from None
    default = None
    if default_text is not None:
        default = _value_of(default_text, type_, loc, f"{wrapper}({name})")
    elif need_default:
        raise SchemaError(f"constant {name} needs a value (name type: value)", loc)
    return name, type_, default


def _split_default(rest: str) -> tuple[str, str | None]:
    depth = 0
    for i, ch in enumerate(rest):
        if ch in "(<[{":
            depth += 1
        elif ch in ")>]}":
            depth -= 1
        elif ch == ":" and depth == 0:
            return rest[:i].strip(), rest[i + 1:].strip()
    return rest.strip(), None


def _value_of(text: str, t: TensorType, loc: Location, what: str) -> npt.NDArray[Any]:
    """A default or constant value: a number, a dense list, or a full tensor literal."""
    body = text.strip()
    if body.startswith("[") or body.startswith("{"):
        body = f"{t}:{body}"
    try:
        expr = parse_expression(body, loc.file, loc.line, loc.column)
        v = Compiler(_NoContext()).compile(expr)
    except RankingError as e:
        raise SchemaError(f"{what}: bad value: {e.message}", loc) from None
    if v.node.op is not Op.CONSTANT:
        raise SchemaError(f"{what}: the value must be a constant", loc)
    if v.type.shape != t.shape:
        raise SchemaError(f"{what}: value of type {v.type} does not match {t}", loc)
    return np.asarray(v.node.value, dtype=t.cell.np_dtype)


class _NoContext:
    """Values in declarations may not refer to anything."""

    def _no(self, what: str, loc: Location) -> RankingError:
        return RankingError(f"{what} cannot be used in a constant value", loc)

    def attribute(self, name: str, loc: Location) -> Any:
        raise self._no("attribute()", loc)

    def query(self, name: str, loc: Location) -> Any:
        raise self._no("query()", loc)

    def constant(self, name: str, loc: Location) -> Any:
        raise self._no("constant()", loc)

    def has_function(self, name: str) -> bool:
        return False

    def function(self, name: str, args: Any, loc: Location, compiler: Any) -> Any:
        raise self._no("a function", loc)

    def onnx(self, model: str, output: str | None, loc: Location, compiler: Any) -> Any:
        raise self._no("onnx()", loc)


def _check_profiles(schema: SchemaDef) -> None:
    for p in schema.profiles.values():
        for parent in p.inherits:
            if parent not in schema.profiles and parent != "default":
                raise SchemaError(f"rank profile '{p.name}' inherits unknown profile '{parent}'", p.loc)
