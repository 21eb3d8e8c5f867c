"""The indexing language of a field (`input title . " " . input text | embed e5 | attribute | index`):
what a field is made from and where its value goes (attribute, index, summary).

Values are never computed here: a field Vespa derives at indexing time (with `embed`,
`chunk`, `binarize`, ...) is given by the feed instead, so a statement that would derive a
value is accepted and listed as such; a name that is not Vespa's indexing language is
refused, located."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from server.application.errors import SchemaError
from tensor_ir.expr.errors import Location

TARGETS = ("attribute", "index", "summary")
# Vespa's indexing functions that compute or convert the value: Vespa runs them when it
# indexes a document; here the document is fed with the value they would give
DERIVING = {
    "embed", "chunk", "binarize", "pack_bits", "to_array", "to_byte", "to_bool", "to_double", "to_float",
    "to_int", "to_long", "to_pos", "to_string", "to_uri", "to_wset", "to_epoch_second", "split", "join", "trim",
    "substring", "hash", "now", "random", "lowercase", "normalize", "ngram", "base64decode", "base64encode",
    "hex_decode", "hex_encode", "zcurve", "flatten", "optimize_predicate", "get_var", "set_var", "get_field",
    "hostname", "generate", "uri", "clear_state", "echo", "passthrough", "exact", "this", "sleep", "busy_wait",
}
# settings for text processing that has no effect here (no linguistics)
TEXT_ONLY = {"set_language": "language of the text: no linguistics here",
             "tokenize": "tokenisation for text matching: no text matching here"}
# control flow with blocks (for_each { ... }, guard { ... }, select_input { ... })
BLOCKS = {"for_each", "guard", "select_input"}
_UNSUPPORTED = {"if": "conditional indexing statement 'if'", "switch": "indexing statement 'switch'"}

_TOKEN = re.compile(r'\s+|#[^\n]*|"(?:[^"\\\n]|\\.)*"|\|\||[|.;(){}:]|[A-Za-z_][A-Za-z0-9_-]*|-?\d+(?:\.\d+)?|.')


@dataclass
class Indexing:
    """What a field's indexing statements say."""

    targets: set[str] = field(default_factory=set)
    inputs: list[str] = field(default_factory=list)  # fields read with `input`
    derived: list[tuple[str, Location]] = field(default_factory=list)  # functions that compute the value
    text_only: list[tuple[str, Location]] = field(default_factory=list)
    names: dict[str, str] = field(default_factory=dict)  # `attribute x`: target -> name it writes


@dataclass
class _Tok:
    text: str
    loc: Location


def parse_indexing(text: str, loc: Location, field_name: str) -> Indexing:
    toks = _tokens(text, loc)
    out = Indexing()
    p = _Parser(toks, out, field_name, loc)
    p.script(end=None)
    return out


def _tokens(text: str, loc: Location) -> list[_Tok]:
    out: list[_Tok] = []
    line, col = loc.line, loc.column
    for m in _TOKEN.finditer(text):
        t = m.group()
        if not t.isspace() and not t.startswith("#"):
            out.append(_Tok(t, Location(loc.file, line, col)))
        nl = t.count("\n")
        if nl:
            line += nl
            col = len(t) - t.rfind("\n")
        else:
            col += len(t)
    return out


class _Parser:
    def __init__(self, toks: list[_Tok], out: Indexing, field_name: str, start: Location) -> None:
        self.toks = toks
        self.i = 0
        self.out = out
        self.field = field_name
        self.start = start

    def _peek(self) -> str:
        return self.toks[self.i].text if self.i < len(self.toks) else ""

    def _loc(self) -> Location:
        if self.i < len(self.toks):
            return self.toks[self.i].loc
        return self.toks[-1].loc if self.toks else self.start

    def _error(self, message: str) -> SchemaError:
        return SchemaError(f"field '{self.field}': indexing: {message}", self._loc())

    def script(self, end: str | None) -> None:
        while True:
            if self._peek() == ";":
                self.i += 1
                continue
            if self._peek() == (end or ""):
                return
            self.chain()
            if self._peek() == ";":
                continue
            if self._peek() != (end or ""):
                found = self._peek() or "the end"
                raise self._error(f"expected '|'{' or ' + repr(end) if end else ''}, found '{found}'")

    def chain(self) -> None:
        self.concat()
        while self._peek() == "|":
            self.i += 1
            self.concat()

    def concat(self) -> None:
        self.choice()
        while self._peek() == ".":
            self.i += 1
            self.choice()

    def choice(self) -> None:
        self.primary()
        while self._peek() == "||":
            self.i += 1
            self.primary()

    def primary(self) -> None:
        t = self._peek()
        loc = self._loc()
        if not t:
            raise self._error("expected an indexing expression, found the end")
        if t.startswith('"') or t[:1].isdigit() or (t[:1] == "-" and t[1:2].isdigit()):
            self.i += 1
            return
        if t == "(":
            self.i += 1
            self.chain()
            if self._peek() != ")":
                raise self._error(f"expected ')', found '{self._peek() or 'the end'}'")
            self.i += 1
            return
        if t == "_":
            self.i += 1
            return
        if not (t[:1].isalpha() or t[:1] == "_"):
            raise self._error(f"unexpected '{t}'")
        self.i += 1
        if t in _UNSUPPORTED:
            raise SchemaError(f"field '{self.field}': {_UNSUPPORTED[t]} is not supported", loc)
        if t == "input":
            name = self._peek()
            if not name or not (name[:1].isalpha() or name[:1] == "_"):
                raise self._error("expected a field name after 'input'")
            self.i += 1
            self.out.inputs.append(name)
            return
        if t in BLOCKS:
            if self._peek() != "{":
                raise self._error(f"expected '{{' after '{t}'")
            self.i += 1
            self.script(end="}")
            self.i += 1
            self.out.derived.append((t, loc))
            return
        args = self._args()
        if t in TARGETS:
            self.out.targets.add(t)
            if args:
                self.out.names[t] = args[0]
        elif t in TEXT_ONLY:
            self.out.text_only.append((t, loc))
        elif t in DERIVING:
            self.out.derived.append((t, loc))
        else:
            raise SchemaError(f"field '{self.field}': unknown indexing function '{t}'", loc)

    def _args(self) -> list[str]:
        """Words, numbers and strings after a function name (`embed e5`, `chunk fixed-length 1024`,
        `tokenize normalize stem:"BEST"`), up to the next operator: Vespa puts one between
        any two expressions, so a word here is always an argument."""
        args: list[str] = []
        while True:
            t = self._peek()
            if not t or t in ("|", ".", ";", ")", "}", "||", "{", "("):
                return args
            if t == ":":
                self.i += 1
                continue
            args.append(t.strip('"'))
            self.i += 1
